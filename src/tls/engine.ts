/**
 * `TlsEngine`: the sans-I/O TLS engine. One `SSL` object between two memory BIOs: feed it the
 * ciphertext that arrived ({@link TlsEngine.receive}), take the ciphertext to send
 * ({@link TlsEngine.outgoing}), and read/write plaintext. It never touches a socket, so the same
 * engine serves TCP transports, STARTTLS over any byte stream, and in-memory tests.
 *
 * The engine is the record layer, the handshake driver and the switchboard for callbacks: every
 * handshake feature (`handshake/`) keeps its own per-connection state here, made on first use,
 * and OpenSSL's callbacks reach the feature that installed them through this engine's
 * {@link Link} (see `handshake/routing.ts`).
 *
 * Every OpenSSL call happens on the JS thread; OpenSSL calls our callbacks synchronously inside
 * `SSL_do_handshake` / `SSL_read` / `SSL_write` / `SSL_shutdown`.
 *
 * (Over 600 lines: most of it is the public, documented API of one class, about 25 members; the
 * memory BIOs and the error mapping already live in `memory_bios.ts` and `failure.ts`.)
 *
 * @module
 */
import { CallbackState } from "../core/callback_state.ts";
import { TlsError } from "../core/errors.ts";
import { clearErrorQueue, drainErrorQueue } from "../core/error_queue.ts";
import type { OcspResponse } from "../core/ocsp_response.ts";
import { NativeHandle } from "../core/ownership.ts";
import { openssl, type Pointer, SSL_ERROR, SSL_KEY_UPDATE } from "../core/native.ts";
import { messageOf } from "../core/values.ts";
import type { AlpnClientOptions } from "../handshake/alpn.ts";
import {
  earlyDataAcceptedOf,
  type EarlyDataClientOptions,
  earlyDataOf,
  handshakeStep,
} from "../handshake/early_data.ts";
import type { AnyFeature, Link } from "../handshake/feature.ts";
import { appliesTo, scopeOf, wrongSideError } from "../handshake/feature.ts";
import { FEATURES } from "../handshake/features.ts";
import { negotiatedGroup } from "../handshake/groups.ts";
import { peerSignatureAlgorithmOf } from "../handshake/algorithms.ts";
import {
  channelBindingOf,
  type ChannelBindingType,
  exportKeyingMaterial,
  finishedOf,
  queueKeyUpdate,
  type UpdateKeysOptions,
} from "../handshake/keying.ts";
import {
  cipherOf,
  localCertificateOf,
  peerCertificateOf,
  protocolOf,
  requestedServerName,
  selectedAlpn,
  verifiedChainOf,
} from "../handshake/negotiated.ts";
import { stapleOf } from "../handshake/ocsp.ts";
import { requestAnswered, startRequest } from "../handshake/post_handshake_auth.ts";
import { pskIdentityOf } from "../handshake/psk.ts";
import { registerSsl, unregisterSsl } from "../handshake/routing.ts";
import type { ServerNameClientOptions } from "../handshake/server_name.ts";
import { type SessionClientOptions, sessionOf } from "../handshake/sessions.ts";
import type { Certificate } from "../x509/certificate.ts";
import type { TlsContext } from "./context.ts";
import { failureOf, type Phase } from "./failure.ts";
import { MAX_CHUNK, MemoryBios } from "./memory_bios.ts";
import { type ContextInternals, internalsOf } from "./native_context.ts";
import { FEATURE_OPTIONS, normalizeOptions } from "./options.ts";

/**
 * Options for {@link TlsEngine}: the per-connection options of clients (each documented in its
 * feature's interface). A server engine takes none: its options are its context's.
 */
export interface TlsEngineOptions
  extends
    ServerNameClientOptions,
    AlpnClientOptions,
    SessionClientOptions,
    EarlyDataClientOptions {}

/**
 * Validates per-connection options for a context of `role` (TypeError / RangeError): each key
 * must be a per-connection option of that role (from the schema), then each feature checks its
 * own against the context's options. Callers that do I/O first (`connect`) run it before
 * connecting, and the engine they then make does not run it again.
 */
export function checkConnectionOptions(
  role: "client" | "server",
  contextOptions: Readonly<Record<string, unknown>>,
  options: Readonly<Record<string, unknown>>,
): void {
  if (typeof options !== "object" || options === null) {
    throw new TypeError("options must be an object");
  }
  for (const [key, value] of Object.entries(options)) {
    const spec = FEATURE_OPTIONS[key];
    // null: "none" (e.g. `session: null`); the features' own checks still see it.
    if (value === undefined || value === null || spec === undefined) continue;
    if (!appliesTo(spec, role)) throw wrongSideError(key, spec);
    if (scopeOf(spec, role) !== "connection") {
      throw new TypeError(`${key} is a TlsContext option on ${role}s: give it to the context`);
    }
  }
  for (const feature of FEATURES) feature.validateConnection?.(role, contextOptions, options);
}

/** Where a handshake stands after {@link TlsEngine.handshake}. */
export type HandshakeStep =
  | { readonly status: "done" }
  | { readonly status: "want-read" }
  | {
    readonly status: "suspended";
    /** Settles (never rejects) when the user callback the handshake waits on has settled. */
    readonly until: Promise<void>;
  };

