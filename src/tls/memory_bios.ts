/**
 * The engine's two memory BIOs: ciphertext from the peer goes into the read BIO (copied, or lent
 * to OpenSSL in place), and ciphertext for the peer is taken from the write BIO. The `SSL` owns
 * both (`SSL_set_bio`): `SSL_free` frees them.
 *
 * @module
 */
import { TlsError } from "../core/errors.ts";
import { drainErrorQueue } from "../core/error_queue.ts";
import { openssl, type Pointer } from "../core/native.ts";

/** OpenSSL's `int` lengths: never hand it more than this in one call. */
export const MAX_CHUNK = 1 << 30;

function bioFailure(what: string): TlsError {
  return new TlsError("INTERNAL", what, { openssl: drainErrorQueue() });
}

/** The read and write BIOs of one `SSL`. */
export class MemoryBios {
  #ssl: Pointer;
  #rbio: Pointer;
  #wbio: Pointer;
  /**
   * The bytes the read BIO reads in place when they were lent by {@link lend}, else null. Held so
   * they stay alive for as long as OpenSSL may read them. (Freeing a read-only memory BIO, even
   * from the finalizer backstop after they were collected, never touches them.)
   */
  #lent: Uint8Array | null = null;

  /** Creates both BIOs and gives them to `ssl`. */
  constructor(ssl: Pointer) {
    const o = openssl();
    const rbio = o.BIO_new(o.BIO_s_mem());
    const wbio = o.BIO_new(o.BIO_s_mem());
    if (rbio === null || wbio === null) {
      if (rbio !== null) o.BIO_free(rbio);
      if (wbio !== null) o.BIO_free(wbio);
      throw bioFailure("BIO_new failed");
    }
    // SSL_set_bio takes ownership of both BIOs at once: SSL_free frees them.
    o.SSL_set_bio(ssl, rbio, wbio);
    this.#ssl = ssl;
    this.#rbio = rbio;
    this.#wbio = wbio;
  }

  /** Appends a copy of `ciphertext` to the input. */
  write(ciphertext: Uint8Array): void {
    const o = openssl();
    if (this.#lent !== null) this.#ownInput();
    for (let off = 0; off < ciphertext.length; off += MAX_CHUNK) {
      const chunk = off === 0 && ciphertext.length <= MAX_CHUNK
        ? ciphertext // the usual case: no view object per call
        : ciphertext.subarray(off, Math.min(ciphertext.length, off + MAX_CHUNK));
      // A memory BIO grows as needed: it takes everything or fails on out-of-memory.
      if (o.BIO_write(this.#rbio, chunk, chunk.length) !== chunk.length) {
        throw bioFailure("BIO_write failed (out of memory?)");
      }
    }
  }

  /** Makes `ciphertext` the input, read in place (see `TlsEngine.receiveLent`). */
  lend(ciphertext: Uint8Array): void {
    if (ciphertext.length === 0) return;
    const o = openssl();
    // Input still unread (never the case after want-read), or more than an int: copy it.
    if (ciphertext.length > MAX_CHUNK || o.BIO_ctrl_pending(this.#rbio) !== 0) {
      this.write(ciphertext);
      return;
    }
    // Both JS engines keep small typed arrays inside the GC heap, where they may move or be
    // copied out later: touching `.buffer` gives them their fixed ArrayBuffer before OpenSSL
    // takes the address. (Large ones, like socket read buffers, have one already.)
    void ciphertext.buffer;
    const bio = o.BIO_new_mem_buf(ciphertext, ciphertext.length);
    if (bio === null) throw bioFailure("BIO_new_mem_buf failed");
    // A read-only memory BIO reads an empty buffer as EOF ("static data, retrying won't help"):
    // set -1 ("retry later") like any memory BIO before the end of input.
    o.BIO_set_mem_eof_return(bio, -1);
    // Frees the previous read BIO: a drained one, and never the lent bytes (a read-only memory
    // BIO does not own them).
    o.SSL_set0_rbio(this.#ssl, bio);
    this.#rbio = bio;
    this.#lent = ciphertext;
  }

  /** Swaps a read BIO over lent bytes for an ordinary memory BIO holding a copy of what is unread. */
  #ownInput(): void {
    const o = openssl();
    const lent = this.#lent!;
    // A memory BIO reads front to back: the unread bytes are the tail of the lent ones.
    const unread = o.BIO_ctrl_pending(this.#rbio);
    const bio = o.BIO_new(o.BIO_s_mem());
    if (bio === null) throw bioFailure("BIO_new failed");
    if (unread > 0 && o.BIO_write(bio, lent.subarray(lent.length - unread), unread) !== unread) {
      o.BIO_free(bio);
      throw bioFailure("BIO_write failed (out of memory?)");
    }
    o.SSL_set0_rbio(this.#ssl, bio);
    this.#rbio = bio;
    this.#lent = null;
  }

  /** From now on an empty input reads as end of stream (the transport ended). */
  endOfInput(): void {
    // Default -1 means "retry later"; 0 makes SSL_read see EOF.
    openssl().BIO_set_mem_eof_return(this.#rbio, 0);
  }

  /**
   * Whether anything is left to read: input OpenSSL has not taken from the read BIO, or records
   * (or decrypted bytes) buffered inside the `SSL` (`SSL_has_pending`: read-ahead keeps whole
   * records there).
   */
  get hasUnreadInput(): boolean {
    const o = openssl();
    return o.BIO_ctrl_pending(this.#rbio) !== 0 || o.SSL_has_pending(this.#ssl) !== 0;
  }

  /** How many ciphertext bytes are waiting to be sent. */
  get pendingOutput(): number {
    return openssl().BIO_ctrl_pending(this.#wbio);
  }

  /** Takes the waiting output, or `null` if there is none. */
  takeOutput(): Uint8Array | null {
    const o = openssl();
    const n = o.BIO_ctrl_pending(this.#wbio);
    if (n <= 0) return null;
    // Over an explicit ArrayBuffer: on Bun (JSC) a small typed array allocated without one must
    // materialise it (a copy) the first time anything reads `.buffer`, which node:net does.
    const out = new Uint8Array(new ArrayBuffer(n));
    o.BIO_read(this.#wbio, out, n);
    return out;
  }

  /** Moves up to `into.length` waiting bytes into `into`; returns how many. */
  takeOutputInto(into: Uint8Array): number {
    const n = openssl().BIO_read(this.#wbio, into, Math.min(into.length, MAX_CHUNK));
    return n > 0 ? n : 0; // an empty memory BIO reads -1 ("retry"), not 0
  }

  /** Drops the lent bytes (after `SSL_free`: nothing reads them any more). */
  forget(): void {
    this.#lent = null;
  }
}
