/**
 * The read side of a byte stream over a socket that pushes its data (Bun's `data` handler,
 * node:net's 'data' event): pull-based reads (`readChunk`, `read`) over pushed chunks, with
 * backpressure. The transports that need it (`tcp_bun.ts`, `tcp_node.ts`) extend
 * {@link PushedStream} and add their write side.
 *
 * A chunk goes straight to a read that waits for one (one promise per chunk, no async frames:
 * round trips pay for every hop), else it is queued; the socket is paused while more than
 * {@link HIGH_WATER} bytes are unread and resumed below half of it.
 *
 * A socket that reads into one buffer of its own and lends it for the length of a callback
 * (node:net's `onread`) pushes with {@link PushedStream.pushedView} instead: the bytes are copied
 * straight into the buffer of the read that waits ({@link PushedStream.readCopied}), and copied
 * into a chunk of their own only when none waits.
 *
 * @module
 */
import type { ReadBuffers } from "./stream.ts";

/** Unread bytes above which the socket is paused; it resumes below half of it. */
export const HIGH_WATER = 1 << 20;

/** A socket's flow control: stops and restarts its pushed data (absent: unread data is unbounded). */
export interface Pausable {
  pause?(): unknown;
  resume?(): unknown;
}

/** A read waiting for a chunk, the end (`null`) or an error. */
interface Reader {
  resolve(chunk: Uint8Array | null): void;
  reject(error: unknown): void;
}

/** A {@link PushedStream.readCopied} waiting: it takes a buffer from `buffers` once bytes come. */
interface LazyReader {
  buffers: ReadBuffers;
  resolve(n: number | null): void;
  reject(error: unknown): void;
}

/**
 * Pushed chunks, read by pull. A subclass feeds it ({@link pushed}, {@link fail},
 * {@link ended}) from its socket's events and closes it with {@link closeInput}.
 *
 * @example
 * ```ts
 * import { PushedStream } from "./pushed_stream.ts";
 * class Demo extends PushedStream {
 *   constructor() {
 *     super({});
 *   }
 *   feed(bytes: Uint8Array): void {
 *     this.pushed(bytes);
 *     this.ended(); // the end of the stream comes after what was pushed
 *   }
 * }
 * const demo = new Demo();
 * demo.feed(new TextEncoder().encode("hello"));
 * const buf = new Uint8Array(3);
 * console.log(await demo.read(buf), await demo.read(buf), await demo.read(buf)); // 3 2 null
 * ```
 */
export abstract class PushedStream {
  #source: Pausable;
  /** Received, not read yet (#buffered bytes); the first may be partly read already. */
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #paused = false;
  /** Reads waiting: only while nothing is buffered. */
  #readers: Reader[] = [];
  /** Lazy reads waiting (see {@link readCopied}): only while nothing is buffered. */
  #lazyReaders: LazyReader[] | null = null; // made on first use: most streams never read lazily
  /** End of stream: the peer's FIN, the socket closed or failed. */
  #ended = false;
  /** What the socket failed with (a reset), reported after the data that came before it. */
  #failure: Error | null = null;
  #closed = false;

  /** `source`: the socket, paused and resumed for backpressure. */
  protected constructor(source: Pausable) {
    this.#source = source;
  }

  /** A chunk from the socket: to the read waiting, else queued (pausing above HIGH_WATER). */
  protected pushed(chunk: Uint8Array): void {
    const reader = this.#readers.shift();
    if (reader !== undefined) return reader.resolve(chunk);
    const lazy = this.#lazyReaders?.shift();
    if (lazy !== undefined) return lazy.resolve(this.#copyOut(chunk, lazy.buffers));
    this.#queue(chunk);
  }

  /**
   * Bytes the socket lends only until this returns (its own read buffer): copied into the
   * buffer of a lazy read that waits, else into a chunk of their own for the next read.
   */
  protected pushedView(view: Uint8Array): void {
    const lazy = this.#lazyReaders?.shift();
    if (lazy !== undefined) return lazy.resolve(this.#copyOut(view, lazy.buffers));
    this.pushed(view.slice());
  }

  /**
   * Copies the start of `bytes` into a buffer taken from `buffers`; what does not fit is queued
   * (as a copy of its own: `bytes` may be a view the socket reuses). Returns the count copied.
   */
  #copyOut(bytes: Uint8Array, buffers: ReadBuffers): number {
    const into = buffers.take();
    if (bytes.length <= into.length) {
      into.set(bytes);
      return bytes.length;
    }
    into.set(bytes.subarray(0, into.length));
    this.#queue(bytes.slice(into.length));
    return into.length;
  }

  #queue(chunk: Uint8Array): void {
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    if (this.#buffered > HIGH_WATER && !this.#paused) {
      this.#paused = true;
      this.#source.pause?.();
    }
  }

