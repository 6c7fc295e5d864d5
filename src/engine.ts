/**
 * `TlsEngine`: the sans-I/O TLS engine. One `SSL` object between two memory BIOs: feed it the
 * ciphertext that arrived ({@link TlsEngine.receive}), take the ciphertext to send
 * ({@link TlsEngine.outgoing}), and read/write plaintext. It never touches a socket, so the same
 * engine serves TCP transports, STARTTLS over any byte stream, and in-memory tests.
 *
 * Every OpenSSL call happens on the JS thread; OpenSSL calls our callbacks synchronously inside
 * `SSL_do_handshake` / `SSL_read` / `SSL_write`.
 *
 * @module
 */
import { alertName, TlsError, type TlsErrorCode } from "./errors.ts";
import { clearErrorQueue, drainErrorQueue } from "./error_queue.ts";
import { NativeHandle } from "./ownership.ts";
import {
  CERT_CB_SUSPEND,
  cString,
  ERR_LIB_SSL,
  openssl,
  type Pointer,
  SSL_AD_REASON_OFFSET,
  SSL_CB,
  SSL_CLIENT_HELLO,
  SSL_ERROR,
  SSL_R,
  SSL_TLSEXT_ERR,
  TLS_VERSION,
  TLSEXT_TYPE_psk,
  TLSEXT_TYPE_server_name,
  X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS,
  X509_V,
} from "./native.ts";
import { CallbackState, type CallbackTarget, registerSsl, unregisterSsl } from "./callbacks.ts";
import {
  DEFAULT_OCSP_LEEWAY_SECONDS,
  type OcspResponse,
  requiresStaple,
  verifyOcspResponse,
} from "./ocsp.ts";
import { appendFileSync } from "node:fs";
import {
  type AlpnSelector,
  type CertificateRequest,
  type DistinguishedName,
  encodeAlpn,
  type HandshakeEvent,
  type Identity,
  nativeContext,
  ocspModeOf,
  sessionScopeOf,
  ticketKeyRingOf,
  TlsContext,
  type TlsContextOptions,
  type VerifyCertificateInfo,
} from "./context.ts";
import {
  bindSession,
  decodeSession,
  encodeSession,
  sessionHostname,
  sessionIdContext,
  sessionInScope,
} from "./session.ts";
import { Certificate, loadCertificates, loadPrivateKey, nameToDer, nameToString } from "./x509.ts";
import {
  hashNidOf,
  newPskSession,
  offeredIdentities,
  presentIdentity,
  type PskClientCallback,
  type PskServerCallback,
  resolveClientKey,
  type ResolvedPsk,
  resolveServerKey,
  suitesWithHashOf,
} from "./psk.ts";

/** Options for {@link TlsEngine}. */
export interface TlsEngineOptions {
  /**
   * Clients: the server's name. Sent as SNI and verified against the certificate. An IP address
   * literal is verified as an IP (`X509_VERIFY_PARAM_set1_ip_asc`) and sends no SNI. Required for
   * clients unless verification is (unsafely) disabled or the context has a `psk` (a server that
   * then authenticates with a certificate instead of the PSK fails the handshake: its name cannot
   * be checked).
   */
  servername?: string;
  /**
   * Clients: the ALPN protocols to offer, in order of preference (e.g. `["h2", "http/1.1"]`).
   * When the server picks none, {@link TlsEngine.alpnProtocol} is `null` (the handshake still
   * succeeds, as RFC 7301 allows servers to ignore ALPN).
   */
  alpnProtocols?: readonly string[];
  /**
   * Clients: a session to resume, as an earlier connection's {@link TlsEngine.session} gave it
   * (`null`: none). It is offered only when it was made for the same `servername` by a
   * connection that verified the server the way this context does: the same trust anchors and
   * OCSP mode, and no `onVerifyCertificate` or `psk` (a context with those resumes only its own
   * sessions), because a resumed handshake does not verify the certificate again. Otherwise,
   * and when the server does not accept it (another server, expired, tickets off), the
   * handshake is a full one. Bytes that are not a serialised session are a TypeError.
   */
  session?: Uint8Array | null;
  /**
   * Clients: called with each new session as it arrives (serialised, the bytes of
   * {@link TlsEngine.session}): TLS 1.2 during the handshake, TLS 1.3 after it, once per ticket
   * the server sends (on the read that processes it). Synchronous; a throw fails the connection.
   */
  onSession?: (session: Uint8Array) => void;
}

/**
 * Validates engine options for a context of `role` (TypeError/RangeError), and returns the ALPN
 * wire bytes. Callers that do I/O first (`connect`) run it before connecting.
 */
