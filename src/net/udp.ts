/**
 * UDP sockets for DTLS, over `node:dgram` on every runtime (Deno and Bun ship it without flags;
 * Deno's own `Deno.listenDatagram` still needs `--unstable-net`). One socket, unconnected: each
 * datagram carries its peer's address, so one server socket serves many peers.
 *
 * @module
 */
import dgram from "node:dgram";
import { unrefTimer } from "../core/timers.ts";
import { isIpAddress } from "./address.ts";

/** A UDP peer: IP address and port. */
export interface UdpAddr {
  /** Always `"udp"`. */
  readonly transport: "udp";
  /** The IP address. */
  readonly hostname: string;
  /** The port. */
  readonly port: number;
}

/** What the socket calls with each datagram that arrives. */
export type DatagramHandler = (datagram: Uint8Array, from: UdpAddr) => void;

/** A bound UDP socket (see {@link bindUdp}). */
export interface UdpSocket {
  /** The local address it is bound to. */
  readonly localAddr: UdpAddr;
  /** Sends one datagram to `to` (errors go to `onError`: UDP gives no delivery report anyway). */
  send(datagram: Uint8Array, to: UdpAddr): void;
  /**
   * Closes the socket once the datagrams already given to {@link send} are handed to the OS
   * (sends are asynchronous: closing at once would drop the last ones, e.g. a close_notify).
   * Idempotent; resolves when it is closed.
   */
  close(): Promise<void>;
}

/** Options for {@link bindUdp}. */
export interface BindUdpOptions {
  /** Local address. Default `0.0.0.0` (or `::` for `family: 6`). */
  hostname?: string;
  /** Local port. Default 0 (any free port). */
  port?: number;
  /** Address family. Default: from `hostname`, else 4. */
  family?: 4 | 6;
  /** Each datagram that arrives. */
  onDatagram: DatagramHandler;
  /** Socket errors after binding (e.g. ICMP port unreachable on Linux as ECONNREFUSED). */
  onError?: (error: Error) => void;
}

/** The family of an address literal (4 for host names). */
export function familyOf(hostname: string): 4 | 6 {
  return isIpAddress(hostname) && hostname.includes(":") ? 6 : 4;
}

/** Binds a UDP socket and resolves once it is bound. */
export function bindUdp(options: BindUdpOptions): Promise<UdpSocket> {
  const family = options.family ??
    (options.hostname === undefined ? 4 : familyOf(options.hostname));
  const socket = dgram.createSocket({ type: family === 6 ? "udp6" : "udp4" });
  let closed = false;
  let inFlight = 0;
  let finished = false;
  let onClosed: () => void = () => {};
  const closedPromise = new Promise<void>((resolve) => (onClosed = resolve));
  const finish = () => {
    if (finished) return;
    finished = true;
    socket.close();
    onClosed();
  };
  return new Promise<UdpSocket>((resolve, reject) => {
    const onBindError = (error: Error) => {
      closed = true;
      try {
        socket.close();
      } catch {
        // never bound
      }
      reject(error);
    };
    socket.once("error", onBindError);
    socket.on("message", (msg: Uint8Array, rinfo: { address: string; port: number }) => {
      if (closed) return;
      options.onDatagram(msg, { transport: "udp", hostname: rinfo.address, port: rinfo.port });
    });
    socket.bind(options.port ?? 0, options.hostname ?? (family === 6 ? "::" : "0.0.0.0"), () => {
      socket.off("error", onBindError);
      socket.on("error", (error: Error) => {
        if (!closed) options.onError?.(error);
      });
      const a = socket.address();
      resolve({
        localAddr: { transport: "udp", hostname: a.address, port: a.port },
        send(datagram, to) {
          if (closed) return;
          const attempt = (retry: boolean) => {
            inFlight++;
            socket.send(datagram, to.port, to.hostname, (error) => {
              inFlight--;
              // Bun reports an ICMP port-unreachable for an EARLIER datagram (e.g. a
              // close_notify to a client that has gone) as this send's ECONNREFUSED, and this
              // datagram was not sent: send it again, once.
              if (retry && (error as { code?: string } | null)?.code === "ECONNREFUSED") {
                attempt(false);
              } else if (error && !closed) options.onError?.(error);
              if (closed && inFlight === 0) finish();
            });
          };
          attempt(true);
        },
        close() {
          if (closed) return closedPromise;
          closed = true;
          if (inFlight === 0) finish();
          else unrefTimer(setTimeout(finish, 1000)); // in case a send callback never comes
          return closedPromise;
        },
      });
    });
  });
}

/** `host:port` of `addr`, as a map key (`[v6]:port` for IPv6). */
export function addrKey(addr: UdpAddr): string {
  return addr.hostname.includes(":")
    ? `[${addr.hostname}]:${addr.port}`
    : `${addr.hostname}:${addr.port}`;
}
