/**
 * Chooses the TCP implementation once: `Deno.connect` on Deno, `node:net` on Bun.
 *
 * @module
 */
import type { ByteStream, TcpConnectOptions } from "./stream.ts";

/** Opens a TCP connection (TCP_NODELAY set) with the fastest API of the current runtime. */
export const connectTcp: (options: TcpConnectOptions) => Promise<ByteStream> = "Bun" in globalThis
  ? (await import("./tcp_node.ts")).connectTcp
  : (await import("./tcp_deno.ts")).connectTcp;
