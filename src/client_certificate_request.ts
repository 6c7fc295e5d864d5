/**
 * `conn.requestClientCertificate()`: the connection-level half of TLS 1.3 post-handshake client
 * authentication (the OpenSSL half is `handshake/post_handshake_auth.ts`).
 *
 * The I/O model: reads are pulled by the user (`Connection.read`), but the client's answer is
 * only processed inside `SSL_read`, and the Promise must settle whether or not the user is
 * reading. So a request reads by itself: a "pump" in the connection's read queue reads from the
 * transport and decrypts until the answer has been processed. Application data that arrives
 * meanwhile (the client may be sending when the request reaches it) is kept, in order, and
 * handed to the next reads before anything else. When the user is reading too, the pump gives
 * way as soon as it holds data for them (their reads then process the answer just as well, and
 * the pump queues again behind them), so a request never holds data back from a waiting reader.
 * What it keeps is bounded ({@link MAX_KEPT_BYTES}): beyond that it stops reading, and only the
 * user's reads go on (a client that sends without reading never answers anyway).
 *
 * @module
 */
import { TlsError } from "./core/errors.ts";
import { unrefTimer } from "./core/timers.ts";
import type { TlsEngine } from "./tls/engine.ts";
import type { Certificate } from "./x509/certificate.ts";

/**
 * Options for `conn.requestClientCertificate()`.
 *
 * @example
 * ```ts
 * import type { RequestClientCertificateOptions } from "../mod.ts";
 * const options: RequestClientCertificateOptions = { require: false, timeout: 10_000 };
 * console.log(options);
 * ```
 */
export interface RequestClientCertificateOptions {
  /**
   * `true` (default): a client that answers without a certificate fails the connection (alert
   * certificate_required, 116) and the Promise rejects with `HANDSHAKE_FAILED`. `false`: such a
   * client is accepted, and the Promise resolves to `null`.
   */
  require?: boolean;
  /**
   * Milliseconds the client has to answer. Default 30,000; `Infinity`: no limit. When it passes
   * the Promise rejects with `TIMEOUT`; the connection stays open (TLS cannot withdraw the
   * request: a late answer is still processed, and verified, by later reads).
   */
  timeout?: number;
}

/** The default for {@link RequestClientCertificateOptions.timeout}: 30 seconds. */
export const DEFAULT_CLIENT_CERTIFICATE_TIMEOUT = 30_000;

/** Plaintext kept for the user while a request reads by itself, at most. */
const MAX_KEPT_BYTES = 1024 * 1024;

/** A TLS record's plaintext fits (16 KiB). */
const SCRATCH_SIZE = 16 * 1024;

/** @internal What the requests need of their connection (its private plumbing). */
export interface RequestIo {
  /** The connection's engine. */
  readonly engine: TlsEngine;
  /** Sends what the engine produced. */
  flush(): Promise<void>;
  /** Reads from the transport into the engine (false at its end). */
  receive(): Promise<boolean>;
  /** Queues `op` on the connection's read queue (after the reads already waiting). */
  queueRead(op: () => Promise<void>): void;
  /** Whether a user read is waiting behind the operation running now. */
  readsWaiting(): boolean;
  /** Throws the connection's CLOSED (or timeout) error when it is closed. */
  assertOpen(): void;
  /** A read failed for good: the connection releases itself (as a failed user read does). */
  failed(error: unknown): void;
}

interface Pending {
  resolve(certificate: Certificate | null): void;
  reject(error: unknown): void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

function checkOptions(options: unknown): { require: boolean; timeout: number } {
  if (options === undefined) return { require: true, timeout: DEFAULT_CLIENT_CERTIFICATE_TIMEOUT };
  if (typeof options !== "object" || options === null) {
    throw new TypeError("options must be an object");
  }
  const { require = true, timeout = DEFAULT_CLIENT_CERTIFICATE_TIMEOUT, ...rest } =
    options as RequestClientCertificateOptions;
  const unknown = Object.keys(rest).find((k) => (rest as Record<string, unknown>)[k] !== undefined);
  if (unknown !== undefined) {
    throw new TypeError(
      `requestClientCertificate() has no option ${JSON.stringify(unknown)}; its options are ` +
        "require, timeout",
    );
  }
  if (typeof require !== "boolean") throw new TypeError("require must be a boolean");
  if (typeof timeout !== "number" || Number.isNaN(timeout) || timeout <= 0) {
    throw new RangeError("timeout must be a positive number of milliseconds (or Infinity)");
  }
  return { require, timeout };
}

/**
 * @internal One connection's post-handshake certificate requests (servers), and the plaintext
 * read while they waited.
 */
export class ClientCertificateRequests {
  #io: RequestIo;
  /** Plaintext read by the pump, oldest first; `#offset` into the first chunk. */
  #kept: Uint8Array[] = [];
  #offset = 0;
  #keptBytes = 0;
  /** The user's Promise, until it settles (answer, failure, timeout, close). */
  #pending: Pending | null = null;
  /** A request was sent and its answer not processed yet (may outlive #pending: a timeout). */
  #outstanding = false;
  #pumpQueued = false;

