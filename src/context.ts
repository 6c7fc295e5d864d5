/**
 * `TlsContext`: one configured `SSL_CTX` (trust, identity, versions, callbacks), shared by any
 * number of connections. Secure by default: peer verification on, TLS 1.2 minimum, a modern
 * TLS 1.2 cipher list, no renegotiation, truncation is an error.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { TlsError } from "./errors.ts";
import { clearErrorQueue, drainErrorQueue } from "./error_queue.ts";
import { NativeHandle } from "./ownership.ts";
import {
  cString,
  openssl,
  type Pointer,
  SSL_MODE,
  SSL_OP,
  SSL_SESS_CACHE,
  SSL_VERIFY,
  TICKET_KEY_LENGTH,
  TLS_VERSION,
} from "./native.ts";
import { checkTicketKeys, generateTicketKeys, TicketKeyRing } from "./session.ts";
import type { OcspResponse } from "./ocsp.ts";
import {
  alpnSelectTrampoline,
  certTrampoline,
  clientHelloTrampoline,
  infoTrampoline,
  keylogTrampoline,
  newSessionTrampoline,
  pskClientTrampoline,
  pskFindSessionTrampoline,
  pskServerTrampoline,
  pskUseSessionTrampoline,
  statusTrampoline,
  ticketKeyTrampoline,
  verifyTrampoline,
} from "./callbacks.ts";
import {
  ciphersuitesFor,
  DEFAULT_PSK_CIPHER_SUITE,
  DEFAULT_PSK_TLS12_CIPHERS,
  type PskClientOption,
  type PskKeyExchange,
  type PskServerCallback,
  validatePskOptions,
} from "./psk.ts";
import {
  Certificate,
  loadCertificates,
  loadPrivateKey,
  type Passphrase,
  type PemOrDer,
} from "./x509.ts";

/** A TLS protocol version this library speaks. */
export type TlsVersion = "TLSv1.2" | "TLSv1.3";

/** What {@link TlsContextOptions.onVerifyCertificate} is told about one certificate. */
export interface VerifyCertificateInfo {
  /** Whether OpenSSL's own checks accepted this certificate at this point. */
  readonly preverified: boolean;
  /** 0 for the peer's own (leaf) certificate, counting up towards the root. */
  readonly depth: number;
  /** OpenSSL's verify code (`X509_V_ERR_*`, 0 = OK), e.g. 10 = expired, 62 = host mismatch. */
  readonly error: number;
  /** OpenSSL's text for {@link error}. */
  readonly errorMessage: string;
  /** The certificate at this depth. */
  readonly certificate: Certificate;
}

/** One step of a handshake, from OpenSSL's info callback (`SSL_CTX_set_info_callback`). */
export interface HandshakeEvent {
  /**
   * `"start"` / `"done"`: a handshake begins / completes; `"loop"`: a state change;
   * `"exit"`: a handshake function returned (also while waiting for data); `"alert"`: an alert
   * was sent or received.
   */
  readonly type: "start" | "loop" | "exit" | "done" | "alert";
  /** OpenSSL's short state name (`SSL_state_string`), e.g. `"TRSH"`. */
  readonly state: string;
  /** OpenSSL's long state name (`SSL_state_string_long`), e.g. `"SSLv3/TLS read server hello"`. */
  readonly stateLong: string;
  /** For `"alert"` events. */
  readonly alert?: {
    /** `"warning"` or `"fatal"`. */
    readonly level: string;
    /** The alert number, e.g. 48 (unknown_ca). */
    readonly code: number;
    /** e.g. `"unknown CA"`. */
    readonly description: string;
    /** `true` if we sent it, `false` if the peer did. */
    readonly sent: boolean;
  };
}

/** A distinguished name as text (RFC 2253) and DER. */
export interface DistinguishedName {
  /** e.g. `"CN=Test Root CA,O=libssl-ffi"`. */
  readonly name: string;
  /** The DER encoding. */
  readonly der: Uint8Array;
}

/** What {@link TlsContextOptions.onClientCertificate} is told about the server's request. */
export interface CertificateRequest {
  /** The CAs the server accepts (`SSL_get_client_CA_list`); may be empty. */
  readonly acceptableIssuers: readonly DistinguishedName[];
  /** The server name this connection asked for (SNI), if any. */
  readonly serverName: string | undefined;
}

/**
 * A server's ALPN choice: called with the client's offers (in the client's order); returns one of
 * them, or `null` to refuse the connection (alert 120, no_application_protocol). Synchronous.
 */
export type AlpnSelector = (offered: readonly string[]) => string | null;

/** A certificate (optionally followed by its chain, leaf first) and its private key. */
export interface Identity {
  /** The certificate, PEM (may hold the chain after the leaf) or DER. */
  cert: PemOrDer;
  /** The private key, PEM or DER. */
  key: PemOrDer;
  /** The passphrase of an encrypted key. Byte passphrases are zeroed after use. */
  passphrase?: Passphrase;
}

/**
 * OCSP stapling on clients. `"off"`: do not ask. `"request"` (the default): ask for a staple;
 * accept its absence. `"require"`: ask, and fail (`OCSP_INVALID`) when none arrives. In every mode
 * but `"off"`, a staple that arrives is verified (see `parseOcspResponse`): revoked fails the
 * handshake with `CERT_REVOKED`, unknown or invalid with `OCSP_INVALID`, and a certificate with
 * the must-staple extension (TLS feature status_request) is treated as `"require"`.
 */
export type OcspMode = "off" | "request" | "require";

