/**
 * The server side: `listen()` and its {@link TlsListener}, plus the server options shared with
 * `startTls(transport, { role: "server" })`.
 *
 * One accept loop takes TCP connections and starts each handshake at once, without waiting for
 * it: a slow, silent or failing client never holds up the others. Finished handshakes queue for
 * `accept()` / `for await`; failed ones go to `onError` and are gone.
 *
 * @module
 */
import { TlsError } from "./errors.ts";
import { TlsContext, type TlsContextOptions } from "./context.ts";
import { contextFor } from "./context_cache.ts";
import { TlsEngine } from "./engine.ts";
import { Connection } from "./connection.ts";
import { Deadline } from "./deadline.ts";
import { listenTcp } from "./net/tcp.ts";
import type { ByteStream, NetAddr, TcpListener } from "./net/stream.ts";
import type { PskServerCallback } from "./psk.ts";

/** The default for {@link TlsServerOptions.handshakeTimeout}: 30 seconds. */
export const DEFAULT_SERVER_HANDSHAKE_TIMEOUT = 30_000;

/** The default for {@link ListenOptions.maxPendingConnections}. */
export const DEFAULT_MAX_PENDING_CONNECTIONS = 1024;

/**
 * TLS options of a server: shared by {@link listen} and `startTls(..., { role: "server" })`.
 * `cert` and `key` are required (or a `context`); `caCerts` are the CAs whose client
 * certificates are accepted with `requestClientCert` (their subjects are sent as the
 * acceptable-issuer list); `onVerifyCertificate` is synchronous on servers.
 */
export interface TlsServerOptions extends
  Pick<
    TlsContextOptions,
    | "cert"
    | "key"
    | "passphrase"
    | "caCerts"
    | "requestClientCert"
    | "alpnProtocols"
    | "minVersion"
    | "maxVersion"
    | "ciphers"
    | "onServerName"
    | "onVerifyCertificate"
    | "onHandshakeEvent"
    | "onKeylog"
    | "ocspStaple"
    | "pskIdentityHint"
    | "pskKeyExchange"
    | "sessionTickets"
    | "ticketCount"
    | "ticketKeys"
  > {
  /**
   * Pre-shared keys: called with each identity a client offers (a string when it is printable
   * UTF-8, else the bytes); returns its key (`Uint8Array` or `{ key, cipherSuite? }`), or `null`
   * for an unknown identity (TLS 1.2: alert unknown_psk_identity, 115; TLS 1.3: the PSK is
   * ignored and the certificate, if any, is used). Synchronous. With `psk`, `cert` and `key` are
   * optional (a PSK-only server); with both, PSK and certificate clients are served alike.
   * `conn.pskIdentity` names the identity a connection used.
   */
  psk?: PskServerCallback;
  /**
   * Milliseconds a client has to complete its handshake. Default 30,000. `Infinity`: no limit
   * (a client that connects and sends nothing then holds its slot until it disconnects).
   */
  handshakeTimeout?: number;
  /**
   * A server context to use instead of one built from the options above (many listeners or
   * STARTTLS connections can share one); `cert`, `key`, `caCerts`, ... must then be absent.
   */
  context?: TlsContext;
}

/** Options for {@link listen}. */
export interface ListenOptions extends TlsServerOptions {
  /** The address to listen on. Default `"0.0.0.0"` (every IPv4 interface). */
  hostname?: string;
  /** The TCP port; 0 picks a free one (read it from {@link TlsListener.addr}). */
  port: number;
  /**
   * Called when a client's handshake fails (bad certificate, timeout, garbage, ...) and when
   * accepting a TCP connection fails. The listener goes on either way. A throw from here is
   * rethrown outside the accept loop (an uncaught error), never swallowed.
   */
  onError?: (error: TlsError, info: ListenerErrorInfo) => void;
  /**
   * How many connections may be in progress (handshaking) or waiting for {@link
   * TlsListener.accept} at once. Beyond it, new TCP connections wait in the kernel's backlog on
   * Deno, and are closed at once on Bun (node:net cannot pause accepting). Default 1,024.
   */
  maxPendingConnections?: number;
  /** Closes the listener when aborted. */
  signal?: AbortSignal;
}

/** What {@link ListenOptions.onError} is told besides the error. */
export interface ListenerErrorInfo {
  /** The client's address, when the failure belongs to one client. */
  readonly remoteAddr: NetAddr | null;
}

