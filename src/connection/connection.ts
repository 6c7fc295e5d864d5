/**
 * `Connection`: a {@link TlsEngine} driven over a {@link ByteStream} (TCP, or any Web-stream pair).
 * The API is Deno's own `TlsConn` (a `Connection<NetAddr>` is assignable to `Deno.TlsConn`, checked
 * by tests/deno_conn_test.ts): `handshake()`, `read(p)`, `write(p)`, `readable`, `writable`,
 * `closeWrite()`, `close()`, `ref()` / `unref()`, `localAddr` / `remoteAddr`, `[Symbol.dispose]`;
 * plus `Deno.TcpConn`'s `setNoDelay()` / `setKeepAlive()`.
 *
 * Data flows one way each direction: socket bytes -> `engine.receive` -> `engine.read` -> the
 * caller's buffer, and the caller's bytes -> `engine.write` -> `engine.outgoing` -> socket. Every
 * chunk of ciphertext goes out in the order the engine produced it (one send chain).
 *
 * (Over 600 lines: one public class of about 30 documented members, whose reads, writes, buffer
 * reuse and clean close share the same private state; the TLS work itself is in `TlsEngine`.)
 *
 * @module
 */
import {
  ClientCertificateRequests,
  type RequestClientCertificateOptions,
} from "./client_certificate_request.ts";
import { TlsError } from "../core/errors.ts";
import type { Deadline } from "../core/deadline.ts";
import type { OcspResponse } from "../core/ocsp_response.ts";
import { unrefTimer } from "../core/timers.ts";
import { messageOf } from "../core/values.ts";
import { checkIdleTimeout } from "../tls/options.ts";
import type { ByteStream, NetAddr } from "../net/stream.ts";
import type { TlsContext } from "../tls/context.ts";
import type { TlsEngine } from "../tls/engine.ts";
import type { Certificate } from "../x509/certificate.ts";
import type { ChannelBindingType, UpdateKeysOptions } from "../handshake/keying.ts";
import { BATCH_LIMIT, WriteBatch } from "./write_batch.ts";
import { borrowReadBuffer, ReadBufferSet, releaseReadBuffer } from "./read_buffers.ts";
import { copyPeerCertificates, NO_PEER, type PeerCertificates } from "./peer_certificates.ts";

/** The key of {@link Connection}'s listener-only "still waiting for a ClientHello?" check. */
export const AWAITING_CLIENT_HELLO: unique symbol = Symbol("awaitingClientHello");

/** What was negotiated, available once the handshake is done. */
export interface HandshakeInfo {
  /** e.g. `"TLSv1.3"`. */
  readonly protocol: string;
  /** e.g. `"TLS_AES_256_GCM_SHA384"`. */
  readonly cipher: string;
  /** The ALPN protocol agreed on, or `null`. */
  readonly alpnProtocol: string | null;
  /**
   * The key exchange group used, e.g. `"X25519"` (OpenSSL 3.0's default) or `"X25519MLKEM768"`
   * (the post-quantum hybrid OpenSSL 3.5+ prefers); `null` when none was (a PSK-only handshake).
   */
  readonly group: string | null;
  /**
   * The peer's certificate (`null` if it sent none, e.g. a client without one), as the handshake
   * left it. Copied out of OpenSSL on first read (or at `close()`), and the same object from then on.
   */
  readonly peerCertificate: Certificate | null;
  /** The verified chain, leaf first (empty if verification was disabled); read as `peerCertificate`. */
  readonly peerCertificateChain: readonly Certificate[];
  /** Whether the session was resumed. */
  readonly sessionReused: boolean;
  /**
   * Clients: the name the server's certificate was checked against (`servername`, which may be
   * an IP address). Servers: the host name the client asked for with SNI, or `null`.
   */
  readonly servername: string | null;
  /** Clients: the server's verified OCSP staple, or `null` (none sent, or OCSP off). */
  readonly ocspResponse: OcspResponse | null;
  /**
   * The PSK identity used, or `null` (no `psk`, or the peer did not use it). Clients: the
   * identity sent and accepted, as given. Servers: the client's, as the `psk` function saw it
   * (a string when printable UTF-8, else bytes).
   */
  readonly pskIdentity: string | Uint8Array | null;
}

/** Plaintext is encrypted and sent in pieces of this size, so buffers stay bounded. */
const WRITE_CHUNK_SIZE = 256 * 1024;
/**
 * After the handshake, socket reads of at least this size are lent to the engine (no copy), and
 * smaller ones are copied into its memory BIO. Lending swaps in a read-only memory BIO per read,
 * and in OpenSSL 3.0 creating and freeing one is ~5 mallocs and frees (the BIO, its lock, its
 * two BUF_MEMs); copying into the ordinary memory BIO reuses its buffer. Measured in-process on
 * Deno with 1 KiB records: copying saves ~1.3 us of the client's ~7 us per round trip, about what
 * a 16 KiB memcpy costs.
 */
const LEND_MIN_SIZE = 16 * 1024;
/**
 * Ciphertext up to this size (a full TLS record with its header and AEAD overhead) goes to a
 * stream with `releasesWrites` through a reused buffer, not a new ArrayBuffer per send: on Deno
 * every ArrayBuffer's memory is malloc'ed on the main thread and freed by V8 on a background
 * thread, where the two contend for glibc's allocator lock with OpenSSL's own mallocs.
 */
const POOLED_SEND_SIZE = 17 * 1024;
/** At most this many pooled send buffers are kept (process-wide), for concurrent connections. */
const MAX_POOLED_SENDS = 8;
const sendPool: Uint8Array[] = [];
/**
 * Ciphertext of a whole write chunk (WRITE_CHUNK_SIZE of plaintext is 16 records: 352 bytes of
 * headers and tags) fits this size. Such sends also go through reused buffers: a fresh
 * ArrayBuffer of this size is above glibc's mmap threshold, so each one was an mmap, page faults
 * on first touch, zeroing and an munmap (measured: 61% of a Deno server's bulk-send CPU in the
 * kernel).
 */
const LARGE_SEND_SIZE = WRITE_CHUNK_SIZE + 16 * 1024;
/** At most this many large send buffers are kept (process-wide). */
const MAX_POOLED_LARGE_SENDS = 2;
const largeSendPool: Uint8Array[] = [];

const noop = () => {};

/**
 * One settled promise for every idle chain (send chain, operation queues, close) of every
 * connection: an idle connection keeps no promise of its own (idle memory, on Bun above all).
 */
const RESOLVED: Promise<void> = Promise.resolve();
/** What a write is called in its errors. */
const WRITING = "a write";

/**
 * How long {@link Connection.close} may keep the transport open to deliver what was written before
 * it and the close_notify, and to wait for the peer to close its side. After that the transport is
 * closed anyway (a peer that had not read everything then sees a truncation).
 */
const CLOSE_FLUSH_TIMEOUT = 2_000;

/** Runs operations one after another, in call order; when idle, the next one starts at once. */
class Queue {
  #tail: Promise<unknown> = RESOLVED;
  #pending = 0;

  /** Whether no operation is running or waiting. */
  get idle(): boolean {
    return this.#pending === 0;
  }

  /** How many operations are running or waiting. */
  get waiting(): number {
    return this.#pending;
  }