/** The object form of {@link TlsContextOptions.ocsp}. */
export interface OcspOptions {
  /** Default `"request"`. */
  mode?: OcspMode;
  /**
   * Called with a verified staple whose status is good; return `false` to refuse the connection
   * anyway (`OCSP_INVALID`), e.g. when it is older than you accept. A throw fails the handshake
   * with `CALLBACK_ERROR` (your error as `cause`). Synchronous.
   */
  onResponse?: (response: OcspResponse) => boolean | void;
  /** Clock skew allowed on `thisUpdate` / `nextUpdate`, in seconds. Default 300. */
  leewaySeconds?: number;
}

/** What a server's {@link TlsContextOptions.ocspStaple} function is told. */
export interface OcspStapleRequest {
  /** The host name the client asked for (SNI), or `null`. */
  readonly serverName: string | null;
  /** The certificate this connection presents (after SNI selection). */
  readonly certificate: Certificate;
}

/** What {@link TlsContextOptions.onServerName} may return. */
export type ServerNameResult = Identity | TlsContext | null;

/** Options for {@link TlsContext}. */
export interface TlsContextOptions {
  /**
   * Trusted CA certificates (PEM text, which may hold several, or DER). Absent: the system
   * trust store (OpenSSL's default paths; `SSL_CERT_FILE` / `SSL_CERT_DIR` override it).
   */
  caCerts?: readonly PemOrDer[];
  /** This side's certificate (PEM may carry the chain after the leaf). Required for servers. */
  cert?: PemOrDer;
  /** The private key for {@link cert}. */
  key?: PemOrDer;
  /** The passphrase of an encrypted {@link key}. */
  passphrase?: Passphrase;
  /** Lowest protocol version allowed. Default `"TLSv1.2"`. */
  minVersion?: TlsVersion;
  /** Highest protocol version allowed. Default: the highest OpenSSL supports (TLS 1.3). */
  maxVersion?: TlsVersion;
  /** The TLS 1.2 cipher list (OpenSSL syntax). Default: ECDHE/DHE with AES-GCM or ChaCha20. */
  ciphers?: string;
  /**
   * Servers only: whether to ask clients for a certificate (`SSL_VERIFY_PEER`; the request lists
   * the subjects of {@link caCerts} as acceptable issuers). `false` (default): never ask;
   * `"optional"`: ask, and verify against {@link caCerts} what is sent, but accept clients that
   * send none; `"require"`: also fail the handshake when the client sends none
   * (`SSL_VERIFY_FAIL_IF_NO_PEER_CERT`). A certificate that fails verification always fails the
   * handshake (unless {@link onVerifyCertificate} accepts it).
   */
  requestClientCert?: false | "optional" | "require";
  /**
   * ALPN. Servers: the protocols this server speaks, most preferred first (the first of these the
   * client also offers wins), or a function that picks one of the client's offers. When nothing
   * matches (or the function returns `null`) the handshake fails with no_application_protocol
   * (alert 120), as RFC 7301 asks; a client that offers no ALPN at all is accepted without it.
   * Clients: the default offer of connections made from this context.
   */
  alpnProtocols?: readonly string[] | AlpnSelector;
  /**
   * Turns off verification of the peer's certificate and name. UNSAFE: anyone on the path can
   * impersonate the peer. For tests and pinning done elsewhere only.
   */
  unsafelyDisableVerification?: boolean;
  /**
   * Called for each certificate of the peer's chain during verification (OpenSSL's
   * `SSL_CTX_set_verify` callback), after OpenSSL's own checks. Return `true` to accept, `false`
   * to reject; a throw rejects. On clients a Promise suspends the handshake until it settles.
   * Host-name mismatches are reported at depth 0 with error 62 (or 64 for IP addresses):
   * returning `true` there accepts the mismatch.
   */
  onVerifyCertificate?: (info: VerifyCertificateInfo) => boolean | Promise<boolean>;
  /**
   * Clients only: called when the server asks for a certificate and no static {@link cert} was
   * given. Return an {@link Identity}, `null` to send none, or a Promise of either (the handshake
   * suspends until it settles). Called at most once per handshake.
   */
  onClientCertificate?: (
    request: CertificateRequest,
  ) => Identity | null | Promise<Identity | null>;
  /**
   * Servers only: called with the host name a client asked for (SNI, read from the ClientHello)
   * before the server picks its certificate. Return the {@link Identity} to use for that name, a
   * server {@link TlsContext} whose certificate, chain and key to use (parsed once, so cheaper
   * per handshake than an `Identity`), `null` to keep this context's own `cert`/`key`, or a
   * Promise of any of these (the handshake suspends until it settles). Only the identity is
   * taken from a returned context: trust, versions and callbacks stay this context's. Not called
   * when the client sent no name. A throw or rejection fails the handshake (the client gets an
   * internal_error alert, 80).
   */
  onServerName?: (serverName: string) => ServerNameResult | Promise<ServerNameResult>;
  /**
   * Clients: OCSP stapling, see {@link OcspMode}. Default `"request"`: a staple the server sends
   * is verified, and a revoked certificate refused.
   */
  ocsp?: OcspMode | OcspOptions;
  /**
   * Servers: the OCSP response to staple (DER), for clients that ask; or a function choosing it
   * per connection (`null`: staple nothing). Synchronous: keep fresh responses at hand (see
   * `OcspStapler`). The bytes are copied for OpenSSL on every handshake. TLS 1.2 and 1.3.
   */
  ocspStaple?: Uint8Array | ((request: OcspStapleRequest) => Uint8Array | null);
  /**
   * Handshake tracing: called for every state change, alert, start and end of a handshake, with
   * OpenSSL's own state names. Synchronous; a throw fails the connection.
   */
  onHandshakeEvent?: (event: HandshakeEvent) => void;
  /**
   * Key logging: called with every NSS key log line (`CLIENT_TRAFFIC_SECRET_0 ...`), so a capture
   * can be decrypted (Wireshark). Independently of this option, when the environment variable
   * `SSLKEYLOGFILE` is set (and readable: Deno needs `--allow-env`), lines are appended to that
   * file. Off otherwise. Anyone with these lines can read the traffic: debugging only.
   */
  onKeylog?: (line: string) => void;
  /**
   * Pre-shared keys (TLS 1.3 external PSKs and TLS 1.2 PSK cipher suites).
   *
   * Clients: a key `{ identity, key, cipherSuite? }` (`PskClientKey`), or a function
   * `(hint, { version }) => key | null` (synchronous). TLS 1.3 offers it in the ClientHello (with
   * (EC)DHE unless {@link pskKeyExchange} says otherwise); TLS 1.2 uses it with a PSK cipher
   * suite (enabled first unless {@link ciphers} is given). A server that accepts the PSK sends no
   * certificate; one that sends a certificate instead is still verified (and with no
   * `servername`, where its name cannot be checked, the handshake fails).
   *
   * Servers: a function `(identity, { version }) => Uint8Array | { key, cipherSuite? } | null`
   * (synchronous; see {@link PskServerCallback}). With `psk`, `cert`/`key` become optional: a
   * PSK-only server. With both, clients offering a known PSK use it and the others get the
   * certificate.
   */
  psk?: PskClientOption | PskServerCallback;
  /** Servers, TLS 1.2: the identity hint sent to clients (`SSL_CTX_use_psk_identity_hint`). */
  pskIdentityHint?: string;
  /** TLS 1.3 PSK key exchange modes; see {@link PskKeyExchange}. Default `"psk_dhe_ke"`. */
  pskKeyExchange?: PskKeyExchange;
  /**
   * Servers: whether to issue session tickets (stateless resumption, TLS 1.2 and 1.3). Default
   * `true`. `false` sets `SSL_OP_NO_TICKET` and `SSL_CTX_set_num_tickets(ctx, 0)`: TLS 1.3
   * clients cannot resume; TLS 1.2 clients still can through session IDs, from this context's
   * in-memory session cache (OpenSSL's server default, kept).
   */
  sessionTickets?: boolean;
  /**
   * Servers, TLS 1.3: how many tickets to send after a full handshake (`SSL_CTX_set_num_tickets`).
   * Default 2 (OpenSSL's); a resumed handshake always gets at most 1. 0 to 10.
   */
  ticketCount?: number;
  /**
   * Servers: the session ticket key, 80 bytes (a 16-byte key name, a 32-byte HMAC-SHA256 key, a
   * 32-byte AES-256 key, as `SSL_CTX_set_tlsext_ticket_keys` takes them; see
   * `generateTicketKeys()`). Default: a random key per context. Give every server of a service
   * the same key (and the same certificate and client-certificate settings) so that a ticket from
   * one resumes on another or after a restart; rotate it with {@link TlsContext.rotateTicketKeys}.
   * Anyone holding it can decrypt the sessions of every ticket sealed with it: keep it secret,
   * rotate it often.
   */
  ticketKeys?: Uint8Array;
}

