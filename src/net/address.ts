/**
 * Host names and addresses as users write them.
 *
 * @module
 */

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
