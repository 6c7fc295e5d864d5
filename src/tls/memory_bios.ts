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
import { unrefTimer } from "../core/timers.ts";
import { freeBuffersIsSafe } from "../core/capabilities.ts";

/** OpenSSL's `int` lengths: never hand it more than this in one call. */
export const MAX_CHUNK = 1 << 30;

/**
 * A write BIO that held more than this at once is replaced by a fresh one once the connection has
 * sent nothing that large for {@link RENEW_AFTER_MS}. A memory BIO never gives its buffer back, so
 * every connection that once wrote a large chunk kept a buffer of that size (and a third more) for
 * the rest of its life: measured after a 1 MiB echo and a full GC, native heap per idle connection
 * 570 KiB on Deno, 324 on Bun, 361 on Node 26 (24-31 KiB without it). Not at once: a fresh BIO
 * grows again by reallocating, a third at a time, and renewing it after each 256 KiB chunk cost a
 * Bun server 40% more CPU per GiB served (measured).
 */
const RENEW_OUTPUT_ABOVE = 64 * 1024;
/** How long a grown write BIO must go without a large output before it is renewed. */
const RENEW_AFTER_MS = 1_000;
/**
 * How often the idle watch looks. A read that found no input has its record buffer freed at the
 * second look after it (1-2 s later) if no input came since: not at once, because most such reads
 * (the one after each write of a request-response exchange) get their answer within
 * microseconds, and freeing then would cost two FFI calls, a free and a malloc per round trip.
 */
const IDLE_WATCH_MS = 1_000;

/**
 * The connections with idle work pending (a grown write BIO to renew, a record buffer to free),
 * looked at by one unref'd interval timer for the whole process, running only while there are
 * any. Weakly: a connection dropped without close() is collected (and its `SSL` freed by the
 * finalizer) as if it were not here, and a collected one can no longer be reached, so nothing
 * here touches a freed `SSL`. Timers never run inside an OpenSSL call (JS is single-threaded and
 * every call is synchronous).
 */
const watched = new Set<WeakRef<MemoryBios>>();
let watchTimer: ReturnType<typeof setInterval> | undefined;
/** How many times the watch has looked: a cheap clock for waiting reads. */
let watchTicks = 0;

