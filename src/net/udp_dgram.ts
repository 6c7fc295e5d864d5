/**
 * UDP over `node:dgram`: Bun and Node.js, and Deno where the epoll transport cannot run (Deno's
 * own `Deno.listenDatagram` still needs `--unstable-net`; its `node:dgram` needs no flag).
 *
 * @module
 */
import dgram from "node:dgram";
import { unrefTimer } from "../core/timers.ts";
import { type BindUdpOptions, familyOf, type UdpSocket } from "./datagram.ts";

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
