/**
 * Host names and addresses as users write them, and the addresses of connected sockets.
 *
 * @module
 */
import type { NetAddr } from "./stream.ts";

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** Whether `name` is an IPv4 or IPv6 address literal (those are verified as IPs, without SNI). */
export function isIpAddress(name: string): boolean {
  const v4 = IPV4.exec(name);
  if (v4 !== null) return v4.slice(1).every((part) => Number(part) <= 255);
  return name.includes(":") && /^[0-9a-fA-F:.]+$/.test(name);
}

/** `[::1]` -> `::1`: the brackets of an IPv6 literal in a URL-style host. */
export function stripBrackets(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

/** What a connected socket (node:net, `Bun.connect`) tells of its addresses. */
export interface SocketAddressFields {
  readonly localAddress?: string | undefined;
  readonly localPort?: number | undefined;
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
}

function netAddr(address: string | undefined, port: number | undefined): NetAddr | null {
  return address === undefined || port === undefined
    ? null
    : { transport: "tcp", hostname: address, port };
}

/**
 * A connected socket's two addresses, or `null` when the runtime no longer knows them (a client
 * that disconnected before we got to its socket: node:net and Bun read them from the closed
 * handle and answer `undefined`).
 */
export function socketAddresses(
  socket: SocketAddressFields,
): { local: NetAddr; remote: NetAddr } | null {
  const local = netAddr(socket.localAddress, socket.localPort);
  const remote = netAddr(socket.remoteAddress, socket.remotePort);
  return local === null || remote === null ? null : { local, remote };
}