/** The TLS 1.2 cipher list used by default: Mozilla's "intermediate" set. */
export const DEFAULT_TLS12_CIPHERS: string = [
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-CHACHA20-POLY1305",
  "DHE-RSA-AES128-GCM-SHA256",
  "DHE-RSA-AES256-GCM-SHA384",
  "DHE-RSA-CHACHA20-POLY1305",
].join(":");

const VERSIONS: Record<TlsVersion, number> = {
  "TLSv1.2": TLS_VERSION.TLS1_2_VERSION,
  "TLSv1.3": TLS_VERSION.TLS1_3_VERSION,
};

function versionOf(name: string, value: unknown): number {
  if (value !== "TLSv1.2" && value !== "TLSv1.3") {
    throw new RangeError(`${name} must be "TLSv1.2" or "TLSv1.3", got ${JSON.stringify(value)}`);
  }
  return VERSIONS[value];
}

function checkFunction(name: string, value: unknown): void {
  if (value !== undefined && typeof value !== "function") {
    throw new TypeError(`${name} must be a function`);
  }
}

function checkPemOrDer(name: string, value: unknown): void {
  if (value !== undefined && typeof value !== "string" && !(value instanceof Uint8Array)) {
    throw new TypeError(`${name} must be a PEM string or a Uint8Array`);
  }
}