const DONE: HandshakeStep = Object.freeze({ status: "done" });
const WANT_READ: HandshakeStep = Object.freeze({ status: "want-read" });

/** The four `SSL_*` operations, made through {@link TlsEngine}'s one call path. */
const Op = { Handshake: 0, Read: 1, Write: 2, Shutdown: 3, Peek: 4 } as const;
type Op = typeof Op[keyof typeof Op];

/**
 * Frees an `SSL` (and with it both BIOs) after unregistering its callback route. Module-level:
 * the FinalizationRegistry backstop holds it, so it must not capture an engine.
 */
function freeSsl(ssl: Pointer): void {
  unregisterSsl(ssl);
  openssl().SSL_free(ssl);
}

/** Set by {@link engineWithCheckedOptions} for the one engine it makes. */
let optionsChecked = false;

/**
 * A new engine whose options the caller already ran through {@link checkConnectionOptions}
 * (validation runs once per `connect()`).
 */
export function engineWithCheckedOptions(
  context: TlsContext,
  options: TlsEngineOptions,
): TlsEngine {
  optionsChecked = true;
  try {
    return new TlsEngine(context, options);
  } finally {
    optionsChecked = false;
  }
}

/**
 * A sans-I/O TLS connection: bytes in, bytes out, no sockets.
 *
 * @example
 * ```ts
 * import { readFileSync } from "node:fs";
 * import { TlsContext, TlsEngine } from "../../mod.ts";
 * const caPem = readFileSync("ca.pem", "utf8");
 * const certPem = readFileSync("server.pem", "utf8");
 * const keyPem = readFileSync("server.key", "utf8");
 * using clientCtx = new TlsContext("client", { caCerts: [caPem] });
 * using serverCtx = new TlsContext("server", { cert: certPem, key: keyPem });
 * using client = new TlsEngine(clientCtx, { servername: "localhost" });
 * using server = new TlsEngine(serverCtx);
 * // Step both sides each round, moving bytes in between, until both handshakes are done.
 * for (let done = false; !done;) {
 *   const c = client.handshake();
 *   const toServer = client.outgoing();
 *   if (toServer) server.receive(toServer);
 *   const s = server.handshake();
 *   const toClient = server.outgoing();
 *   if (toClient) client.receive(toClient);
 *   done = c.status === "done" && s.status === "done";
 * }
 * client.write(new TextEncoder().encode("hello"));
 * server.receive(client.outgoing()!);
 * const buf = new Uint8Array(100);
 * console.log(new TextDecoder().decode(buf.subarray(0, server.read(buf) ?? 0))); // "hello"
 * ```
 */
export class TlsEngine {
  /** `"client"` or `"server"` (the context's role). */
  readonly role: "client" | "server";

  /** Callback bookkeeping (errors, suspensions). */
  #callbacks: CallbackState = new CallbackState();
  /** Each feature's state for this connection, made on first use (the map too). */
  #states: Map<AnyFeature, unknown> | null = null;
  /**
   * What the features see of this connection; the route OpenSSL's callbacks take (registered
   * weakly, so it is held here: it lives exactly as long as this engine).
   */
  #link: Link;
  #servername: string | undefined;
  /** Clients: whether this connection verifies the server (its sessions may then be resumed). */
  #verifying: boolean;
  #ssl: NativeHandle;
  /** The two memory BIOs: ciphertext in (copied or lent) and out. */
  #bios: MemoryBios;
  #established = false;
  /**
   * Errors raised as the handshake's own (by `Link.reject`): rethrown as they are. Made by the
   * first one.
   */
  #ownErrors: WeakSet<object> | null = null;
  /** `SSL_get_error` of the last call made through {@link #call}. */
  #sslError = 0;
  #receivedEof = false;
  /**
   * OpenSSL has all the input there is (a read wanted more, or left nothing unread) and none came
   * since: a read then returns 0 without calling OpenSSL. Saves the `SSL_read` that would only
   * say WANT_READ (with its `SSL_get_error` and the KeyUpdate check: ~0.5 us through FFI) on
   * every read that waits for the network. Input ends it, and so does every other operation
   * but a write that succeeded: a handshake step (post-handshake auth, a KeyUpdate) or a shutdown
   * may leave work for a read, while an `SSL_write` that returned > 0 only encrypted (with no
   * input there is nothing it could have read). So the read that follows each request of a
   * request-response exchange costs no call, and OpenSSL allocates no record buffer for it.
   */
  #starved = false;
  #receivedCloseNotify = false;
  #sentCloseNotify = false;
  #fatal: TlsError | undefined;
  #inCall = 0;
  #closeRequested = false;
  #closed = false;

