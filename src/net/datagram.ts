/**
 * The UDP socket that DTLS runs over, as every implementation gives it (`udp.ts` picks one): one
 * socket, unconnected, each datagram carrying its peer's address, so that one server socket serves
 * many peers.
 *
 * @module
 */
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

/** `host:port` of `addr`, as a map key (`[v6]:port` for IPv6). */
export function addrKey(addr: UdpAddr): string {
  return addr.hostname.includes(":")
    ? `[${addr.hostname}]:${addr.port}`
    : `${addr.hostname}:${addr.port}`;
}
