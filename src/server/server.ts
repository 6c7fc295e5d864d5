/**
 * The server side: `listen()` and its {@link TlsListener}, the server options shared with
 * `startTls(transport, { role: "server" })`, and that server role of `startTls` itself.
 *
 * One accept loop takes TCP connections and starts each handshake at once, without waiting for
 * it: a slow, silent or failing client never holds up the others. Finished handshakes queue for
 * `accept()` / `for await`; failed ones go to `onError` and are gone.
 *
 * @module
 */
import { abortedError, Deadline } from "../core/deadline.ts";
import { TlsError } from "../core/errors.ts";
import { unrefTimer } from "../core/timers.ts";
import { messageOf, reportUncaught } from "../core/values.ts";
import type { ServerFeatureOptions } from "../handshake/features.ts";
import { stripBrackets } from "../net/address.ts";
import type { ByteStream, NetAddr, TcpListener } from "../net/stream.ts";
import { listenTcp } from "../net/tcp.ts";
import { webByteStream, type WebTransport } from "../net/web_stream.ts";
import { AWAITING_CLIENT_HELLO, Connection } from "../connection/connection.ts";
import { type ListenerContextOptions, replacementContext } from "./listener_context.ts";
import { TlsContext, type TlsContextOptions } from "../tls/context.ts";
import { contextFor } from "../tls/context_cache.ts";
import { TlsEngine } from "../tls/engine.ts";
import type { OptionAliases } from "../tls/option_names.ts";
import {
  checkCallOptions,
  checkIdleTimeout,
  DEFAULT_HANDSHAKE_TIMEOUT,
  normalizeOptions,
  splitOptions,
} from "../tls/options.ts";

/** The default for {@link TlsServerOptions.handshakeTimeout}: 30 seconds. */
export const DEFAULT_SERVER_HANDSHAKE_TIMEOUT: number = DEFAULT_HANDSHAKE_TIMEOUT;

/**
 * A pending connection is only shed once it has been silent this long (ms): a real client's
 * ClientHello follows its TCP handshake within a round trip.
 */
const SHED_GRACE_MS = 1_000;
/** The default for {@link ListenOptions.clientHelloTimeout}: 10 seconds. */
export const DEFAULT_CLIENT_HELLO_TIMEOUT = 10_000;
/** The default for {@link ListenOptions.maxPendingConnections}. */
export const DEFAULT_MAX_PENDING_CONNECTIONS = 1024;

/**
 * TLS options of a server: shared by {@link listen} and `startTls(..., { role: "server" })`: the
 * server options of every handshake feature (each documented in its feature's interface) plus
 * the call's own. `cert` and `key` are required (or `psk`, or a `context`); `caCerts` are the
 * CAs whose client certificates are accepted with `requestClientCert`; `onVerifyCertificate` is
 * synchronous on servers.
 */
export interface TlsServerOptions extends ServerFeatureOptions<TlsContext>, OptionAliases {
  /**
   * Milliseconds a client has to complete its handshake. Default 30,000. `Infinity`: no limit
   * (a client that connects and sends nothing then holds its slot until it disconnects).
   */
  handshakeTimeout?: number;
  /**
   * After the handshake, milliseconds without a byte in either direction after which a
   * connection closes itself (close_notify), so that a client cannot hold a connection open
   * for ever. Default: no limit (also `0` or `Infinity`); a server exposed to the Internet
   * should set one (e.g. `120_000`). Changeable per connection with `conn.setIdleTimeout()`.
   */
  idleTimeout?: number;
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
   * TlsListener.accept} at once. Default 1,024. When it is reached, the oldest silent connection
   * is shed (see {@link ListenOptions.clientHelloTimeout}); without one, new TCP connections wait
   * in the kernel's backlog on Deno, and on Bun and Node.js wait in a queue of the same size and
   * beyond that are closed (`Bun.listen` and node:net cannot pause accepting).
   */
  maxPendingConnections?: number;
  /**
   * How many of those may come from one client address (IP) at once. Default: a quarter of
   * `maxPendingConnections` (256 of the default 1,024), so that one address cannot fill the
   * listener while clients behind one NAT can still arrive in bursts. Together with shedding
   * (below): a connection beyond it closes that address's oldest silent one, or, when there is
   * none, is refused (`onError`: `HANDSHAKE_FAILED`).
   */
  maxPendingPerAddress?: number;
  /**
   * Milliseconds a new connection may take to send its complete ClientHello, within
   * `handshakeTimeout`. Default 10,000. A client that connects and sends nothing (or trickles
   * bytes) is closed then, and reported to `onError` as `TIMEOUT`.
   *
   * When the listener is full (`maxPendingConnections`, or `maxPendingPerAddress` for that
   * address), the oldest connection that has not sent its ClientHello yet (and has been silent
   * for at least a second) is closed to make room
   * (`onError`: `TIMEOUT`, "shed"), rather than the new client waiting or being refused; only
   * when every pending connection is past its ClientHello does a new one wait (Deno: in the
   * kernel's backlog) or get closed (Bun, Node.js: they cannot pause accepting).
   */
  clientHelloTimeout?: number;
  /** Closes the listener when aborted. */
  signal?: AbortSignal;
}

