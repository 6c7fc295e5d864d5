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
 * @module
 */

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
  #settle(reader: Reader): void {
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
    this.#buffered -= chunk.length;
    if (this.#paused && this.#buffered <= HIGH_WATER / 2) {
      this.#paused = false;
      this.#source.resume?.();
    }
    return Promise.resolve(chunk);
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
