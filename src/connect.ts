/**
 * `connect()`: verified TLS client connections over TCP; and the client side shared with
 * `startTls()` (options, preparation, the handshake over any byte stream).
 *
 * @module
 */
import { abortedError, Deadline } from "./core/deadline.ts";
import { TlsError } from "./core/errors.ts";
import { messageOf } from "./core/values.ts";
import type { ClientFeatureOptions } from "./handshake/features.ts";
import { isIpAddress, stripBrackets } from "./net/address.ts";
import type { ByteStream, NetAddr } from "./net/stream.ts";
import { connectTcp } from "./net/tcp.ts";
import { Connection } from "./connection/connection.ts";
import type { TlsContext, TlsContextOptions } from "./tls/context.ts";
import { contextFor } from "./tls/context_cache.ts";
import type { OptionAliases } from "./tls/option_names.ts";
import { checkConnectionOptions, engineWithCheckedOptions } from "./tls/engine.ts";
import type { TlsEngine, TlsEngineOptions } from "./tls/engine.ts";
import {
  checkCallOptions,
  checkIdleTimeout,
  normalizeOptions,
  splitOptions,
} from "./tls/options.ts";

export { DEFAULT_HANDSHAKE_TIMEOUT } from "./tls/options.ts";

/**
 * TLS options of a client, shared by {@link connect} and `startTls()`: the client options of
 * every handshake feature (each documented in its feature's interface) plus the call's own.
 */
export interface TlsClientOptions extends ClientFeatureOptions, OptionAliases {
  /** Aborts connecting, the handshake, or later I/O: pending operations reject with `ABORTED`. */
  signal?: AbortSignal;
  /** Milliseconds allowed for TCP connect plus handshake. Default 30,000. `Infinity`: no limit. */
  handshakeTimeout?: number;
  /**
   * After the handshake, milliseconds without a byte in either direction after which the
   * connection closes itself (close_notify); pending and later reads and writes then reject
   * with `TIMEOUT`. Default: no limit (also `0` or `Infinity`). Changeable per connection with
   * `conn.setIdleTimeout()`.
   */
  idleTimeout?: number;
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

/** A client's context and per-connection options, validated before any I/O. */
export interface PreparedClient {
  readonly context: TlsContext;
  /** Whether the connection owns (and closes) the context. */
  readonly owned: boolean;
  readonly engineOptions: TlsEngineOptions;
  /** `idleTimeout`, checked: 0 = no limit. */
  readonly idleTimeout: number;
}

/**
 * Validates client `options` once (context and connection options; the keys were checked by
 * {@link normalizeOptions}) and finds the context:
 * the given one, a shared one, or a new one the connection owns (options holding callbacks).
 * `defaultServername` is used when `servername` is absent.
 */
export function prepareClient(
  options: TlsClientOptions,
  defaultServername: string | undefined,
): PreparedClient {
  const idleTimeout = checkIdleTimeout(options.idleTimeout);
  const split = splitOptions("client", options as Record<string, unknown>);
  const engineOptions = split.connection as TlsEngineOptions;
  const servername = options.servername ?? defaultServername;
  if (servername !== undefined) engineOptions.servername = servername;
  if (options.context !== undefined) {
    if (options.context.role !== "client") throw new TypeError("context must be a client context");
    checkConnectionOptions("client", options.context.options as never, engineOptions as never);
    return { context: options.context, owned: false, engineOptions, idleTimeout };
  }
  // Everything is validated before any I/O: the engine itself is made after the TCP connect.
  const contextOptions = split.context as TlsContextOptions;
  checkConnectionOptions("client", contextOptions as never, engineOptions as never);
  return { ...contextFor("client", contextOptions), engineOptions, idleTimeout };
}

/**
 * Runs TLS over `stream` and resolves once the handshake is done. Takes ownership of `stream`,
 * `deadline` and (when `prepared.owned`) the context: on failure all of them are closed.
 */
export async function establish<A extends NetAddr | null>(
  stream: ByteStream<A>,
  prepared: PreparedClient,
  deadline: Deadline,
): Promise<Connection<A>> {
  let engine: TlsEngine;
  try {
    engine = engineWithCheckedOptions(prepared.context, prepared.engineOptions);
  } catch (error) {
    stream.close();
    deadline.dispose();
    if (prepared.owned) prepared.context.close();
    throw error;
  }
  const conn = new Connection(engine, stream, deadline, prepared.owned ? prepared.context : null);
  if (prepared.idleTimeout > 0) conn.setIdleTimeout(prepared.idleTimeout); // from the handshake on
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
 * import { readFileSync } from "node:fs";
 * import { connect } from "../mod.ts";
 * const caPem = readFileSync("ca.pem", "utf8");
 * await using conn = await connect({ hostname: "localhost", port: 8443, caCerts: [caPem] });
 * console.log(conn.protocol, conn.cipher, conn.peerCertificate?.subject);
 * ```
 * @throws {TypeError | RangeError} for bad options.
 * @throws {TlsError} `CERT_VERIFY_FAILED`, `HANDSHAKE_FAILED`, `ALERT_RECEIVED`, `NETWORK_ERROR`,
 * `TIMEOUT`, `ABORTED`, `UNEXPECTED_EOF`, `CALLBACK_ERROR`, ...
 */
export async function connect(given: ConnectOptions): Promise<Connection<NetAddr>> {
  if (typeof given !== "object" || given === null) {
    throw new TypeError("options must be an object");
  }
  const options = normalizeOptions("connect", "client", given);
  const { hostname, port } = options;
  if (typeof hostname !== "string" || hostname === "") {
    throw new TypeError("hostname must be a non-empty string");
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RangeError(`port must be an integer from 1 to 65535, got ${port}`);
  }
  const host = stripBrackets(hostname);
  const timeout = checkCallOptions(options);
  const signal = options.signal;
  if (signal?.aborted) throw abortedError(signal);
  const prepared = prepareClient(options, isIpAddress(host) ? host : host.toLowerCase());

  // One deadline for TCP connect and handshake, handed to the connection once it exists.
  const deadline = new Deadline(timeout, signal);
  const pending = connectTcp({ hostname: host, port });
  let stream: ByteStream<NetAddr>;
  try {
    stream = await deadline.race(pending);
  } catch (error) {
    // A connect that completes after the timeout must not leak its socket.
    pending.then((s) => s.close(), () => {});
    deadline.dispose();
    if (prepared.owned) prepared.context.close();
    if (error instanceof TlsError) throw error;
    throw new TlsError(
      "NETWORK_ERROR",
      `cannot connect to ${hostname}:${port}: ${messageOf(error)}`,
      { cause: error },
    );
  }
  return establish(stream, prepared, deadline);
}