/** What {@link ListenOptions.onError} is told besides the error. */
export interface ListenerErrorInfo {
  /** The client's address, when the failure belongs to one client. */
  readonly remoteAddr: NetAddr | null;
}

/** Options for `startTls()` as a server (STARTTLS servers: SMTP, IMAP, XMPP, ...). */
export interface StartTlsServerOptions extends TlsServerOptions {
  /** Run the server side of the handshake. */
  role: "server";
  /** Aborts the handshake or later I/O: pending operations reject with `ABORTED`. */
  signal?: AbortSignal;
}

/** A server's context, validated before any I/O. */
interface PreparedServer {
  readonly context: TlsContext;
  readonly owned: boolean;
  readonly timeout: number;
  /** `idleTimeout`, checked: 0 = no limit. */
  readonly idleTimeout: number;
}

/**
 * Validates server `options` once (their keys were checked by `normalizeOptions`) and finds the
 * context (given, shared, or new and owned).
 */
function prepareServer(options: TlsServerOptions, share: boolean): PreparedServer {
  const timeout = checkCallOptions({ handshakeTimeout: options.handshakeTimeout });
  const idleTimeout = checkIdleTimeout(options.idleTimeout);
  if (options.context !== undefined) {
    if (!(options.context instanceof TlsContext) || options.context.role !== "server") {
      throw new TypeError("context must be a server TlsContext");
    }
  }
  const { context: contextOptions } = splitOptions("server", options as Record<string, unknown>);
  if (options.context !== undefined) {
    return { context: options.context, owned: false, timeout, idleTimeout };
  }
  if (
    (options.cert === undefined || options.key === undefined) && options.pfx === undefined &&
    options.psk === undefined
  ) {
    throw new TypeError("a server needs cert and key (or pfx, or psk, or a server context)");
  }
  if (!share) {
    return {
      context: new TlsContext("server", contextOptions as TlsContextOptions),
      owned: true,
      timeout,
      idleTimeout,
    };
  }
  return { ...contextFor("server", contextOptions as TlsContextOptions), timeout, idleTimeout };
}

function asTlsError(error: unknown, what: string): TlsError {
  if (error instanceof TlsError) return error;
  return new TlsError("NETWORK_ERROR", `${what}: ${messageOf(error)}`, { cause: error });
}

/**
 * Runs the server side of a handshake over `stream`. Takes ownership of `stream` and `deadline`
 * (and of `ownedContext`, when given): on failure all of them are closed.
 */
