/**
 * A {@link ByteStream} over a pair of Web streams, for `startTls`: a `Deno.Conn`, node's
 * `Duplex.toWeb(socket)`, or anything with `{ readable, writable }`.
 *
 * @module
 */
import type { ByteStream, NetAddr } from "./stream.ts";

/** The transport `startTls` accepts. */
export interface WebTransport {
  /** Bytes from the peer. */
  readable: ReadableStream<Uint8Array>;
  /** Bytes to the peer. */
  writable: WritableStream<Uint8Array>;
  /** Used for `localAddr` when it is a TCP address (e.g. a `Deno.Conn`). */
  localAddr?: unknown;
  /** Used for `remoteAddr` when it is a TCP address. */
  remoteAddr?: unknown;
  /**
   * Called by `Connection.ref()` when present (a `Deno.Conn` has it); without it `ref()` throws.
   */
  ref?: () => void;
  /** Called by `Connection.unref()` when present (a `Deno.Conn` has it). */
  unref?: () => void;
  /** Called by `Connection.setNoDelay()` when present (a `Deno.TcpConn` has it). */
  setNoDelay?: (noDelay?: boolean) => void;
  /** Called by `Connection.setKeepAlive()` when present (a `Deno.TcpConn` has it). */
  setKeepAlive?: (keepAlive?: boolean) => void;
}

function tcpAddr(a: unknown): NetAddr | null {
  const x = a as { transport?: unknown; hostname?: unknown; port?: unknown } | undefined;
  return x?.transport === "tcp" && typeof x.hostname === "string" && typeof x.port === "number"
    ? { transport: "tcp", hostname: x.hostname, port: x.port }
    : null;
}

class WebByteStream implements ByteStream {
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #leftover: Uint8Array | null = null;
  #closed = false;
  readonly localAddr: NetAddr | null;
  readonly remoteAddr: NetAddr | null;

  readonly ref?: () => void;
  readonly unref?: () => void;
  readonly setNoDelay?: (noDelay: boolean) => void;
  readonly setKeepAlive?: (keepAlive: boolean) => void;

  constructor(transport: WebTransport) {
    this.#reader = transport.readable.getReader();
    this.#writer = transport.writable.getWriter();
    this.localAddr = tcpAddr(transport.localAddr);
    this.remoteAddr = tcpAddr(transport.remoteAddr);
    // The transport's own controls, where it has them (a Deno.TcpConn has all four).
    const t = transport;
    if (typeof t.ref === "function") this.ref = () => t.ref!();
    if (typeof t.unref === "function") this.unref = () => t.unref!();
    if (typeof t.setNoDelay === "function") this.setNoDelay = (on) => t.setNoDelay!(on);
    if (typeof t.setKeepAlive === "function") this.setKeepAlive = (on) => t.setKeepAlive!(on);
  }

  async readChunk(): Promise<Uint8Array | null> {
    const left = this.#leftover;
    this.#leftover = null;
    if (left !== null && left.length > 0) return left;
    for (;;) {
      const r = await this.#reader.read();
      if (r.done) return null;
      if (r.value.length > 0) return r.value;
    }
  }

  async read(into: Uint8Array): Promise<number | null> {
    let chunk = this.#leftover;
    this.#leftover = null;
    while (chunk === null || chunk.length === 0) {
      const r = await this.#reader.read();
      if (r.done) return null;
      chunk = r.value;
    }
    const n = Math.min(chunk.length, into.length);
    into.set(chunk.subarray(0, n));
    if (n < chunk.length) this.#leftover = chunk.subarray(n);
    return n;
  }

  async write(data: Uint8Array): Promise<void> {
    await this.#writer.ready;
    await this.#writer.write(data);
  }

  async closeWrite(): Promise<void> {
    await this.#writer.close();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#reader.cancel().catch(() => {});
    this.#writer.abort().catch(() => {});
  }
}

/** Wraps `{ readable, writable }` as a {@link ByteStream}. */
export function webByteStream(transport: WebTransport): ByteStream {
  if (
    typeof transport !== "object" || transport === null ||
    !(transport.readable instanceof ReadableStream) ||
    !(transport.writable instanceof WritableStream)
  ) {
    throw new TypeError("startTls needs a transport with { readable, writable } Web streams");
  }
  return new WebByteStream(transport);
}
