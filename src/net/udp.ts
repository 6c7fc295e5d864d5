/**
 * Chooses the UDP implementation once, for DTLS (as `tcp.ts` does for TCP):
 *
 * - Deno: the C library's sockets on the epoll transport's reactor (`udp_epoll.ts`), where the
 *   socket calls load (Linux x86-64 and aarch64 with glibc) and where Deno already grants the
 *   address to bind (`--allow-net`, asked without prompting), for an IP address to bind to;
 *   `node:dgram` otherwise. `LIBSSL_FFI_UDP=runtime` keeps `node:dgram` everywhere (Deno only;
 *   any other value than `runtime` or `epoll` fails at import).
 * - Bun and Node.js: `node:dgram`.
 *
 * The socket's shape, and the address types, are in `datagram.ts`.
 *
 * @module
 */
import { backend } from "../core/native.ts";
import { isIpAddress } from "./address.ts";
import { type BindUdpOptions, familyOf, type UdpSocket } from "./datagram.ts";
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
  if (wanted === "runtime") return bindDgram;
  const epoll = await import("./udp_epoll.ts");
  const { epollAvailable } = await import("./reactor.ts");
  const { netAllowed } = await import("./tcp_deno.ts");
  return (options) => {
    const family = options.family ??
      (options.hostname === undefined ? 4 : familyOf(options.hostname));
    const hostname = options.hostname ?? (family === 6 ? "::" : "0.0.0.0");
    // Loaded on first use, not here: importing the library must not dlopen libc yet. An IPv6
    // literal with a zone (`fe80::1%eth0`) is node:dgram's.
    const usable = isIpAddress(hostname) && !hostname.includes("%") && epollAvailable() &&
      netAllowed(hostname, options.port ?? 0);
    return usable ? epoll.bindUdp(options, netAllowed) : bindDgram(options);
  };
}

const impl = "Deno" in globalThis ? await deno() : bindDgram;

/** Binds a UDP socket and resolves once it is bound. */
export function bindUdp(options: BindUdpOptions): Promise<UdpSocket> {
  return impl(options);
}
