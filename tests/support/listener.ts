/**
 * Our own server in tests: option sets for `listen()` and `connect()` on 127.0.0.1 with the
 * shared test PKI, polling for a condition, and an echo listener that records what it saw of
 * each client and collects the errors given to `onError`.
 *
 * @example
 * ```ts
 * import { localClientOptions, withEchoServer } from "./listener.ts";
 * import { connect } from "../../mod.ts";
 * await withEchoServer({}, (conn) => ({ protocol: conn.protocol }), async (server) => {
 *   await using conn = await connect(localClientOptions(server.port));
 *   await conn.write(new TextEncoder().encode("ping\n"));
 *   await server.waitForSeen(1);
 *   console.log(server.seen[0]!.protocol, server.seen[0]!.received); // TLSv1.3 ping\n
 * });
 * ```
 * @module
 */
import assert from "node:assert/strict";
import {
  type Connection,
  type ConnectOptions,
  listen,
  type ListenOptions,
  TlsError,
  type TlsErrorCode,
} from "../../mod.ts";
import { sharedTestPki } from "./pki.ts";
import { stopAllClients } from "./clients.ts";
import { clearCacheAndAssertNoLeaks } from "./leaks.ts";

/**
 * Client options for our server on 127.0.0.1: SNI `localhost`, trusting only the shared test
 * root, a 5 s handshake timeout; `extra` overrides any of them.
 *
 * @example
 * ```ts
 * import { localClientOptions } from "./listener.ts";
 * import { connect } from "../../mod.ts";
 * const port = 8443;
 * const conn = await connect(localClientOptions(port, { alpnProtocols: ["h2"] }));
 * conn.close();
 * ```
 */
export function localClientOptions(
  port: number,
  extra: Partial<ConnectOptions> = {},
): ConnectOptions {
  return {
    hostname: "127.0.0.1",
    servername: "localhost",
    port,
    caCerts: [sharedTestPki().rootCa.cert],
    handshakeTimeout: 5_000,
    ...extra,
  };
}

/**
 * Listener options on 127.0.0.1, port 0, serving the shared test PKI's server leaf with its
 * intermediate; `extra` overrides any of them.
 *
 * @example
 * ```ts
 * import { localServerOptions } from "./listener.ts";
 * import { listen } from "../../mod.ts";
 * const listener = listen(localServerOptions({ alpnProtocols: ["h2"] }));
 * console.log(listener.addr.port);
 * listener.close();
 * ```
 */
export function localServerOptions(extra: Partial<ListenOptions> = {}): ListenOptions {
  const pki = sharedTestPki();
  return {
    hostname: "127.0.0.1",
    port: 0,
    cert: pki.server.chainPem,
    key: pki.server.key,
    ...extra,
  };
}

/**
 * Resolves once `check()` is true, polling every 10 ms; rejects after `ms` (default 5,000) with
 * `what` in the message.
 *
 * @example
 * ```ts
 * import { until } from "./listener.ts";
 * const errors: Error[] = [];
 * setTimeout(() => errors.push(new Error("late")), 50);
 * await until("1 error", () => errors.length >= 1);
 * ```
 */
export async function until(what: string, check: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise<void>((r) => setTimeout(r, 10));
  }
}

/**
 * What {@link withEchoServer} records of one accepted client: the fields `describe` picked when
 * the handshake completed, and the line it sent.
 *
 * @example
 * ```ts
 * import type { Seen } from "./listener.ts";
 * const seen: Seen<{ protocol: string }> = { protocol: "TLSv1.3", received: "ping\n" };
 * console.log(seen);
 * ```
 */
export type Seen<T> = T & {
  /** What the client sent: one line, or everything up to its EOF. */
  received: string;
};

/**
 * The server that {@link withEchoServer} hands to its body.
 *
 * @example
 * ```ts
 * import { type EchoServer, withEchoServer } from "./listener.ts";
 * await withEchoServer({}, () => ({}), async (server: EchoServer<object>) => {
 *   await server.waitForErrors(0);
 *   console.log(server.port, server.seen.length, server.errors.length);
 * });
 * ```
 */
export interface EchoServer<T> {
  port: number;
  /** One entry per completed handshake, in accept order (filled in as the echo completes). */
  seen: Seen<T>[];
  /** Every TlsError given to onError. */
  errors: TlsError[];
  /** Resolves once `errors` has at least `n` entries; rejects after `ms` (default 5,000). */
  waitForErrors(n: number, ms?: number): Promise<void>;
  /** Resolves once `seen` has at least `n` entries; rejects after `ms` (default 5,000). */
  waitForSeen(n: number, ms?: number): Promise<void>;
}