  /** Records what the socket failed with (the first failure wins); see {@link ended}. */
  protected fail(error: Error): void {
    this.#failure ??= error;
  }

  /** The failure recorded by {@link fail}, or `null`. */
  protected get failure(): Error | null {
    return this.#failure;
  }

  /** Whether {@link closeInput} was called. */
  protected get closed(): boolean {
    return this.#closed;
  }

  /**
   * The end of the input (the peer's FIN, the socket closed or failed): reads that find nothing
   * buffered get the end (`null`), or the failure, or "closed" after {@link closeInput}.
   */
  protected ended(): void {
    this.#ended = true;
    // Readers only wait while nothing is buffered: each gets the end (or the error) now.
    for (const reader of this.#readers.splice(0)) this.#settle(reader);
    for (const reader of this.#lazyReaders?.splice(0) ?? []) this.#settle(reader);
  }

  /**
   * Closes the input: drops what is buffered; reads fail from now on (call {@link ended} to
   * fail those waiting). Returns false when it was closed already.
   */
  protected closeInput(): boolean {
    if (this.#closed) return false;
    this.#closed = true;
    this.#chunks = [];
    this.#buffered = 0;
    return true;
  }

  /** Answers a reader that can get no data: closed, failed, or at the end. */
  #settle(reader: Reader | LazyReader): void {
    if (this.#closed) reader.reject(new Error("the stream is closed"));
    else if (this.#failure !== null) reader.reject(this.#failure);
    else reader.resolve(null);
  }

  /** The next chunk as the socket gave it (no copy), or `null` at the end. */
  readChunk(): Promise<Uint8Array | null> {
    const chunk = this.#closed ? undefined : this.#chunks.shift();
    if (chunk === undefined) {
      return new Promise((resolve, reject) => {
        if (this.#closed || this.#ended) this.#settle({ resolve, reject });
        else this.#readers.push({ resolve, reject });
      });
    }
    this.#taken(chunk.length);
    return Promise.resolve(chunk);
  }

  /**
   * Reads into a buffer taken from `buffers` only once bytes are there (`ByteStream.readLazily`):
   * the byte count, or `null` at the end. For sockets that push with {@link pushedView}, whose
   * bytes are copied once either way; a subclass offers it as its `readLazily`.
   */
  protected readCopied(buffers: ReadBuffers): Promise<number | null> {
    const chunk = this.#closed ? undefined : this.#chunks[0];
    if (chunk === undefined) {
      return new Promise((resolve, reject) => {
        if (this.#closed || this.#ended) this.#settle({ buffers, resolve, reject });
        else (this.#lazyReaders ??= []).push({ buffers, resolve, reject });
      });
    }
    const into = buffers.take();
    const n = Math.min(chunk.length, into.length);
    into.set(n === chunk.length ? chunk : chunk.subarray(0, n));
    if (n === chunk.length) this.#chunks.shift();
    else this.#chunks[0] = chunk.subarray(n); // the next read starts with the rest
    this.#taken(n);
    return Promise.resolve(n);
  }

  /** `n` queued bytes were read: resumes the socket below half the high-water mark. */
  #taken(n: number): void {
    this.#buffered -= n;
    if (this.#paused && this.#buffered <= HIGH_WATER / 2) {
      this.#paused = false;
      this.#source.resume?.();
    }
  }

  /** Copies the next chunk (or what of it fits; the rest is read next) into `into`. */
  async read(into: Uint8Array): Promise<number | null> {
    const chunk = await this.readChunk();
    if (chunk === null) return null;
    if (chunk.length <= into.length) {
      into.set(chunk);
      return chunk.length;
    }
    into.set(chunk.subarray(0, into.length));
    this.#chunks.unshift(chunk.subarray(into.length)); // the next read starts with the rest
    this.#buffered += chunk.length - into.length;
    return into.length;
  }
}