const CONTEXT_KEYS = [
  "cert",
  "key",
  "passphrase",
  "caCerts",
  "requestClientCert",
  "alpnProtocols",
  "minVersion",
  "maxVersion",
  "ciphers",
  "onServerName",
  "onVerifyCertificate",
  "onHandshakeEvent",
  "onKeylog",
  "ocspStaple",
  "psk",
  "pskIdentityHint",
  "pskKeyExchange",
  "sessionTickets",
  "ticketCount",
  "ticketKeys",
] as const;

/** A server context for `options`, validated before any I/O. @internal */
export function prepareServer(
  options: TlsServerOptions,
  share: boolean,
): { context: TlsContext; owned: boolean; timeout: number } {
  if (typeof options !== "object" || options === null) {
    throw new TypeError("options must be an object");
  }
  // Plain JavaScript callers get no type error for a client option here: say so, not ignore it.
  for (
    const k of [
      "ocsp",
      "servername",
      "onClientCertificate",
      "unsafelyDisableVerification",
      "session",
      "onSession",
    ]
  ) {
    if ((options as Record<string, unknown>)[k] !== undefined) {
      throw new TypeError(`${k} is a client option (connect(), startTls)`);
    }
  }
  const timeout = options.handshakeTimeout ?? DEFAULT_SERVER_HANDSHAKE_TIMEOUT;
  if (typeof timeout !== "number" || Number.isNaN(timeout) || timeout <= 0) {
    throw new RangeError("handshakeTimeout must be a positive number of milliseconds");
  }
  if (options.context !== undefined) {
    if (!(options.context instanceof TlsContext) || options.context.role !== "server") {
      throw new TypeError("context must be a server TlsContext");
    }
    if (CONTEXT_KEYS.some((k) => options[k] !== undefined)) {
      throw new TypeError(`with context, do not also give ${CONTEXT_KEYS.join("/")}`);
    }
    return { context: options.context, owned: false, timeout };
  }
  const contextOptions: Record<string, unknown> = {};
  for (const k of CONTEXT_KEYS) if (options[k] !== undefined) contextOptions[k] = options[k];
  if ((options.cert === undefined || options.key === undefined) && options.psk === undefined) {
    throw new TypeError("a server needs cert and key (or psk, or a server context)");
  }
  if (!share) {
    return {
      context: new TlsContext("server", contextOptions as TlsContextOptions),
      owned: true,
      timeout,
    };
  }
  return { ...contextFor("server", contextOptions as TlsContextOptions), timeout };
}

/**
 * Runs the server side of a handshake over `stream`. Takes ownership of `stream` and `deadline`;
 * the connection does not own the context. @internal
 */
export function acceptOn(
  stream: ByteStream,
  context: TlsContext,
  deadline: Deadline,
  ownedContext: TlsContext | null,
): Connection {
  let engine: TlsEngine;
  try {
    engine = new TlsEngine(context);
  } catch (error) {
    stream.close();
    deadline.dispose();
    ownedContext?.close();
    throw error;
  }
  return new Connection(engine, stream, deadline, ownedContext);
}

function asTlsError(error: unknown, what: string): TlsError {
  if (error instanceof TlsError) return error;
  const detail = error instanceof Error ? error.message : String(error);
  return new TlsError("NETWORK_ERROR", `${what}: ${detail}`, { cause: error });
}

function rethrowLater(error: unknown): void {
  queueMicrotask(() => {
    throw error;
  });
}

/**
 * A TLS server socket: an async iterable of handshaken {@link Connection}s. Made by
 * {@link listen}.
 *
 * @example
 * ```ts
 * import { listen } from "../mod.ts";
 * const cert = await Deno.readTextFile("server.pem");
 * const key = await Deno.readTextFile("server.key");
 * await using server = listen({ port: 8443, cert, key, alpnProtocols: ["http/1.1"] });
 * console.log("listening on", server.addr.port);
 * for await (const conn of server) {
 *   (async () => {
 *     await using c = conn;
 *     await c.write(new TextEncoder().encode(`hello ${c.servername ?? "stranger"}\n`));
 *   })().catch(console.error);
 * }
 * ```
 */
export class TlsListener implements AsyncIterable<Connection> {
  #tcp: TcpListener;
  #context: TlsContext;
  #ownsContext: boolean;
  #timeout: number;
  #maxPending: number;
  #onError: ListenOptions["onError"];
  #signal: AbortSignal | undefined;
  #onAbort = () => this.close();
  /** Handshakes in progress. */
  #handshaking = new Set<Connection>();
  /** Handshaken, waiting for accept(). */
  #ready: Connection[] = [];
  #waiters: { resolve: (c: Connection) => void; reject: (e: unknown) => void }[] = [];
  #slotFreed: (() => void) | null = null;
  #fatal: TlsError | null = null;
  #closed = false;
  #loop: Promise<void>;

