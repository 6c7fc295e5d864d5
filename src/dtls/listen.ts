/**
 * `listenDtls()`: a DTLS server on one UDP socket, many clients demultiplexed by address.
 *
 * Safe to expose: a datagram from an address without a session goes into ONE reusable
 * "listening" engine per listener, where `DTLSv1_listen` either answers with a stateless
 * HelloVerifyRequest (nothing is allocated: see `cookies.ts`) or, when the ClientHello carries a
 * valid cookie, hands over: that engine (the ClientHello buffered inside it) becomes the new
 * client's connection, and a fresh listening engine takes its place. The number of sessions is
 * bounded (`maxConnections`), each handshake is timed (`handshakeTimeout`), and idle sessions
 * close themselves (`idleTimeout`).
 *
 * `DTLSv1_listen` would learn the peer's address from the read BIO (`BIO_dgram_get_peer`), which
 * a memory BIO cannot tell; it works without it (measured on 3.0.19: 0 after writing a
 * HelloVerifyRequest or dropping a datagram, 1 with a verified cookie). The address comes from the
 * socket instead, and the cookie callbacks learn it per `SSL` from the listener (`cookies.ts`):
 * they run in `DTLSv1_listen` AND once more in the first `SSL_do_handshake` of the new session,
 * which checks the buffered ClientHello's cookie again (`SSL_OP_COOKIE_EXCHANGE`).
 *
 * A client that restarts from the same address and port (a device that rebooted, a NAT mapping
 * that was reused) sends a new ClientHello at epoch 0 to an address that still has a session
 * (RFC 6347 4.2.8). Its random differs from the one that started the session (a retransmitted or
 * duplicated ClientHello repeats it), so it goes through `DTLSv1_listen` like any new client: a
 * HelloVerifyRequest first, the old session untouched (a spoofer cannot end it); only when the
 * cookie comes back valid, proving the address, is the old session ended (without close_notify:
 * the peer that had its keys is gone) and the new one started.
 *
 * @module
 */
import { Deadline } from "../core/deadline.ts";
import { TlsError } from "../core/errors.ts";
import { clearErrorQueue, drainErrorQueue } from "../core/error_queue.ts";
import { openssl } from "../core/native.ts";
import { NativeHandle } from "../core/ownership.ts";
import { messageOf } from "../core/values.ts";
import type { ServerFeatureOptions } from "../handshake/features.ts";
import { addrKey, bindUdp, type UdpAddr, type UdpSocket } from "../net/udp.ts";
import type { TlsContext, TlsContextOptions } from "../tls/context.ts";
import { internalsOf } from "../tls/native_context.ts";
import { engineWithCheckedOptions, type TlsEngine } from "../tls/engine.ts";
import {
  checkCallOptions,
  checkIdleTimeout,
  normalizeOptions,
  splitOptions,
} from "../tls/options.ts";
import { DtlsConnection } from "./connection.ts";
import {
  forgetCookiePeer,
  installCookieCallbacks,
  newCookieSecret,
  setCookiePeer,
} from "./cookies.ts";
import { checkMtu, dtlsContext, type DtlsUdpOptions, refuseTlsOnly } from "./options.ts";
import { checkSrtpProfiles, type DtlsSrtpOptions } from "./srtp.ts";
import { newClientHelloRandom, packRecords } from "./records.ts";

/** The default `idleTimeout` of DTLS servers: UDP has no FIN, so vanished clients time out. */
export const DEFAULT_DTLS_IDLE_TIMEOUT = 300_000;
/** The default `maxConnections`. */
export const DEFAULT_DTLS_MAX_CONNECTIONS = 1_000;

/**
 * Options for {@link listenDtls}: the server options of `listen()` (`cert`/`key`, `psk` with
 * `pskIdentityHint`, `requestClientCert` with `caCerts`, `alpnProtocols`, `onKeylog`,
 * `onHandshakeEvent`, `ciphers`, ...) with the same meaning, except `minVersion`/`maxVersion`
 * (DTLS 1.2 only, for now) and `context`; plus the UDP ones.
 */
