/**
 * `connect()` and `startTls()`: verified TLS client connections over TCP or any byte stream.
 *
 * @module
 */
import { TlsError } from "./errors.ts";
import type { Identity, TlsContext, TlsContextOptions } from "./context.ts";
import { contextFor } from "./context_cache.ts";
import { checkEngineOptions, isIpAddress, TlsEngine, type TlsEngineOptions } from "./engine.ts";
import { Connection } from "./connection.ts";
import { Deadline } from "./deadline.ts";
import { connectTcp } from "./net/tcp.ts";
import { webByteStream, type WebTransport } from "./net/web_stream.ts";
import type { ByteStream } from "./net/stream.ts";
import type { PemOrDer } from "./x509.ts";
import type { PskClientOption } from "./psk.ts";
import { acceptOn, prepareServer, type TlsServerOptions } from "./server.ts";

/** The default for {@link TlsClientOptions.handshakeTimeout}: 30 seconds. */
export const DEFAULT_HANDSHAKE_TIMEOUT = 30_000;

/** TLS options shared by {@link connect} and {@link startTls}. */
export interface TlsClientOptions extends
  Pick<
    TlsContextOptions,
    | "minVersion"
    | "maxVersion"
    | "passphrase"
    | "ciphers"
    | "onVerifyCertificate"
    | "onClientCertificate"
    | "onHandshakeEvent"
    | "onKeylog"
    | "ocsp"
    | "pskKeyExchange"
  > {
  /**
   * Trusted CA certificates (PEM strings, which may hold several, or DER bytes). Absent: the
   * system trust store (`SSL_CERT_FILE` / `SSL_CERT_DIR` override it).
   */
  caCerts?: readonly PemOrDer[];
  /**
   * The name sent as SNI and verified against the server's certificate. Defaults to `hostname`.
   * An IP address is verified as an IP and sends no SNI.
   */
  servername?: string;
  /** ALPN protocols to offer, most preferred first, e.g. `["h2", "http/1.1"]`. */
  alpnProtocols?: readonly string[];
  /**
   * A pre-shared key: `{ identity, key, cipherSuite? }`, or a function `(hint, { version }) =>
   * key | null` (synchronous). TLS 1.3 external PSK (with (EC)DHE unless `pskKeyExchange`
   * allows psk_ke) and TLS 1.2 PSK cipher suites. A server that accepts it sends no
   * certificate; one that sends a certificate instead is verified as usual. With `psk`, startTls
   * needs no `hostname`/`servername` (but then only a PSK handshake succeeds).
   * `conn.pskIdentity` tells whether the PSK was used.
   */
  psk?: PskClientOption;
  /** A static client certificate (PEM may carry the chain after the leaf), sent when asked for. */
  cert?: PemOrDer;
  /** The private key for {@link cert}. */
  key?: PemOrDer;
  /**
   * A session to resume: `conn.session` of an earlier connection to the same server name
   * (`null`: none). Resumption skips the certificate exchange (`conn.sessionReused` says whether
   * it happened). A session made for another `servername`, or by a connection that did not
   * verify the server, is not offered; one the server does not accept (another server, an
   * expired ticket, tickets off, a version not allowed) gives a full handshake. Bytes that are
   * not a serialised session are a TypeError.
   */
  session?: Uint8Array | null;
  /**
   * Called with each new session as it arrives (the bytes `conn.session` then returns): TLS 1.2
   * when the handshake completes, TLS 1.3 once per ticket, on the reads after the handshake.
   * Synchronous; a throw fails the connection (`CALLBACK_ERROR`).
   */
  onSession?: (session: Uint8Array) => void;
  /** Aborts connecting, the handshake, or later I/O: pending operations reject with `ABORTED`. */
  signal?: AbortSignal;
  /** Milliseconds allowed for TCP connect plus handshake. Default 30,000. `Infinity`: no limit. */
  handshakeTimeout?: number;
  /**
   * Accept any server certificate and name. UNSAFE: anyone on the path can read and change the
   * traffic. For tests only.
   */
  unsafelyDisableVerification?: boolean;
  /**
   * A context to use instead of one built from the options above (its trust, identity, versions
   * and callbacks apply; `caCerts`, `cert`, `key`, ... must then be absent).
   */
  context?: TlsContext;
}

/** Options for {@link connect}. */
export interface ConnectOptions extends TlsClientOptions {
  /** Host name or IP address to connect to (IPv6 literals with or without brackets). */
  hostname: string;
  /** TCP port. */
  port: number;
}

/** Options for {@link startTls} as a client (the default role). */
export interface StartTlsOptions extends TlsClientOptions {
  /** `"client"` (the default). */
  role?: "client";
  /** The server's host name (used as `servername` when that is absent). */
  hostname?: string;
}