export function checkEngineOptions(
  role: "client" | "server",
  contextOptions: Readonly<TlsContextOptions>,
  options: TlsEngineOptions,
): Uint8Array | undefined {
  if (typeof options !== "object" || options === null) {
    throw new TypeError("options must be an object");
  }
  const { servername, alpnProtocols, session, onSession } = options;
  const alpn = alpnProtocols === undefined ? undefined : encodeAlpn(alpnProtocols);
  if (session !== undefined && session !== null) {
    if (role === "server") throw new TypeError("session is for clients only");
    decodeSession(session).close(); // parses it: a TypeError for garbage, before any I/O
  }
  if (onSession !== undefined) {
    if (typeof onSession !== "function") throw new TypeError("onSession must be a function");
    if (role === "server") throw new TypeError("onSession is for clients only");
  }
  if (alpn !== undefined && role === "server") {
    throw new TypeError("alpnProtocols on an engine is for clients only");
  }
  if (servername !== undefined) {
    if (typeof servername !== "string" || servername === "" || servername.includes("\0")) {
      throw new TypeError("servername must be a non-empty string without NUL characters");
    }
    if (role === "server") throw new TypeError("servername is for clients only");
  }
  const verifying = contextOptions.unsafelyDisableVerification !== true;
  if (
    role === "client" && verifying && servername === undefined && contextOptions.psk === undefined
  ) {
    throw new TypeError(
      "a client needs servername: it is the name the server's certificate is verified against",
    );
  }
  return alpn;
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

/** OpenSSL's `int` lengths: never hand it more than this in one call. */
const MAX_CHUNK = 1 << 30;

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function noCurrentCertificate(): never {
  throw new TlsError("INTERNAL", "OpenSSL called the verify callback without a certificate");
}

function describeIdentity(identity: string | Uint8Array): string {
  return typeof identity === "string"
    ? JSON.stringify(identity)
    : `0x${Array.from(identity, (x) => x.toString(16).padStart(2, "0")).join("")}`;
}

/** Whether `name` is an IPv4 or IPv6 address literal (those are verified as IPs, without SNI). */
export function isIpAddress(name: string): boolean {
  const v4 = IPV4.exec(name);
  if (v4 !== null) return v4.slice(1).every((part) => Number(part) <= 255);
  return name.includes(":") && /^[0-9a-fA-F:.]+$/.test(name);
}

/**
 * A sans-I/O TLS connection: bytes in, bytes out, no sockets.
 *
 * @example
 * ```ts
 * import { TlsContext, TlsEngine } from "../mod.ts";
 * const caPem = await Deno.readTextFile("ca.pem");
 * const certPem = await Deno.readTextFile("server.pem");
 * const keyPem = await Deno.readTextFile("server.key");
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

  #context: TlsContext;
  /** Callback bookkeeping (errors, suspensions). */
  #callbacks: CallbackState = new CallbackState();
  /**
   * What the trampolines call. A separate object, so the callback plumbing stays out of the
   * public API; held here so it lives exactly as long as this engine (the route is a WeakRef).
   */
  #target: CallbackTarget = {
    callbacks: this.#callbacks,
    onVerify: (preverifyOk, storeCtx) => this.#onVerify(preverifyOk, storeCtx),
    onCert: () => this.#onCert(),
    onClientHello: () => this.#onClientHello(),
    onAlpnSelect: (offered) => this.#onAlpnSelect(offered),
    onStatus: () => this.role === "client" ? this.#checkStaple() : this.#provideStaple(),
    onKeylog: (line) => this.#onKeylog(line),
    onInfo: (where, ret) => this.#onInfo(where, ret),
    onPskUseSession: (md) => this.#onPskUseSession(md),
    onPskFindSession: (identity) => this.#onPskFindSession(identity),
    onPskClient: (hint, maxIdentity, maxKey) => this.#onPskClient(hint, maxIdentity, maxKey),
    onPskServer: (identity, maxKey) => this.#onPskServer(identity, maxKey),
    onNewSession: (session) => this.#onNewSession(session),
    onTicketKey: (keyName, iv, cipherCtx, hmacCtx, enc) =>
      ticketKeyRingOf(this.#context)?.handle(keyName, iv, cipherCtx, hmacCtx, enc) ?? 0,
  };
  /**
   * Clients, TLS 1.3: the PSK offered in the ClientHello (`undefined`: not asked yet; `null`:
   * none), and the identity bytes OpenSSL was pointed at: `OPENSSL_malloc`'d, owned here and
   * freed once the handshake ends (the man page lets OpenSSL read them until then), never a JS
   * buffer the GC could move or free.
   */
  #pskOffer: ResolvedPsk | null | undefined;
  #pskIdentityMemory: NativeHandle | null = null;
  /** TLS 1.2 (both sides) and TLS 1.3 servers: the PSK the callbacks handed to OpenSSL. */
  #pskUsed: ResolvedPsk | null = null;
  /** Servers: the user's answers per identity, for this handshake. */
  #serverKeys = new Map<string, ResolvedPsk | null>();
  /** Servers: the first identity the user did not know (for the error message). */
  #pskUnknown: string | Uint8Array | undefined;
  /** Clients with `psk` and no `servername`: the handshake must end up using the PSK. */
  #pskRequired = false;
  #servername: string | undefined;
  /** Clients: whether this connection verifies the server (its sessions may then be resumed). */
  #verifying: boolean;
  /** Clients: the newest session, serialised; and who wants each new one. */
  #session: Uint8Array | null = null;
  #onSession: ((session: Uint8Array) => void) | undefined;
  #ssl: NativeHandle;
  #rbio: Pointer;
  #wbio: Pointer;
  /**
   * The bytes the read BIO reads in place when they were lent by {@link receiveLent}, else null.
   * Held so they stay alive for as long as OpenSSL may read them. (Freeing a read-only memory BIO,
   * even from the finalizer backstop after they were collected, never touches them.)
   */
  #lent: Uint8Array | null = null;
  #established = false;
  /** The verified OCSP staple (clients), once the status callback accepted one. */
  #ocsp: OcspResponse | null = null;
  /** Errors this engine raised inside a callback: rethrown as they are, not as CALLBACK_ERROR. */
  #ownErrors = new WeakSet<object>();
  #receivedEof = false;
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
  constructor(context: TlsContext, options: TlsEngineOptions = {}) {
    if (typeof options !== "object" || options === null) {
      throw new TypeError("options must be an object");
    }
    const alpn = checkEngineOptions(context.role, context.options, options);
    const { servername } = options;
    const verifying = context.options.unsafelyDisableVerification !== true;
    this.role = context.role;
    this.#servername = servername;
    this.#verifying = verifying;
    this.#onSession = options.onSession;
    this.#pskRequired = this.role === "client" && verifying && servername === undefined &&
      context.options.psk !== undefined;
    this.#context = context;

    const o = openssl();
    const ctx = nativeContext(context);
    clearErrorQueue();
    const ssl = o.SSL_new(ctx); // takes its own reference to the SSL_CTX
    if (ssl === null) {
      throw new TlsError("INTERNAL", "SSL_new failed", { openssl: drainErrorQueue() });
    }
    // The free function must not capture `this`, or the FinalizationRegistry backstop could never
    // run: it unregisters the callback route and frees the SSL (and with it both BIOs).
    this.#ssl = new NativeHandle("SSL", ssl, (p) => {
      unregisterSsl(p);
      o.SSL_free(p);
    });
    try {
      const rbio = o.BIO_new(o.BIO_s_mem());
      const wbio = o.BIO_new(o.BIO_s_mem());
      if (rbio === null || wbio === null) {
        if (rbio !== null) o.BIO_free(rbio);
        if (wbio !== null) o.BIO_free(wbio);
        throw new TlsError("INTERNAL", "BIO_new failed", { openssl: drainErrorQueue() });
      }
      // SSL_set_bio takes ownership of both BIOs at once: SSL_free frees them.
      o.SSL_set_bio(ssl, rbio, wbio);
      this.#rbio = rbio;
      this.#wbio = wbio;
      if (this.role === "client") {
        o.SSL_set_connect_state(ssl);
        if (servername !== undefined) this.#setServerName(ssl, servername, verifying);
        // status_request in the ClientHello (the status callback is on the context).
        if (ocspModeOf(context.options) !== "off") o.SSL_set_tlsext_status_type_ocsp(ssl);
        if (alpn !== undefined && o.SSL_set_alpn_protos(ssl, alpn, alpn.length) !== 0) {
          throw new TlsError("INTERNAL", "SSL_set_alpn_protos failed", {
            openssl: drainErrorQueue(),
          });
        }
        if (options.session !== undefined && options.session !== null) {
          this.#offerSession(ssl, options.session);
        }
      } else {
        o.SSL_set_accept_state(ssl);
      }
      registerSsl(ssl, this.#target);
    } catch (error) {
      this.#ssl.close();
      throw error;
    }
  }

  /**
   * Offers `bytes` for resumption (`SSL_set_session`), if it was made for this server name by a
   * verifying connection; else the handshake is a full one. OpenSSL itself falls back to a full
   * handshake for sessions the server refuses, expired tickets, and versions not allowed here.
   */
  #offerSession(ssl: Pointer, bytes: Uint8Array): void {
    const o = openssl();
    const session = decodeSession(bytes);
    try {
      // A resumed handshake skips certificate verification: the session must come from a
      // verified connection to this very name (sessions from unverified connections carry no
      // name). Connections that verify nothing may use any session.
      const bound = sessionHostname(session.ptr);
      if (this.#verifying && (bound === null || bound !== this.#servername)) return;
      // ...and verified the way this context verifies (trust anchors, OCSP mode, no callbacks).
      if (this.#verifying && !sessionInScope(session.ptr, sessionScopeOf(this.#context))) return;
      if (!this.#verifying) {
        // Verifying nothing, any session will do: adopt its id context, which OpenSSL checks
        // against this connection's when the server resumes it.
        const scope = sessionIdContext(session.ptr);
        if (scope !== null) o.SSL_set_session_id_context(ssl, scope, scope.length);
      }
      if (o.SSL_set_session(ssl, session.ptr) !== 1) {
        // E.g. a session of a version this context does not allow: a full handshake.
        drainErrorQueue();
      }
    } finally {
      session.close(); // SSL_set_session took its own reference
    }
  }

  /**
   * Clients, from the new-session callback (TLS 1.2: end of a full handshake; TLS 1.3: each
   * NewSessionTicket): binds the session to the server name, serialises it, and hands it on.
   */
  #onNewSession(session: Pointer): void {
    const o = openssl();
    if (o.SSL_SESSION_is_resumable(session) !== 1) return;
    // OpenSSL records the name only when the server acknowledged SNI (never for IP addresses):
    // write it ourselves. On a client OpenSSL reads a session's host name only for early data,
    // which this library never sends, so this changes nothing else.
    // A PSK-authenticated connection verified no certificate: its sessions carry no name.
    const pskUsed = this.#pskUsed !== null || (this.#established && this.pskIdentity !== null);
    const verified = this.#verifying && !pskUsed;
    bindSession(session, verified ? this.#servername ?? null : null, sessionScopeOf(this.#context));
    const bytes = encodeSession(session);
    if (bytes === null) return;
    this.#session = bytes;
    this.#onSession?.(bytes.slice());
  }

  #setServerName(ssl: Pointer, name: string, verifying: boolean): void {
    const o = openssl();
    if (isIpAddress(name)) {
      // RFC 6066: SNI carries host names only. The IP is checked against the SAN iPAddress
      // entries; a mismatch is verify error 64.
      if (
        verifying && o.X509_VERIFY_PARAM_set1_ip_asc(o.SSL_get0_param(ssl), cString(name)) !== 1
      ) {
        throw new TypeError(`servername ${name} is not a valid IP address`);
      }
      return;
    }
    if (o.SSL_set_tlsext_host_name(ssl, name) !== 1) {
      throw new TypeError(`servername ${JSON.stringify(name)} is not a valid host name`);
    }
    if (verifying) {
      // Checked during verification; a mismatch is verify error 62.
      o.SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      if (o.SSL_set1_host(ssl, cString(name)) !== 1) {
        throw new TlsError("INTERNAL", "SSL_set1_host failed", { openssl: drainErrorQueue() });
      }
    }
  }

  // ---- bytes in and out -------------------------------------------------------------------

  /** Hands the engine ciphertext that arrived from the peer. The bytes are copied. */
  receive(ciphertext: Uint8Array): void {
    if (!(ciphertext instanceof Uint8Array)) throw new TypeError("ciphertext must be a Uint8Array");
    this.#usable();
    if (this.#receivedEof) throw new TypeError("receive() after receiveEof()");
    const o = openssl();
    if (this.#lent !== null) this.#ownInput();
    for (let off = 0; off < ciphertext.length; off += MAX_CHUNK) {
      const chunk = off === 0 && ciphertext.length <= MAX_CHUNK
        ? ciphertext // the usual case: no view object per call
        : ciphertext.subarray(off, Math.min(ciphertext.length, off + MAX_CHUNK));
      // A memory BIO grows as needed: it takes everything or fails on out-of-memory.
      if (o.BIO_write(this.#rbio, chunk, chunk.length) !== chunk.length) {
        throw new TlsError("INTERNAL", "BIO_write failed (out of memory?)", {
          openssl: drainErrorQueue(),
        });
      }
    }
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
    if (ciphertext.length === 0) return;
    const o = openssl();
    // Input still unread (never the case after want-read), or more than an int: copy it.
    if (ciphertext.length > MAX_CHUNK || o.BIO_ctrl_pending(this.#rbio) !== 0) {
      this.receive(ciphertext);
      return;
    }
    // Both JS engines keep small typed arrays inside the GC heap, where they may move or be
    // copied out later: touching `.buffer` gives them their fixed ArrayBuffer before OpenSSL
    // takes the address. (Large ones, like socket read buffers, have one already.)
    void ciphertext.buffer;
    const bio = o.BIO_new_mem_buf(ciphertext, ciphertext.length);
    if (bio === null) {
      throw new TlsError("INTERNAL", "BIO_new_mem_buf failed", { openssl: drainErrorQueue() });
    }
    // A read-only memory BIO reads an empty buffer as EOF ("static data, retrying won't help"):
    // set -1 ("retry later") like any memory BIO before receiveEof().
    o.BIO_set_mem_eof_return(bio, -1);
    // Frees the previous read BIO: a drained one, and never the lent bytes (a read-only memory
    // BIO does not own them).
    o.SSL_set0_rbio(this.#ssl.ptr, bio);
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
    if (bio === null) {
      throw new TlsError("INTERNAL", "BIO_new failed", { openssl: drainErrorQueue() });
    }
    if (unread > 0 && o.BIO_write(bio, lent.subarray(lent.length - unread), unread) !== unread) {
      o.BIO_free(bio);
      throw new TlsError("INTERNAL", "BIO_write failed (out of memory?)", {
        openssl: drainErrorQueue(),
      });
    }
    o.SSL_set0_rbio(this.#ssl.ptr, bio);
    this.#rbio = bio;
    this.#lent = null;
  }

  /**
   * Tells the engine the transport reached end of stream. From now on an empty input reads as
   * EOF: a peer that had not sent close_notify is reported as `UNEXPECTED_EOF` (a truncation).
   */
  receiveEof(): void {
    this.#usable();
    if (this.#receivedEof) return;
    this.#receivedEof = true;
    // Default -1 means "retry later"; 0 makes SSL_read see EOF.
    openssl().BIO_set_mem_eof_return(this.#rbio, 0);
  }

  /** How many ciphertext bytes are waiting to be sent. */
  get pendingOutgoing(): number {
    if (this.#closed) return 0;
    return openssl().BIO_ctrl_pending(this.#wbio);
  }

  /**
   * Takes the ciphertext waiting to be sent to the peer, or `null` if there is none. Call it after
   * every other method: handshakes, reads (key updates, tickets), writes and closeWrite all
   * produce output. Still works after a fatal error, so the alert can reach the peer.
   */
  outgoing(): Uint8Array | null {
    if (this.#closed) return null;
    const o = openssl();
    const n = o.BIO_ctrl_pending(this.#wbio);
    if (n <= 0) return null;
    // Over an explicit ArrayBuffer: on Bun (JSC) a small typed array allocated without one must
    // materialise it (a copy) the first time anything reads `.buffer`, which node:net does.
    const out = new Uint8Array(new ArrayBuffer(n));
    o.BIO_read(this.#wbio, out, n);
    return out;
  }

  /**
   * @internal Like {@link outgoing}, into the caller's buffer (no allocation): moves up to
   * `into.length` waiting bytes into `into` and returns how many (0 when none are waiting).
   */
  outgoingInto(into: Uint8Array): number {
    if (this.#closed || into.length === 0) return 0;
    const n = openssl().BIO_read(this.#wbio, into, Math.min(into.length, MAX_CHUNK));
    return n > 0 ? n : 0; // an empty memory BIO reads -1 ("retry"), not 0
  }

  // ---- the TLS operations -----------------------------------------------------------------

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
    const o = openssl();
    const ssl = this.#ssl.ptr;
    clearErrorQueue();
    this.#inCall++;
    let r: number;
    let e: number;
    try {
      r = o.SSL_do_handshake(ssl);
      // Right after the call: a BIO operation in between could change the answer.
      e = r === 1 ? SSL_ERROR.NONE : o.SSL_get_error(ssl, r);
    } finally {
      this.#inCall--;
    }
    this.#afterCall("handshake");
    if (r === 1) {
      this.#established = true;
      this.#callbacks.reset();
      // A resumed TLS 1.2 handshake makes no new session (no callback): the resumed one, with a
      // ticket the server may have renewed, is this connection's session.
      if (
        this.role === "client" && this.#session === null && this.sessionReused &&
        o.SSL_version(ssl) !== TLS_VERSION.TLS1_3_VERSION && this.pskIdentity === null
      ) {
        const current = o.SSL_get1_session(ssl);
        if (current !== null) {
          try {
            this.#callbacks.run(0, () => {
              this.#onNewSession(current);
              return 0;
            });
          } finally {
            o.SSL_SESSION_free(current);
          }
          this.#afterCall("handshake");
        }
      }
      this.#pskIdentityMemory?.close(); // OpenSSL is done with the identity
      if (this.#pskRequired && this.pskIdentity === null) {
        throw this.#setFatal(
          new TlsError(
            "HANDSHAKE_FAILED",
            "the server did not use the PSK and sent a certificate instead, whose name cannot " +
              "be checked without servername: give servername to accept certificate servers too",
          ),
        );
      }
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
    if (!(into instanceof Uint8Array)) throw new TypeError("into must be a Uint8Array");
    this.#usable();
    this.#requireHandshake("read");
    if (this.#receivedCloseNotify) return null;
    if (into.length === 0) return 0;
    const o = openssl();
    const ssl = this.#ssl.ptr;
    clearErrorQueue();
    this.#inCall++;
    let n: number;
    let e: number;
    try {
      n = o.SSL_read(ssl, into, Math.min(into.length, MAX_CHUNK));
      e = n > 0 ? SSL_ERROR.NONE : o.SSL_get_error(ssl, n);
    } finally {
      this.#inCall--;
    }
    this.#afterCall("read");
    if (n > 0) return n;
    switch (e) {
      case SSL_ERROR.ZERO_RETURN:
        this.#receivedCloseNotify = true;
        return null;
      case SSL_ERROR.WANT_READ:
      case SSL_ERROR.WANT_WRITE:
        return 0;
      default:
        throw this.#setFatal(this.#failure(e, "read"));
    }
  }

  /**
   * Encrypts all of `data` into the outgoing buffer and returns `data.length`. (Memory BIOs never
   * push back, so a write is always complete; send {@link outgoing} afterwards.)
   *
   * @throws {TlsError} `CLOSED` after {@link closeWrite}; `PROTOCOL_ERROR`.
   */
  write(data: Uint8Array): number {
    if (!(data instanceof Uint8Array)) throw new TypeError("data must be a Uint8Array");
    this.#usable();
    this.#requireHandshake("write");
    if (this.#sentCloseNotify) throw new TlsError("CLOSED", "write() after closeWrite()");
    const o = openssl();
    const ssl = this.#ssl.ptr;
    for (let off = 0; off < data.length;) {
      const chunk = off === 0 && data.length <= MAX_CHUNK
        ? data
        : data.subarray(off, Math.min(data.length, off + MAX_CHUNK));
      clearErrorQueue();
      this.#inCall++;
      let n: number;
      let e: number;
      try {
        n = o.SSL_write(ssl, chunk, chunk.length);
        e = n > 0 ? SSL_ERROR.NONE : o.SSL_get_error(ssl, n);
      } finally {
        this.#inCall--;
      }
      this.#afterCall("write");
      if (n <= 0) throw this.#setFatal(this.#failure(e, "write"));
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
    const o = openssl();
    clearErrorQueue();
    this.#inCall++;
    try {
      o.SSL_shutdown(this.#ssl.ptr);
    } finally {
      this.#inCall--;
    }
    drainErrorQueue();
    this.#afterCall("closeWrite");
  }

  /** Whether the peer's close_notify has been read. */
  get receivedCloseNotify(): boolean {
    return this.#receivedCloseNotify;
  }

  // ---- what was negotiated ----------------------------------------------------------------

  /** The negotiated protocol, e.g. `"TLSv1.3"` (after the handshake). */
  get protocol(): string {
    const p = openssl().SSL_get_version(this.#ssl.ptr);
    return p === null ? "" : openssl().backend.readCString(p);
  }

  /** The negotiated cipher suite, e.g. `"TLS_AES_256_GCM_SHA384"` (after the handshake). */
  get cipher(): string {
    const o = openssl();
    const c = o.SSL_get_current_cipher(this.#ssl.ptr);
    const name = c === null ? null : o.SSL_CIPHER_get_name(c);
    return name === null ? "" : o.backend.readCString(name);
  }

  /**
   * Clients: the server name asked for (`servername`). Servers: the SNI host name the client sent
   * (`SSL_get_servername`), or `undefined`.
   */
  get servername(): string | undefined {
    if (this.role === "client" || this.#closed) return this.#servername;
    const o = openssl();
    const p = o.SSL_get_servername(this.#ssl.ptr, 0 /* TLSEXT_NAMETYPE_host_name */);
    return p === null ? undefined : o.backend.readCString(p);
  }

  /** The ALPN protocol the peers agreed on, or `null` if none was negotiated. */
  get alpnProtocol(): string | null {
    const o = openssl();
    const data = new BigUint64Array(1);
    const len = new Uint32Array(1);
    o.SSL_get0_alpn_selected(this.#ssl.ptr, data, len);
    const p = o.backend.fromAddress(data[0]!);
    if (p === null || len[0] === 0) return null;
    return new TextDecoder().decode(o.backend.readBytes(p, 0, len[0]!));
  }

  /** Clients: the verified OCSP staple, or `null` when none arrived (or OCSP is off). */
  get ocspResponse(): OcspResponse | null {
    return this.#ocsp;
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
    if (!this.#established || this.#closed) return null;
    const tls13 = openssl().SSL_version(this.#ssl.ptr) === TLS_VERSION.TLS1_3_VERSION;
    if (tls13) {
      // A TLS 1.3 PSK handshake is a "resumption" of the PSK's session; nothing else resumes here.
      if (!this.sessionReused) return null;
      if (this.role === "client") {
        // Offering a PSK and a ticket, the client cannot tell which one the server took from
        // "reused" alone: a resumed ticket session has a ticket, an external PSK's has none.
        const current = openssl().SSL_get_session(this.#ssl.ptr);
        if (current === null || openssl().SSL_SESSION_has_ticket(current) === 1) return null;
        return this.#pskOffer?.shown ?? null;
      }
      return this.#pskUsed?.shown ?? null;
    }
    return this.#pskUsed?.shown ?? null;
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
    return this.#session === null ? null : this.#session.slice();
  }

  /** OpenSSL's verification result for the peer (`SSL_get_verify_result`; 0 = OK). */
  get verifyResult(): number {
    return openssl().SSL_get_verify_result(this.#ssl.ptr);
  }

  /** The peer's certificate, or `null` (e.g. a client that sent none). */
  get peerCertificate(): Certificate | null {
    const o = openssl();
    const get = o.SSL_get1_peer_certificate ?? o.SSL_get_peer_certificate;
    const x = get === null ? null : get(this.#ssl.ptr);
    if (x === null) return null;
    try {
      return Certificate.fromX509(x);
    } finally {
      o.X509_free(x); // get1: we own a reference
    }
  }

  /** The verified chain, leaf first (empty if the peer was not verified). */
  get peerCertificateChain(): Certificate[] {
    const o = openssl();
    const sk = o.SSL_get0_verified_chain(this.#ssl.ptr); // borrowed
    const out: Certificate[] = [];
    for (let i = 0; i < o.sk_num(sk); i++) {
      const x = o.sk_value(sk!, i);
      if (x !== null) out.push(Certificate.fromX509(x));
    }
    return out;
  }

  // ---- callbacks (called by the trampolines in callbacks.ts) -------------------------------

  #onVerify(preverifyOk: number, storeCtx: Pointer): number {
    const handler = this.#context.options.onVerifyCertificate;
    if (handler === undefined) return preverifyOk;
    const o = openssl();
    const depth = o.X509_STORE_CTX_get_error_depth(storeCtx);
    const error = o.X509_STORE_CTX_get_error(storeCtx);
    // Keyed by depth and error: depth 0 is checked twice when the host name mismatches.
    const settled = this.#callbacks.settle(`verify:${depth}:${error}`, () => {
      const current = o.X509_STORE_CTX_get_current_cert(storeCtx);
      const messagePtr = o.X509_verify_cert_error_string(error);
      const info: VerifyCertificateInfo = {
        preverified: preverifyOk === 1,
        depth,
        error,
        errorMessage: messagePtr === null ? "" : o.backend.readCString(messagePtr),
        certificate: Certificate.fromX509(current ?? noCurrentCertificate()),
      };
      return handler(info);
    });
    if (!settled.done) {
      if (this.role !== "client") {
        throw new TypeError(
          "onVerifyCertificate may return a Promise only on clients: OpenSSL cannot suspend " +
            "a server's verification",
        );
      }
      // Suspends with SSL_ERROR_WANT_RETRY_VERIFY; OpenSSL re-runs verification on resume.
      if (o.SSL_set_retry_verify(this.#ssl.ptr) !== 1) {
        throw new TlsError("INTERNAL", "SSL_set_retry_verify failed (OpenSSL older than 3.0.2?)");
      }
      return 1;
    }
    if (typeof settled.value !== "boolean") {
      throw new TypeError("onVerifyCertificate must return a boolean (or a Promise of one)");
    }
    if (settled.value) {
      // Accepting overrides OpenSSL's verdict: clear the error, or SSL_get_verify_result keeps it.
      if (error !== X509_V.OK) o.X509_STORE_CTX_set_error(storeCtx, X509_V.OK);
      return 1;
    }
    if (error === X509_V.OK) {
      o.X509_STORE_CTX_set_error(storeCtx, X509_V.ERR_APPLICATION_VERIFICATION);
    }
    return 0;
  }

  #onCert(): number {
    const handler = this.#context.options.onClientCertificate;
    if (handler === undefined || this.role !== "client") return 1;
    // A static identity in the context wins; OpenSSL sends it.
    if (this.#context.options.cert !== undefined) return 1;
    const settled = this.#callbacks.settle("clientCertificate", () => handler(this.#request()));
    if (!settled.done) return CERT_CB_SUSPEND;
    const identity = settled.value;
    if (identity === null) return 1; // send no certificate
    this.#useIdentity(identity, "onClientCertificate");
    return 1;
  }

  /**
   * Clients, in OpenSSL's status callback (after the server's chain was verified): checks the
   * staple, or its absence, against the OCSP mode. Returns 1 to go on; 0 makes OpenSSL send
   * bad_certificate_status_response (113), and our own error (CERT_REVOKED / OCSP_INVALID)
   * becomes the handshake's error.
   */
  #checkStaple(): number {
    const o = openssl();
    const options = this.#context.options;
    const mode = ocspModeOf(options);
    if (mode === "off") return 1;
    const ssl = this.#ssl.ptr;
    const chain = o.SSL_get0_verified_chain(ssl); // borrowed; includes the trust anchor
    const leaf = o.sk_num(chain) > 0 ? o.sk_value(chain!, 0) : null;
    const reject = (error: TlsError): number => {
      this.#ownErrors.add(error);
      this.#callbacks.fail(error);
      return 0;
    };
    const staple = o.SSL_get_tlsext_status_ocsp_resp(ssl);
    const required = mode === "require" || (leaf !== null && requiresStaple(leaf));
    if (staple === null) {
      if (!required) return 1;
      return reject(
        new TlsError(
          "OCSP_INVALID",
          mode === "require"
            ? 'the server sent no OCSP staple, and ocsp is "require"'
            : "the server sent no OCSP staple for a certificate that requires one (must-staple)",
        ),
      );
    }
    if (leaf === null) {
      // Verification was disabled and built no chain: there is nothing to check it against.
      if (!required) return 1;
      return reject(new TlsError("OCSP_INVALID", "no verified chain to check the OCSP staple"));
    }
    const issuer = o.sk_num(chain) > 1 ? o.sk_value(chain!, 1)! : leaf;
    // The SSL's own SSL_CTX (OpenSSL holds a reference): the JS context may be closed already.
    const store = o.SSL_CTX_get_cert_store(o.SSL_get_SSL_CTX(ssl)!);
    const extra = typeof options.ocsp === "object" ? options.ocsp : {};
    let response: OcspResponse;
    try {
      response = verifyOcspResponse(
        o.backend.readBytes(staple.data, 0, staple.length),
        leaf,
        issuer,
        chain,
        store!,
        extra.leewaySeconds ?? DEFAULT_OCSP_LEEWAY_SECONDS,
      );
    } catch (error) {
      if (error instanceof TlsError) return reject(error);
      throw error;
    }
    this.#ocsp = response;
    if (response.status === "revoked") {
      const when = response.revocationTime?.toISOString() ?? "an unknown time";
      const why = response.revocationReason === undefined ? "" : ` (${response.revocationReason})`;
      return reject(
        new TlsError(
          "CERT_REVOKED",
          `the server's certificate was revoked at ${when}${why}, says its OCSP staple`,
          { ocsp: response },
        ),
      );
    }
    if (response.status === "unknown") {
      return reject(
        new TlsError("OCSP_INVALID", "the OCSP responder does not know the server's certificate", {
          ocsp: response,
        }),
      );
    }
    if (extra.onResponse !== undefined && extra.onResponse(response) === false) {
      return reject(
        new TlsError("OCSP_INVALID", "the OCSP staple was refused by onResponse", {
          ocsp: response,
        }),
      );
    }
    return 1;
  }

  /**
   * Servers, in OpenSSL's status callback (a client asked for a staple): hands OpenSSL a copy of
   * the staple in `OPENSSL_malloc`'d memory, which it owns and frees from then on.
   */
  #provideStaple(): number {
    const o = openssl();
    const source = this.#context.options.ocspStaple;
    if (source === undefined) return SSL_TLSEXT_ERR.NOACK;
    const ssl = this.#ssl.ptr;
    let staple: Uint8Array | null;
    if (typeof source === "function") {
      let certificate: Certificate | undefined;
      staple = source({
        serverName: this.servername ?? null,
        get certificate(): Certificate {
          const x = o.SSL_get_certificate(ssl); // borrowed; after SNI selection
          if (x === null) throw new TlsError("INTERNAL", "the connection has no certificate");
          return (certificate ??= Certificate.fromX509(x));
        },
      });
      if (staple !== null && !(staple instanceof Uint8Array)) {
        throw new TypeError("ocspStaple must return a Uint8Array or null (not a Promise)");
      }
    } else {
      // Fixed bytes are about the context's own certificate: none for one onServerName put in.
      const own = o.SSL_CTX_get0_certificate(o.SSL_get_SSL_CTX(ssl)!);
      if (o.backend.address(o.SSL_get_certificate(ssl)) !== o.backend.address(own)) {
        return SSL_TLSEXT_ERR.NOACK;
      }
      staple = source;
    }
    if (staple === null || staple.length === 0) return SSL_TLSEXT_ERR.NOACK;
    const mem = o.OPENSSL_malloc(staple.length);
    if (mem === null) throw new TlsError("INTERNAL", "out of memory");
    o.backend.writeBytes(mem, 0, staple);
    if (o.SSL_set_tlsext_status_ocsp_resp(ssl, mem, staple.length) !== 1) {
      o.OPENSSL_free(mem);
      throw new TlsError("INTERNAL", "SSL_set_tlsext_status_ocsp_resp failed");
    }
    return SSL_TLSEXT_ERR.OK;
  }

  #onKeylog(line: string): void {
    const file = this.#context.keylogFile;
    // NSS key log format: one line per secret. Created private (0600); appended, never truncated.
    if (file !== undefined) appendFileSync(file, `${line}\n`, { mode: 0o600 });
    this.#context.options.onKeylog?.(line);
  }

  // ---- PSK ------------------------------------------------------------------------------------

  /** Raises `error` as this handshake's error (not CALLBACK_ERROR); returns the failure code. */
  #reject(error: TlsError): void {
    this.#ownErrors.add(error);
    this.#callbacks.fail(error);
  }

  /** Clients: the user's key for `version` (`null`: none). */
  #clientKey(hint: string | null, version: "TLSv1.3" | "TLSv1.2"): ResolvedPsk | null {
    const option = this.#context.options.psk;
    if (option === undefined) return null;
    if (typeof option !== "function") return resolveClientKey(option, "psk");
    const value = (option as PskClientCallback)(hint, Object.freeze({ version }));
    if (value === null) return null;
    if (typeof (value as { then?: unknown })?.then === "function") {
      throw new TypeError("the psk function must return synchronously (not a Promise)");
    }
    return resolveClientKey(value, "psk()'s result");
  }

  /**
   * TLS 1.3 clients, building the ClientHello (and again after a HelloRetryRequest, with the
   * hash the server's suite needs in `md`). The user's function runs once per handshake.
   */
  #onPskUseSession(md: Pointer | null): { id: Pointer; idLength: number; session: Pointer } | null {
    const o = openssl();
    if (this.#pskOffer === undefined) this.#pskOffer = this.#clientKey(null, "TLSv1.3");
    const psk = this.#pskOffer;
    if (psk === null) return null;
    if (md !== null) {
      // The man page: after a HelloRetryRequest the PSK must match the hash of the suite the
      // server chose; otherwise return success with *sess NULL (offer no PSK).
      const type = o.EVP_MD_get_type ?? o.EVP_MD_type;
      if (type === null || type(md) !== hashNidOf(psk.cipherSuite)) return null;
    }
    if (this.#pskIdentityMemory === null) {
      const p = o.OPENSSL_malloc(psk.identity.length);
      if (p === null) throw new TlsError("INTERNAL", "out of memory");
      this.#pskIdentityMemory = new NativeHandle("PSK_IDENTITY", p, (q) => o.OPENSSL_free(q));
      o.backend.writeBytes(p, 0, psk.identity);
    }
    // A new SSL_SESSION per call: OpenSSL takes ownership of each one it is given. It carries
    // this connection's session id context, or OpenSSL refuses the PSK once the server takes it
    // ("attempt to reuse session in different context").
    const session = newPskSession(this.#ssl.ptr, psk);
    const scope = sessionScopeOf(this.#context);
    if (o.SSL_SESSION_set1_id_context(session.ptr, scope, scope.length) !== 1) {
      session.close();
      throw new TlsError("INTERNAL", "SSL_SESSION_set1_id_context failed");
    }
    return {
      id: this.#pskIdentityMemory.ptr,
      idLength: psk.identity.length,
      session: session.release(),
    };
  }

  /** TLS 1.2 clients, building the ClientKeyExchange with the server's identity hint. */
  #onPskClient(
    hint: string | null,
    maxIdentity: number,
    maxKey: number,
  ): { identity: Uint8Array; key: Uint8Array } | null {
    // OpenSSL 3.0 also calls this in TLS 1.3 when the use_session callback offered no PSK (to
    // try its SHA-256 fallback): decline, the user already answered for TLS 1.3.
    if (openssl().SSL_version(this.#ssl.ptr) === TLS_VERSION.TLS1_3_VERSION) return null;
    const psk = this.#clientKey(hint, "TLSv1.2");
    if (psk === null) {
      // OpenSSL then fails with handshake_failure; our error says why.
      this.#reject(
        new TlsError(
          "HANDSHAKE_FAILED",
          `the server chose a TLS 1.2 PSK cipher suite (identity hint ${
            JSON.stringify(hint)
          }) and the psk function returned null`,
        ),
      );
      return null;
    }
    if (psk.identity.includes(0)) {
      throw new TypeError("a TLS 1.2 PSK identity cannot contain NUL bytes (it is a C string)");
    }
    if (psk.identity.length > maxIdentity) {
      throw new RangeError(
        `the PSK identity is ${psk.identity.length} bytes; OpenSSL has room for ${maxIdentity}`,
      );
    }
    if (psk.key.length > maxKey) {
      throw new RangeError(`the PSK is ${psk.key.length} bytes; OpenSSL has room for ${maxKey}`);
    }
    this.#pskUsed = psk;
    return { identity: psk.identity, key: psk.key };
  }

  /**
   * Servers: the user's key for `identity` (`null`: unknown). Asked once per identity and
   * version per handshake (the ClientHello callback and find_session share the answer).
   */
  #serverKey(identity: Uint8Array, version: "TLSv1.3" | "TLSv1.2"): ResolvedPsk | null {
    const handler = this.#context.options.psk as PskServerCallback | undefined;
    if (handler === undefined) return null;
    const cacheKey = `${version}:${identity.join(",")}`;
    const known = this.#serverKeys.get(cacheKey);
    if (known !== undefined) return known;
    const shown = presentIdentity(identity);
    const psk = resolveServerKey(handler(shown, Object.freeze({ version })), identity, shown);
    this.#serverKeys.set(cacheKey, psk);
    if (psk === null) this.#pskUnknown ??= shown;
    return psk;
  }

  /**
   * Servers, in the ClientHello callback: OpenSSL 3.0 picks the TLS 1.3 suite before it looks at
   * the PSKs, then ignores a PSK whose hash differs from the suite's (and a server without a
   * certificate prefers SHA-256 suites). So look at the offered identities first, and restrict
   * this connection's TLS 1.3 suites to those with the hash of the first known one.
   */
  #steerPskSuites(): void {
    if (this.#context.options.maxVersion === "TLSv1.2") return;
    const o = openssl();
    const outPtr = new BigUint64Array(1);
    const outLen = new BigUint64Array(1);
    if (o.SSL_client_hello_get0_ext(this.#ssl.ptr, TLSEXT_TYPE_psk, outPtr, outLen) !== 1) return;
    const p = o.backend.fromAddress(outPtr[0]!);
    const length = Number(outLen[0]);
    if (p === null || length === 0) return;
    for (const identity of offeredIdentities(o.backend.readBytes(p, 0, length))) {
      const psk = this.#serverKey(identity, "TLSv1.3");
      if (psk === null) continue;
      if (o.SSL_set_ciphersuites(this.#ssl.ptr, cString(suitesWithHashOf(psk.cipherSuite))) !== 1) {
        throw new TlsError("INTERNAL", "SSL_set_ciphersuites failed", {
          openssl: drainErrorQueue(),
        });
      }
      return;
    }
  }

  /** TLS 1.3 servers, once per identity the client offers. */
  #onPskFindSession(identity: Uint8Array): Pointer | null {
    const psk = this.#serverKey(identity, "TLSv1.3");
    if (psk === null) return null; // unknown: OpenSSL ignores this PSK and goes on
    const session = newPskSession(this.#ssl.ptr, psk);
    // OpenSSL stops at the first identity it can use: the last one accepted here is it (and
    // pskIdentity reports it only if the handshake did use a PSK).
    this.#pskUsed = psk;
    return session.release();
  }

  /** TLS 1.2 servers, with the client's identity. */
  #onPskServer(identity: Uint8Array, maxKey: number): Uint8Array | null {
    // OpenSSL 3.0 also calls this in TLS 1.3 for identities the find_session callback did not
    // know: decline, the user already answered.
    if (openssl().SSL_version(this.#ssl.ptr) === TLS_VERSION.TLS1_3_VERSION) return null;
    const psk = this.#serverKey(identity, "TLSv1.2");
    if (psk === null) {
      this.#reject(
        new TlsError(
          "HANDSHAKE_FAILED",
          `unknown PSK identity ${describeIdentity(presentIdentity(identity))} (the client ` +
            "was sent alert unknown_psk_identity, 115)",
        ),
      );
      return null;
    }
    if (psk.key.length > maxKey) {
      throw new RangeError(`the PSK is ${psk.key.length} bytes; OpenSSL has room for ${maxKey}`);
    }
    this.#pskUsed = psk;
    return psk.key;
  }

  #onInfo(where: number, ret: number): void {
    const handler = this.#context.options.onHandshakeEvent;
    if (handler === undefined) return;
    const o = openssl();
    const text = (p: Pointer | null) => (p === null ? "" : o.backend.readCString(p));
    const ssl = this.#ssl.ptr;
    const base = {
      state: text(o.SSL_state_string(ssl)),
      stateLong: text(o.SSL_state_string_long(ssl)),
    };
    let event: HandshakeEvent;
    if ((where & SSL_CB.ALERT) !== 0) {
      // For alerts, ret = (level << 8) | description.
      event = {
        type: "alert",
        ...base,
        alert: {
          level: text(o.SSL_alert_type_string_long(ret)),
          code: ret & 0xff,
          description: alertName(ret & 0xff, text(o.SSL_alert_desc_string_long(ret))),
          sent: (where & SSL_CB.WRITE) !== 0,
        },
      };
    } else if ((where & SSL_CB.HANDSHAKE_START) !== 0) {
      event = { type: "start", ...base };
    } else if ((where & SSL_CB.HANDSHAKE_DONE) !== 0) {
      event = { type: "done", ...base };
    } else if ((where & SSL_CB.LOOP) !== 0) {
      event = { type: "loop", ...base };
    } else if ((where & SSL_CB.EXIT) !== 0) {
      event = { type: "exit", ...base };
    } else {
      return;
    }
    handler(event);
  }

  #onClientHello(): number {
    if (this.role !== "server") return SSL_CLIENT_HELLO.SUCCESS;
    if (this.#context.options.psk !== undefined) this.#steerPskSuites();
    const handler = this.#context.options.onServerName;
    if (handler === undefined) return SSL_CLIENT_HELLO.SUCCESS;
    const name = this.#clientHelloServerName();
    if (name === undefined) return SSL_CLIENT_HELLO.SUCCESS;
    // Also called again for the second ClientHello after a HelloRetryRequest: same answer.
    const settled = this.#callbacks.settle("serverName", () => handler(name));
    if (!settled.done) return SSL_CLIENT_HELLO.RETRY;
    const result = settled.value;
    if (result instanceof TlsContext) this.#useContextIdentity(result);
    else if (result !== null) this.#useIdentity(result, "onServerName");
    return SSL_CLIENT_HELLO.SUCCESS;
  }

  /**
   * Picks the ALPN protocol from the client's offer (wire format, already length-checked by
   * OpenSSL): the server's first preference the client offered, or the selection function's
   * choice. Returns where the choice sits in `offered`, or null for "no overlap".
   */
  #onAlpnSelect(offered: Uint8Array): { offset: number; length: number } | null {
    const policy = this.#context.options.alpnProtocols;
    if (policy === undefined) return null;
    const names: { name: string; offset: number; length: number }[] = [];
    const decoder = new TextDecoder();
    for (let i = 0; i < offered.length;) {
      const length = offered[i]!;
      if (length === 0 || i + 1 + length > offered.length) break;
      names.push({
        name: decoder.decode(offered.subarray(i + 1, i + 1 + length)),
        offset: i + 1,
        length,
      });
      i += 1 + length;
    }
    if (typeof policy === "function") {
      const choice = (policy as AlpnSelector)(Object.freeze(names.map((n) => n.name)));
      if (choice === null) return null;
      const hit = names.find((n) => n.name === choice);
      if (hit === undefined) {
        throw new TypeError(
          `the ALPN selection function returned ${JSON.stringify(choice)}, which the client did ` +
            "not offer: return one of the offered names or null",
        );
      }
      return hit;
    }
    for (const wanted of policy as readonly string[]) {
      const hit = names.find((n) => n.name === wanted);
      if (hit !== undefined) return hit;
    }
    return null;
  }

  /** Uses a server context's certificate, chain and key for this connection (SNI). */
  #useContextIdentity(context: TlsContext): void {
    if (context.role !== "server") {
      throw new TypeError("onServerName must return a server TlsContext (it has the identity)");
    }
    const o = openssl();
    const ctx = nativeContext(context);
    const x509 = o.SSL_CTX_get0_certificate(ctx); // all three borrowed from the context
    const pkey = o.SSL_CTX_get0_privatekey(ctx);
    if (x509 === null || pkey === null) {
      throw new TypeError("the TlsContext returned by onServerName has no certificate");
    }
    // Takes its own references: the context may be closed while this connection lives.
    if (
      o.SSL_use_cert_and_key(this.#ssl.ptr, x509, pkey, o.SSL_CTX_get0_chain_certs(ctx), 1) !== 1
    ) {
      throw new TlsError("INTERNAL", "SSL_use_cert_and_key failed", { openssl: drainErrorQueue() });
    }
  }

  /**
   * The SNI host name, read from the raw extension: in the client-hello callback OpenSSL has not
   * parsed it yet (`SSL_get_servername` is still NULL). RFC 6066 §3:
   * `ServerNameList { uint16 length; { uint8 type; uint16 length; bytes }* }`, type 0 = host_name.
   */
  #clientHelloServerName(): string | undefined {
    const o = openssl();
    const outPtr = new BigUint64Array(1);
    const outLen = new BigUint64Array(1);
    if (o.SSL_client_hello_get0_ext(this.#ssl.ptr, TLSEXT_TYPE_server_name, outPtr, outLen) !== 1) {
      return undefined;
    }
    const length = Number(outLen[0]);
    const p = o.backend.fromAddress(outPtr[0]!);
    if (p === null || length < 5 || length > 65_535) return undefined;
    const ext = o.backend.readBytes(p, 0, length);
    const listLength = (ext[0]! << 8) | ext[1]!;
    for (let i = 2; i + 3 <= Math.min(ext.length, 2 + listLength);) {
      const type = ext[i]!;
      const nameLength = (ext[i + 1]! << 8) | ext[i + 2]!;
      const start = i + 3;
      if (start + nameLength > ext.length) return undefined;
      if (type === 0) {
        const name = new TextDecoder().decode(ext.subarray(start, start + nameLength));
        // A host name is ASCII without NULs; anything else is not a name we hand to user code.
        return /^[\x21-\x7e]+$/.test(name) ? name.toLowerCase() : undefined;
      }
      i = start + nameLength;
    }
    return undefined;
  }

  #request(): CertificateRequest {
    const o = openssl();
    const sk = o.SSL_get_client_CA_list(this.#ssl.ptr); // borrowed
    const issuers: DistinguishedName[] = [];
    for (let i = 0; i < o.sk_num(sk); i++) {
      const name = o.sk_value(sk!, i);
      if (name !== null) issuers.push({ name: nameToString(name), der: nameToDer(name) });
    }
    return { acceptableIssuers: issuers, serverName: this.#servername };
  }

  #useIdentity(identity: Identity, from: string): void {
    if (typeof identity !== "object" || identity === null) {
      throw new TypeError(`${from} must return { cert, key } or null`);
    }
    const o = openssl();
    const certs = loadCertificates(identity.cert);
    let key: NativeHandle | undefined;
    const chain = o.OPENSSL_sk_new_null();
    try {
      key = loadPrivateKey(identity.key, identity.passphrase);
      if (chain === null) throw new TlsError("INTERNAL", "out of memory");
      for (const c of certs.slice(1)) o.OPENSSL_sk_push(chain, c.ptr);
      // Per connection, with the whole chain (the man page's one-certificate limit of
      // client_cert_cb does not apply here). SSL_use_cert_and_key takes its own references.
      if (o.SSL_use_cert_and_key(this.#ssl.ptr, certs[0]!.ptr, key.ptr, chain, 1) !== 1) {
        throw new TlsError("INVALID_KEY", `${from}: the key does not match its certificate`, {
          openssl: drainErrorQueue(),
        });
      }
    } finally {
      if (chain !== null) o.OPENSSL_sk_free(chain); // frees the stack, not the certificates
      key?.close();
      for (const c of certs) c.close();
    }
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
      if (cause instanceof TlsError && this.#ownErrors.has(cause)) throw this.#setFatal(cause);
      const detail = cause instanceof Error ? cause.message : String(cause);
      throw this.#setFatal(
        new TlsError("CALLBACK_ERROR", `a callback failed during ${where}: ${detail}`, {
          cause,
          openssl: drainErrorQueue(),
        }),
      );
    }
  }

  #failure(sslError: number, phase: "handshake" | "read" | "write"): TlsError {
    const o = openssl();
    const entries = drainErrorQueue();
    const sslEntries = entries.filter((e) => e.library === ERR_LIB_SSL);
    const base = { openssl: entries };
    const eof = sslEntries.some((e) => e.reason === SSL_R.UNEXPECTED_EOF_WHILE_READING) ||
      (sslError === SSL_ERROR.SYSCALL && entries.length === 0 && this.#receivedEof);
    if (eof) {
      // 3.0 reports it as SSL_R_UNEXPECTED_EOF_WHILE_READING; 1.1.1 as SYSCALL with no error.
      return new TlsError(
        "UNEXPECTED_EOF",
        `the peer closed the connection without close_notify during ${phase} (truncation)`,
        base,
      );
    }
    const alertEntry = sslEntries.find((e) =>
      e.reason >= SSL_AD_REASON_OFFSET && e.reason < SSL_AD_REASON_OFFSET + 256
    );
    if (alertEntry !== undefined) {
      const code = alertEntry.reason - SSL_AD_REASON_OFFSET;
      const p = o.SSL_alert_desc_string_long(code);
      const description = alertName(code, p === null ? "" : o.backend.readCString(p));
      return new TlsError(
        "ALERT_RECEIVED",
        `the peer sent a fatal alert during ${phase}: ${description} (${code})`,
        { ...base, alert: { code, description } },
      );
    }
    if (sslEntries.some((e) => e.reason === SSL_R.CERTIFICATE_VERIFY_FAILED)) {
      const verifyCode = o.SSL_get_verify_result(this.#ssl.ptr);
      const p = o.X509_verify_cert_error_string(verifyCode);
      const verifyMessage = p === null ? "unknown" : o.backend.readCString(p);
      return new TlsError(
        "CERT_VERIFY_FAILED",
        `the peer's certificate was rejected: ${verifyMessage} (verify error ${verifyCode})`,
        { ...base, verifyCode, verifyMessage },
      );
    }
    const code: TlsErrorCode = phase === "handshake" ? "HANDSHAKE_FAILED" : "PROTOCOL_ERROR";
    const last = entries[entries.length - 1];
    const why = last !== undefined
      ? (last.reasonText || last.text)
      : `SSL_get_error ${sslError} with an empty error queue`;
    // A TLS 1.3 server ignores an unknown PSK and goes on without it: say so, OpenSSL's reason
    // is about what failed next (e.g. "no suitable signature algorithm" without a certificate).
    if (this.#pskUnknown !== undefined && phase === "handshake") {
      return new TlsError(
        code,
        `TLS handshake failed: the client's PSK identity ${
          describeIdentity(this.#pskUnknown)
        } is unknown, and the server could not go on with a certificate instead (OpenSSL: ${why})`,
        base,
      );
    }
    return new TlsError(code, `TLS ${phase} failed: ${why}`, base);
  }

  #free(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#ssl.close(); // unregisters, then SSL_free, which also frees both BIOs
    this.#pskIdentityMemory?.close(); // after SSL_free: nothing can read it any more
    this.#lent = null; // OpenSSL is gone: nothing reads the lent bytes any more
  }

  /** Whether {@link close} has been called. */
  get closed(): boolean {
    return this.#closed || this.#closeRequested;
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
