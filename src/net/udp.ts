/**
 * Chooses the UDP implementation once, for DTLS (as `tcp.ts` does for TCP):
 *
 * - Deno: the C library's sockets on the epoll transport's reactor (`udp_epoll.ts`), where the
 *   socket calls load (Linux x86-64 and aarch64 with glibc), for an IP address to bind to;
 *   `node:dgram` otherwise. `LIBSSL_FFI_UDP=runtime` keeps `node:dgram` everywhere (Deno only;
 *   any other value than `runtime` or `epoll` fails at import). Either way the address to bind
 *   must be granted by Deno (`--allow-net`, or its prompt where there is a terminal): otherwise
 *   the bind is `PERMISSION_DENIED` naming the flag.
 * - Bun and Node.js: `node:dgram`.
 *
 * The socket's shape, and the address types, are in `datagram.ts`.
 *
 * @module
 */
import { TlsError } from "../core/errors.ts";
import { backend } from "../core/native.ts";
import { isIpAddress } from "./address.ts";
import { addrKey, type BindUdpOptions, familyOf, type UdpSocket } from "./datagram.ts";
import { bindUdp as bindDgram } from "./udp_dgram.ts";

export { addrKey, familyOf } from "./datagram.ts";
export type { BindUdpOptions, DatagramHandler, UdpAddr, UdpSocket } from "./datagram.ts";

async function deno(): Promise<(options: BindUdpOptions) => Promise<UdpSocket>> {
  const wanted = backend.env("LIBSSL_FFI_UDP");
  if (wanted !== undefined && wanted !== "" && wanted !== "runtime" && wanted !== "epoll") {
    throw new Error(
      `LIBSSL_FFI_UDP=${wanted} is not a UDP transport: use "runtime" (node:dgram) or "epoll" ` +
        "(the default)",
    );
  }
  const epoll = wanted === "runtime" ? null : await import("./udp_epoll.ts");
  const { epollAvailable } = await import("./reactor.ts");
  const { netAllowed } = await import("./tcp_deno.ts");
  return (options) => {
    const family = options.family ??
      (options.hostname === undefined ? 4 : familyOf(options.hostname));
    const hostname = options.hostname ?? (family === 6 ? "::" : "0.0.0.0");
    const port = options.port ?? 0;
    // Deno's node:dgram throws a refused bind as an uncaught NotCapable from a later tick, which
    // ends the process (measured, Deno 2.9): so every bind asks first, as Deno itself would (a
    // prompt on a terminal; "denied" at once with --no-prompt or without one).
    if (!netAllowed(hostname, port) && !netGranted(hostname, port)) {
      const target = addrKey({ transport: "udp", hostname, port });
      return Promise.reject(
        new TlsError(
          "PERMISSION_DENIED",
          `Deno does not allow this program to bind a UDP socket to ${target}: run it with ` +
            `--allow-net (or --allow-net=${hostname.includes(":") ? `[${hostname}]` : hostname})`,
        ),
      );
    }
    // Loaded on first use, not here: importing the library must not dlopen libc yet. An IPv6
    // literal with a zone (`fe80::1%eth0`) is node:dgram's.
    const usable = epoll !== null && isIpAddress(hostname) && !hostname.includes("%") &&
      epollAvailable();
    return usable ? epoll.bindUdp(options, netAllowed) : bindDgram(options);
  };
}

/** Deno's permission prompt for `hostname:port` (no prompt without a terminal): granted? */
function netGranted(hostname: string, port: number): boolean {
  const host = hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
  return Deno.permissions.requestSync({ name: "net", host }).state === "granted";
}

const impl = "Deno" in globalThis ? await deno() : bindDgram;

/** Binds a UDP socket and resolves once it is bound. */
export function bindUdp(options: BindUdpOptions): Promise<UdpSocket> {
  return impl(options);
}