function watchIdle(): void {
  watchTicks++;
  const now = performance.now();
  for (const ref of watched) {
    const bios = ref.deref();
    if (bios === undefined || bios.idleWork(now, watchTicks)) watched.delete(ref);
  }
  if (watched.size === 0) {
    clearInterval(watchTimer);
    watchTimer = undefined;
  }
}

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
  /**
   * The read BIO is a read-only one over lent bytes (which {@link releaseDrainedInput} may have
   * dropped already, once OpenSSL had read them all): it takes no writes.
   */
  #readOnly = false;
  /** When the last output over RENEW_OUTPUT_ABOVE was taken (`performance.now()`), or 0. */
  #lastLargeOutput = 0;
  /** The write BIO grew past RENEW_OUTPUT_ABOVE and has not been renewed since. */
  #grown = false;
  /**
   * The watch's tick count when a read last found no input (see {@link readFoundNoInput}), or -1
   * (input came since, or the buffers were freed).
   */
  #waitingSinceTick = -1;
  /** This object's entry in `watched`, while it is there. */
  #watchRef: WeakRef<MemoryBios> | null = null;
  /** `SSL_free` ran ({@link forget}): the BIOs are gone. */
  #freed = false;
  /** The handshake is done and its memory BIOs not yet renewed (see {@link handshakeDone}). */
  #renewWhenDrained = false;
  /** {@link endOfInput} was called: a renewed read BIO must read EOF too. */
  #endOfInput = false;
  /** A DTLS connection's BIOs (never renewed after the handshake). */
  readonly #datagram: boolean;
  /** {@link readFoundNoInput} may lead to freeing the record buffers (TLS, a fixed OpenSSL). */
  #freesRecordBuffers: boolean;

  /** Creates both BIOs and gives them to `ssl` (a DTLS one if `datagram`). */
  constructor(ssl: Pointer, datagram = false) {
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
    // DTLS keeps records of future epochs queued with their own buffers; RELEASE_BUFFERS skips
    // DTLS too. Only TLS, and only where SSL_free_buffers is safe (see there).
    this.#freesRecordBuffers = !datagram && freeBuffersIsSafe();
    this.#datagram = datagram;
  }

  /**
   * The engine calls it when the handshake completed. A memory BIO's buffer never shrinks: after
   * the handshake each keeps what its largest flight needed (1.4 KiB of OpenSSL's 21 KiB per idle
   * connection, measured on 3.0.19 with the peer's certificate flight copied in). Once the
   * handshake's output has been taken and nothing is waiting, both go for fresh ones (four FFI
   * calls, once per connection); a read BIO over lent bytes owns no buffer and stays.
   */
  handshakeDone(): void {
    if (this.#datagram) return;
    this.#renewWhenDrained = true;
    this.#renewIfDrained();
  }

  /** Renews the BIOs after the handshake once no output is waiting (see {@link handshakeDone}). */
  #renewIfDrained(): void {
    const o = openssl();
    if (this.#freed || o.BIO_ctrl_pending(this.#wbio) !== 0) return;
    this.#renewWhenDrained = false;
    if (!this.#freshWriteBio()) return; // out of memory: the old ones go on serving
    if (this.#readOnly || o.BIO_ctrl_pending(this.#rbio) !== 0) return;
    const rbio = o.BIO_new(o.BIO_s_mem());
    if (rbio === null) return;
    if (this.#endOfInput) o.BIO_set_mem_eof_return(rbio, 0); // a new one reads -1: retry
    o.SSL_set0_rbio(this.#ssl, rbio); // frees the old one
    this.#rbio = rbio;
  }

  /** Appends a copy of `ciphertext` to the input. */
  write(ciphertext: Uint8Array): void {
    const o = openssl();
    this.#waitingSinceTick = -1;
    if (this.#readOnly) this.#ownInput();
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
    this.#waitingSinceTick = -1;
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
    this.#readOnly = true;
  }

  /** Swaps a read BIO over lent bytes for an ordinary memory BIO holding a copy of what is unread. */
  #ownInput(): void {
    const o = openssl();
    // A memory BIO reads front to back: the unread bytes are the tail of the lent ones (kept
    // while any are unread).
    const unread = o.BIO_ctrl_pending(this.#rbio);
    const lent = this.#lent;
    const bio = o.BIO_new(o.BIO_s_mem());
    if (bio === null) throw bioFailure("BIO_new failed");
    if (unread > 0 && o.BIO_write(bio, lent!.subarray(lent!.length - unread), unread) !== unread) {
      o.BIO_free(bio);
      throw bioFailure("BIO_write failed (out of memory?)");
    }
    o.SSL_set0_rbio(this.#ssl, bio);
    this.#rbio = bio;
    this.#lent = null;
    this.#readOnly = false;
  }

  /**
   * Lets go of lent bytes OpenSSL has read to the end (the engine calls it when a read finds no
   * more input): an idle connection then does not keep the last large chunk it received (up to
   * Bun's 512 KiB) alive. The drained read-only BIO stays in place and never reads them again;
   * the next input replaces it.
   */
  releaseDrainedInput(): void {
    if (this.#lent !== null && openssl().BIO_ctrl_pending(this.#rbio) === 0) this.#lent = null;
  }

  /**
   * The engine calls it after an `SSL_read` that found no input. OpenSSL 3 makes its read buffer
   * (~17 KiB) for that call and keeps it until a record arrives, `SSL_MODE_RELEASE_BUFFERS`
   * notwithstanding (measured on 3.0.19: 20 KiB of native heap per connection waiting for its
   * peer, 0.3-1.7 KiB with this): if no input comes for a second or two, the idle watch frees it
   * ({@link idleWork}). The next `SSL_read` with input makes a new one.
   */
  readFoundNoInput(): void {
    if (!this.#freesRecordBuffers) return;
    this.#waitingSinceTick = watchTicks;
    this.#watch();
  }

  /** Puts this connection under the idle watch (once). */
  #watch(): void {
    if (this.#watchRef !== null) return;
    this.#watchRef = new WeakRef(this);
    watched.add(this.#watchRef);
    watchTimer ??= unrefTimer(setInterval(watchIdle, IDLE_WATCH_MS));
  }

  /**
   * @internal (the idle watch) Does what is due: renews a write BIO that grew, once it has gone
   * {@link RENEW_AFTER_MS} without a large output and holds nothing; frees the record buffers of
   * a read that has waited since before the previous look. Returns true when nothing is left to
   * watch for.
   */
  idleWork(now: number, tick: number): boolean {
    if (this.#freed) return true;
    if (this.#grown) this.#renewOutputIfIdle(now);
    if (this.#waitingSinceTick >= 0 && tick - this.#waitingSinceTick >= 2) {
      this.#waitingSinceTick = -1;
      // SSL_has_pending first: a partial record, or decrypted bytes not yet read, live in that
      // buffer. SSL_free_buffers refuses then too (and while a write is pending), but only since
      // the CVE-2024-4741 fix, which #freesRecordBuffers requires anyway.
      const o = openssl();
      if (o.SSL_has_pending(this.#ssl) === 0) o.SSL_free_buffers(this.#ssl);
    }
    const done = !this.#grown && this.#waitingSinceTick < 0;
    if (done) this.#watchRef = null;
    return done;
  }

  /** From now on an empty input reads as end of stream (the transport ended). */
  endOfInput(): void {
    // Default -1 means "retry later"; 0 makes SSL_read see EOF.
    this.#endOfInput = true;
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
    this.#afterOutput(o.BIO_read(this.#wbio, out, n));
    return out;
  }

  /** Moves up to `into.length` waiting bytes into `into`; returns how many. */
  takeOutputInto(into: Uint8Array): number {
    const n = openssl().BIO_read(this.#wbio, into, Math.min(into.length, MAX_CHUNK));
    this.#afterOutput(n);
    return n > 0 ? n : 0; // an empty memory BIO reads -1 ("retry"), not 0
  }

  /** Notes a large output (`taken` bytes at once): the write BIO is renewed once idle. */
  #afterOutput(taken: number): void {
    if (this.#renewWhenDrained) this.#renewIfDrained();
    if (taken <= RENEW_OUTPUT_ABOVE) return;
    this.#lastLargeOutput = performance.now();
    this.#grown = true;
    this.#watch();
  }

  /**
   * After {@link RENEW_AFTER_MS} without a large output and with nothing left to take, gives `ssl`
   * a fresh write BIO (`SSL_set0_wbio` frees the old one and its grown buffer).
   */
  #renewOutputIfIdle(now: number): void {
    if (now - this.#lastLargeOutput < RENEW_AFTER_MS) return;
    const o = openssl();
    if (o.BIO_ctrl_pending(this.#wbio) !== 0) return; // still sending: later
    this.#freshWriteBio(); // out of memory: the old BIO goes on serving
  }

  /** Gives `ssl` a fresh, empty write BIO (`SSL_set0_wbio` frees the old one): false if none. */
  #freshWriteBio(): boolean {
    const o = openssl();
    const bio = o.BIO_new(o.BIO_s_mem());
    if (bio === null) return false;
    o.SSL_set0_wbio(this.#ssl, bio);
    this.#wbio = bio;
    this.#grown = false;
    return true;
  }

  /** Drops the lent bytes (after `SSL_free`: nothing reads them any more). */
  forget(): void {
    this.#freed = true;
    if (this.#watchRef !== null) watched.delete(this.#watchRef);
    this.#watchRef = null;
    this.#lent = null;
  }
}
