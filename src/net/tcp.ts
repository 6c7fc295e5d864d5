/**
 * Chooses the TCP implementation once: `Deno.connect` / `Deno.listen` on Deno, `node:net` on Bun.
 *
 * @module
 */
import type { ByteStream, TcpConnectOptions, TcpListener, TcpListenOptions } from "./stream.ts";

const impl = "Bun" in globalThis ? await import("./tcp_node.ts") : await import("./tcp_deno.ts");

/** Opens a TCP connection (TCP_NODELAY set) with the fastest API of the current runtime. */
export const connectTcp: (options: TcpConnectOptions) => Promise<ByteStream> = impl.connectTcp;

/** Listens on a TCP port (synchronously bound where the runtime allows). */
export const listenTcp: (options: TcpListenOptions) => TcpListener = impl.listenTcp;