  constructor(io: RequestIo) {
    this.#io = io;
  }

  /** Whether plaintext read while waiting is there for the next read. */
  get hasKept(): boolean {
    return this.#kept.length > 0;
  }

  /** Moves kept plaintext into `p` (as much as fits); returns the byte count. */
  takeKept(p: Uint8Array): number {
    let n = 0;
    while (n < p.length && this.#kept.length > 0) {
      const chunk = this.#kept[0]!;
      const part = chunk.subarray(this.#offset, this.#offset + (p.length - n));
      p.set(part, n);
      n += part.length;
      this.#offset += part.length;
      if (this.#offset === chunk.length) {
        this.#kept.shift();
        this.#offset = 0;
      }
    }
    this.#keptBytes -= n;
    return n;
  }

  /** Sends a request; see `Connection.requestClientCertificate`. */
  request(options?: RequestClientCertificateOptions): Promise<Certificate | null> {
    let checked: { require: boolean; timeout: number };
    try {
      checked = checkOptions(options);
      this.#io.engine.requestClientCertificate(checked.require);
    } catch (error) {
      return Promise.reject(error);
    }
    this.#outstanding = true;
    const promise = new Promise<Certificate | null>((resolve, reject) => {
      this.#pending = { resolve, reject, timer: undefined };
    });
    const pending = this.#pending!;
    if (checked.timeout !== Infinity) {
      pending.timer = unrefTimer(setTimeout(() => {
        this.#settle(
          pending,
          new TlsError(
            "TIMEOUT",
            `the client did not answer requestClientCertificate() within ${checked.timeout} ms ` +
              "(a client answers while it reads: one that offered post-handshake authentication " +
              "but does not read, or that cannot find a certificate, never does)",
          ),
        );
      }, checked.timeout));
    }
    this.#io.flush().catch((error) => {
      this.#settle(pending, error);
      this.#io.failed(error);
    });
    this.#queuePump();
    return promise;
  }

  /** After every engine read: settles the request once its answer was processed. */
  afterRead(): void {
    if (!this.#outstanding || !this.#io.engine.clientCertificateAnswered()) return;
    this.#outstanding = false;
    const pending = this.#pending;
    if (pending === null) return; // timed out earlier: the late answer is simply taken
    const engine = this.#io.engine;
    // The verified chain starts with the client's certificate (SSL_get0_verified_chain).
    const certificate = engine.peerCertificateChain[0] ?? engine.peerCertificate;
    this.#settle(pending, null, certificate);
  }

  /** The connection failed or closed: the request in flight rejects with `error`. */
  fail(error: unknown): void {
    this.#outstanding = false;
    if (this.#pending !== null) this.#settle(this.#pending, error);
  }

  #settle(pending: Pending, error: unknown, certificate: Certificate | null = null): void {
    if (this.#pending !== pending) return;
    this.#pending = null;
    clearTimeout(pending.timer);
    if (error === null) pending.resolve(certificate);
    else pending.reject(error);
  }

  #queuePump(): void {
    if (this.#pumpQueued) return;
    this.#pumpQueued = true;
    this.#io.queueRead(() => this.#pump());
  }

  /** Reads until the answer is processed, keeping plaintext (see the module doc). */
  async #pump(): Promise<void> {
    this.#pumpQueued = false;
    const io = this.#io;
    const engine = io.engine;
    let scratch: Uint8Array | null = null;
    try {
      while (this.#outstanding && this.#pending !== null) {
        io.assertOpen();
        if (this.#kept.length > 0 && io.readsWaiting()) {
          // A reader waits and there is data for it: let it have the data (its reads process
          // the answer as well), and come back after it.
          this.#queuePump();
          return;
        }
        if (this.#keptBytes >= MAX_KEPT_BYTES) return; // only the user's reads go on now
        scratch ??= new Uint8Array(SCRATCH_SIZE);
        const n = engine.read(scratch);
        if (engine.pendingOutgoing > 0) await io.flush();
        if (n === null) {
          // close_notify: the client will send nothing more. The next read reports the end.
          this.fail(
            new TlsError(
              "CLOSED",
              "the client closed its side of the connection (close_notify) without answering " +
                "requestClientCertificate()",
            ),
          );
          return;
        }
        if (n > 0) {
          this.#kept.push(scratch.slice(0, n));
          this.#keptBytes += n;
        }
        this.afterRead();
        if (n > 0) continue; // more may be decryptable already (the loop checks for the end)
        if (!this.#outstanding || this.#pending === null) return;
        const until = engine.takeReadSuspension();
        if (until !== null) await until;
        else await io.receive();
      }
    } catch (error) {
      // Our alert (e.g. certificate_required) should reach the client first: best effort.
      if (!engine.closed && engine.pendingOutgoing > 0) await io.flush().catch(() => {});
      io.failed(error);
      this.fail(error);
    }
  }
}