function acceptOn<A extends NetAddr | null>(
  stream: ByteStream<A>,
  context: TlsContext,
  deadline: Deadline,
  ownedContext: TlsContext | null,
): Connection<A> {
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

/**
 * `startTls(transport, { role: "server", ... })`: the server side of a handshake over an existing
 * byte stream. Resolves once the handshake is done; the transport belongs to the connection.
 */
export async function startTlsServer(
  transport: WebTransport,
  given: StartTlsServerOptions,
): Promise<Connection<NetAddr | null>> {
  const stream = webByteStream(transport);
  let prepared: PreparedServer;
  let options: StartTlsServerOptions;
  try {
    options = normalizeOptions("startTlsServer", "server", given);
    if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) {
      throw new TypeError("signal must be an AbortSignal");
    }
    if (options.signal?.aborted) throw abortedError(options.signal);
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
  if (prepared.idleTimeout > 0) conn.setIdleTimeout(prepared.idleTimeout); // from the handshake on
  await conn.handshake(); // closes everything itself on failure
  return conn;
}

/**
 * A TLS server socket: an async iterable of handshaken {@link Connection}s. Made by
 * {@link listen}.
 *
 * @example
 * ```ts
 * import { readFileSync } from "node:fs";
 * import { listen } from "../../mod.ts";
 * const cert = readFileSync("server.pem", "utf8");
 * const key = readFileSync("server.key", "utf8");
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
export class TlsListener implements AsyncIterable<Connection<NetAddr>> {
  #tcp: TcpListener;
  #context: TlsContext;
  #ownsContext: boolean;
  #timeout: number;
  #idleTimeout: number;
  #maxPending: number;
  #maxPerAddress: number;
  #helloTimeout: number;
  /** Pending handshakes per client address. */
  #perAddress = new Map<string, number>();
  /** Why a handshake was ended by the listener itself (reported instead of its CLOSED). */
  #shed = new WeakMap<Connection<NetAddr>, TlsError>();
  #sweeper: ReturnType<typeof setTimeout> | undefined = undefined;
  #onError: ListenOptions["onError"];
  #signal: AbortSignal | undefined;
  #onAbort = () => this.close();
  /** Handshakes in progress (in the order they started), with when and from where. */
  #handshaking = new Map<Connection<NetAddr>, { since: number; host: string }>();
  /** Handshaken, waiting for accept(). */
  #ready: Connection<NetAddr>[] = [];
  #waiters: { resolve: (c: Connection<NetAddr>) => void; reject: (e: unknown) => void }[] = [];
  #slotFreed: (() => void) | null = null;
  #fatal: TlsError | null = null;
  #closed = false;
  #loop: Promise<void>;

  /** @internal Use {@link listen}. */
  constructor(
    tcp: TcpListener,
    prepared: { context: TlsContext; owned: boolean; timeout: number; idleTimeout: number },
    options: ListenOptions,
  ) {
    this.#tcp = tcp;
    this.#context = prepared.context;
    this.#ownsContext = prepared.owned;
    this.#timeout = prepared.timeout;
    this.#idleTimeout = prepared.idleTimeout;
    this.#maxPending = options.maxPendingConnections ?? DEFAULT_MAX_PENDING_CONNECTIONS;
    this.#maxPerAddress = options.maxPendingPerAddress ??
      Math.max(1, Math.floor(this.#maxPending / 4));
    this.#helloTimeout = options.clientHelloTimeout ?? DEFAULT_CLIENT_HELLO_TIMEOUT;
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
   * import { readFileSync } from "node:fs";
   * import { listen } from "../../mod.ts";
   * const cert = readFileSync("server.pem", "utf8");
   * const key = readFileSync("server.key", "utf8");
   * await using server = listen({ port: 8443, cert, key });
   * server.rotateTicketKeys(); // fresh random key; pass 80 bytes to set one
   * ```
   * @throws {TypeError | RangeError} as {@link TlsContext.rotateTicketKeys}.
   */
  rotateTicketKeys(keys?: Uint8Array): void {
    this.#context.rotateTicketKeys(keys);
  }

  // ---- replacing the context (listener_context.ts) ------------------------------------------------

  /**
   * Replaces this listener's identity, trust and TLS options without a restart (e.g. a renewed
   * certificate): handshakes that start afterwards use `contextOrOptions`, a server
   * {@link TlsContext} (used as it is; the caller keeps owning it) or the TLS options of
   * {@link listen} (`cert`, `key`, `caCerts`, `requestClientCert`, ...; a context is made from
   * them, owned by the listener). Connections already open, and handshakes already started, keep
   * the context they began with; the replaced context, when the listener made it, is released
   * now and freed by OpenSSL once no connection uses it. Session tickets sealed by the old
   * context's key do not resume on the new one (unless both have the same `ticketKeys`).
   * Options that belong to the listener (`port`, `hostname`, timeouts, `onError`, limits,
   * `signal`) are refused. On any error nothing changes.
   *
   * @example
   * ```ts
   * import { readFileSync } from "node:fs";
   * import { listen } from "../../mod.ts";
   * const server = listen({
   *   port: 8443,
   *   cert: readFileSync("chain.pem", "utf8"),
   *   key: readFileSync("server.key", "utf8"),
   * });
   * // Later, once the certificate was renewed:
   * server.setContext({
   *   cert: readFileSync("chain.pem", "utf8"),
   *   key: readFileSync("server.key", "utf8"),
   * });
   * server.close();
   * ```
   * @throws {TypeError | RangeError} for listener options, bad options, a client or closed
   * context; {@link TlsError} `INVALID_CERTIFICATE`, `INVALID_KEY`, `BAD_PASSPHRASE`; `CLOSED`
   * once the listener is closed.
   */
  setContext(contextOrOptions: TlsContext | ListenerContextOptions): void {
    if (this.#closed) throw new TlsError("CLOSED", "the listener is closed");
    const next = replacementContext(contextOrOptions);
    const previous = this.#context;
    const ownedPrevious = this.#ownsContext;
    this.#context = next.context;
    this.#ownsContext = next.owned;
    if (ownedPrevious && previous !== next.context) previous.close();
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
      reportUncaught(thrown);
    }
  }

  async #acceptLoop(): Promise<void> {
    while (!this.#closed) {
      if (this.#handshaking.size + this.#ready.length >= this.#maxPending) {
        // Full: make room by closing the oldest connection still without a ClientHello, if any.
        if (this.#shedOldestSilent(null, "maxPendingConnections")) continue;
        // Else wait for a slot, and look again once the youngest silent ones may be shed.
        await new Promise<void>((resolve) => {
          this.#slotFreed = resolve;
          unrefTimer(setTimeout(resolve, SHED_GRACE_MS));
        });
        continue;
      }
      let stream: ByteStream<NetAddr | null> | null;
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
          // The port was never bound (Node.js binds a host name a tick after listen()): nothing
          // to retry.
          this.#fail(asTlsError(error, "the listener could not bind its port"));
          break;
        }
        this.#report(error, null);
        // Only an exhausted process (no file descriptors, no buffers, no memory) is helped by
        // waiting. Anything else concerns one connection (a client that reset before we
        // accepted it: ENOTCONN / ECONNABORTED) and costs nothing: backing off for those let a
        // burst of resets stall every real client for seconds.
        if (isResourceExhaustion(error)) await new Promise((resolve) => setTimeout(resolve, 100));
        continue;
      }
      if (stream === null) break;
      this.#start(stream);
    }
  }

  #start(accepted: ByteStream<NetAddr | null>): void {
    if (this.#closed) {
      accepted.close();
      return;
    }
    // A listener's streams have both addresses or neither; the local one is not read here (the
    // epoll transport decodes it only when asked for).
    if (accepted.remoteAddr === null) {
      accepted.close();
      this.#report(
        new TlsError(
          "UNEXPECTED_EOF",
          "a client reset its connection before its handshake began (its address is unknown)",
        ),
        null,
      );
      return;
    }
    const stream = accepted as ByteStream<NetAddr>;
    const remoteAddr = stream.remoteAddr;
    const host = remoteAddr.hostname;
    if (
      (this.#perAddress.get(host) ?? 0) >= this.#maxPerAddress &&
      !this.#shedOldestSilent(host, "maxPendingPerAddress")
    ) {
      stream.close();
      this.#report(
        new TlsError(
          "HANDSHAKE_FAILED",
          `refused a connection from ${host}: ${this.#maxPerAddress} handshakes from that ` +
            "address are already in progress (maxPendingPerAddress)",
        ),
        remoteAddr,
      );
      return;
    }
    let conn: Connection<NetAddr>;
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
    if (this.#idleTimeout > 0) conn.setIdleTimeout(this.#idleTimeout); // from the handshake on
    this.#handshaking.set(conn, { since: performance.now(), host });
    this.#perAddress.set(host, (this.#perAddress.get(host) ?? 0) + 1);
    this.#scheduleSweep();
    conn.handshake().then(
      () => {
        this.#forget(conn, host);
        this.#deliver(conn);
      },
      (error) => {
        this.#forget(conn, host);
        this.#freeSlot();
        // A listener closing under a handshake is not the client's failure.
        if (!this.#closed) this.#report(this.#shed.get(conn) ?? error, remoteAddr);
      },
    );
  }

  /** A handshake ended (done or failed): it no longer counts for its address. */
  #forget(conn: Connection<NetAddr>, host: string): void {
    if (!this.#handshaking.delete(conn)) return;
    const left = (this.#perAddress.get(host) ?? 1) - 1;
    if (left <= 0) this.#perAddress.delete(host);
    else this.#perAddress.set(host, left);
  }

  /**
   * Closes the oldest handshaking connection (from `host`, or from anyone) that has not sent its
   * complete ClientHello; whether there was one. The Map iterates in insertion order: oldest
   * first.
   */
  #shedOldestSilent(host: string | null, bound: string): boolean {
    const now = performance.now();
    for (const [conn, entry] of this.#handshaking) {
      // Younger than the grace period: perhaps a real client whose ClientHello is on its way.
      // Oldest first, so every later one is younger still.
      if (now - entry.since < SHED_GRACE_MS) return false;
      if ((host !== null && entry.host !== host) || !conn[AWAITING_CLIENT_HELLO]()) continue;
      this.#end(
        conn,
        `shed: the oldest connection from ${entry.host} without a complete ClientHello was ` +
          `closed to make room for a new one (${bound})`,
      );
      return true;
    }
    return false;
  }

  /** Ends a handshake for the listener's own reason, reported as `TIMEOUT`. */
  #end(conn: Connection<NetAddr>, why: string): void {
    this.#shed.set(conn, new TlsError("TIMEOUT", why));
    conn.abort();
    // Count it gone now (its handshake rejects a tick later): the room is needed now.
    const entry = this.#handshaking.get(conn);
    if (entry !== undefined) this.#forget(conn, entry.host);
  }

  /**
   * One timer for all pending handshakes, not one each: closes those older than
   * clientHelloTimeout that still have not sent a complete ClientHello.
   */
  #scheduleSweep(): void {
    if (this.#sweeper !== undefined || this.#closed || this.#handshaking.size === 0) return;
    const every = Math.max(50, Math.min(this.#helloTimeout / 4, 1_000));
    this.#sweeper = unrefTimer(setTimeout(() => {
      this.#sweeper = undefined;
      const now = performance.now();
      for (const [conn, entry] of [...this.#handshaking]) {
        if (now - entry.since < this.#helloTimeout) break; // the rest are younger
        if (!conn[AWAITING_CLIENT_HELLO]()) continue;
        this.#end(
          conn,
          `no complete ClientHello from ${entry.host} within ${this.#helloTimeout} ms ` +
            "(clientHelloTimeout)",
        );
      }
      this.#scheduleSweep();
    }, every));
  }

  #freeSlot(): void {
    const s = this.#slotFreed;
    this.#slotFreed = null;
    s?.();
  }

  #deliver(conn: Connection<NetAddr>): void {
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
  accept(): Promise<Connection<NetAddr>> {
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
  async *[Symbol.asyncIterator](): AsyncIterator<Connection<NetAddr>> {
    for (;;) {
      let conn: Connection<NetAddr>;
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
    clearTimeout(this.#sweeper);
    this.#sweeper = undefined;
    for (const conn of this.#handshaking.keys()) conn.close();
    this.#handshaking.clear();
    this.#perAddress.clear();
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
 * (except on Node.js for a host name rather than an IP address: then a bind failure surfaces
 * from `addr` and the first `accept()`). Each client's handshake
 * is run by the listener; iterate it (or call `accept()`) for the connections that completed.
 *
 * Secure by default: TLS 1.2 minimum; with `requestClientCert` clients are verified against
 * `caCerts`.
 *
 * @example
 * ```ts
 * import { readFileSync } from "node:fs";
 * import { listen } from "../../mod.ts";
 * const cert = readFileSync("server.pem", "utf8"); // leaf, then its chain
 * const key = readFileSync("server.key", "utf8");
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
export function listen(given: ListenOptions): TlsListener {
  if (typeof given !== "object" || given === null) {
    throw new TypeError("options must be an object");
  }
  const options = normalizeOptions("listen", "server", given);
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
  const perAddress = options.maxPendingPerAddress;
  if (perAddress !== undefined && (!Number.isInteger(perAddress) || perAddress < 1)) {
    throw new RangeError("maxPendingPerAddress must be a positive integer");
  }
  const hello = options.clientHelloTimeout;
  if (hello !== undefined && (typeof hello !== "number" || Number.isNaN(hello) || hello <= 0)) {
    throw new RangeError("clientHelloTimeout must be a positive number of milliseconds");
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
      hostname: stripBrackets(hostname),
      port,
      maxQueued: maxPendingConnections ?? DEFAULT_MAX_PENDING_CONNECTIONS,
    });
  } catch (error) {
    if (prepared.owned) prepared.context.close();
    throw asTlsError(error, `cannot listen on ${hostname}:${port}`);
  }
  return new TlsListener(tcp, prepared, options);
}

/** errno names (and Linux numbers, as Deno's messages give them) that mean "out of resources". */
const EXHAUSTION = /\b(EMFILE|ENFILE|ENOBUFS|ENOMEM)\b|\(os error (24|23|105|12)\)/;

/**
 * Whether an `accept()` failure means the process (or system) is out of resources, as opposed to
 * a failure of the one connection being accepted. node:net errors carry `code`; Deno's carry it
 * too for most errno values, and otherwise name the errno number in the message.
 */
function isResourceExhaustion(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string" && EXHAUSTION.test(code)) return true;
  return error instanceof Error && EXHAUSTION.test(error.message);
}
