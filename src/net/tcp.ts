/**
 * Chooses the TCP implementation once: `Deno.connect` / `Deno.listen` on Deno (measured 3-4x
 * faster there than its `node:net`), `node:net` everywhere else (Bun and Node.js).
 *
 * @module
 */
import type {
  ByteStream,
  NetAddr,
  TcpConnectOptions,
  TcpListener,
  TcpListenOptions,
} from "./stream.ts";

// Bun defines no `Deno`; Node.js neither. (Both define `process`, so that is no test.)
const impl = "Deno" in globalThis && !("Bun" in globalThis)
  ? await import("./tcp_deno.ts")
  : await import("./tcp_node.ts");

/** Opens a TCP connection (TCP_NODELAY set) with the fastest API of the current runtime. */
export const connectTcp: (options: TcpConnectOptions) => Promise<ByteStream<NetAddr>> =
  impl.connectTcp;

/** Listens on a TCP port (synchronously bound where the runtime allows). */
export const listenTcp: (options: TcpListenOptions) => TcpListener = impl.listenTcp;
