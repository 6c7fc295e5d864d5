/**
 * `serveHttp()`: runs a `node:http` (or `node:http2`) server over this library's server
 * connections, so that a server with `onServerName`, client-certificate verification, PSK or OCSP
 * stapling serves ordinary HTTP clients.
 *
 * @module
 */
import type { Connection } from "../connection/connection.ts";
import {
  checkSocketOptions,
  type NodeSocketOptions,
  type NodeTlsSocket,
  toNodeSocket,
} from "./node_socket.ts";

/**
 * Anything that takes sockets through a `'connection'` event: `http.Server`,
 * `https.Server`'s plain sibling, `http2.Http2Server` (from `http2.createServer()`), a `ws`
 * server's `http.Server`, ...
 */
export interface ConnectionTarget {
  /** `server.emit("connection", socket)` hands the server a socket. */
  emit(event: "connection", socket: NodeTlsSocket): boolean;
}

/** Picks the server for one connection (e.g. by `conn.alpnProtocol`); `null` closes it. */
export type ConnectionRouter = (conn: Connection) => ConnectionTarget | null;

/** Options for {@link serveHttp}. */
export interface ServeHttpOptions extends NodeSocketOptions {
  /**
   * Called when handing a connection over fails (the router or the server threw; the connection
   * is then closed and serving goes on), and with each socket's `'error'` (e.g. a client that went
   * away without close_notify: `UNEXPECTED_EOF`), which the server itself may no longer listen
   * to. Default: nothing (such errors never crash the process).
   */
  onError?: (error: unknown, conn: Connection) => void;
}

/**
 * Serves every connection of `listener` (a `listen()` listener, or any async iterable of
 * connections) with `server`: each one is wrapped with `toNodeSocket()` and given to the server
 * with `server.emit("connection", socket)`, as `node:net` does. Pass a function to pick the server
 * per connection, e.g. `http2.createServer()` for ALPN `"h2"` and `http.createServer()` for the
 * rest. Resolves when the listener is closed (connections already handed over stay with the
 * server: close them with `server.close()` / `server.closeAllConnections()`).
 *
 * Use the plain `http.createServer()` / `http2.createServer()` (TLS is this library's job), and
 * offer the matching ALPN protocols in `listen()`. `req.socket` is the {@link NodeTlsSocket}:
 * `req.socket.getPeerCertificate()`, `req.socket.servername`, `req.socket.connection` (the
 * {@link Connection}) tell who the client is.
 *
 * @example
 * ```ts
 * import { readFileSync } from "node:fs";
 * import { createServer } from "node:http";
 * import { listen, type NodeTlsSocket, serveHttp } from "../../mod.ts";
 * const cert = readFileSync("server.pem", "utf8");
 * const key = readFileSync("server.key", "utf8");
 * const caPem = readFileSync("ca.pem", "utf8");
 * const server = createServer((req, res) => {
 *   const peer = (req.socket as unknown as NodeTlsSocket).getPeerCertificate();
 *   res.end(`hello ${peer !== null && "subject" in peer ? peer.subject.CN : "stranger"}\n`);
 * });
 * const listener = listen({
 *   port: 8443, cert, key, caCerts: [caPem], requestClientCert: "require", alpnProtocols: ["http/1.1"],
 * });
 * await serveHttp(listener, server);
 * ```
 * @throws {TypeError | RangeError} for a bad `listener`, `server` or options (synchronously).
 */
export function serveHttp(
  listener: AsyncIterable<Connection>,
  server: ConnectionTarget | ConnectionRouter,
  options: ServeHttpOptions = {},
): Promise<void> {
  if (typeof listener?.[Symbol.asyncIterator] !== "function") {
    throw new TypeError("listener must be an async iterable of connections (from listen())");
  }
  if (typeof server !== "function" && typeof (server as ConnectionTarget)?.emit !== "function") {
    throw new TypeError("server must have an emit() method (an http.Server) or be a function");
  }
  if (typeof options !== "object" || options === null) {
    throw new TypeError("options must be an object");
  }
  const { onError, ...socketOptions } = options;
  if (onError !== undefined && typeof onError !== "function") {
    throw new TypeError("onError must be a function");
  }
  checkSocketOptions(socketOptions);
  return serve(listener, server, socketOptions, onError);
}

async function serve(
  listener: AsyncIterable<Connection>,
  server: ConnectionTarget | ConnectionRouter,
  socketOptions: NodeSocketOptions,
  onError: ServeHttpOptions["onError"],
): Promise<void> {
  for await (const conn of listener) {
    try {
      const target = typeof server === "function" ? server(conn) : server;
      if (target === null) {
        conn.close();
        continue;
      }
      const socket = toNodeSocket(conn, socketOptions);
      // Always a listener for the socket's errors (a client's truncation, a reset): the server's
      // own listener may be gone by then (Node.js's http2 removes its listener when the session
      // closes), and an 'error' event nobody listens to would crash the whole process.
      socket.on("error", (error) => onError?.(error, conn));
      target.emit("connection", socket);
    } catch (error) {
      conn.abort(error);
      onError?.(error, conn);
    }
  }
}