  run<T>(op: () => Promise<T>): Promise<T> {
    // Idle: start now, without a microtask hop behind a settled tail.
    const result = this.#pending === 0 ? op() : this.#tail.then(op);
    this.#pending++;
    const done = () => {
      // Idle again: let go of the chain (an idle connection keeps no promise).
      if (--this.#pending === 0) this.#tail = RESOLVED;
    };
    this.#tail = result.then(done, done); // always fulfils: one failure never blocks the next
    return result;
  }
}

function isReset(error: unknown): boolean {
  const e = error as { name?: unknown; code?: unknown } | null;
  return e?.name === "ConnectionReset" || e?.code === "ECONNRESET" || e?.code === "EPIPE" ||
    e?.name === "BrokenPipe";
}

/**
 * A TLS connection over a byte stream. Made by `connect()`, `startTls()` and `listen()`: the same
 * class on both sides (on a server, {@link peerCertificate} is the client's certificate).
 *
 * A drop-in `Deno.TlsConn`: `A` is the type of {@link localAddr} and {@link remoteAddr}. TCP
 * connections (`connect()`, `listen()`) are `Connection<NetAddr>`, which is assignable to
 * `Deno.TlsConn` (and so to `Deno.Conn`); `startTls()` gives `Connection<NetAddr | null>`: a
 * Web-stream transport may have no address.
 *
 * @example
 * ```ts
 * import { connect } from "../../mod.ts";
 * await using conn = await connect({ hostname: "example.com", port: 443, alpnProtocols: ["http/1.1"] });
 * console.log(conn.protocol, conn.cipher, conn.peerCertificate?.subject);
 * await conn.write(new TextEncoder().encode("GET / HTTP/1.0\r\nHost: example.com\r\n\r\n"));
 * const buf = new Uint8Array(16384);
 * const n = await conn.read(buf); // a number, or null at a clean end of stream
 * ```
 */
export class Connection<A extends NetAddr | null = NetAddr | null> {
  /**
   * For the listener (not part of the public API): whether this server connection is still
   * waiting for the client's complete ClientHello. A server answers a complete ClientHello with
   * its first flight (or an alert), so "nothing sent yet" is exactly that.
   */
  [AWAITING_CLIENT_HELLO](): boolean {
    return this.#info === null && !this.#sentAny && !this.#closed;
  }

  #engine: TlsEngine;
  #stream: ByteStream<A>;
  #ownedContext: TlsContext | null;
  /**
   * The socket read buffers (see `read_buffers.ts`), made by the first read. Streams with
   * `readChunk` (Bun, node:net, Web streams) never need them.
   */
  #readBuffers: ReadBufferSet | null = null;
  #sendChain: Promise<void> = RESOLVED;
  #sending = 0;
  #handshake: Promise<HandshakeInfo> | null = null;
  #info: HandshakeInfo | null = null;
  #reads = new Queue();
  /** Writes, closeWrite, the close_notify of close(): never interleaved. */
  #writes = new Queue();
  /** The batch small writes still join: queued on #writes, not started yet. */
  #batch: WriteBatch | null = null;
  /** close() or abort() was called (or the handshake failed): no new operations. */
  #closed = false;
  /** The native objects are freed (the engine, an owned context). */
  #nativeFreed = false;
  /** The transport is closed. */
  #streamClosed = false;
  /** Settles when a clean close has finished (close_notify sent or given up on, all freed). */
  #closing: Promise<void> = RESOLVED;
  /** What abort() was given, as the `cause` of the CLOSED errors of pending operations. */
  #abortReason: unknown = undefined;
  /** The error a read failed with for good (the connection then released itself). */
  #failure: TlsError | undefined = undefined;
  /**
   * Whether any bytes went out or a handshake callback ran (for a server: the peer's ClientHello
   * was complete).
   */
  #sentAny = false;
  /** `idleTimeout` in ms (0: none), its pending check, when bytes last moved, and its error. */
  #idleMs = 0;
  #idleTimer: ReturnType<typeof setTimeout> | undefined = undefined;
  #lastActivity = 0;
  #idleError: TlsError | undefined = undefined;
  /** The handshake's time limit and the abort signal (owned: disposed on release). */
  #deadline: Deadline;
  #readable: ReadableStream<Uint8Array<ArrayBuffer>> | null = null;
  #writable: WritableStream<Uint8Array> | null = null;
  /** This side's certificate: `undefined` until read (see {@link localCertificate}). */
  #localCertificate: Certificate | null | undefined = undefined;
  /** The peer's certificates: `undefined` until read (see #peerCertificates). */
  #peer: PeerCertificates | undefined = undefined;

  /** @internal Use `connect()`, `startTls()` or `listen()`; takes ownership of all four arguments. */
  constructor(
    engine: TlsEngine,
    stream: ByteStream<A>,
    deadline: Deadline,
    ownedContext: TlsContext | null,
  ) {
    this.#engine = engine;
    this.#stream = stream;
    this.#ownedContext = ownedContext;
    this.#deadline = deadline;
    // A timeout or abort closes the transport, which fails whatever operation is pending.
    deadline.onInterrupt = () => this.#release();
  }

  // ---- plumbing -------------------------------------------------------------------------------

  /**
   * Awaits `p`, unless the connection is interrupted (timeout, abort) first.
   *
   * Only while handshaking: every `Promise.race` leaves a reaction on the deadline's long-lived
   * `interrupted` promise until it settles, so racing each read of a long connection would grow
   * without bound. After the handshake an interruption closes the stream instead, which fails
   * the pending operation; `#ioError` and `#assertOpen` then report the interruption.
   */
  #guard<T>(p: Promise<T>): Promise<T> {
    return this.#info === null ? this.#deadline.race(p) : p;
  }

