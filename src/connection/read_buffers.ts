/**
 * A connection's socket read buffers, for streams that read into the caller's buffer (Deno; the
 * streams with `readChunk` hand over their own chunks instead). Reads borrow a small buffer from a
 * process-wide pool; a connection that receives in bulk gets a buffer of its own that grows while
 * reads fill it; and with `ByteStream.readLazily` a read that waits for the peer holds no buffer
 * at all: an idle connection keeps none, and a grown one goes to a small process-wide pool of
 * large buffers while it waits (a bulk receiver takes it back after the wait).
 *
 * @module
 */
import type { ReadBuffers } from "../net/stream.ts";

/** Reads borrow buffers of this size at first... */
export const INITIAL_READ_BUFFER_SIZE = 16 * 1024;
/** ...and a connection's own buffer grows up to this size while reads keep filling it. */
const MAX_READ_BUFFER_SIZE = 256 * 1024;
/** At most this many small buffers are kept (process-wide), for concurrent connections. */
const MAX_POOLED_READS = 8;
const readPool: Uint8Array[] = [];
/**
 * At most this many grown buffers are kept (process-wide) while their connections wait: a large
 * ArrayBuffer costs page faults and zeroing when it is made again (see the send pools).
 */
const MAX_POOLED_LARGE_READS = 4;
const largeReadPool: Uint8Array[] = [];
const EMPTY = new Uint8Array(0);

/** A pooled small buffer, or a new one. */
export function borrowReadBuffer(): Uint8Array {
  return readPool.pop() ?? new Uint8Array(INITIAL_READ_BUFFER_SIZE);
}

/** Gives a buffer nobody reads any more to the pool of its size (or to the garbage collector). */
export function releaseReadBuffer(buffer: Uint8Array): void {
  if (buffer.length === INITIAL_READ_BUFFER_SIZE) {
    if (readPool.length < MAX_POOLED_READS) readPool.push(buffer);
  } else if (buffer.length > INITIAL_READ_BUFFER_SIZE) {
    if (largeReadPool.length < MAX_POOLED_LARGE_READS) largeReadPool.push(buffer);
  }
}

/** A pooled large buffer of at least `size` bytes, or a new one of `size`. */
function borrowLargeBuffer(size: number): Uint8Array {
  for (let i = largeReadPool.length - 1; i >= 0; i--) {
    const buffer = largeReadPool[i]!;
    if (buffer.length >= size) {
      largeReadPool.splice(i, 1);
      return buffer;
    }
  }
  return new Uint8Array(size);
}

/**
 * One connection's read buffers. A read takes one ({@link take}); what was received is then either
 * copied into the engine ({@link copied}: the buffer is free again) or lent to it ({@link lent}:
 * OpenSSL reads it in place, and the buffer stays the connection's until the engine asks for more
 * input, which is when the next read takes it).
 *
 * @example
 * ```ts
 * import { ReadBufferSet } from "./read_buffers.ts";
 * const buffers = new ReadBufferSet();
 * const into = buffers.take(); // a pooled 16 KiB buffer
 * into.set([1, 2, 3]);
 * console.log(buffers.received(3)); // Uint8Array [1, 2, 3]
 * buffers.copied(); // back to the pool
 * ```
 */
export class ReadBufferSet implements ReadBuffers {
  /** The connection's own buffer between reads (lent to the engine, or drained), or EMPTY. */
  #own: Uint8Array = EMPTY;
  /** The size of the buffer this connection reads into while it receives in bulk, or 0. */
  #bulkSize = 0;
  /** The buffer the current read took. */
  #taken: Uint8Array = EMPTY;

  /** A buffer for one receive attempt: the connection's own, a large pooled one, or a small one. */
  take(): Uint8Array {
    let buffer = this.#own;
    if (buffer !== EMPTY) this.#own = EMPTY;
    else if (this.#bulkSize > 0) buffer = borrowLargeBuffer(this.#bulkSize);
    else buffer = borrowReadBuffer();
    this.#taken = buffer;
    return buffer;
  }

  /**
   * The read waits: its buffer goes back to a pool. (A buffer lent to the engine before has been
   * read to the end by then: a drained read BIO never reads it again.)
   */
  giveBack(buffer: Uint8Array): void {
    releaseReadBuffer(buffer);
    if (this.#taken === buffer) this.#taken = EMPTY;
  }

  /** The `n` bytes the current read received. */
  received(n: number): Uint8Array {
    return this.#taken.subarray(0, n);
  }

  /**
   * The bytes were copied into the engine (or the stream ended): the buffer is free. A small read
   * also ends a bulk phase: the next reads borrow small buffers again.
   */
  copied(): void {
    releaseReadBuffer(this.#taken);
    this.#taken = EMPTY;
    this.#bulkSize = 0;
  }

  /**
   * The engine has taken all the input lent to it: the connection's own buffer waits in the
   * process-wide pool until its next read (which takes it back, if no other connection did), so
   * that a connection that stops reading after a bulk receive keeps none.
   */
  release(): void {
    if (this.#own === EMPTY) return;
    releaseReadBuffer(this.#own);
    this.#own = EMPTY;
  }

  /**
   * The `n` bytes were lent to the engine: the buffer stays this connection's. A read that filled
   * it means the peer sends faster than we read: the next read takes a buffer twice the size
   * (this one is dropped once the engine is done with it).
   */
  lent(n: number): void {
    const buffer = this.#taken;
    this.#taken = EMPTY;
    if (n === buffer.length && n < MAX_READ_BUFFER_SIZE) {
      this.#bulkSize = n * 2;
    } else {
      this.#own = buffer;
      this.#bulkSize = buffer.length;
    }
  }
}