function validate(role: "client" | "server", options: TlsContextOptions): void {
  if (typeof options !== "object" || options === null) {
    throw new TypeError("options must be an object");
  }
  if (options.caCerts !== undefined) {
    if (!Array.isArray(options.caCerts)) throw new TypeError("caCerts must be an array");
    options.caCerts.forEach((c, i) => checkPemOrDer(`caCerts[${i}]`, c));
  }
  checkPemOrDer("cert", options.cert);
  checkPemOrDer("key", options.key);
  if ((options.cert === undefined) !== (options.key === undefined)) {
    throw new TypeError("cert and key must be given together");
  }
  if (role === "server" && options.cert === undefined && options.psk === undefined) {
    throw new TypeError("a server context needs cert and key (or psk)");
  }
  validatePskOptions(role, options);
  if (options.minVersion !== undefined) versionOf("minVersion", options.minVersion);
  if (options.maxVersion !== undefined) versionOf("maxVersion", options.maxVersion);
  if (
    options.minVersion !== undefined && options.maxVersion !== undefined &&
    VERSIONS[options.minVersion] > VERSIONS[options.maxVersion]
  ) {
    throw new RangeError("minVersion is above maxVersion");
  }
  if (options.ciphers !== undefined && typeof options.ciphers !== "string") {
    throw new TypeError("ciphers must be a string");
  }
  checkFunction("onVerifyCertificate", options.onVerifyCertificate);
  checkFunction("onClientCertificate", options.onClientCertificate);
  checkFunction("onServerName", options.onServerName);
  checkFunction("onHandshakeEvent", options.onHandshakeEvent);
  checkFunction("onKeylog", options.onKeylog);
  validateSessionOptions(role, options);
  if (role === "server" && options.onClientCertificate !== undefined) {
    throw new TypeError("onClientCertificate is for clients only");
  }
  if (role === "client" && options.onServerName !== undefined) {
    throw new TypeError("onServerName is for servers only");
  }
  const request = options.requestClientCert;
  if (
    request !== undefined && request !== false && request !== "optional" && request !== "require"
  ) {
    throw new TypeError(
      `requestClientCert must be false, "optional" or "require", got ${JSON.stringify(request)}`,
    );
  }
  if (role === "client" && request !== undefined) {
    throw new TypeError("requestClientCert is for servers only");
  }
  if (options.ocsp !== undefined) {
    if (role === "server") throw new TypeError("ocsp is for clients (servers: ocspStaple)");
    const mode = typeof options.ocsp === "string" ? options.ocsp : options.ocsp?.mode;
    if (
      typeof options.ocsp !== "string" &&
      (typeof options.ocsp !== "object" || options.ocsp === null)
    ) {
      throw new TypeError('ocsp must be "off", "request", "require" or { mode, onResponse }');
    }
    if (mode !== undefined && mode !== "off" && mode !== "request" && mode !== "require") {
      throw new TypeError(
        `ocsp mode must be "off", "request" or "require", got ${JSON.stringify(mode)}`,
      );
    }
    if (typeof options.ocsp === "object") {
      checkFunction("ocsp.onResponse", options.ocsp.onResponse);
      const leeway = options.ocsp.leewaySeconds;
      if (leeway !== undefined && (!Number.isFinite(leeway) || leeway < 0)) {
        throw new RangeError("ocsp.leewaySeconds must be a non-negative number");
      }
    }
  }
  if (options.ocspStaple !== undefined) {
    if (role === "client") throw new TypeError("ocspStaple is for servers (clients: ocsp)");
    if (!(options.ocspStaple instanceof Uint8Array) && typeof options.ocspStaple !== "function") {
      throw new TypeError("ocspStaple must be a Uint8Array or a function");
    }
    if (options.ocspStaple instanceof Uint8Array && options.ocspStaple.length === 0) {
      throw new TypeError("ocspStaple is empty");
    }
  }
  const alpn = options.alpnProtocols;
  if (alpn !== undefined) {
    if (typeof alpn === "function") {
      if (role === "client") throw new TypeError("an ALPN selection function is for servers only");
    } else {
      encodeAlpn(alpn); // validates
    }
  }
}

function validateSessionOptions(role: "client" | "server", options: TlsContextOptions): void {
  const { sessionTickets, ticketCount, ticketKeys } = options;
  for (const [name, value] of Object.entries({ sessionTickets, ticketCount, ticketKeys })) {
    if (value !== undefined && role === "client") {
      throw new TypeError(`${name} is a server option (clients resume with session)`);
    }
  }
  if (sessionTickets !== undefined && typeof sessionTickets !== "boolean") {
    throw new TypeError("sessionTickets must be a boolean");
  }
  if (ticketCount !== undefined) {
    if (!Number.isInteger(ticketCount) || ticketCount < 0 || ticketCount > 10) {
      throw new RangeError(`ticketCount must be an integer from 0 to 10, got ${ticketCount}`);
    }
    if (sessionTickets === false && ticketCount > 0) {
      throw new TypeError("ticketCount > 0 contradicts sessionTickets: false");
    }
  }
  if (ticketKeys !== undefined) {
    checkTicketKeys("ticketKeys", ticketKeys);
    if (sessionTickets === false) throw new TypeError("ticketKeys needs sessionTickets");
  }
}

/** ALPN's wire format: each protocol name prefixed by its length (RFC 7301 §3.1). */
export function encodeAlpn(protocols: readonly string[]): Uint8Array {
  if (!Array.isArray(protocols) || protocols.length === 0) {
    throw new TypeError("alpnProtocols must be a non-empty array of strings");
  }
  const encoded = protocols.map((p) => {
    if (typeof p !== "string") throw new TypeError("alpnProtocols must contain strings");
    const bytes = new TextEncoder().encode(p);
    if (bytes.length < 1 || bytes.length > 255) {
      throw new RangeError(`ALPN protocol names are 1 to 255 bytes long: ${JSON.stringify(p)}`);
    }
    return bytes;
  });
  const out = new Uint8Array(encoded.reduce((n, b) => n + 1 + b.length, 0));
  let off = 0;
  for (const b of encoded) {
    out[off++] = b.length;
    out.set(b, off);
    off += b.length;
  }
  return out;
}

function fail(what: string, code: "INTERNAL" | "INVALID_KEY" | "HANDSHAKE_FAILED"): never {
  throw new TlsError(code, what, { openssl: drainErrorQueue() });
}

// The SSL_CTX pointer stays out of the public API: only this module's function below reads it.
const nativeOf = new WeakMap<TlsContext, () => Pointer>();
// Server contexts whose ticket keys were rotated: the ring the ticket key callback uses.
const ticketRings = new WeakMap<TlsContext, TicketKeyRing>();