/** Reads one line (or until EOF) and answers `echo:<line>`, close_notify, close. */
async function echoOnce<T>(conn: Connection, entry: Seen<T>, seen: Seen<T>[]): Promise<void> {
  try {
    const buf = new Uint8Array(4096);
    const decoder = new TextDecoder();
    while (!entry.received.includes("\n")) {
      const n = await conn.read(buf);
      if (n === null) break;
      entry.received += decoder.decode(buf.subarray(0, n), { stream: true });
    }
    await conn.write(new TextEncoder().encode(`echo:${entry.received}`));
    await conn.closeWrite();
  } catch {
    // A client that went away mid-echo: the test's own assertions say whether that is expected.
  } finally {
    conn.close();
    seen.push(entry);
  }
}

/**
 * Runs `body` against an echo server from {@link localServerOptions} (10 s handshake timeout,
 * then `options`): each client sends one line and gets `echo:<line>`, a close_notify and a
 * close. `describe` picks what to record of each connection; every `onError` argument must be a
 * TlsError and is collected. Afterwards it closes the listener, waits for every echo, kills every
 * client child ({@link stopAllClients}), clears the context cache and checks for leaks.
 *
 * @example
 * ```ts
 * import { withEchoServer } from "./listener.ts";
 * import { opensslClient } from "./clients.ts";
 * import { sharedTestPki } from "./pki.ts";
 * await withEchoServer({}, (conn) => ({ cipher: conn.cipher }), async (server) => {
 *   const client = opensslClient({ port: server.port, caFile: sharedTestPki().rootCaPath, input: "hi\n" });
 *   console.log((await client.result).stdout.includes("echo:hi"));
 *   await server.waitForSeen(1);
 * });
 * ```
 */
export async function withEchoServer<T>(
  options: Partial<ListenOptions>,
  describe: (conn: Connection) => T,
  body: (server: EchoServer<T>) => Promise<void>,
): Promise<void> {
  const errors: TlsError[] = [];
  const seen: Seen<T>[] = [];
  const listener = listen(localServerOptions({
    handshakeTimeout: 10_000,
    ...options,
    onError: (error) => {
      assert.ok(error instanceof TlsError, `onError got a TlsError: ${String(error)}`);
      errors.push(error);
    },
  }));
  const tasks: Promise<void>[] = [];
  const loop = (async () => {
    for await (const conn of listener) {
      tasks.push(echoOnce(conn, { ...describe(conn), received: "" }, seen));
    }
  })();
  try {
    await body({
      port: listener.addr.port,
      seen,
      errors,
      waitForErrors: (n, ms = 5_000) => until(`${n} onError call(s)`, () => errors.length >= n, ms),
      waitForSeen: (n, ms = 5_000) => until(`${n} accepted client(s)`, () => seen.length >= n, ms),
    });
  } finally {
    await listener[Symbol.asyncDispose]();
    await loop;
    await Promise.allSettled(tasks);
    await stopAllClients();
  }
  clearCacheAndAssertNoLeaks();
}

/**
 * Expects `promise` (a `connect()` or `accept()`) to reject with a TlsError of `code` whose
 * message matches `message` when given, and returns that error. A connection that succeeds
 * instead is closed and fails the test; `summarize` adds what it negotiated to that failure.
 *
 * @example
 * ```ts
 * import { localClientOptions, rejectsWithTlsError } from "./listener.ts";
 * import { connect } from "../../mod.ts";
 * const error = await rejectsWithTlsError(
 *   connect(localClientOptions(1, { handshakeTimeout: 1_000 })),
 *   "CONNECT_FAILED",
 * );
 * console.log(error.message);
 * ```
 */
export async function rejectsWithTlsError(
  promise: Promise<Connection>,
  code: TlsErrorCode,
  message?: RegExp,
  summarize?: (conn: Connection) => string,
): Promise<TlsError> {
  let conn: Connection;
  try {
    conn = await promise;
  } catch (error) {
    assert.ok(error instanceof TlsError, `not a TlsError: ${String(error)}`);
    assert.equal(error.code, code, `${error.code}: ${error.message}`);
    if (message !== undefined) assert.match(error.message, message);
    return error;
  }
  const summary = summarize === undefined ? "" : ` (${summarize(conn)})`;
  conn.close();
  assert.fail(`expected ${code}, but the handshake succeeded${summary}`);
}