  /** @internal Use {@link listen}. */
  constructor(
    tcp: TcpListener,
    prepared: { context: TlsContext; owned: boolean; timeout: number },
    options: ListenOptions,
  ) {
    this.#tcp = tcp;
    this.#context = prepared.context;
    this.#ownsContext = prepared.owned;
    this.#timeout = prepared.timeout;
    this.#maxPending = options.maxPendingConnections ?? DEFAULT_MAX_PENDING_CONNECTIONS;
    this.#onError = options.onError;
    this.#signal = options.signal;
    this.#signal?.addEventListener("abort", this.#onAbort, { once: true });
    this.#loop = this.#acceptLoop();
  }

  /** The bound address (with the real port when `port: 0` was asked for). */
  get addr(): NetAddr {
    try {
      return this.#tcp.addr;
    } catch (error) {
      throw asTlsError(error, "the listener could not bind its port");
    }
  }

  /** Whether {@link close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Rotates the session ticket key of this listener's context: see
   * {@link TlsContext.rotateTicketKeys} (tickets under the replaced key still resume, older ones
   * do not).
   *
   * @example
   * ```ts
   * import { listen } from "../mod.ts";
   * const cert = await Deno.readTextFile("server.pem");
   * const key = await Deno.readTextFile("server.key");
   * await using server = listen({ port: 8443, cert, key });
   * server.rotateTicketKeys(); // fresh random key; pass 80 bytes to set one
   * ```
   * @throws {TypeError | RangeError} as {@link TlsContext.rotateTicketKeys}.
   */
  rotateTicketKeys(keys?: Uint8Array): void {
    this.#context.rotateTicketKeys(keys);
  }

  /** How many handshakes are in progress right now. */
  get handshaking(): number {
    return this.#handshaking.size;
  }

  #report(error: unknown, remoteAddr: NetAddr | null): void {
    if (this.#onError === undefined) return;
    try {
      this.#onError(asTlsError(error, "accepting a connection failed"), { remoteAddr });
    } catch (thrown) {
      rethrowLater(thrown);
    }
  }

  async #acceptLoop(): Promise<void> {
    while (!this.#closed) {
      if (this.#handshaking.size + this.#ready.length >= this.#maxPending) {
        await new Promise<void>((resolve) => (this.#slotFreed = resolve));
        continue;
      }
      let stream: ByteStream | null;
      try {
        stream = await this.#tcp.accept();
      } catch (error) {
        if (this.#closed) break;
        let bound = true;
        try {
          void this.#tcp.addr;
        } catch {
          bound = false;
        }
        if (!bound) {
          // The port was never bound (Bun reports it a tick after listen()): nothing to retry.
          this.#fail(asTlsError(error, "the listener could not bind its port"));
          break;
        }
        // E.g. out of file descriptors: report, back off, go on.
        this.#report(error, null);
        await new Promise((resolve) => setTimeout(resolve, 100));
        continue;
      }
      if (stream === null) break;
      this.#start(stream);
    }
  }

  #start(stream: ByteStream): void {
    if (this.#closed) {
      stream.close();
      return;
    }
    const remoteAddr = stream.remoteAddr;
    let conn: Connection;
    try {
      conn = acceptOn(
        stream,
        this.#context,
        new Deadline(this.#timeout, undefined, "the client's TLS handshake"),
        null,
      );
    } catch (error) {
      this.#report(error, remoteAddr);
      return;
    }
    this.#handshaking.add(conn);
    conn.handshake().then(
      () => {
        this.#handshaking.delete(conn);
        this.#deliver(conn);
      },
      (error) => {
        this.#handshaking.delete(conn);
        this.#freeSlot();
        // A listener closing under a handshake is not the client's failure.
        if (!this.#closed) this.#report(error, remoteAddr);
      },
    );
  }

  #freeSlot(): void {
    const s = this.#slotFreed;
    this.#slotFreed = null;
    s?.();
  }

  #deliver(conn: Connection): void {
    if (this.#closed) {
      conn.close();
      return;
    }
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) {
      this.#freeSlot();
      waiter.resolve(conn);
    } else {
      this.#ready.push(conn);
    }
  }

  #fail(error: TlsError): void {
    this.#fatal = error;
    for (const w of this.#waiters.splice(0)) w.reject(error);
  }