/**
 * The ticket keys of a server context once {@link TlsContext.rotateTicketKeys} installed the
 * ticket key callback, else `undefined` (OpenSSL then uses the context's own key). @internal
 */
export function ticketKeyRingOf(context: TlsContext): TicketKeyRing | undefined {
  return ticketRings.get(context);
}

const scopeOf = new WeakMap<TlsContext, Uint8Array>();

/**
 * What a client session's verification depended on, as 32 bytes: a session is offered only to
 * contexts with the same scope, because a resumed handshake verifies nothing. Plain settings
 * (trust anchors, OCSP mode) hash to the same scope in every process, so stored sessions survive
 * restarts; a context whose verdict came from code (`onVerifyCertificate`, a PSK) or that
 * verifies nothing gets a random scope of its own.
 */
function sessionScope(options: Readonly<TlsContextOptions>): Uint8Array {
  if (
    options.onVerifyCertificate !== undefined || options.psk !== undefined ||
    options.unsafelyDisableVerification === true
  ) {
    return crypto.getRandomValues(new Uint8Array(32));
  }
  const trust = options.caCerts === undefined
    ? ["system"]
    : options.caCerts.map((c) => typeof c === "string" ? c : btoa(String.fromCharCode(...c)));
  const ocsp = options.ocsp;
  const mode = (typeof ocsp === "string" ? ocsp : ocsp?.mode) ?? "request";
  const onResponse = typeof ocsp === "object" && ocsp?.onResponse !== undefined;
  if (onResponse) return crypto.getRandomValues(new Uint8Array(32));
  const hash = createHash("sha256").update(JSON.stringify({ trust, mode }));
  return new Uint8Array(hash.digest());
}

/** A client context's session scope (see `sessionScope`). Internal to `src/`. */
export function sessionScopeOf(context: TlsContext): Uint8Array {
  const scope = scopeOf.get(context);
  if (scope === undefined) throw new TypeError("not a TlsContext");
  return scope;
}

/**
 * The `SSL_CTX *` of a context, for a new connection (`SSL_new` takes its own reference, so the
 * context may be closed while connections made from it live on). Internal to `src/`.
 *
 * @throws {TlsError} `CLOSED` if the context was closed.
 */
export function nativeContext(context: TlsContext): Pointer {
  const get = nativeOf.get(context);
  if (get === undefined) throw new TypeError("not a TlsContext");
  return get();
}

/**
 * A TLS configuration: one `SSL_CTX`, shared by every connection made from it. Close it when
 * done; connections still open keep the native object alive (OpenSSL refcounts it) until they
 * close too.
 *
 * @example
 * ```ts
 * import { TlsContext, TlsEngine } from "../mod.ts";
 * const caPem = await Deno.readTextFile("ca.pem");
 * using context = new TlsContext("client", { caCerts: [caPem] });
 * using engine = new TlsEngine(context, { servername: "localhost" });
 * engine.handshake(); // "want-read": send engine.outgoing() to the server, feed its reply back
 * ```
 */
export class TlsContext {
  /** `"client"` or `"server"`. */
  readonly role: "client" | "server";
  /** The (validated) options this context was made with. */
  readonly options: Readonly<TlsContextOptions>;
  /** `SSLKEYLOGFILE` as it was when the context was made: key log lines are appended there. */
  readonly keylogFile: string | undefined;
  #ctx: NativeHandle;
  #closed = false;