/** Options for {@link startTls} as a server (STARTTLS servers: SMTP, IMAP, XMPP, ...). */
export interface StartTlsServerOptions extends TlsServerOptions {
  /** Run the server side of the handshake. */
  role: "server";
  /** Aborts the handshake or later I/O: pending operations reject with `ABORTED`. */
  signal?: AbortSignal;
}

const CONTEXT_KEYS = [
  "caCerts",
  "minVersion",
  "maxVersion",
  "cert",
  "key",
  "passphrase",
  "ciphers",
  "unsafelyDisableVerification",
  "onVerifyCertificate",
  "onClientCertificate",
  "onHandshakeEvent",
  "onKeylog",
  "ocsp",
  "psk",
  "pskKeyExchange",
] as const;

/** Options that only servers understand. */
const SERVER_ONLY_KEYS = [
  "requestClientCert",
  "ocspStaple",
  "onServerName",
  "pskIdentityHint",
  "sessionTickets",
  "ticketCount",
  "ticketKeys",
] as const;

function contextOptions(options: TlsClientOptions): TlsContextOptions {
  const out: Record<string, unknown> = {};
  for (const k of CONTEXT_KEYS) if (options[k] !== undefined) out[k] = options[k];
  return out as TlsContextOptions;
}

function checkLimits(options: TlsClientOptions): number {
  const t = options.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT;
  if (typeof t !== "number" || Number.isNaN(t) || t <= 0) {
    throw new RangeError("handshakeTimeout must be a positive number of milliseconds");
  }
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) {
    throw new TypeError("signal must be an AbortSignal");
  }
  return t;
}

