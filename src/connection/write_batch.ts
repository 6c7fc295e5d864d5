/**
 * Coalescing small writes: the writes a connection gets in the same tick (an HTTP head and its
 * body, a length prefix and its message) are encrypted together, as one TLS record and one socket
 * write, instead of one record each. Each record costs its own header and tag (22 bytes with
 * AES-GCM), an `SSL_write`, and a socket write; a peer reading message by message gets it whole.
 *
 * @module
 */

/**
 * Writes coalesce while their total stays within one record's plaintext (16 KiB); a larger write
 * is sent on its own, after the batch before it.
 */
export const BATCH_LIMIT = 16 * 1024;

/** Spare buffers for batches of more than one write (process-wide). */
const pool: Uint8Array[] = [];
const MAX_POOLED = 4;

/**
 * The writes gathered for one record. The first write is kept as it is (a batch of one costs no
 * copy); from the second on they are copied into a buffer of {@link BATCH_LIMIT} bytes.
 */
export class WriteBatch {
  #first: Uint8Array;
  #buffer: Uint8Array | null = null;
  #size: number;
  /**
   * Settles once the batch was encrypted and handed to the transport (or failed), with the first
   * write's length.
   */
  done: Promise<number> = Promise.resolve(0);

  constructor(first: Uint8Array) {
    this.#first = first;
    this.#size = first.length;
  }

  /** Adds `p` when it fits within {@link BATCH_LIMIT}; false when it does not (start a new batch). */
  add(p: Uint8Array): boolean {
    if (this.#size + p.length > BATCH_LIMIT) return false;
    if (this.#buffer === null) {
      this.#buffer = pool.pop() ?? new Uint8Array(BATCH_LIMIT);
      this.#buffer.set(this.#first);
    }
    this.#buffer.set(p, this.#size);
    this.#size += p.length;
    return true;
  }

  /** The plaintext of the whole batch; valid until {@link release}. */
  bytes(): Uint8Array {
    return this.#buffer === null ? this.#first : this.#buffer.subarray(0, this.#size);
  }

  /** Gives the buffer back once the engine has taken the bytes (`SSL_write` copies them). */
  release(): void {
    if (this.#buffer !== null && pool.length < MAX_POOLED) pool.push(this.#buffer);
    this.#buffer = null;
  }
}