  /**
   * Creates the `SSL` object and its two memory BIOs.
   *
   * @throws {TypeError} for bad options; {@link TlsError} `CLOSED` if the context is closed.
   */
  constructor(context: TlsContext, given: TlsEngineOptions = {}) {
    if (typeof given !== "object" || given === null) {
      throw new TypeError("options must be an object");
    }
    // Checked by the caller (connect): as they are. Else every key, and aliases renamed.
    const options = optionsChecked ? given : normalizeOptions("TlsEngine", context.role, given);
    const opts = options as Readonly<Record<string, unknown>>;
    const contextOptions = context.options as Readonly<Record<string, unknown>>;
    if (!optionsChecked) checkConnectionOptions(context.role, contextOptions, opts);
    const inner = internalsOf(context);
    this.role = context.role;
    this.#servername = options.servername;
    this.#verifying = context.options.unsafelyDisableVerification !== true;
    this.#link = new TlsEngine.#Link(this, contextOptions, inner);

    const o = openssl();
    const ctx = inner.ctx();
    clearErrorQueue();
    const ssl = o.SSL_new(ctx); // takes its own reference to the SSL_CTX
    if (ssl === null) {
      throw new TlsError("INTERNAL", "SSL_new failed", { openssl: drainErrorQueue() });
    }
    this.#ssl = new NativeHandle("SSL", ssl, freeSsl);
    try {
      this.#bios = new MemoryBios(ssl, inner.datagram);
      if (this.role === "client") o.SSL_set_connect_state(ssl);
      else o.SSL_set_accept_state(ssl);
      for (const feature of FEATURES) feature.setupConnection?.(this.#link, opts);
      registerSsl(ssl, this.#link);
    } catch (error) {
      this.#free();
      throw error;
    }
  }

  /**
   * The features' view of this connection: one object whose methods live on a shared prototype
   * (a dozen closures per connection were a tenth of an idle connection's JS heap). Nested here
   * so that its methods reach the engine's private fields.
   */
  static #Link = class EngineLink implements Link {
    readonly #engine: TlsEngine;
    readonly #inner: ContextInternals;
    readonly role: "client" | "server";
    readonly options: Readonly<Record<string, unknown>>;
    readonly servername: string | undefined;
    readonly verifying: boolean;
    readonly callbacks: CallbackState;

    constructor(
      engine: TlsEngine,
      contextOptions: Readonly<Record<string, unknown>>,
      inner: ContextInternals,
    ) {
      this.#engine = engine;
      this.#inner = inner;
      this.role = engine.role;
      this.options = contextOptions;
      this.servername = engine.#servername;
      this.verifying = engine.#verifying;
      this.callbacks = engine.#callbacks;
    }

    get ssl(): Pointer {
      return this.#engine.#ssl.ptr;
    }

    get established(): boolean {
      return this.#engine.#established;
    }

    get features(): readonly AnyFeature[] {
      return FEATURES;
    }

    reject(error: TlsError): void {
      const engine = this.#engine;
      (engine.#ownErrors ??= new WeakSet()).add(error);
      engine.#callbacks.fail(error);
    }

    stateOf<S>(feature: unknown): S {
      return this.#engine.#stateOf(feature as AnyFeature) as S;
    }

    peekStateOf<S>(feature: unknown): S | undefined {
      return this.#engine.#states?.get(feature as AnyFeature) as S | undefined;
    }

    contextStateOf<C>(feature: unknown): C {
      return this.#inner.stateOf(feature as AnyFeature) as C;
    }
  };

  #stateOf(feature: AnyFeature): unknown {
    const states = this.#states ??= new Map();
    let state = states.get(feature);
    if (state === undefined && !states.has(feature)) {
      state = feature.connectionState?.(this.#link);
      states.set(feature, state);
    }
    return state;
  }

  // ---- bytes in and out -------------------------------------------------------------------

  /** Hands the engine ciphertext that arrived from the peer. The bytes are copied. */
  receive(ciphertext: Uint8Array): void {
    if (!(ciphertext instanceof Uint8Array)) throw new TypeError("ciphertext must be a Uint8Array");
    this.#usable();
    if (this.#receivedEof) throw new TypeError("receive() after receiveEof()");
    this.#starved = false;
    this.#bios.write(ciphertext);
  }

  /**
   * @internal Whether OpenSSL has taken every byte of input handed to it (and a read would only
   * wait for more): bytes lent with {@link receiveLent} may be reused from now on.
   */
  get inputTaken(): boolean {
    return this.#starved;
  }

  /**
   * @internal Like {@link receive}, without the copy: OpenSSL reads `ciphertext` in place. The
   * bytes are lent: the caller must not change them until the engine asks for more input (a
   * `read()` of 0, a `want-read` handshake step: OpenSSL reports those only once it has taken
   * every byte of input) or is closed. The engine holds a reference, so they stay alive.
   */
  receiveLent(ciphertext: Uint8Array): void {
    if (!(ciphertext instanceof Uint8Array)) throw new TypeError("ciphertext must be a Uint8Array");
    this.#usable();
    if (this.#receivedEof) throw new TypeError("receive() after receiveEof()");
    this.#starved = false;
    this.#bios.lend(ciphertext);
  }

  /**
   * Tells the engine the transport reached end of stream. From now on an empty input reads as
   * EOF: a peer that had not sent close_notify is reported as `UNEXPECTED_EOF` (a truncation).
   */
  receiveEof(): void {
    this.#usable();
    if (this.#receivedEof) return;
    this.#receivedEof = true;
    this.#starved = false;
    this.#bios.endOfInput();
  }

  /** How many ciphertext bytes are waiting to be sent. */
  get pendingOutgoing(): number {
    return this.#closed ? 0 : this.#bios.pendingOutput;
  }

  /**
   * Takes the ciphertext waiting to be sent to the peer, or `null` if there is none. Call it after
   * every other method: handshakes, reads (key updates, tickets), writes and closeWrite all
   * produce output. Still works after a fatal error, so the alert can reach the peer.
   */
  outgoing(): Uint8Array | null {
    return this.#closed ? null : this.#bios.takeOutput();
  }

  /**
   * @internal Like {@link outgoing}, into the caller's buffer (no allocation): moves up to
   * `into.length` waiting bytes into `into` and returns how many (0 when none are waiting).
   */
  outgoingInto(into: Uint8Array): number {
    return this.#closed || into.length === 0 ? 0 : this.#bios.takeOutputInto(into);
  }

  // ---- the TLS operations -----------------------------------------------------------------

  /**
   * The one call path for `SSL_*` operations: clear the error queue, call (counting the nesting,
   * so that a close() from inside a callback is deferred until OpenSSL has returned), read
   * `SSL_get_error` right after the call (a BIO operation in between could change the answer),
   * then honour a deferred close and rethrow a callback's stored error. Returns OpenSSL's result;
   * the error code is in {@link #sslError}.
   */
  #call(op: Op, where: string, buf: Uint8Array | null, length: number): number {
    const o = openssl();
    const ssl = this.#ssl.ptr;
    // A handshake step or a shutdown may leave work for a read; a write, only when it fails
    // (see #starved).
    const wasStarved = this.#starved;
    if (op !== Op.Read && op !== Op.Peek) this.#starved = false;
    clearErrorQueue();
    this.#inCall++;
    let r = 0;
    try {
      switch (op) {
        case Op.Handshake:
          // 0-RTT early data: its own calls first, then SSL_do_handshake (early_data.ts).
          r = handshakeStep(this.#link) ?? o.SSL_do_handshake(ssl);
          break;
        case Op.Read:
          r = o.SSL_read(ssl, buf!, length);
          break;
        case Op.Write:
          r = o.SSL_write(ssl, buf!, length);
          break;
        case Op.Peek:
          r = o.SSL_peek(ssl, buf!, length);
          break;
        case Op.Shutdown:
          r = o.SSL_shutdown(ssl);
          break;
      }
      this.#sslError = r > 0 || op === Op.Shutdown ? SSL_ERROR.NONE : o.SSL_get_error(ssl, r);
      if (op === Op.Write && r > 0) this.#starved = wasStarved;
    } finally {
      this.#inCall--;
    }
    // SSL_shutdown's queue holds nothing we report (e.g. a peer that already closed).
    if (op === Op.Shutdown) drainErrorQueue();
    this.#afterCall(where);
    return r;
  }

  /**
   * Advances the handshake. Idempotent once done.
   *
   * - `done`: the handshake completed (and the peer was verified, unless disabled);
   * - `want-read`: send {@link outgoing}, wait for the peer's bytes, {@link receive} them, call
   *   again;
   * - `suspended`: a user callback returned a Promise; call again once `until` settles.
   *
   * @throws {TlsError} `CERT_VERIFY_FAILED`, `ALERT_RECEIVED`, `UNEXPECTED_EOF`,
   * `CALLBACK_ERROR`, `HANDSHAKE_FAILED`, `CLOSED`.
   */
  handshake(): HandshakeStep {
    this.#usable();
    if (this.#established) return DONE;
    const r = this.#call(Op.Handshake, "handshake", null, 0);
    const e = this.#sslError;
    if (r === 1) {
      this.#established = true;
      this.#callbacks.reset();
      this.#bios.handshakeDone();
      // The features' end-of-handshake steps (the session of a resumed TLS 1.2 handshake, the
      // PSK checks), run like callbacks: a throw becomes the connection's error.
      for (const feature of FEATURES) {
        const hook = feature.handshakeDone;
        if (hook === undefined || this.#states?.has(feature) !== true) continue;
        const state = this.#states.get(feature);
        this.#callbacks.run(0, () => {
          hook(this.#link, state);
          return 0;
        });
      }
      this.#afterCall("handshake");
      return DONE;
    }
    switch (e) {
      case SSL_ERROR.WANT_READ:
      case SSL_ERROR.WANT_WRITE:
        return WANT_READ;
      case SSL_ERROR.WANT_X509_LOOKUP:
      case SSL_ERROR.WANT_RETRY_VERIFY:
      case SSL_ERROR.WANT_CLIENT_HELLO_CB: {
        const until = this.#callbacks.pending();
        if (until === null) {
          throw this.#setFatal(
            new TlsError("INTERNAL", `OpenSSL suspended the handshake (${e}) with nothing pending`),
          );
        }
        return { status: "suspended", until };
      }
      default:
        throw this.#setFatal(this.#failure(e, "handshake"));
    }
  }

  /** Whether the handshake has completed. */
  get handshakeDone(): boolean {
    return this.#established;
  }

  /**
   * Decrypts into `into`. Returns the byte count (> 0), `0` when more ciphertext is needed
   * ({@link receive} it, then call again), or `null` at a clean end of stream (the peer sent
   * close_notify).
   *
   * @throws {TlsError} `UNEXPECTED_EOF` if the transport ended without close_notify;
   * `ALERT_RECEIVED`, `PROTOCOL_ERROR`, `CLOSED`.
   */
  read(into: Uint8Array): number | null {
    return this.#readOp(Op.Read, into);
  }

  /**
   * Like {@link read}, but what it returns stays to be read: processes the received records (a
   * session ticket, a KeyUpdate, an alert) without consuming application data (`SSL_peek`).
   * Returns the byte count available (> 0), `0` when more ciphertext is needed, `null` at a clean
   * end of stream.
   *
   * @throws {TlsError} as {@link read}: `ALERT_RECEIVED` when the peer's next record is an alert.
   */
  peek(into: Uint8Array): number | null {
    return this.#readOp(Op.Peek, into);
  }

  #readOp(op: typeof Op.Read | typeof Op.Peek, into: Uint8Array): number | null {
    if (!(into instanceof Uint8Array)) throw new TypeError("into must be a Uint8Array");
    this.#usable();
    this.#requireHandshake("read");
    if (this.#receivedCloseNotify) return null;
    if (into.length === 0 || this.#starved) return 0;
    const n = this.#call(op, "read", into, Math.min(into.length, MAX_CHUNK));
    this.#readProgress?.(); // post-handshake auth: a write waiting for the answer may go on
    if (n > 0) {
      // Everything taken: the next read would only say WANT_READ (two cheap calls instead).
      if (op === Op.Read && !this.#bios.hasUnreadInput) {
        try {
          this.#starve();
        } catch (error) {
          // The KeyUpdate answer failed (or a close() came in a callback): the failure is
          // recorded and the next call reports it; the bytes this read took are not lost.
          if (this.#fatal === undefined && !this.#closed) throw error;
        }
      }
      return n;
    }
    const e = this.#sslError;
    switch (e) {
      case SSL_ERROR.ZERO_RETURN:
        this.#receivedCloseNotify = true;
        return null;
      case SSL_ERROR.WANT_READ:
        this.#starve();
        // This SSL_read found no input: OpenSSL 3 keeps the record buffer it made for it (~17 KiB)
        // until a record comes, so every connection waiting for its peer would hold one.
        this.#bios.readFoundNoInput();
        return 0;
      case SSL_ERROR.WANT_WRITE:
        this.#answerKeyUpdate();
        return 0;
      case SSL_ERROR.WANT_X509_LOOKUP: {
        // Post-handshake authentication (clients): an async onClientCertificate is pending.
        const until = this.#callbacks.pending();
        if (until === null) throw this.#setFatal(this.#failure(e, "read"));
        this.#readSuspension = until;
        return 0;
      }
      default:
        throw this.#setFatal(this.#failure(e, "read"));
    }
  }

  /**
   * OpenSSL needs input: answer a pending KeyUpdate now (see there), then wait for input. Not
   * after the end of input: the next read must reach OpenSSL to report it.
   */
  #starve(): void {
    this.#bios.releaseDrainedInput();
    this.#answerKeyUpdate();
    this.#starved = !this.#receivedEof;
  }

  /**
   * Encrypts all of `data` into the outgoing buffer and returns `data.length`. (Memory BIOs never
   * push back, so a write is always complete; send {@link outgoing} afterwards.) One exception:
   * while a TLS 1.3 post-handshake authentication is half done (a client's async
   * `onClientCertificate` choosing; a server that has read part of the client's answer),
   * OpenSSL cannot write: then it returns how many bytes it did write, and
   * {@link takeWriteSuspension} says when to write the rest.
   *
   * @throws {TlsError} `CLOSED` after {@link closeWrite}; `PROTOCOL_ERROR`.
   */
  write(data: Uint8Array): number {
    if (!(data instanceof Uint8Array)) throw new TypeError("data must be a Uint8Array");
    this.#usable();
    this.#requireHandshake("write");
    if (this.#sentCloseNotify) throw new TlsError("CLOSED", "write() after closeWrite()");
    for (let off = 0; off < data.length;) {
      const chunk = off === 0 && data.length <= MAX_CHUNK
        ? data
        : data.subarray(off, Math.min(data.length, off + MAX_CHUNK));
      const n = this.#call(Op.Write, "write", chunk, chunk.length);
      if (n <= 0) {
        const until = this.#postHandshakeWriteWait(this.#sslError);
        if (until !== null) {
          this.#writeSuspension = until;
          return off;
        }
        throw this.#setFatal(this.#failure(this.#sslError, "write"));
      }
      off += n;
    }
    return data.length;
  }

  /**
   * Queues close_notify (`SSL_shutdown`): the peer will read a clean end of stream. Reading may
   * continue until the peer closes too. Idempotent; a no-op after a fatal error (OpenSSL forbids
   * `SSL_shutdown` then).
   */
  closeWrite(): void {
    this.#usableEvenIfFailed();
    if (this.#sentCloseNotify || this.#fatal !== undefined) return;
    this.#sentCloseNotify = true;
    if (!this.#established) return; // nothing to protect; the transport just closes
    this.#call(Op.Shutdown, "closeWrite", null, 0);
  }

  /** Whether the peer's close_notify has been read. */
  get receivedCloseNotify(): boolean {
    return this.#receivedCloseNotify;
  }

  // ---- post-handshake client authentication (handshake/post_handshake_auth.ts) --------------

  /** Set when a read returned 0 because a user callback is pending (see {@link takeReadSuspension}). */
  #readSuspension: Promise<void> | null = null;
  /** Set when a write stopped short (see {@link takeWriteSuspension}). */
  #writeSuspension: Promise<void> | null = null;
  /** Resolves the Promise writes wait on for the next read (see {@link #postHandshakeWriteWait}). */
  #readProgress: (() => void) | null = null;

  /**
   * After an `SSL_write` that failed with `sslError`: what a post-handshake authentication in
   * progress lets the write wait for, or `null` (a real failure). OpenSSL runs the unfinished
   * exchange inside `SSL_write` first: a client whose async `onClientCertificate` is pending gets
   * `WANT_X509_LOOKUP` (wait for the callback), a server that has read part of the client's
   * answer gets `WANT_READ` (wait for the next read, which brings the rest).
   */
  #postHandshakeWriteWait(sslError: number): Promise<void> | null {
    if (sslError === SSL_ERROR.WANT_X509_LOOKUP) return this.#callbacks.pending();
    if (sslError !== SSL_ERROR.WANT_READ && sslError !== SSL_ERROR.WANT_WRITE) return null;
    return new Promise<void>((resolve) => {
      const previous = this.#readProgress;
      this.#readProgress = () => {
        this.#readProgress = null;
        previous?.();
        resolve();
      };
    });
  }

  /**
   * @internal After a {@link write} that returned less than its input: a Promise that settles
   * when the rest may be written (a post-handshake authentication went on), else `null`.
   */
  takeWriteSuspension(): Promise<void> | null {
    const until = this.#writeSuspension;
    this.#writeSuspension = null;
    return until;
  }

  /**
   * @internal After a {@link read} that returned 0: a Promise that settles once the user
   * callback that read waits on has settled (then read again), or `null` when the read needs
   * more ciphertext as usual. Clients: an async `onClientCertificate` answering a post-handshake
   * CertificateRequest.
   */
  takeReadSuspension(): Promise<void> | null {
    const until = this.#readSuspension;
    this.#readSuspension = null;
    return until;
  }

  /**
   * @internal Servers, TLS 1.3: sends a CertificateRequest after the handshake
   * (`SSL_verify_client_post_handshake`, then `SSL_do_handshake` writes it: send
   * {@link outgoing}). The client's answer is processed by later {@link read}s;
   * {@link clientCertificateAnswered} says when it has been.
   *
   * @throws {TypeError} | {@link TlsError} as `startRequest` in post_handshake_auth.ts.
   */
  requestClientCertificate(require: boolean): void {
    this.#usable();
    this.#requireHandshake("requestClientCertificate");
    startRequest(this.#link, require);
    const r = this.#call(Op.Handshake, "requestClientCertificate", null, 0);
    const e = this.#sslError;
    if (r !== 1 && e !== SSL_ERROR.WANT_READ && e !== SSL_ERROR.WANT_WRITE) {
      throw this.#setFatal(this.#failure(e, "read"));
    }
  }

  /**
   * @internal Servers: whether the client's answer to {@link requestClientCertificate} has been
   * processed (by a read since). True once per request.
   */
  clientCertificateAnswered(): boolean {
    return !this.#closed && requestAnswered(this.#link);
  }

  // ---- what was negotiated ----------------------------------------------------------------

  /** The negotiated protocol, e.g. `"TLSv1.3"` (after the handshake). */
  get protocol(): string {
    return protocolOf(this.#ssl.ptr);
  }

  /** The negotiated cipher suite, e.g. `"TLS_AES_256_GCM_SHA384"` (after the handshake). */
  get cipher(): string {
    return cipherOf(this.#ssl.ptr);
  }

  /**
   * Clients: the server name asked for (`servername`). Servers: the SNI host name the client sent
   * (`SSL_get_servername`), or `undefined`.
   */
  get servername(): string | undefined {
    if (this.role === "client" || this.#closed) return this.#servername;
    return requestedServerName(this.#ssl.ptr);
  }

  /**
   * The key exchange group the handshake used (e.g. `"X25519"`, or `"X25519MLKEM768"` on
   * OpenSSL 3.5+), or `null` when it used none (after the handshake).
   */
  get group(): string | null {
    return negotiatedGroup(this.#ssl.ptr);
  }

  /** The ALPN protocol the peers agreed on, or `null` if none was negotiated. */
  get alpnProtocol(): string | null {
    return selectedAlpn(this.#ssl.ptr);
  }

  /** Clients: the verified OCSP staple, or `null` when none arrived (or OCSP is off). */
  get ocspResponse(): OcspResponse | null {
    return stapleOf(this.#link);
  }

  /**
   * Whether the session was resumed, as OpenSSL reports it (`SSL_session_reused`): true for a
   * TLS 1.3 PSK handshake, which OpenSSL runs as a resumption of the PSK's session.
   */
  get sessionReused(): boolean {
    return openssl().SSL_session_reused(this.#ssl.ptr) === 1;
  }

  /**
   * The PSK identity the handshake used, or `null` when it used none (after the handshake).
   * Clients: the identity sent and accepted, as given. Servers: the client's identity, as the
   * `psk` function was given it (a string when printable UTF-8, else bytes).
   */
  get pskIdentity(): string | Uint8Array | null {
    return this.#closed ? null : pskIdentityOf(this.#link);
  }

  /**
   * Clients: the newest session of this connection, serialised (`i2d_SSL_SESSION`), for
   * {@link TlsEngineOptions.session} of a later connection to the same server; `null` while
   * there is none. TLS 1.2: set when the handshake completes. TLS 1.3: set when the server's
   * NewSessionTicket is read, which happens on a {@link read} after the handshake (OpenSSL
   * servers send their tickets right after it); each new ticket replaces the previous one.
   * Kept after {@link close}. The bytes hold the session's master secret: store them as
   * carefully as a key.
   */
  get session(): Uint8Array | null {
    return this.role === "client" ? sessionOf(this.#link) : null;
  }

  // ---- 0-RTT early data (handshake/early_data.ts) ----

  /**
   * Whether the server accepted this connection's TLS 1.3 early data (`SSL_get_early_data_status`;
   * after the handshake). Clients: the `earlyData` went out as 0-RTT data and was taken (if not,
   * the engine already resent it as ordinary data). Servers: {@link earlyData} holds it.
   */
  get earlyDataAccepted(): boolean {
    return earlyDataAcceptedOf(this.#link);
  }

  /**
   * Servers: the 0-RTT early data the client sent and this server accepted (`maxEarlyData`), or
   * `null` (none, rejected, or clients). It is not repeated in the stream {@link read} returns.
   */
  get earlyData(): Uint8Array | null {
    return earlyDataOf(this.#link);
  }

  /** OpenSSL's verification result for the peer (`SSL_get_verify_result`; 0 = OK). */
  get verifyResult(): number {
    return openssl().SSL_get_verify_result(this.#ssl.ptr);
  }

  /** The peer's certificate, or `null` (e.g. a client that sent none). */
  get peerCertificate(): Certificate | null {
    return peerCertificateOf(this.#ssl.ptr);
  }

  /**
   * This side's certificate (`SSL_get_certificate`): the context's `cert`, or the one a callback
   * chose for this connection; `null` when there is none.
   */
  get localCertificate(): Certificate | null {
    return localCertificateOf(this.#ssl.ptr);
  }

  /** The verified chain, leaf first (empty if the peer was not verified). */
  get peerCertificateChain(): Certificate[] {
    return verifiedChainOf(this.#ssl.ptr);
  }

  // ---- keying material, channel binding, KeyUpdate, peer signature (keying.ts, algorithms.ts)

  /**
   * `length` bytes of keying material derived from this connection's secrets, `label` and
   * `context` (`SSL_export_keying_material`; RFC 5705, RFC 8446 7.5): the peer gets the same
   * bytes from the same arguments. See `exportKeyingMaterial` in `handshake/keying.ts`.
   *
   * @throws {TypeError} before the handshake, or for bad arguments; {@link RangeError} for a
   * length outside 1..8160; {@link TlsError} `CLOSED`.
   */
  exportKeyingMaterial(length: number, label: string, context?: Uint8Array): Uint8Array {
    this.#usable();
    this.#requireHandshake("exportKeyingMaterial");
    return exportKeyingMaterial(this.#ssl.ptr, length, label, context);
  }

  /** The last Finished message this side sent (its verify_data), or `null` before the handshake. */
  get finished(): Uint8Array | null {
    this.#usable();
    return this.#established ? finishedOf(this.#ssl.ptr, false) : null;
  }

  /** The last Finished message the peer sent (its verify_data), or `null` before the handshake. */
  get peerFinished(): Uint8Array | null {
    this.#usable();
    return this.#established ? finishedOf(this.#ssl.ptr, true) : null;
  }

  /**
   * The channel binding of this connection: `"tls-exporter"` (RFC 9266) or `"tls-unique"`
   * (RFC 5929, TLS 1.2 only). See `channelBindingOf` in `handshake/keying.ts`.
   *
   * @throws {TypeError} before the handshake or for an unknown type; {@link RangeError} when the
   * type is not defined for this connection; {@link TlsError} `CLOSED`.
   */
  channelBinding(type: ChannelBindingType): Uint8Array {
    this.#usable();
    this.#requireHandshake("channelBinding");
    return channelBindingOf(this.#ssl.ptr, this.role, this.sessionReused, type);
  }

  /**
   * Sends a TLS 1.3 KeyUpdate (`SSL_key_update`, then `SSL_do_handshake`, which writes it): this
   * side's sending keys change now; with `requestPeer` the peer is asked to change its own (its
   * answer arrives with a later {@link read}). Send {@link outgoing} afterwards.
   *
   * @throws {TypeError} before the handshake or for bad options; {@link RangeError} on TLS 1.2;
   * {@link TlsError} `CLOSED` (also after {@link closeWrite}).
   */
  updateKeys(options?: UpdateKeysOptions): void {
    this.#usable();
    this.#requireHandshake("updateKeys");
    if (this.#sentCloseNotify) throw new TlsError("CLOSED", "updateKeys() after closeWrite()");
    queueKeyUpdate(this.#ssl.ptr, options);
    if (this.#call(Op.Handshake, "updateKeys", null, 0) === 1) return;
    const e = this.#sslError;
    if (e !== SSL_ERROR.WANT_READ && e !== SSL_ERROR.WANT_WRITE) {
      throw this.#setFatal(this.#failure(e, "write"));
    }
  }

  /**
   * After a read that needs more input: a peer's KeyUpdate that requested ours leaves the answer
   * pending in OpenSSL 3.0 until this side's next `SSL_write` (only `ssl3_write_bytes` puts the
   * connection back "in init" for it). Send it now, so it goes out with this read's output even
   * if this side never writes: `SSL_key_update` with the pending type does what that write would
   * (the same single KeyUpdate), and `SSL_do_handshake` sends it. One `SSL_get_key_update_type`
   * call per read that waits for the network.
   */
  #answerKeyUpdate(): void {
    if (this.#sentCloseNotify) return; // nothing more may be sent
    const o = openssl();
    const pending = o.SSL_get_key_update_type(this.#ssl.ptr);
    if (pending === SSL_KEY_UPDATE.NONE) return;
    // Refused when a release already put the connection in init for it: then the
    // SSL_do_handshake below sends it all the same.
    if (o.SSL_key_update(this.#ssl.ptr, pending) !== 1) drainErrorQueue();
    if (this.#call(Op.Handshake, "read", null, 0) === 1) return;
    const e = this.#sslError;
    if (e !== SSL_ERROR.WANT_READ && e !== SSL_ERROR.WANT_WRITE) {
      throw this.#setFatal(this.#failure(e, "read"));
    }
  }

  /**
   * The signature scheme the peer signed the handshake with, by its IANA name (e.g.
   * `"ecdsa_secp256r1_sha256"`, `"rsa_pss_rsae_sha256"`), or `null` when it signed none (a
   * resumed session, a PSK, a client without a certificate) or before the handshake.
   */
  get peerSignatureAlgorithm(): string | null {
    this.#usableEvenIfFailed();
    return this.#established ? peerSignatureAlgorithmOf(this.#ssl.ptr) : null;
  }

  // ---- errors and lifetime ----------------------------------------------------------------

  #requireHandshake(what: string): void {
    if (!this.#established) {
      throw new TypeError(`${what}() before the handshake is done: call handshake() first`);
    }
  }

  #usableEvenIfFailed(): void {
    if (this.#closed || this.#closeRequested) {
      throw new TlsError("CLOSED", "the connection is closed");
    }
  }

  #usable(): void {
    this.#usableEvenIfFailed();
    if (this.#fatal !== undefined) throw this.#fatal;
  }

  #setFatal(error: TlsError): TlsError {
    this.#fatal ??= error;
    return error;
  }

  /** After each OpenSSL call: honour a close() made from a callback, rethrow a callback error. */
  #afterCall(where: string): void {
    if (this.#closeRequested && this.#inCall === 0) {
      this.#free();
      throw new TlsError("CLOSED", `the connection was closed during ${where}`);
    }
    if (this.#callbacks.failed) {
      const cause = this.#callbacks.takeError();
      if (cause instanceof TlsError && this.#ownErrors?.has(cause) === true) {
        throw this.#setFatal(cause);
      }
      throw this.#setFatal(
        new TlsError("CALLBACK_ERROR", `a callback failed during ${where}: ${messageOf(cause)}`, {
          cause,
          openssl: drainErrorQueue(),
        }),
      );
    }
  }

  #failure(sslError: number, phase: Phase): TlsError {
    return failureOf(this.#ssl.ptr, sslError, phase, this.#receivedEof, (facts) => {
      // A feature may know better (an unknown PSK the server went on without, a staple OpenSSL
      // could not parse).
      for (const feature of FEATURES) {
        const explained = feature.explainFailure?.(this.#link, this.#states?.get(feature), facts);
        if (explained !== undefined) return explained;
      }
      return undefined;
    });
  }

  #free(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#ssl.close(); // unregisters, then SSL_free, which also frees both BIOs
    // After SSL_free: nothing can read what the features handed OpenSSL any more.
    for (const feature of FEATURES) {
      if (feature.free !== undefined && this.#states?.has(feature) === true) {
        feature.free(this.#states.get(feature));
      }
    }
    this.#bios?.forget(); // (absent if the constructor failed) OpenSSL is gone: nothing reads the lent bytes any more
    this.#readProgress?.(); // post-handshake auth: a write waiting for a read goes on (to CLOSED)
  }

  /** Whether {@link close} has been called. */
  get closed(): boolean {
    return this.#closed || this.#closeRequested;
  }

  // ---- DTLS (src/dtls/) -------------------------------------------------------------------

  /**
   * @internal The `SSL *`, for the datagram-only calls of `src/dtls/` (`DTLSv1_listen`, the
   * retransmission timer, the MTU), which take no user callbacks. `CLOSED` once closed.
   */
  get dtlsSsl(): Pointer {
    this.#usableEvenIfFailed();
    return this.#ssl.ptr;
  }

  /**
   * @internal Whether an OpenSSL call is running right now (so a user callback may be on the
   * stack): the engine cannot be driven re-entrantly, so a `Connection` defers its close then.
   */
  get inCall(): boolean {
    return this.#inCall > 0;
  }

  /**
   * Frees the SSL object and its BIOs. Idempotent. Does not send close_notify (see
   * {@link closeWrite}). Safe to call from inside a callback: the free is deferred until OpenSSL
   * has returned.
   */
  close(): void {
    if (this.#inCall > 0) {
      this.#closeRequested = true;
      return;
    }
    this.#free();
  }

  /** Same as {@link close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}