  /**
   * Creates and configures the `SSL_CTX`.
   *
   * @throws {TypeError | RangeError} for bad options, before any native work.
   * @throws {TlsError} `INVALID_CERTIFICATE`, `INVALID_KEY`, `BAD_PASSPHRASE`, `LIBRARY_NOT_FOUND`.
   */
  constructor(role: "client" | "server", options: TlsContextOptions = {}) {
    if (role !== "client" && role !== "server") {
      throw new TypeError(`role must be "client" or "server", got ${JSON.stringify(role)}`);
    }
    validate(role, options);
    this.role = role;
    this.options = { ...options };
    const o = openssl();
    const keylogFile = o.backend.env("SSLKEYLOGFILE"); // never prompts (Deno: permission queried)
    this.keylogFile = keylogFile === undefined || keylogFile === "" ? undefined : keylogFile;
    clearErrorQueue();
    const ctx = o.SSL_CTX_new(o.TLS_method());
    if (ctx === null) fail("SSL_CTX_new failed", "INTERNAL");
    this.#ctx = new NativeHandle("SSL_CTX", ctx, (p) => o.SSL_CTX_free(p));
    nativeOf.set(this, () => {
      if (this.#closed) throw new TlsError("CLOSED", "the TlsContext is closed");
      return this.#ctx.ptr;
    });
    scopeOf.set(this, sessionScope(this.options));
    try {
      this.#configure(ctx);
    } catch (error) {
      this.#ctx.close();
      throw error;
    }
  }

  #configure(ctx: Pointer): void {
    const o = openssl();
    const opts = this.options;
    // Versions: TLS 1.2 minimum unless asked otherwise; 0 = highest supported.
    if (
      o.SSL_CTX_set_min_proto_version(
        ctx,
        versionOf("minVersion", opts.minVersion ?? "TLSv1.2"),
      ) !== 1
    ) {
      fail("cannot set the minimum protocol version", "INTERNAL");
    }
    const max = opts.maxVersion === undefined ? 0 : versionOf("maxVersion", opts.maxVersion);
    if (o.SSL_CTX_set_max_proto_version(ctx, max) !== 1) {
      fail("cannot set the maximum protocol version", "INTERNAL");
    }
    // No TLS-level compression (CRIME) and no renegotiation (a server's HelloRequest is refused
    // with a no_renegotiation warning). We never set SSL_OP_IGNORE_UNEXPECTED_EOF: a peer that
    // closes without close_notify must surface as a truncation.
    o.SSL_CTX_set_options(ctx, SSL_OP.NO_COMPRESSION | SSL_OP.NO_RENEGOTIATION);
    // Free the ~34 KB of record buffers while a connection is idle (measured in bench/).
    o.SSL_CTX_set_mode(ctx, SSL_MODE.RELEASE_BUFFERS);
    // Read-ahead: one BIO_read fills the record buffer as far as it goes, instead of a header read
    // plus a body read per record. The buffer keeps its default size (one record): before each
    // record, OpenSSL 3.0 (ssl3_read_n) memmoves whatever else the buffer holds to its aligned
    // start, so a larger buffer (64 KiB was tried) only moves more bytes per record, and from a
    // memory BIO a refill is a memcpy, never a syscall (measured in-process: ~6% less CPU).
    o.SSL_CTX_set_read_ahead(ctx, 1);
    // PSK: TLS 1.2 needs PSK cipher suites (none are in the default list). Clients put them first,
    // so a server that also has a certificate does not pick a certificate suite over them.
    const ciphers = opts.ciphers ??
      (opts.psk === undefined
        ? DEFAULT_TLS12_CIPHERS
        : this.role === "client"
        ? `${DEFAULT_PSK_TLS12_CIPHERS}:${DEFAULT_TLS12_CIPHERS}`
        : `${DEFAULT_TLS12_CIPHERS}:${DEFAULT_PSK_TLS12_CIPHERS}`);
    if (o.SSL_CTX_set_cipher_list(ctx, cString(ciphers)) !== 1) {
      throw new TlsError("HANDSHAKE_FAILED", `no usable cipher in "${opts.ciphers}"`, {
        openssl: drainErrorQueue(),
      });
    }

    // Trust.
    if (opts.caCerts !== undefined) {
      const store = o.SSL_CTX_get_cert_store(ctx);
      if (store === null) fail("SSL_CTX_get_cert_store failed", "INTERNAL");
      for (const input of opts.caCerts) {
        for (const cert of loadCertificates(input)) {
          try {
            // X509_STORE_add_cert takes its own reference. Adding the same CA twice is harmless.
            o.X509_STORE_add_cert(store, cert.ptr);
            if (this.role === "server") o.SSL_CTX_add_client_CA(ctx, cert.ptr);
          } finally {
            cert.close();
          }
        }
      }
      drainErrorQueue(); // "cert already in hash table" is not an error for us
    } else if (this.#verifiesPeer() && o.SSL_CTX_set_default_verify_paths(ctx) !== 1) {
      // Parsing the system bundle costs ~30 ms: only when this context verifies anyone.
      fail("cannot load the system trust store", "INTERNAL");
    }

    // Our own identity (servers always; clients optionally).
    if (opts.cert !== undefined && opts.key !== undefined) {
      this.#useIdentity(ctx, { cert: opts.cert, key: opts.key, ...passphraseOf(opts) });
    }

    // Verification mode.
    const verify = !this.#verifiesPeer()
      ? SSL_VERIFY.NONE
      : this.role === "server" && opts.requestClientCert === "require"
      ? SSL_VERIFY.PEER | SSL_VERIFY.FAIL_IF_NO_PEER_CERT
      : SSL_VERIFY.PEER;
    // Without a user callback OpenSSL's own verdict stands: no trampoline, no per-cert JS call.
    o.SSL_CTX_set_verify(
      ctx,
      verify,
      opts.onVerifyCertificate !== undefined ? verifyTrampoline() : null,
    );
    if (opts.onClientCertificate !== undefined) {
      o.SSL_CTX_set_cert_cb(ctx, certTrampoline(), null);
    }
    // PSK servers look at the offered identities in the ClientHello (see TlsEngine).
    if (opts.onServerName !== undefined || (this.role === "server" && opts.psk !== undefined)) {
      o.SSL_CTX_set_client_hello_cb(ctx, clientHelloTrampoline(), null);
    }
    if (opts.alpnProtocols !== undefined) {
      if (this.role === "server") {
        o.SSL_CTX_set_alpn_select_cb(ctx, alpnSelectTrampoline(), null);
      } else {
        const wire = encodeAlpn(opts.alpnProtocols as readonly string[]);
        // Returns 0 on success, unlike almost everything else in OpenSSL.
        if (o.SSL_CTX_set_alpn_protos(ctx, wire, wire.length) !== 0) {
          fail("SSL_CTX_set_alpn_protos failed", "INTERNAL");
        }
      }
    }
    if (this.role === "server" ? opts.ocspStaple !== undefined : ocspModeOf(opts) !== "off") {
      o.SSL_CTX_set_tlsext_status_cb(ctx, statusTrampoline());
    }
    if (this.role === "server") {
      this.#configureServerSessions(ctx);
    } else {
      // Client session caching on, so that OpenSSL calls the new-session callback (for every
      // TLS 1.3 ticket too); NO_INTERNAL_STORE: the engine serialises each session at once and
      // the context keeps none (sessions are offered explicitly with SSL_set_session).
      o.SSL_CTX_set_session_cache_mode(
        ctx,
        SSL_SESS_CACHE.CLIENT | SSL_SESS_CACHE.NO_INTERNAL_STORE,
      );
      o.SSL_CTX_sess_set_new_cb(ctx, newSessionTrampoline());
      // A client's session id context is never sent; OpenSSL copies it into each new session and
      // refuses ("attempt to reuse session in different context") to resume a session whose own
      // differs. It carries the scope of how this context verifies (see sessionScope), and the
      // engine offers only sessions of the same scope.
      const scope = sessionScopeOf(this);
      if (o.SSL_CTX_set_session_id_context(ctx, scope, scope.length) !== 1) {
        fail("SSL_CTX_set_session_id_context failed", "INTERNAL");
      }
    }
    if (opts.psk !== undefined) this.#configurePsk(ctx);
    if (opts.onHandshakeEvent !== undefined) {
      o.SSL_CTX_set_info_callback(ctx, infoTrampoline());
    }
    if (opts.onKeylog !== undefined || this.keylogFile !== undefined) {
      o.SSL_CTX_set_keylog_callback(ctx, keylogTrampoline());
    }
  }