  /**
   * The next client whose handshake completed. Clients whose handshake fails never show up here
   * (see {@link ListenOptions.onError}).
   *
   * @throws {TlsError} `CLOSED` once the listener is closed; `NETWORK_ERROR` if the port could
   * not be bound.
   */
  accept(): Promise<Connection> {
    const conn = this.#ready.shift();
    if (conn !== undefined) {
      this.#freeSlot();
      return Promise.resolve(conn);
    }
    if (this.#closed) return Promise.reject(new TlsError("CLOSED", "the listener is closed"));
    if (this.#fatal !== null) return Promise.reject(this.#fatal);
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /** Yields connections until the listener is closed. */
  async *[Symbol.asyncIterator](): AsyncIterator<Connection> {
    for (;;) {
      let conn: Connection;
      try {
        conn = await this.accept();
      } catch (error) {
        if (error instanceof TlsError && error.code === "CLOSED") return;
        throw error;
      }
      yield conn;
    }
  }

  /**
   * Stops listening: in-progress handshakes and connections not yet accepted are closed, pending
   * {@link accept} calls reject with `CLOSED`. Connections already accepted stay open.
   * Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#signal?.removeEventListener("abort", this.#onAbort);
    this.#tcp.close();
    for (const conn of this.#handshaking) conn.close();
    this.#handshaking.clear();
    for (const conn of this.#ready.splice(0)) conn.close();
    const closed = new TlsError("CLOSED", "the listener is closed");
    for (const w of this.#waiters.splice(0)) w.reject(closed);
    this.#freeSlot();
    if (this.#ownsContext) this.#context.close();
  }

  /** Closes the listener and waits for its accept loop to finish. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.#loop;
  }
}

/**
 * Listens for TLS clients on a TCP port. Returns at once; the port is bound before it returns
 * (on Bun a bind failure surfaces from `addr` and the first `accept()`). Each client's handshake
 * is run by the listener; iterate it (or call `accept()`) for the connections that completed.
 *
 * Secure by default: TLS 1.2 minimum; with `requestClientCert` clients are verified against
 * `caCerts`.
 *
 * @example
 * ```ts
 * import { listen } from "../mod.ts";
 * const cert = await Deno.readTextFile("server.pem"); // leaf, then its chain
 * const key = await Deno.readTextFile("server.key");
 * const server = listen({ port: 0, hostname: "127.0.0.1", cert, key, alpnProtocols: ["h2", "http/1.1"] });
 * console.log(`listening on ${server.addr.port}`);
 * for await (const conn of server) {
 *   console.log(conn.protocol, conn.alpnProtocol, conn.servername, conn.peerCertificate?.subject);
 *   conn.close();
 * }
 * ```
 * @throws {TypeError | RangeError} for bad options.
 * @throws {TlsError} `INVALID_CERTIFICATE`, `INVALID_KEY`, `BAD_PASSPHRASE`; `NETWORK_ERROR`
 * when the port cannot be bound (Deno).
 */
export function listen(options: ListenOptions): TlsListener {
  if (typeof options !== "object" || options === null) {
    throw new TypeError("options must be an object");
  }
  const { port, hostname = "0.0.0.0", maxPendingConnections, signal, onError } = options;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`port must be an integer from 0 to 65535, got ${port}`);
  }
  if (typeof hostname !== "string" || hostname === "") {
    throw new TypeError("hostname must be a non-empty string");
  }
  if (
    maxPendingConnections !== undefined &&
    (!Number.isInteger(maxPendingConnections) || maxPendingConnections < 1)
  ) {
    throw new RangeError("maxPendingConnections must be a positive integer");
  }
  if (onError !== undefined && typeof onError !== "function") {
    throw new TypeError("onError must be a function");
  }
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new TypeError("signal must be an AbortSignal");
  }
  if (signal?.aborted) throw new TlsError("ABORTED", "the signal was already aborted");
  const prepared = prepareServer(options, false);
  let tcp: TcpListener;
  try {
    tcp = listenTcp({
      hostname: hostname.startsWith("[") && hostname.endsWith("]")
        ? hostname.slice(1, -1)
        : hostname,
      port,
      maxQueued: maxPendingConnections ?? DEFAULT_MAX_PENDING_CONNECTIONS,
    });
  } catch (error) {
    if (prepared.owned) prepared.context.close();
    throw asTlsError(error, `cannot listen on ${hostname}:${port}`);
  }
  return new TlsListener(tcp, prepared, options);
}