export interface DtlsListenOptions
  extends
    Omit<ServerFeatureOptions<TlsContext>, "minVersion" | "maxVersion">,
    DtlsUdpOptions,
    DtlsSrtpOptions {
  /** The address to listen on. Default `"0.0.0.0"`. */
  hostname?: string;
  /** The UDP port; 0 (the default) picks a free one (read it from {@link DtlsListener.addr}). */
  port?: number;
  /** Milliseconds a client has to complete its handshake, after its cookie. Default 30,000. */
  handshakeTimeout?: number;
  /**
   * Milliseconds without a datagram in either direction after which a session closes itself.
   * Default 300,000 (5 minutes): UDP has no end-of-connection, so clients that vanish are found
   * this way. `0` or `Infinity`: no limit.
   */
  idleTimeout?: number;
  /**
   * How many sessions (handshaking, waiting for {@link DtlsListener.accept}, or open) the
   * listener holds at once. Default 1,000. Beyond it, ClientHellos from new addresses are
   * dropped (the clients retransmit, and get in once a slot frees).
   */
  maxConnections?: number;
  /** Called when a client's handshake fails (the listener goes on). */
  onError?: (error: TlsError, info: { readonly remoteAddr: UdpAddr }) => void;
}

function checkMaxConnections(value: unknown): number {
  if (value === undefined) return DEFAULT_DTLS_MAX_CONNECTIONS;
  if (!Number.isInteger(value) || (value as number) < 1) {
    throw new RangeError(`maxConnections must be an integer >= 1, got ${String(value)}`);
  }
  return value as number;
}

/**
 * Starts a DTLS server on a UDP port. Resolves once the socket is bound; take connections with
 * {@link DtlsListener.accept} or `for await`.
 *
 * @example An echo server with certificates
 * ```ts
 * import { readFileSync } from "node:fs";
 * import { listenDtls } from "../../mod.ts";
 * const cert = readFileSync("server.pem", "utf8");
 * const key = readFileSync("server.key", "utf8");
 * await using server = await listenDtls({ port: 4433, cert, key });
 * for await (const conn of server) {
 *   (async () => {
 *     for (let d = await conn.receive(); d !== null; d = await conn.receive()) conn.send(d);
 *     conn.close();
 *   })().catch(() => conn.close());
 * }
 * ```
 * @throws {TypeError | RangeError} for bad options.
 * @throws {TlsError} `NETWORK_ERROR` when the port cannot be bound; `INVALID_CERTIFICATE`,
 * `INVALID_KEY`, ...
 */
export async function listenDtls(given: DtlsListenOptions): Promise<DtlsListener> {
  if (typeof given !== "object" || given === null) {
    throw new TypeError("options must be an object");
  }
  const options = normalizeOptions("listenDtls", "server", given);
  const raw = options as unknown as Readonly<Record<string, unknown>>;
  refuseTlsOnly("listenDtls()", raw);
  const port = options.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`port must be an integer from 0 to 65535, got ${port}`);
  }
  if (options.hostname !== undefined && typeof options.hostname !== "string") {
    throw new TypeError("hostname must be a string");
  }
  if (options.onError !== undefined && typeof options.onError !== "function") {
    throw new TypeError("onError must be a function");
  }
  const settings: Settings = {
    mtu: checkMtu(options.mtu),
    handshakeTimeout: checkCallOptions(options),
    idleTimeout: options.idleTimeout === undefined
      ? DEFAULT_DTLS_IDLE_TIMEOUT
      : checkIdleTimeout(options.idleTimeout),
    maxConnections: checkMaxConnections(options.maxConnections),
    onError: options.onError,
  };
  const srtpProfiles = checkSrtpProfiles(options.srtpProfiles);
  const split = splitOptions("server", raw);
  const context = dtlsContext("server", split.context as TlsContextOptions, srtpProfiles);
  try {
    installCookieCallbacks(internalsOf(context).ctx());
  } catch (error) {
    context.close();
    throw error;
  }
  let listener: DtlsListener | undefined;
  let socket: UdpSocket;
  try {
    socket = await bindUdp({
      hostname: options.hostname ?? "0.0.0.0",
      port,
      onDatagram: (datagram, from) => listener?.[DELIVER](datagram, from),
    });
  } catch (error) {
    context.close();
    if (error instanceof TlsError) throw error; // PERMISSION_DENIED (Deno), naming the flag
    throw new TlsError(
      "NETWORK_ERROR",
      `cannot listen on UDP ${options.hostname ?? "0.0.0.0"}:${port}: ${messageOf(error)}`,
      { cause: error },
    );
  }
  try {
    listener = new DtlsListener(context, socket, settings);
  } catch (error) {
    socket.close();
    context.close();
    throw error;
  }
  return listener;
}

interface Settings {
  readonly mtu: number;
  readonly handshakeTimeout: number;
  readonly idleTimeout: number;
  readonly maxConnections: number;
  readonly onError: DtlsListenOptions["onError"];
}