  #configureServerSessions(ctx: Pointer): void {
    const o = openssl();
    const opts = this.options;
    // Sessions are bound to the context that made them (OpenSSL refuses, with a full handshake,
    // a session whose id context differs). Without a session id context a server that verifies
    // clients fails every resumption attempt with "session id context uninitialized" instead of
    // falling back to a full handshake. Random by default; with shared ticketKeys, derived from
    // what decides whether a session may resume (identity, client-certificate policy), so that
    // servers configured alike, and restarts, accept each other's tickets.
    const sidCtx = opts.ticketKeys === undefined
      ? crypto.getRandomValues(new Uint8Array(32))
      : sessionIdContextOf(opts);
    if (o.SSL_CTX_set_session_id_context(ctx, sidCtx, sidCtx.length) !== 1) {
      fail("SSL_CTX_set_session_id_context failed", "INTERNAL");
    }
    if (opts.sessionTickets === false) {
      // NO_TICKET alone still lets a TLS 1.3 server issue (stateful) tickets: also send none.
      o.SSL_CTX_set_options(ctx, SSL_OP.NO_TICKET);
      if (o.SSL_CTX_set_num_tickets(ctx, 0) !== 1) {
        fail("SSL_CTX_set_num_tickets failed", "INTERNAL");
      }
    } else if (
      opts.ticketCount !== undefined && o.SSL_CTX_set_num_tickets(ctx, opts.ticketCount) !== 1
    ) {
      fail("SSL_CTX_set_num_tickets failed", "INTERNAL");
    }
    if (opts.ticketKeys !== undefined) {
      const keys = checkTicketKeys("ticketKeys", opts.ticketKeys);
      const ok = o.SSL_CTX_set_tlsext_ticket_keys(ctx, keys) === 1;
      keys.fill(0);
      if (!ok) fail("SSL_CTX_set_tlsext_ticket_keys failed", "INTERNAL");
    }
  }

  /**
   * Servers: makes `keys` (80 bytes; default: fresh random ones) the session ticket key. New
   * tickets are sealed with it; tickets sealed with the key it replaces still resume (and are
   * renewed: the client gets a ticket under the new key), older ones fall back to a full
   * handshake. So rotating more often than tickets live (TLS 1.3 tickets: 2 hours, OpenSSL's
   * default session timeout) ends resumption for clients that stayed away longer. The first
   * rotation installs the ticket key callback (`SSL_CTX_set_tlsext_ticket_key_evp_cb`), which
   * reads the replaced key back from OpenSSL; connections in progress are unaffected.
   *
   * On OpenSSL 1.1.1 (no EVP ticket callback) the key is replaced outright: earlier tickets stop
   * resuming.
   *
   * @example
   * ```ts
   * import { generateTicketKeys, listen } from "../mod.ts";
   * const cert = await Deno.readTextFile("server.pem");
   * const key = await Deno.readTextFile("server.key");
   * const server = listen({ port: 8443, cert, key, ticketKeys: generateTicketKeys() });
   * setInterval(() => server.rotateTicketKeys(), 60 * 60 * 1000); // hourly
   * ```
   * @throws {TypeError} on client contexts, with `sessionTickets: false`, or when closed;
   * {@link RangeError} when `keys` is not 80 bytes.
   */
  rotateTicketKeys(keys?: Uint8Array): void {
    if (this.role !== "server") throw new TypeError("rotateTicketKeys() is for server contexts");
    if (this.options.sessionTickets === false) {
      throw new TypeError("this context issues no session tickets (sessionTickets: false)");
    }
    const next = keys === undefined ? generateTicketKeys() : checkTicketKeys("keys", keys);
    const ctx = nativeContext(this);
    const o = openssl();
    const ring = ticketRings.get(this);
    if (ring !== undefined) {
      ring.rotate(next);
      return;
    }
    if (o.SSL_CTX_set_tlsext_ticket_key_evp_cb === null || o.EVP_MAC_CTX_set_params === null) {
      // 1.1.1: one key only.
      if (o.SSL_CTX_set_tlsext_ticket_keys(ctx, next) !== 1) {
        fail("SSL_CTX_set_tlsext_ticket_keys failed", "INTERNAL");
      }
      return;
    }
    // The key in use so far: the one given as ticketKeys, or OpenSSL's random one.
    const current = new Uint8Array(TICKET_KEY_LENGTH);
    if (o.SSL_CTX_get_tlsext_ticket_keys(ctx, current) !== 1) {
      fail("SSL_CTX_get_tlsext_ticket_keys failed", "INTERNAL");
    }
    const created = new TicketKeyRing(current, null);
    created.rotate(next);
    ticketRings.set(this, created);
    if (o.SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticketKeyTrampoline()) !== 1) {
      ticketRings.delete(this);
      fail("SSL_CTX_set_tlsext_ticket_key_evp_cb failed", "INTERNAL");
    }
  }

  #configurePsk(ctx: Pointer): void {
    const o = openssl();
    const opts = this.options;
    if (this.role === "client") {
      // TLS 1.3: OpenSSL picks the suite before it looks at PSKs, and ignores a PSK whose hash
      // differs from the suite's. Offer the suites with the PSK's hash first (SHA-256 when a
      // function decides later), so servers that follow the client's order can use it.
      const suite = typeof opts.psk === "function"
        ? DEFAULT_PSK_CIPHER_SUITE
        : opts.psk?.cipherSuite ?? DEFAULT_PSK_CIPHER_SUITE;
      if (o.SSL_CTX_set_ciphersuites(ctx, cString(ciphersuitesFor(suite))) !== 1) {
        fail("SSL_CTX_set_ciphersuites failed", "INTERNAL");
      }
      o.SSL_CTX_set_psk_use_session_callback(ctx, pskUseSessionTrampoline());
      o.SSL_CTX_set_psk_client_callback(ctx, pskClientTrampoline());
    } else {
      o.SSL_CTX_set_psk_find_session_callback(ctx, pskFindSessionTrampoline());
      // Also what makes an OpenSSL 3.0 server without a certificate prefer SHA-256 suites in
      // TLS 1.3 (ssl3_choose_cipher), so that clients with RFC 8446's default PSK hash succeed.
      o.SSL_CTX_set_psk_server_callback(ctx, pskServerTrampoline());
      if (
        opts.pskIdentityHint !== undefined &&
        o.SSL_CTX_use_psk_identity_hint(ctx, cString(opts.pskIdentityHint)) !== 1
      ) {
        fail("SSL_CTX_use_psk_identity_hint failed", "INTERNAL");
      }
    }
    // SSL_OP_ALLOW_NO_DHE_KEX: clients also offer psk_ke, servers accept it.
    if (opts.pskKeyExchange === "allow_psk_ke") {
      o.SSL_CTX_set_options(ctx, SSL_OP.ALLOW_NO_DHE_KEX);
    }
  }

  #verifiesPeer(): boolean {
    const o = this.options;
    if (o.unsafelyDisableVerification === true) return false;
    return this.role === "client" || (o.requestClientCert ?? false) !== false;
  }

  #useIdentity(ctx: Pointer, identity: Identity): void {
    const o = openssl();
    const certs = loadCertificates(identity.cert);
    try {
      const key = loadPrivateKey(identity.key, identity.passphrase);
      try {
        if (o.SSL_CTX_use_certificate(ctx, certs[0]!.ptr) !== 1) {
          fail("the certificate was refused (SSL_CTX_use_certificate)", "INVALID_KEY");
        }
        for (const extra of certs.slice(1)) {
          if (o.SSL_CTX_add1_chain_cert(ctx, extra.ptr) !== 1) {
            fail("a chain certificate was refused", "INVALID_KEY");
          }
        }
        if (
          o.SSL_CTX_use_PrivateKey(ctx, key.ptr) !== 1 || o.SSL_CTX_check_private_key(ctx) !== 1
        ) {
          fail("the private key does not match the certificate", "INVALID_KEY");
        }
      } finally {
        key.close();
      }
    } finally {
      for (const c of certs) c.close();
    }
  }

  /** Whether {@link close} has been called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Releases this context's reference to the `SSL_CTX`. Idempotent. Connections already made keep
   * working: each holds its own reference (OpenSSL's refcount), freed when it closes.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#ctx.close();
  }

  /** Same as {@link close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Node's name for {@link TlsContext}: one `SSL_CTX` with its trust store and identity, shared by
 * many connections. `connect()`, `startTls()` and `listen()` all take one as `context`.
 *
 * @example
 * ```ts
 * import { connect, SecureContext } from "../mod.ts";
 * const caPem = await Deno.readTextFile("ca.pem");
 * using shared = new SecureContext("client", { caCerts: [caPem] });
 * await using a = await connect({ hostname: "localhost", port: 8443, context: shared });
 * await using b = await connect({ hostname: "localhost", port: 8443, context: shared });
 * ```
 */