  /** The error to report for a failed stream operation. */
  #ioError(error: unknown, during: string): unknown {
    if (this.#deadline.error !== null) return this.#deadline.error;
    if (error instanceof TlsError) return error;
    if (this.#closed) return this.#closedError(error);
    if (isReset(error)) {
      // A reset while reading cuts the data short: a truncation. While writing it only says the
      // peer is gone; #write looks for the alert it may have sent first (see #alertBeforeReset).
      return during === WRITING
        ? new TlsError("NETWORK_ERROR", `the peer reset the connection during ${during}`, {
          cause: error,
        })
        : new TlsError(
          "UNEXPECTED_EOF",
          `the connection was reset by the peer during ${during} (truncation)`,
          { cause: error },
        );
    }
    return new TlsError("NETWORK_ERROR", `network error during ${during}: ${messageOf(error)}`, {
      cause: error,
    });
  }

  /** The CLOSED error of an operation that was pending or started after close() / abort(). */
  #closedError(cause?: unknown): TlsError {
    if (this.#abortReason !== undefined) {
      return new TlsError("CLOSED", "the connection was aborted", { cause: this.#abortReason });
    }
    if (this.#idleError !== undefined) return this.#idleError;
    if (cause === undefined && this.#failure !== undefined) {
      return new TlsError("CLOSED", `the connection failed: ${this.#failure.message}`, {
        cause: this.#failure,
      });
    }
    return new TlsError("CLOSED", "the connection is closed", cause === undefined ? {} : { cause });
  }

  /** Queues whatever ciphertext the engine produced; resolves when the stream took it. */
  #send(): Promise<void> {
    const engine = this.#engine;
    const n = engine.pendingOutgoing; // 0 once closed
    if (n <= 0) return this.#sendChain;
    if (this.#idleMs > 0) this.#lastActivity = performance.now();
    this.#sentAny = true;
    const releases = this.#stream.releasesWrites;
    const reusable = releases === true || (typeof releases === "number" && n >= releases);
    // A pooled buffer when the stream lets go of it once the write settles, else a fresh one
    // (over an explicit ArrayBuffer: on Bun a small typed array without one must materialise it,
    // a copy, the first time node:net reads `.buffer`).
    const pooled = !reusable
      ? null
      : n <= POOLED_SEND_SIZE
      ? sendPool.pop() ?? new Uint8Array(POOLED_SEND_SIZE)
      : n <= LARGE_SEND_SIZE
      ? largeSendPool.pop() ?? new Uint8Array(LARGE_SEND_SIZE)
      : null;
    const target = pooled ?? new Uint8Array(new ArrayBuffer(n));
    const bytes = target.subarray(0, engine.outgoingInto(target));
    // In order: straight to the stream when nothing is in flight, else after the last send.
    const chain = this.#sendChain = this.#sending === 0
      ? this.#stream.write(bytes)
      : this.#sendChain.then(() => this.#stream.write(bytes));
    this.#sending++;
    // Settled means the stream is done with the bytes (or never started on them): the pooled
    // buffer can serve the next send.
    const settled = () => {
      this.#sending--;
      if (pooled === null) return;
      if (pooled.length === POOLED_SEND_SIZE) {
        if (sendPool.length < MAX_POOLED_SENDS) sendPool.push(pooled);
      } else if (largeSendPool.length < MAX_POOLED_LARGE_SENDS) {
        largeSendPool.push(pooled);
      }
    };
    // Sent, and the newest send: the connection lets go of the chain (a failed one is kept, so
    // that what waits on the chain later still sees the failure).
    const sent = () => {
      settled();
      if (this.#sendChain === chain) this.#sendChain = RESOLVED;
    };
    // Also marks the chain handled: its errors reach whoever awaits it, never "unhandled".
    chain.then(sent, settled);
    return chain;
  }

  /** Reads from the stream into the engine. Returns false at end of stream. */
  async #receive(during: string): Promise<boolean> {
    // Chunks the stream owns are lent or copied as they are; a stream that must copy anyway
    // (node:net's `onread`) reads lazily into our buffers instead.
    if (this.#stream.readChunk !== undefined && this.#stream.readLazily === undefined) {
      let chunk: Uint8Array | null;
      try {
        chunk = await this.#guard(this.#stream.readChunk());
      } catch (error) {
        throw this.#ioError(error, during);
      }
      this.#assertOpen();
      if (this.#idleMs > 0) this.#lastActivity = performance.now();
      if (chunk === null) this.#engine.receiveEof();
      else if (
        this.#stream.chunksStayIntact === true && this.#info !== null &&
        chunk.length >= LEND_MIN_SIZE
      ) {
        // Nobody writes to the chunk again: OpenSSL may read it in place (see LEND_MIN_SIZE).
        this.#engine.receiveLent(chunk);
      } else {
        this.#engine.receive(chunk); // copied into the BIO: the chunk is not kept
      }
      return chunk !== null;
    }
    const stream = this.#stream;
    const buffers = this.#readBuffers ??= new ReadBufferSet();
    let n: number | null;
    try {
      // A stream that can read lazily takes the buffer only once bytes are there: a read that
      // waits for the peer holds none.
      n = await this.#guard(
        stream.readLazily !== undefined ? stream.readLazily(buffers) : stream.read(buffers.take()),
      );
    } catch (error) {
      throw this.#ioError(error, during);
    }
    this.#assertOpen();
    if (n === null) {
      buffers.copied();
      this.#engine.receiveEof();
      return false;
    }
    if (this.#idleMs > 0) this.#lastActivity = performance.now();
    const received = buffers.received(n);
    // After the handshake large reads are lent, not copied: OpenSSL reads them where they are,
    // and the next socket read reuses the buffer only after the engine asked for more input, i.e.
    // once OpenSSL has taken all of it. Small reads (see LEND_MIN_SIZE) and handshake bytes are
    // copied, and the buffer goes straight back to its pool.
    if (this.#info === null || n < LEND_MIN_SIZE) {
      this.#engine.receive(received);
      buffers.copied();
    } else {
      this.#engine.receiveLent(received);
      buffers.lent(n);
    }
    return true;
  }

  async #flush(during: string): Promise<void> {
    try {
      await this.#guard(this.#send());
    } catch (error) {
      throw this.#ioError(error, during);
    }
  }

  /** For reads and the handshake: close() ends them at once. */
  #assertOpen(): void {
    if (this.#deadline.error !== null) throw this.#deadline.error;
    if (this.#closed) throw this.#closedError();
  }

  /**
   * For writes: those made before close() still go out, ahead of the close_notify, until the
   * native objects are freed.
   */
  #assertWritable(): void {
    if (this.#deadline.error !== null) throw this.#deadline.error;
    if (this.#nativeFreed) throw this.#closedError();
  }

  // ---- handshake ------------------------------------------------------------------------------

  /**
   * Runs the handshake (once; later calls return the same result) and reports what was
   * negotiated. `connect()` and `startTls()` have already awaited it.
   *
   * @throws {TlsError} `CERT_VERIFY_FAILED`, `ALERT_RECEIVED`, `HANDSHAKE_FAILED`,
   * `UNEXPECTED_EOF`, `CALLBACK_ERROR`, `TIMEOUT`, `ABORTED`, `NETWORK_ERROR`, `CLOSED`.
   */
  handshake(): Promise<HandshakeInfo> {
    this.#handshake ??= this.#runHandshake();
    return this.#handshake;
  }

  async #runHandshake(): Promise<HandshakeInfo> {
    try {
      for (;;) {
        this.#assertOpen();
        let step;
        try {
          step = this.#engine.handshake();
        } catch (error) {
          // Let our alert reach the peer (best effort, bounded by the same timeout).
          await this.#guard(this.#send()).catch(noop);
          throw error;
        }
        await this.#flush("the handshake");
        if (step.status === "done") break;
        if (step.status === "suspended") {
          // A callback of ours runs (e.g. an async onServerName): the ClientHello was complete.
          this.#sentAny = true;
          await this.#guard(step.until);
          continue;
        }
        await this.#receive("the handshake");
      }
      const e = this.#engine;
      // The peer's certificates stay in OpenSSL until they are asked for (a DER copy of each, per
      // connection, was most of an idle connection's ArrayBuffer memory): see #peerCertificates.
      const peer = () => this.#peerCertificates();
      this.#info = Object.freeze({
        protocol: e.protocol,
        cipher: e.cipher,
        alpnProtocol: e.alpnProtocol,
        group: e.group,
        get peerCertificate(): Certificate | null {
          return peer().leaf;
        },
        get peerCertificateChain(): readonly Certificate[] {
          return peer().chain;
        },
        sessionReused: e.sessionReused,
        servername: e.servername ?? null,
        ocspResponse: e.ocspResponse,
        pskIdentity: e.pskIdentity,
      });
      this.#deadline.stopTimer(); // the timeout covers connect and handshake only
      if (this.#idleMs > 0) this.#armIdle(this.#idleMs);
      return this.#info;
    } catch (error) {
      this.#abortNow(); // nothing to protect yet: no close_notify
      throw error;
    }
  }

  // ---- data -----------------------------------------------------------------------------------

  /**
   * Reads decrypted bytes into `p`: the byte count, or `null` at a clean end of stream (the peer
   * sent close_notify). A peer that just disconnects is an error (`UNEXPECTED_EOF`), never EOF.
   * Concurrent reads are served in order.
   *
   * @throws {TlsError} `UNEXPECTED_EOF`, `ALERT_RECEIVED`, `PROTOCOL_ERROR`, `NETWORK_ERROR`,
   * `ABORTED`, `CLOSED`.
   */
  read(p: Uint8Array): Promise<number | null> {
    if (!(p instanceof Uint8Array)) return Promise.reject(new TypeError("p must be a Uint8Array"));
    if (this.#closed) return Promise.reject(this.#closedError());
    return this.#reads.run(() => this.#read(p));
  }

  /**
   * A read that failed for good (the peer's alert, a truncation, a network error) ends the
   * connection at once: nothing more can be read or written, so the SSL, its buffers and the
   * socket are released now rather than at `close()` (the socket would otherwise sit in
   * CLOSE-WAIT), `closed` turns true, and later calls report `CLOSED` with this error as cause.
   */
  #readFailed(error: unknown): never {
    this.#certificateRequests?.fail(error); // post-handshake auth: the request fails with it
    if (error instanceof TlsError && error.code !== "CLOSED" && !this.#closed) {
      this.#failure = error;
      this.#abortNow();
    }
    throw error;
  }

  async #read(p: Uint8Array): Promise<number | null> {
    // A try in the read itself, not a .catch() on each read's promise: no extra promise per
    // read on the hot path.
    try {
      if (this.#info === null) await this.handshake();
      if (p.length === 0) return 0;
      // Post-handshake auth: what was read while a request waited comes first.
      if (this.#certificateRequests?.hasKept) return this.#certificateRequests.takeKept(p);
      for (;;) {
        this.#assertOpen();
        let n = this.#engine.read(p);
        this.#certificateRequests?.afterRead();
        if (this.#engine.pendingOutgoing > 0) await this.#flush("a read"); // e.g. KeyUpdate answer
        if (n === null) return null;
        if (n > 0) {
          // Fill the caller's buffer from what is already decryptable (one record per SSL_read).
          const filled = n < p.length;
          while (n < p.length) {
            const more = this.#engine.read(p.subarray(n));
            if (more === null || more === 0) break;
            n += more;
          }
          // All input read: a buffer lent to OpenSSL may go back to the pool (read_buffers.ts).
          if (this.#readBuffers !== null && this.#engine.inputTaken) this.#readBuffers.release();
          // The last of those reads may have answered a peer's KeyUpdate (keying): send it now.
          if (filled && this.#engine.pendingOutgoing > 0) await this.#flush("a read");
          return n;
        }
        // Post-handshake auth (clients): an async onClientCertificate is choosing.
        const until = this.#engine.takeReadSuspension();
        if (until !== null) await until;
        else await this.#receive("a read");
      }
    } catch (error) {
      this.#readFailed(error);
    }
  }

  /**
   * Encrypts and sends all of `p`; resolves to `p.length` once the transport accepted it.
   * Concurrent writes are sent in order, never interleaved.
   *
   * @throws {TlsError} `CLOSED` (also after {@link closeWrite}), `NETWORK_ERROR`, `ABORTED`.
   */
  write(p: Uint8Array): Promise<number> {
    if (!(p instanceof Uint8Array)) return Promise.reject(new TypeError("p must be a Uint8Array"));
    if (this.#closed) return Promise.reject(this.#closedError());
    if (p.length > BATCH_LIMIT) {
      this.#batch = null; // later small writes go after this one
      return this.#writes.run(() => this.#write(p));
    }
    // Small writes of the same tick (or made while earlier writes are still going out) join one
    // batch: one record, one socket write. See write_batch.ts.
    const open = this.#batch;
    if (open !== null && open.add(p)) return open.done.then(() => p.length);
    const batch = new WriteBatch(p);
    this.#batch = batch;
    // The batch's promise resolves to the first write's length: the first writer gets it as it
    // is (a lone write, the usual case, costs no extra promise).
    batch.done = this.#writes.run(() => this.#sendBatch(batch, p.length));
    return batch.done;
  }

  /** Encrypts and sends a batch (see {@link write}); resolves to `length`. */
  async #sendBatch(batch: WriteBatch, length: number): Promise<number> {
    // Started at once when the queue was idle: let the rest of this tick's writes join first.
    await null;
    if (this.#batch === batch) this.#batch = null;
    try {
      await this.#write(batch.bytes());
    } finally {
      batch.release();
    }
    return length;
  }

  async #write(p: Uint8Array): Promise<number> {
    if (this.#info === null) await this.handshake();
    try {
      for (let off = 0; off < p.length; off += WRITE_CHUNK_SIZE) {
        this.#assertWritable();
        const piece = off === 0 && p.length <= WRITE_CHUNK_SIZE
          ? p
          : p.subarray(off, Math.min(p.length, off + WRITE_CHUNK_SIZE));
        for (let done = this.#engine.write(piece); done < piece.length;) {
          // Post-handshake auth half done (client_certificate_request.ts): the rest after it.
          await this.#engine.takeWriteSuspension();
          this.#assertWritable();
          done += this.#engine.write(piece.subarray(done));
        }
        await this.#flush(WRITING);
      }
    } catch (error) {
      throw await this.#alertBeforeReset(error);
    }
    return p.length;
  }

  /**
   * The error of a write that met a reset: the alert the peer sent before it closed, when it
   * sent one, else the reset. A TLS 1.3 server checks our certificate only after our side of the
   * handshake is done, so its refusal (an alert, then close) reaches a client that is already
   * writing; the alert is what the user must see, at the write as at the next read, however the
   * reset races it (Bun and node:net usually report the reset at the first write, Deno at the
   * second). The bytes that arrived before the reset are still readable: they go into the
   * engine and are processed without consuming application data (`SSL_peek`); an alert then
   * fails the connection as a read would, while data or a close_notify stay for the next read.
   * Only when no read is running: that read reports the alert itself.
   */
  async #alertBeforeReset(error: unknown): Promise<unknown> {
    const reset = error instanceof TlsError && error.code === "NETWORK_ERROR" &&
      isReset(error.cause);
    if (!reset || !this.#reads.idle || this.#nativeFreed || this.#closed) return error;
    const alert = await this.#reads.run(async () => {
      const probe = new Uint8Array(1);
      try {
        // A few socket reads at most: the alert is the first thing after the handshake.
        for (let i = 0; i < 4; i++) {
          if (this.#engine.peek(probe) !== 0) return null; // data or close_notify come first
          if (!(await this.#receive(WRITING))) return null; // ended: nothing more to find
        }
      } catch (found) {
        if (found instanceof TlsError && found.code === "ALERT_RECEIVED") return found;
      }
      return null;
    });
    if (alert === null) return error;
    this.#failure = alert;
    this.#abortNow();
    return alert;
  }

  /**
   * Sends close_notify and half-closes the transport: the peer reads a clean end of stream; this
   * side can go on reading. Idempotent.
   */
  closeWrite(): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closedError());
    this.#batch = null; // a write after closeWrite() must not join a batch sent before it
    return this.#writes.run(async () => {
      await this.handshake();
      this.#assertWritable();
      if (this.#engine.closed) return;
      this.#engine.closeWrite();
      await this.#flush("closeWrite");
      await this.#stream.closeWrite().catch(noop);
    });
  }

  /**
   * Web-stream view of the decrypted data: a byte stream (BYOB readers welcome; default readers get
   * chunks of up to 64 KiB) with a high-water mark of 0, as Deno's own `conn.readable`: nothing is
   * read from the connection until the stream is read, so `read()` and `readable` can be mixed
   * without losing data. Cancelling it closes the connection.
   */
  get readable(): ReadableStream<Uint8Array<ArrayBuffer>> {
    this.#readable ??= new ReadableStream({
      type: "bytes",
      autoAllocateChunkSize: 64 * 1024,
      pull: async (controller) => {
        // With autoAllocateChunkSize every pull has a BYOB request (a default reader's too).
        const request = controller.byobRequest!;
        const view = request.view!;
        const n = await this.read(new Uint8Array(view.buffer, view.byteOffset, view.byteLength));
        if (n === null) {
          controller.close();
          request.respond(0); // a pending BYOB request must be answered, with 0, after close
        } else {
          request.respond(n);
        }
      },
      cancel: () => this.close(),
    }, { highWaterMark: 0 });
    return this.#readable;
  }

  /** Web-stream view for sending; closing it sends close_notify, aborting it closes. */
  get writable(): WritableStream<Uint8Array> {
    this.#writable ??= new WritableStream<Uint8Array>({
      write: async (chunk) => {
        await this.write(chunk);
      },
      close: () => this.closeWrite(),
      abort: () => this.close(),
    });
    return this.#writable;
  }

  // ---- what was negotiated --------------------------------------------------------------------

  #infoOrThrow(): HandshakeInfo {
    if (this.#info === null) {
      throw new TypeError("the handshake is not done yet: await conn.handshake() first");
    }
    return this.#info;
  }

  /** The negotiated protocol, e.g. `"TLSv1.3"`. */
  get protocol(): string {
    return this.#infoOrThrow().protocol;
  }

  /** The negotiated cipher suite, e.g. `"TLS_AES_256_GCM_SHA384"`. */
  get cipher(): string {
    return this.#infoOrThrow().cipher;
  }

  /** The key exchange group used (see {@link HandshakeInfo.group}). */
  get group(): string | null {
    return this.#infoOrThrow().group;
  }

  /** The ALPN protocol agreed on, or `null`. */
  get alpnProtocol(): string | null {
    return this.#infoOrThrow().alpnProtocol;
  }

  /** The peer's certificate, or `null`. */
  get peerCertificate(): Certificate | null {
    return this.#infoOrThrow().peerCertificate;
  }

  /** The verified chain, leaf first. */
  get peerCertificateChain(): readonly Certificate[] {
    return this.#infoOrThrow().peerCertificateChain;
  }

  /**
   * Whether the session was resumed (an abbreviated handshake: no certificate was sent or
   * verified, the trust decision of the connection that made the session stands).
   */
  get sessionReused(): boolean {
    return this.#infoOrThrow().sessionReused;
  }

  /**
   * Clients: the newest session, serialised (`i2d_SSL_SESSION` bytes, opaque), for
   * `connect({ session })` / `startTls(..., { session })` later; `null` while there is none
   * (and always on servers). TLS 1.2: available once the handshake is done. TLS 1.3: the server
   * sends its tickets after the handshake, so they are read by the first {@link read} (the
   * server's first data comes after them); each ticket replaces the previous one (or use
   * `onSession` to hear of each). Still readable after {@link close}. The bytes hold the
   * session's secret: store them like a key, and only for the server name they were made for
   * (the library refuses them for another name anyway).
   */
  get session(): Uint8Array | null {
    return this.#engine.role === "client" ? this.#engine.session : null;
  }

  /**
   * Clients: the server name asked for. Servers: the host name the client asked for (SNI), e.g.
   * to pick a virtual host; `null` when the client sent none.
   */
  get servername(): string | null {
    return this.#infoOrThrow().servername;
  }

  /**
   * Clients: the server's OCSP staple, verified (status good: revoked and invalid staples fail
   * the handshake), or `null` when none was sent or `ocsp` is `"off"`.
   */
  get ocspResponse(): OcspResponse | null {
    return this.#infoOrThrow().ocspResponse;
  }

  /** The PSK identity this connection used, or `null`; see {@link HandshakeInfo.pskIdentity}. */
  get pskIdentity(): string | Uint8Array | null {
    return this.#infoOrThrow().pskIdentity;
  }

  // ---- 0-RTT early data (src/handshake/early_data.ts) ----

  /**
   * Whether the server accepted this connection's TLS 1.3 early data. Clients: `earlyData` went
   * out as 0-RTT data and was taken; when `false`, it was sent as ordinary data right after the
   * handshake instead. Servers: {@link earlyData} holds it.
   */
  get earlyDataAccepted(): boolean {
    this.#infoOrThrow();
    return this.#engine.earlyDataAccepted;
  }

  /**
   * Servers with `maxEarlyData`: the 0-RTT early data the client sent and this server accepted,
   * or `null` (none, rejected; always on clients). It is not repeated in the stream `read()`
   * returns. It may be a replay (from another server, or from before): act on it only if doing
   * so twice is harmless.
   */
  get earlyData(): Uint8Array | null {
    this.#infoOrThrow();
    return this.#engine.earlyData;
  }

  /** `"client"` or `"server"`. */
  get role(): "client" | "server" {
    return this.#engine.role;
  }

  /**
   * This side's certificate for this connection (`SSL_get_certificate`): the one configured
   * (`cert`), or chosen during the handshake (`onClientCertificate`, `onServerName`); `null` when
   * there is none (a client without a certificate, a PSK-only server). A server always sends its
   * certificate (unless the session was resumed or a PSK used); a client sends it only when the
   * server asked for one: the server's `peerCertificate` tells whether it did. Readable after
   * the handshake, also after {@link close}.
   *
   * @example
   * ```ts
   * import { readFileSync } from "node:fs";
   * import { connect } from "../../mod.ts";
   * const cert = readFileSync("client.pem", "utf8");
   * const key = readFileSync("client.key", "utf8");
   * await using conn = await connect({ hostname: "localhost", port: 8443, cert, key });
   * console.log(conn.localCertificate?.subject, conn.localCertificate?.notAfter);
   * ```
   */
  get localCertificate(): Certificate | null {
    this.#infoOrThrow();
    // Read on first use, not per handshake (a copy of the DER per connection is not free), and
    // kept from then on; #freeNative takes it before the SSL goes away.
    this.#localCertificate ??= this.#nativeFreed ? null : this.#engine.localCertificate;
    return this.#localCertificate;
  }

  /**
   * The local address. TCP connections always have one (`Connection<NetAddr>`, as a
   * `Deno.Conn`'s); over `startTls` it is the transport's `localAddr` when that is a TCP address
   * (a `Deno.TcpConn`), else `null`.
   */
  get localAddr(): A {
    return this.#stream.localAddr;
  }

  /** The remote address: as {@link localAddr}, for the peer. */
  get remoteAddr(): A {
    return this.#stream.remoteAddr;
  }

  // ---- keying material, channel binding, KeyUpdate, peer signature (handshake/keying.ts,
  // handshake/algorithms.ts): thin delegations to the engine ----------------------------------

  /** The engine, once the handshake is done and while it is not freed. */
  #negotiated(): TlsEngine {
    this.#infoOrThrow();
    if (this.#nativeFreed) throw this.#closedError();
    return this.#engine;
  }

  /**
   * Keying material (`SSL_export_keying_material`; RFC 5705, RFC 8446 7.5): `length` bytes both
   * sides derive alike from this connection's secrets, a `label` naming their purpose and an
   * optional `context`. In TLS 1.2 "no context" and an empty context give different bytes; in
   * TLS 1.3 they are the same.
   *
   * @example
   * ```ts
   * import { connect } from "../../mod.ts";
   * await using conn = await connect({ hostname: "example.com", port: 443 });
   * const key = conn.exportKeyingMaterial(32, "EXPORTER-my-protocol", new Uint8Array([1, 2]));
   * console.log(key.length); // 32
   * ```
   * @throws {TypeError} before the handshake, or for a bad label or context; {@link RangeError}
   * for a length outside 1..8160; {@link TlsError} `CLOSED` after {@link close}.
   */
  exportKeyingMaterial(length: number, label: string, context?: Uint8Array): Uint8Array {
    return this.#negotiated().exportKeyingMaterial(length, label, context);
  }

  /**
   * The last Finished message this side sent (`SSL_get_finished`): its verify_data, 12 bytes in
   * TLS 1.2, the hash length in TLS 1.3. See {@link channelBinding} for what to bind to.
   *
   * @example
   * ```ts
   * import { connect } from "../../mod.ts";
   * await using conn = await connect({ hostname: "example.com", port: 443 });
   * console.log(conn.finished?.length, conn.peerFinished?.length);
   * ```
   * @throws {TypeError} before the handshake; {@link TlsError} `CLOSED` after {@link close}.
   */
  get finished(): Uint8Array | null {
    return this.#negotiated().finished;
  }

  /** The last Finished message the peer sent (`SSL_get_peer_finished`); see {@link finished}. */
  get peerFinished(): Uint8Array | null {
    return this.#negotiated().peerFinished;
  }

  /**
   * The channel binding of this connection, for an authentication protocol above TLS (SCRAM's
   * `-PLUS` mechanisms, GSS-API) to bind to it:
   *
   * - `"tls-exporter"` (RFC 9266): 32 bytes exported with label "EXPORTER-Channel-Binding" and
   *   no context. TLS 1.3; TLS 1.2 only when the handshake used the extended master secret (a
   *   RangeError otherwise).
   * - `"tls-unique"` (RFC 5929): the first Finished message of the handshake (the client's on a
   *   full handshake, the server's on a resumed one). TLS 1.2 only (a RangeError on TLS 1.3).
   *
   * @example
   * ```ts
   * import { connect } from "../../mod.ts";
   * await using conn = await connect({ hostname: "example.com", port: 443 });
   * const cb = conn.protocol === "TLSv1.3"
   *   ? conn.channelBinding("tls-exporter")
   *   : conn.channelBinding("tls-unique");
   * console.log(cb.length);
   * ```
   * @throws {TypeError} before the handshake or for an unknown type; {@link RangeError} when the
   * type is not defined for this connection; {@link TlsError} `CLOSED` after {@link close}.
   */
  channelBinding(type: ChannelBindingType): Uint8Array {
    return this.#negotiated().channelBinding(type);
  }

  /**
   * Sends a TLS 1.3 KeyUpdate (`SSL_key_update`): from now on this side encrypts with new keys.
   * With `requestPeer: true` the peer is asked to change its sending keys too (it answers with a
   * KeyUpdate of its own, read with the data that follows). Resolves once the KeyUpdate was
   * handed to the transport, in order with writes. Key updates from either side show as
   * `onHandshakeEvent` events of type `"keyUpdate"`.
   *
   * @example
   * ```ts
   * import { connect } from "../../mod.ts";
   * await using conn = await connect({ hostname: "example.com", port: 443 });
   * await conn.updateKeys({ requestPeer: true });
   * ```
   * @throws {RangeError} on TLS 1.2 (no KeyUpdate there); {@link TlsError} `CLOSED`,
   * `NETWORK_ERROR`.
   */
  updateKeys(options?: UpdateKeysOptions): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closedError());
    this.#batch = null; // later small writes go after the KeyUpdate, under the new keys
    return this.#writes.run(async () => {
      if (this.#info === null) await this.handshake();
      this.#assertWritable();
      this.#engine.updateKeys(options);
      await this.#flush("updateKeys");
    });
  }

  /**
   * The signature scheme the peer signed the handshake with, by its IANA name, e.g.
   * `"ecdsa_secp256r1_sha256"`, `"rsa_pss_rsae_sha256"` or `"ed25519"`; `null` when it signed
   * none (a resumed session, a PSK; a server whose client sent no certificate).
   *
   * @example
   * ```ts
   * import { connect } from "../../mod.ts";
   * await using conn = await connect({ hostname: "example.com", port: 443 });
   * console.log(conn.peerSignatureAlgorithm); // e.g. "rsa_pss_rsae_sha256"
   * ```
   * @throws {TypeError} before the handshake; {@link TlsError} `CLOSED` after {@link close}.
   */
  get peerSignatureAlgorithm(): string | null {
    return this.#negotiated().peerSignatureAlgorithm;
  }

  // ---- the transport's controls (Deno.Conn / Deno.TcpConn) --------------------------------------

  /** The transport's control `name`, or a TypeError saying that this transport has none. */
  #control<K extends "ref" | "unref" | "setNoDelay" | "setKeepAlive">(
    name: K,
  ): NonNullable<ByteStream[K]> {
    const control = this.#stream[name];
    if (typeof control !== "function") {
      throw new TypeError(
        `${name}(): this connection's transport has no ${name} (startTls over Web streams ` +
          `that are not a Deno.Conn): call it on the socket under the streams instead`,
      );
    }
    return control as NonNullable<ByteStream[K]>;
  }

  /**
   * Makes the open connection keep the process alive again after {@link unref} (the default:
   * it does). As `Deno.Conn.ref()`: `Deno.TcpConn.ref()` on Deno, `socket.ref()` (Bun.connect, node:net) on
   * Bun and Node.js; over `startTls`, the transport's own `ref()` (a `Deno.Conn` has one).
   * Nothing happens once the transport is closed.
   *
   * @example
   * ```ts
   * import { connect } from "../../mod.ts";
   * const conn = await connect({ hostname: "example.com", port: 443 });
   * conn.unref();
   * conn.ref(); // a pending read keeps the process alive again
   * conn.close();
   * ```
   * @throws {TypeError} when the transport has no `ref()` (`startTls` over plain Web streams).
   */
  ref(): void {
    const ref = this.#control("ref");
    if (!this.#streamClosed) ref.call(this.#stream);
  }

  /**
   * Lets the process exit while this connection is open: a pending read no longer keeps it
   * alive (`Deno.TcpConn.unref()` on Deno, `socket.unref()` on Bun and Node.js; over `startTls`,
   * the transport's own `unref()`). For background connections (a metrics push, a keep-alive
   * pool) that must not hold a finished program open. A {@link close} still delivering its
   * close_notify keeps the process for at most its 2 s bound. Undone by {@link ref}.
   *
   * @example
   * ```ts
   * import { connect } from "../../mod.ts";
   * const conn = await connect({ hostname: "example.com", port: 443 });
   * conn.unref();
   * conn.read(new Uint8Array(1024)).catch(() => {}); // the program may end while this waits
   * ```
   * @throws {TypeError} when the transport has no `unref()` (`startTls` over plain Web streams).
   */
  unref(): void {
    const unref = this.#control("unref");
    if (!this.#streamClosed) unref.call(this.#stream);
  }

  /**
   * Sets (`true`, the default, as `Deno.TcpConn.setNoDelay()`) or clears TCP_NODELAY. It is set
   * on every connection this library opens or accepts: without it a small write waits for the
   * peer's delayed ACK (~40 ms). Over `startTls`, calls the transport's own `setNoDelay()` (a
   * `Deno.TcpConn` has one).
   *
   * @example
   * ```ts
   * import { connect } from "../../mod.ts";
   * await using conn = await connect({ hostname: "example.com", port: 443 });
   * conn.setNoDelay(false); // let the kernel coalesce small writes (Nagle)
   * ```
   * @throws {TypeError} when the transport has no such option (`startTls` over plain Web
   * streams); {@link TlsError} `CLOSED` after {@link close}.
   */
  setNoDelay(noDelay = true): void {
    const set = this.#control("setNoDelay");
    if (this.#closed) throw this.#closedError();
    set.call(this.#stream, noDelay);
  }

  /**
   * Turns TCP keep-alive probes on (`true`, the default, as `Deno.TcpConn.setKeepAlive()`) or
   * off, with the system's timings (Linux: first probe after 2 hours idle). Off unless turned
   * on. Over `startTls`, calls the transport's own `setKeepAlive()`.
   *
   * @example
   * ```ts
   * import { connect } from "../../mod.ts";
   * await using conn = await connect({ hostname: "example.com", port: 443 });
   * conn.setKeepAlive(); // a dead peer is noticed even on an idle connection
   * ```
   * @throws {TypeError} when the transport has no such option (`startTls` over plain Web
   * streams); {@link TlsError} `CLOSED` after {@link close}.
   */
  setKeepAlive(keepAlive = true): void {
    const set = this.#control("setKeepAlive");
    if (this.#closed) throw this.#closedError();
    set.call(this.#stream, keepAlive);
  }

  /**
   * Sets the idle limit: once the handshake is done, when no byte moved in either direction
   * for `ms` milliseconds the connection closes itself as {@link close} does (close_notify), and
   * pending and later reads and writes reject with `TIMEOUT` (a pending read once the transport
   * closes: when the peer answers the close, at most 2 s later). `0` or `Infinity` removes the
   * limit. Counted from this call (or from the end of the handshake). The timer never keeps the
   * process alive by itself.
   *
   * @example
   * ```ts
   * import { connect } from "../../mod.ts";
   * await using conn = await connect({ hostname: "example.com", port: 443 });
   * conn.setIdleTimeout(60_000); // a minute without traffic ends it
   * ```
   * @throws {RangeError} for a negative or non-number `ms`; {@link TlsError} `CLOSED` after
   * {@link close}.
   */
  setIdleTimeout(ms: number): void {
    const limit = checkIdleTimeout(ms);
    if (this.#closed) throw this.#closedError();
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    this.#idleMs = limit;
    this.#lastActivity = performance.now();
    // Before the handshake the handshake timeout applies; the idle limit starts after it.
    if (limit > 0 && this.#info !== null) this.#armIdle(limit);
  }

  #armIdle(delay: number): void {
    // One timer per idle period, not one per record: each check re-arms for what is left since
    // the last activity (records only stamp #lastActivity).
    this.#idleTimer = unrefTimer(setTimeout(() => this.#checkIdle(), delay));
  }

  #checkIdle(): void {
    this.#idleTimer = undefined;
    if (this.#closed || this.#idleMs === 0) return;
    const idle = performance.now() - this.#lastActivity;
    if (idle < this.#idleMs) {
      this.#armIdle(this.#idleMs - idle);
      return;
    }
    this.#idleError = new TlsError(
      "TIMEOUT",
      `no data in either direction for ${this.#idleMs} ms (idleTimeout): the connection was closed`,
    );
    this.close();
  }

  // ---- post-handshake client authentication (client_certificate_request.ts) --------------------

  /** Made by the first request (servers). */
  #certificateRequests: ClientCertificateRequests | null = null;

  /**
   * Servers, TLS 1.3: asks the connected client for a certificate now (post-handshake
   * authentication, `SSL_verify_client_post_handshake`), e.g. when it reaches a protected
   * resource. Resolves to the client's verified certificate (checked against the listener's
   * `caCerts` and `onVerifyCertificate`, as in the handshake), or `null` when the client sent
   * none and `require` is `false`. Settles whether or not this side is reading: application data
   * that arrives meanwhile is kept, in order, for the next reads. One request at a time.
   * `peerCertificate` keeps reporting the handshake's certificate.
   *
   * The client must have offered it (`postHandshakeAuth: true` on this library's clients,
   * `-enable_pha` for `openssl s_client`; browsers do not), and answers while it reads.
   *
   * @example
   * ```ts
   * import { readFileSync } from "node:fs";
   * import { listen } from "../../mod.ts";
   * const cert = readFileSync("server.pem", "utf8");
   * const key = readFileSync("server.key", "utf8");
   * const clientCa = readFileSync("client-ca.pem", "utf8");
   * await using server = listen({ port: 8443, cert, key, caCerts: [clientCa] });
   * for await (const conn of server) {
   *   const who = await conn.requestClientCertificate({ timeout: 10_000 });
   *   console.log("client:", who?.subject);
   *   conn.close();
   * }
   * ```
   * @throws {TypeError} (rejects) on clients, before the handshake, while a request waits, for
   * bad options. {@link TlsError} (rejects): `NOT_SUPPORTED` (TLS 1.2, or the client did not
   * offer post-handshake authentication), `HANDSHAKE_FAILED` (no certificate and `require`),
   * `CERT_VERIFY_FAILED`, `ALERT_RECEIVED`, `TIMEOUT`, `CLOSED`, `UNEXPECTED_EOF`,
   * `NETWORK_ERROR`; all but `NOT_SUPPORTED` and `TIMEOUT` end the connection.
   */
  requestClientCertificate(options?: RequestClientCertificateOptions): Promise<Certificate | null> {
    if (this.#closed) return Promise.reject(this.#closedError());
    if (this.#info === null) {
      return Promise.reject(
        new TypeError("requestClientCertificate() before the handshake is done: await it first"),
      );
    }
    // peerCertificate keeps the handshake's (none): read it before OpenSSL learns another.
    this.#peerCertificates();
    this.#certificateRequests ??= new ClientCertificateRequests({
      engine: this.#engine,
      flush: () => this.#flush("requestClientCertificate"),
      receive: () => this.#receive("requestClientCertificate"),
      queueRead: (op) => void this.#reads.run(op),
      readsWaiting: () => this.#reads.waiting > 1,
      assertOpen: () => this.#assertOpen(),
      failed: (error) => {
        try {
          this.#readFailed(error);
        } catch {
          // Reported by the request's Promise.
        }
      },
    });
    return this.#certificateRequests.request(options);
  }

  // ---- lifetime -------------------------------------------------------------------------------

  /** Whether {@link close} was called (or the connection failed and closed itself). */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * The peer's certificate and verified chain, copied out of OpenSSL on first use and kept from
   * then on; #freeNative takes them before the SSL goes away, so they outlive close().
   */
  #peerCertificates(): PeerCertificates {
    // After #freeNative (which took them): not reached.
    return this.#peer ??= this.#nativeFreed ? NO_PEER : copyPeerCertificates(this.#engine);
  }

  /** Frees the engine (the SSL and its BIOs) and an owned context. Idempotent. */
  #freeNative(): void {
    if (this.#nativeFreed) return;
    if (this.#info !== null) {
      // The SSL goes away: take this side's certificate and the peer's now (see
      // localCertificate and #peerCertificates).
      try {
        this.#localCertificate ??= this.#engine.localCertificate;
        this.#peerCertificates();
      } catch {
        this.#localCertificate ??= null;
        this.#peer ??= NO_PEER;
      }
    }
    this.#nativeFreed = true;
    this.#certificateRequests?.fail(this.#closedError()); // post-handshake auth
    this.#engine.close();
    this.#ownedContext?.close();
    this.#ownedContext = null;
  }

  /** Closes the transport (failing pending stream operations) and stops the deadline. */
  #closeStream(): void {
    if (this.#streamClosed) return;
    this.#streamClosed = true;
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    this.#deadline.dispose();
    this.#stream.close();
  }

  #release(): void {
    this.#closeStream();
    this.#freeNative();
  }

  #abortNow(): void {
    this.#closed = true;
    this.#release();
  }

  /** Whether a close_notify can and should be sent now: after the handshake, on a good stream. */
  #closeNotifyPossible(): boolean {
    return this.#info !== null && this.#deadline.error === null && !this.#nativeFreed &&
      !this.#engine.closed;
  }

  /**
   * Ends the connection cleanly: sends close_notify after everything written before it (so
   * nothing is lost and the peer reads a clean end of stream), frees the native objects as soon as
   * it is encrypted, half-closes the transport and closes it once the peer closes its side.
   * Synchronous, idempotent and safe to call from inside a callback; it never waits on the peer
   * for long: what it cannot deliver within 2 s is dropped and the transport closed (the peer then
   * sees a truncation). Before the handshake completed it closes at once, as {@link abort} does
   * (there is nothing to protect). Pending reads reject with `CLOSED`; writes made before
   * `close()` still go out. To wait until it is all done, `await using` the connection (or await
   * `[Symbol.asyncDispose]()`).
   *
   * | call | close_notify | the transport | the peer's next read |
   * |---|---|---|---|
   * | `close()` | after pending writes | half-closed, closed when the peer closes (at most 2 s) | `null` |
   * | `closeWrite()` | yes | half-closed; this side can still read | `null` |
   * | `abort(reason?)` | no | closed at once | `UNEXPECTED_EOF` |
   * | `await using` | as `close()`, awaited | as `close()` | `null` |
   *
   * @example
   * ```ts
   * import { connect } from "../../mod.ts";
   * const conn = await connect({ hostname: "example.com", port: 443 });
   * await conn.write(new TextEncoder().encode("GET / HTTP/1.0\r\nHost: example.com\r\n\r\n"));
   * conn.close(); // the request goes out first, then close_notify
   * ```
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (!this.#closeNotifyPossible()) {
      this.#release();
      return;
    }
    if (this.#writes.idle && !this.#engine.inCall) {
      // The common case: nothing queued to send first. Encrypt the close_notify now, hand it to
      // the stream, and free the native objects at once; only the transport stays open until the
      // stream has taken the bytes (or the bound passes).
      let sent: Promise<void>;
      try {
        this.#engine.closeWrite();
        sent = this.#send();
      } catch {
        this.#release(); // e.g. a fatal error earlier: no close_notify allowed
        return;
      }
      this.#freeNative();
      this.#closing = this.#closeStreamAfter(sent);
      return;
    }
    // Writes are pending (or we are inside a callback of an OpenSSL call): the close_notify goes
    // after them, from the write queue.
    const closeNotify = this.#writes.run(async () => {
      // Never inside the OpenSSL call whose callback called close(): it returns first.
      await null;
      if (!this.#closeNotifyPossible()) return;
      this.#engine.closeWrite();
      const sent = this.#send();
      this.#freeNative(); // the close_notify is out of the engine: nothing else needs it
      await sent;
    });
    this.#closing = this.#closeStreamAfter(closeNotify);
  }

  /**
   * The end of a clean close, bounded by CLOSE_FLUSH_TIMEOUT: once `last` (the close_notify, after
   * everything written before it) was handed to the transport, half-close it (FIN), then read and
   * discard what the peer still sends until it closes too, and only then close the transport.
   * Closing at once would make the kernel answer data we never read (a TLS 1.3 server's session
   * tickets, an echo) with a reset, and a reset can destroy the data and close_notify the peer
   * had not read yet: the very truncation close() is there to avoid. Frees everything at the end.
   */
  async #closeStreamAfter(last: Promise<void>): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const bound = new Promise<void>((r) => (timer = setTimeout(r, CLOSE_FLUSH_TIMEOUT)));
    const linger = async () => {
      await last;
      await this.#stream.closeWrite();
      // After any read still pending (it rejects with CLOSED once its bytes arrive).
      await this.#reads.run(() => this.#discardUntilEnd());
    };
    try {
      await Promise.race([linger(), bound]);
    } catch {
      // The stream failed or was reset: nothing more can be delivered anyway.
    } finally {
      clearTimeout(timer);
      this.#release();
    }
  }

  /** Reads and drops whatever arrives until the peer closes (or the stream is closed). */
  async #discardUntilEnd(): Promise<void> {
    if (this.#stream.readChunk !== undefined) {
      while (!this.#streamClosed && (await this.#stream.readChunk()) !== null);
      return;
    }
    const buffer = borrowReadBuffer();
    try {
      while (!this.#streamClosed && (await this.#stream.read(buffer)) !== null);
    } finally {
      releaseReadBuffer(buffer);
    }
  }

  /**
   * Closes at once, without close_notify: for when the application knows the stream is bad. The
   * peer sees a truncation (`UNEXPECTED_EOF` on our side of it). Pending operations reject with
   * `CLOSED`, with `reason` as its `cause` when given. Also ends a `close()` still delivering.
   * Idempotent.
   */
  abort(reason?: unknown): void {
    if (reason !== undefined && !this.#streamClosed) this.#abortReason = reason;
    this.#abortNow();
  }

  /**
   * The same as {@link close} (so a `Connection` is `Disposable`, as a `Deno.Conn` is): `using
   * conn = ...` closes it cleanly at the end of the scope, without waiting for the close_notify
   * to go out (`await using` waits).
   *
   * @example
   * ```ts
   * import { connect } from "../../mod.ts";
   * {
   *   using conn = await connect({ hostname: "example.com", port: 443 });
   *   await conn.write(new TextEncoder().encode("GET / HTTP/1.0\r\nHost: example.com\r\n\r\n"));
   * } // conn.close(): the request goes out, then close_notify
   * ```
   */
  [Symbol.dispose](): void {
    this.close();
  }

  /**
   * {@link close}, then waits until the close_notify went out (or its bound passed).
   *
   * @example
   * ```ts
   * import { connect } from "../../mod.ts";
   * {
   *   await using conn = await connect({ hostname: "example.com", port: 443 });
   *   await conn.write(new TextEncoder().encode("GET / HTTP/1.0\r\nHost: example.com\r\n\r\n"));
   * } // closed, and the close_notify delivered (at most 2 s)
   * ```
   */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.#closing;
  }
}