const DELIVER: unique symbol = Symbol("deliver");

/**
 * A DTLS server socket (see {@link listenDtls}). Closing it closes every connection it made:
 * they share its UDP socket.
 *
 * @example
 * ```ts
 * import { readFileSync } from "node:fs";
 * import { listenDtls } from "../../mod.ts";
 * const cert = readFileSync("server.pem", "utf8");
 * const key = readFileSync("server.key", "utf8");
 * const server = await listenDtls({ port: 0, cert, key });
 * console.log("listening on", server.addr.port);
 * const conn = await server.accept();
 * console.log(conn.remoteAddr, await conn.receive());
 * server.close();
 * ```
 */
export class DtlsListener {
  #context: TlsContext;
  #socket: UdpSocket;
  #settings: Settings;
  #secret = newCookieSecret();
  /** `DTLSv1_listen`'s out-parameter (filled with nothing from a memory BIO; required). */
  #peerAddr: NativeHandle;
  /** The engine that answers ClientHellos from unknown addresses. */
  #listening: TlsEngine | null = null;
  #sessions = new Map<string, DtlsConnection>();
  /** The client random of the ClientHello that started each session (see the module doc). */
  #randoms = new WeakMap<DtlsConnection, string>();
  #ready: DtlsConnection[] = [];
  #waiters: { resolve(c: DtlsConnection): void; reject(e: unknown): void }[] = [];
  #dropped = 0;
  #closed = false;
  #socketClosed: Promise<void> = Promise.resolve();
  /** Inside `DTLSv1_listen` (user callbacks may run there, e.g. onHandshakeEvent). */
  #inListen = false;

  /** @internal Made by {@link listenDtls}. */
  constructor(context: TlsContext, socket: UdpSocket, settings: Settings) {
    this.#context = context;
    this.#socket = socket;
    this.#settings = settings;
    const o = openssl();
    const addr = o.BIO_ADDR_new();
    if (addr === null) throw new TlsError("INTERNAL", "BIO_ADDR_new failed");
    this.#peerAddr = new NativeHandle("BIO", addr, (p) => o.BIO_ADDR_free(p));
    this.#listening = this.#newListeningEngine();
  }