export const SecureContext: typeof TlsContext = TlsContext;
/** Node's name for {@link TlsContext}. */
export type SecureContext = TlsContext;

/** The OCSP mode of client options (default `"request"`). @internal */
export function ocspModeOf(options: Readonly<TlsContextOptions>): OcspMode {
  const o = options.ocsp;
  return (typeof o === "string" ? o : o?.mode) ?? "request";
}

/**
 * A session id context derived from what decides whether a session may resume on a server: its
 * identity and its client-certificate policy (and trust). Servers configured alike get the same.
 */
function sessionIdContextOf(opts: Readonly<TlsContextOptions>): Uint8Array {
  const hash = createHash("sha256");
  hash.update("libssl-ffi session id context v1\0");
  const add = (part: unknown) => {
    if (part instanceof Uint8Array) hash.update(part);
    else hash.update(JSON.stringify(part ?? null));
    hash.update("\0");
  };
  add(opts.cert);
  add(opts.requestClientCert ?? false);
  for (const ca of opts.caCerts ?? []) add(ca);
  add(opts.psk === undefined ? "no-psk" : "psk");
  return new Uint8Array(hash.digest());
}

function passphraseOf(opts: TlsContextOptions): { passphrase?: Passphrase } {
  return opts.passphrase === undefined ? {} : { passphrase: opts.passphrase };
}