function stripBrackets(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

function prepare(
  options: TlsClientOptions,
  defaultServername: string | undefined,
): { context: TlsContext; owned: boolean; engineOptions: TlsEngineOptions; timeout: number } {
  if (typeof options !== "object" || options === null) {
    throw new TypeError("options must be an object");
  }
  const timeout = checkLimits(options);
  // Plain JavaScript callers get no type error for a server option here: say so, not ignore it.
  for (const k of SERVER_ONLY_KEYS) {
    if ((options as Record<string, unknown>)[k] !== undefined) {
      throw new TypeError(`${k} is a server option (listen(), startTls with role "server")`);
    }
  }
  const servername = options.servername ?? defaultServername;
  const engineOptions: TlsEngineOptions = {};
  if (servername !== undefined) engineOptions.servername = servername;
  if (options.alpnProtocols !== undefined) engineOptions.alpnProtocols = options.alpnProtocols;
  if (options.session !== undefined) engineOptions.session = options.session;
  if (options.onSession !== undefined) engineOptions.onSession = options.onSession;
  if (options.context !== undefined) {
    if (options.context.role !== "client") throw new TypeError("context must be a client context");
    if (CONTEXT_KEYS.some((k) => options[k] !== undefined)) {
      throw new TypeError(`with context, do not also give ${CONTEXT_KEYS.join("/")}`);
    }
    checkEngineOptions("client", options.context.options, engineOptions);
    return { context: options.context, owned: false, engineOptions, timeout };
  }
  // Everything is validated before any I/O: the engine itself is made after the TCP connect.
  checkEngineOptions("client", contextOptions(options), engineOptions);
  return { ...contextFor("client", contextOptions(options)), engineOptions, timeout };
}

function abortError(signal: AbortSignal): TlsError {
  return new TlsError("ABORTED", "the connection was aborted", { cause: signal.reason });
}

/**
 * Runs TLS over `stream` and resolves once the handshake is done. Takes ownership of `stream`,
 * `deadline` and (when `prepared.owned`) the context: on failure all of them are closed.
 */
async function establish(
  stream: ByteStream,
  prepared: ReturnType<typeof prepare>,
  deadline: Deadline,
): Promise<Connection> {
  let engine: TlsEngine;
  try {
    engine = new TlsEngine(prepared.context, prepared.engineOptions);
  } catch (error) {
    stream.close();
    deadline.dispose();
    if (prepared.owned) prepared.context.close();
    throw error;
  }
  const owned = prepared.owned ? prepared.context : null;
  const conn = new Connection(engine, stream, deadline, owned);
  await conn.handshake(); // closes everything itself on failure
  return conn;
}

/**
 * Opens a TCP connection and runs a verified TLS handshake. Resolves once the handshake is done,
 * so certificate problems reject it.
 *
 * Secure by default: the server's chain is verified against `caCerts` (or the system store) and
 * its name against `servername` (default `hostname`); TLS 1.2 is the minimum.
 *
 * @example
 * ```ts
 * import { connect } from "../mod.ts";
 * const caPem = await Deno.readTextFile("ca.pem");
 * await using conn = await connect({ hostname: "localhost", port: 8443, caCerts: [caPem] });
 * console.log(conn.protocol, conn.cipher, conn.peerCertificate?.subject);
 * ```
 * @throws {TypeError | RangeError} for bad options.
 * @throws {TlsError} `CERT_VERIFY_FAILED`, `HANDSHAKE_FAILED`, `ALERT_RECEIVED`, `NETWORK_ERROR`,
 * `TIMEOUT`, `ABORTED`, `UNEXPECTED_EOF`, `CALLBACK_ERROR`, ...
 */
export async function connect(options: ConnectOptions): Promise<Connection> {
  if (typeof options !== "object" || options === null) {
    throw new TypeError("options must be an object");
  }
  const { hostname, port } = options;
  if (typeof hostname !== "string" || hostname === "") {
    throw new TypeError("hostname must be a non-empty string");
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RangeError(`port must be an integer from 1 to 65535, got ${port}`);
  }
  const host = stripBrackets(hostname);
  checkLimits(options);
  const signal = options.signal;
  if (signal?.aborted) throw abortError(signal);
  const prepared = prepare(options, isIpAddress(host) ? host : host.toLowerCase());

  // One deadline for TCP connect and handshake, handed to the connection once it exists.
  const deadline = new Deadline(prepared.timeout, signal);
  const pending = connectTcp({ hostname: host, port });
  let stream: ByteStream;
  try {
    stream = await deadline.race(pending);
  } catch (error) {
    // A connect that completes after the timeout must not leak its socket.
    pending.then((s) => s.close(), () => {});
    deadline.dispose();
    if (prepared.owned) prepared.context.close();
    if (error instanceof TlsError) throw error;
    const detail = error instanceof Error ? error.message : String(error);
    throw new TlsError("NETWORK_ERROR", `cannot connect to ${hostname}:${port}: ${detail}`, {
      cause: error,
    });
  }
  return establish(stream, prepared, deadline);
}

/**
 * Upgrades an existing byte stream to TLS (STARTTLS-style protocols): anything with
 * `{ readable, writable }` Web streams, e.g. a `Deno.Conn` or node's `Duplex.toWeb(socket)`.
 * Resolves once the handshake is done. The transport belongs to the connection from then on.
 * With `role: "server"` it runs the server side (the options of `listen()`).
 *
 * @example
 * ```ts
 * import { startTls } from "../mod.ts";
 * const tcp = await Deno.connect({ hostname: "mail.example.com", port: 587 });
 * // ... speak SMTP until the server says "220 Ready to start TLS" ...
 * await using conn = await startTls(tcp, { hostname: "mail.example.com" });
 * ```
 * @example
 * ```ts
 * import { startTls } from "../mod.ts";
 * const cert = await Deno.readTextFile("server.pem");
 * const key = await Deno.readTextFile("server.key");
 * using tcpListener = Deno.listen({ port: 2525 });
 * const tcp = await tcpListener.accept();
 * // ... answer "STARTTLS" with "220 Ready to start TLS" ...
 * await using conn = await startTls(tcp, { role: "server", cert, key });
 * ```
 * @throws {TypeError} without `hostname`/`servername` (clients, unless verification is
 * disabled), without `cert`/`key` (servers).
 * @throws {TlsError} as {@link connect}.
 */
export async function startTls(
  transport: WebTransport,
  options: StartTlsOptions | StartTlsServerOptions = {},
): Promise<Connection> {
  if (typeof options !== "object" || options === null) {
    throw new TypeError("options must be an object");
  }
  if (options.role === "server") return await startTlsServer(transport, options);
  if (options.role !== undefined && options.role !== "client") {
    throw new TypeError(`role must be "client" or "server", got ${JSON.stringify(options.role)}`);
  }
  const host = options.hostname === undefined ? undefined : stripBrackets(options.hostname);
  checkLimits(options);
  const stream = webByteStream(transport);
  let prepared: ReturnType<typeof prepare>;
  try {
    if (options.signal?.aborted) throw abortError(options.signal);
    prepared = prepare(options, host);
  } catch (error) {
    stream.close();
    throw error;
  }
  // Awaited here so that every failure above is a rejection, never a synchronous throw.
  return await establish(
    stream,
    prepared,
    new Deadline(prepared.timeout, options.signal, "the TLS handshake"),
  );
}

async function startTlsServer(
  transport: WebTransport,
  options: StartTlsServerOptions,
): Promise<Connection> {
  const stream = webByteStream(transport);
  let prepared: ReturnType<typeof prepareServer>;
  try {
    if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) {
      throw new TypeError("signal must be an AbortSignal");
    }
    if (options.signal?.aborted) throw abortError(options.signal);
    prepared = prepareServer(options, true);
  } catch (error) {
    stream.close();
    throw error;
  }
  const deadline = new Deadline(prepared.timeout, options.signal, "the client's TLS handshake");
  const conn = acceptOn(
    stream,
    prepared.context,
    deadline,
    prepared.owned ? prepared.context : null,
  );
  await conn.handshake(); // closes everything itself on failure
  return conn;
}

export type { Identity, WebTransport };