  #newListeningEngine(): TlsEngine {
    const engine = engineWithCheckedOptions(this.#context, {});
    openssl().SSL_set_mtu(engine.dtlsSsl, this.#settings.mtu);
    return engine;
  }

  /** @internal A datagram arrived on the socket. */
  [DELIVER](datagram: Uint8Array, from: UdpAddr): void {
    if (this.#closed) return;
    const key = addrKey(from);
    const session = this.#sessions.get(key);
    let random: string | null = null;
    if (session !== undefined) {
      random = newClientHelloRandom(datagram);
      if (random === null || random === this.#randoms.get(session)) {
        session.deliver(datagram);
        return;
      }
      // A new ClientHello from the address of a live session: the client restarted.
    } else if (this.#sessions.size >= this.#settings.maxConnections) {
      this.#dropped++;
      return;
    }
    try {
      this.#listen(datagram, from, key, session);
    } catch (error) {
      this.#report(error, from);
    }
  }

  /**
   * Runs `DTLSv1_listen` on one datagram from an address without a session, or on a new
   * ClientHello from the address of `replacing` (ended once the cookie verified).
   */
  #listen(datagram: Uint8Array, from: UdpAddr, key: string, replacing?: DtlsConnection): void {
    const o = openssl();
    this.#listening ??= this.#newListeningEngine();
    const engine = this.#listening;
    engine.receive(datagram);
    clearErrorQueue();
    const ssl = engine.dtlsSsl;
    setCookiePeer(ssl, this.#secret, key);
    let r: number;
    this.#inListen = true; // a close() from a callback in there waits until it returns
    try {
      r = o.DTLSv1_listen(ssl, this.#peerAddr.ptr);
    } finally {
      this.#inListen = false;
    }
    if (this.#closed) {
      forgetCookiePeer(ssl);
      engine.close(); // deferred by close()
      this.#peerAddr.close();
      return;
    }
    // The HelloVerifyRequest, if one was written.
    const out = engine.outgoing();
    if (out !== null) {
      for (const d of packRecords(out, this.#settings.mtu)) this.#socket.send(d, from);
    }
    if (r === 0) return; // a HelloVerifyRequest went out, or the datagram was dropped
    if (r < 0) {
      // Not a datagram DTLSv1_listen could use at all: start over with a fresh engine.
      const queue = drainErrorQueue();
      this.#listening = null;
      forgetCookiePeer(ssl);
      engine.close();
      throw new TlsError("HANDSHAKE_FAILED", "DTLSv1_listen failed", { openssl: queue });
    }
    // The cookie verified: this engine is the client's now (its ClientHello buffered inside).
    this.#listening = null;
    replacing?.abandon(
      new TlsError(
        "UNEXPECTED_EOF",
        "the DTLS client restarted: a new handshake from its address and port replaced this " +
          "association (RFC 6347 4.2.8)",
      ),
    );
    this.#startSession(engine, from, key, newClientHelloRandom(datagram));
    this.#listening = this.#newListeningEngine();
  }

  #startSession(engine: TlsEngine, from: UdpAddr, key: string, random: string | null): void {
    const socket = this.#socket;
    const sessions = this.#sessions;
    const conn: DtlsConnection = new DtlsConnection({
      engine,
      ownedContext: null,
      mtu: this.#settings.mtu,
      idleTimeout: this.#settings.idleTimeout,
      link: {
        send: (d) => socket.send(d, from),
        release: () => {
          if (sessions.get(key) === conn) sessions.delete(key);
        },
        localAddr: socket.localAddr,
        remoteAddr: from,
      },
    });
    sessions.set(key, conn);
    if (random !== null) this.#randoms.set(conn, random);
    const deadline = new Deadline(this.#settings.handshakeTimeout, undefined, "the DTLS handshake");
    const ssl = engine.dtlsSsl;
    conn.handshake(deadline).then(
      () => {
        forgetCookiePeer(ssl);
        this.#established(conn);
      },
      (error) => {
        forgetCookiePeer(ssl);
        this.#report(error, from);
      },
    );
  }

  #established(conn: DtlsConnection): void {
    if (this.#closed) {
      void conn.close();
      return;
    }
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) waiter.resolve(conn);
    else this.#ready.push(conn);
  }

  #report(error: unknown, from: UdpAddr): void {
    if (this.#closed) return;
    const e = error instanceof TlsError
      ? error
      : new TlsError("INTERNAL", messageOf(error), { cause: error });
    this.#settings.onError?.(e, { remoteAddr: from });
  }

  /** The local address the listener is bound to. */
  get addr(): UdpAddr {
    return this.#socket.localAddr;
  }

  /** How many sessions it holds now (handshaking, waiting to be accepted, or open). */
  get connectionCount(): number {
    return this.#sessions.size;
  }

  /** How many ClientHellos were dropped because `maxConnections` was reached. */
  get droppedCount(): number {
    return this.#dropped;
  }

  /**
   * The next client whose handshake completed.
   *
   * @throws {TlsError} `CLOSED` once the listener is closed.
   */
  accept(): Promise<DtlsConnection> {
    const ready = this.#ready.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    if (this.#closed) return Promise.reject(new TlsError("CLOSED", "the DTLS listener is closed"));
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /** Accepts connections until the listener is closed. */
  async *[Symbol.asyncIterator](): AsyncIterator<DtlsConnection> {
    while (!this.#closed || this.#ready.length > 0) {
      try {
        yield await this.accept();
      } catch (error) {
        if (error instanceof TlsError && error.code === "CLOSED") return;
        throw error;
      }
    }
  }

  /** Whether {@link close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Stops listening and closes every connection made by this listener (close_notify to each
   * that completed its handshake), then the UDP socket. Idempotent. Pending {@link accept} calls
   * reject with `CLOSED`. Everything is released at once; the promise resolves once the socket
   * has sent what it was given (the close_notify alerts) and is closed.
   */
  close(): Promise<void> {
    if (this.#closed) return this.#socketClosed;
    this.#closed = true;
    for (const conn of [...this.#sessions.values()]) void conn.close();
    this.#sessions.clear();
    for (const conn of this.#ready.splice(0)) void conn.close();
    if (this.#listening !== null && !this.#inListen) {
      forgetCookiePeer(this.#listening.dtlsSsl);
      this.#listening.close();
      this.#listening = null;
    }
    if (!this.#inListen) this.#peerAddr.close(); // else once DTLSv1_listen returned
    this.#context.close();
    this.#socketClosed = this.#socket.close();
    const error = new TlsError("CLOSED", "the DTLS listener is closed");
    for (const waiter of this.#waiters.splice(0)) waiter.reject(error);
    return this.#socketClosed;
  }

  /** Same as {@link close} (without waiting for the socket). */
  [Symbol.dispose](): void {
    void this.close();
  }

  /** Same as {@link close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
