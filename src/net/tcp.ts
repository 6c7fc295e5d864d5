/**
 * Chooses the TCP implementation once, the fastest of each runtime:
 *
 * - Deno: the C library's sockets with one shared `epoll` waiter (`tcp_epoll.ts`), where it can
 *   load (Linux x86-64 and aarch64 with glibc) and where Deno allows the program to reach that
 *   address (`--allow-net`, asked per connect without prompting); `Deno.connect` / `Deno.listen`
 *   otherwise, and for listening on a host name. Deno's `node:net` is 3-4x slower than either.
 *   `LIBSSL_FFI_TCP=runtime` keeps `Deno.connect` / `Deno.listen` everywhere (Deno only; any
 *   other value than `runtime` or `epoll` fails at import).
 * - Bun: `Bun.connect` / `Bun.listen` (~1.2x the 1 KiB round trips of its `node:net`, less
 *   memory per connection).
 * - Node.js: `node:net`.
 *
 * @module
 */
import { backend } from "../core/native.ts";
import { isIpAddress } from "./address.ts";
import type {
  ByteStream,
  NetAddr,
  TcpConnectOptions,
  TcpListener,
  TcpListenOptions,
  TcpTransport,
} from "./stream.ts";

async function deno(): Promise<TcpTransport> {
  const runtime = await import("./tcp_deno.ts");
  const wanted = backend.env("LIBSSL_FFI_TCP");
  if (wanted !== undefined && wanted !== "" && wanted !== "runtime" && wanted !== "epoll") {
    throw new Error(
      `LIBSSL_FFI_TCP=${wanted} is not a TCP transport: use "runtime" (Deno.connect) or "epoll" ` +
        "(the default)",
    );
  }
  if (wanted === "runtime") return runtime;
  const epoll = await import("./tcp_epoll.ts");
  // Loaded on first use, not here: importing the library must not dlopen libc yet.
  // An IPv6 literal with a zone (`fe80::1%eth0`): inet_pton cannot read it, Deno.connect can.
  const usable = (hostname: string, port: number) =>
    !hostname.includes("%") && epoll.epollAvailable() && runtime.netAllowed(hostname, port);
  return {
    connectTcp: (options) =>
      usable(options.hostname, options.port)
        ? epoll.connectTcp(options)
        : runtime.connectTcp(options),
    listenTcp: (options) =>
      isIpAddress(options.hostname) && usable(options.hostname, options.port)
        ? epoll.listenTcp(options)
        : runtime.listenTcp(options),
  };
}

// Checked in this order: Bun defines no `Deno` (and Deno no `Bun`), Node.js neither. (All of them
// define `process`, so that is no test.)
const impl: TcpTransport = "Bun" in globalThis
  ? await import("./tcp_bun.ts")
  : "Deno" in globalThis
  ? await deno()
  : await import("./tcp_node.ts");

/** Opens a TCP connection (TCP_NODELAY set) with the fastest API of the current runtime. */
export const connectTcp: (options: TcpConnectOptions) => Promise<ByteStream<NetAddr>> =
  impl.connectTcp;

/** Listens on a TCP port (synchronously bound where the runtime allows). */
export const listenTcp: (options: TcpListenOptions) => TcpListener = impl.listenTcp;
