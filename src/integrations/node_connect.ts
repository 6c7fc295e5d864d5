/**
 * `nodeConnect()`: `connect()` with the calling convention of Node's `tls.connect`: a socket at
 * once, connected in the background, for APIs that take a `createConnection` function (`ws`,
 * `http.Agent`, MQTT.js, ...).
 *
 * @module
 */
import { connect, type ConnectOptions } from "../connect.ts";
import type { Connection } from "../connection/connection.ts";
import { isIpAddress, stripBrackets } from "../net/address.ts";
import {
  checkSocketOptions,
  type NodeSocketOptions,
  NodeTlsSocket,
  socketInternals,
} from "./node_socket.ts";

/** Options for {@link nodeConnect}: those of `connect()` plus the socket's stream options. */
export interface NodeConnectOptions extends ConnectOptions, NodeSocketOptions {}

/** Splits the socket's stream options off `options`; the rest are `connect()`'s. */
export function splitSocketOptions<T extends NodeSocketOptions>(
  options: T,
): { socket: NodeSocketOptions; rest: Omit<T, keyof NodeSocketOptions> } {
  const { readableHighWaterMark, writableHighWaterMark, allowHalfOpen, ...rest } = options;
  const socket: NodeSocketOptions = {};
  if (readableHighWaterMark !== undefined) socket.readableHighWaterMark = readableHighWaterMark;
  if (writableHighWaterMark !== undefined) socket.writableHighWaterMark = writableHighWaterMark;
  if (allowHalfOpen !== undefined) socket.allowHalfOpen = allowHalfOpen;
  checkSocketOptions(socket);
  return { socket, rest };
}

/**
 * Starts `connect(options)` behind `socket`: the socket gets the connection when the handshake
 * is done, or is destroyed with the error. Destroying the socket first cancels the connect.
 */
export function connectInBackground(socket: NodeTlsSocket, options: ConnectOptions): void {
  const host = stripBrackets(options.hostname);
  socketInternals.expectServername(
    socket,
    options.servername ?? (isIpAddress(host) ? host : host.toLowerCase()),
  );
  const cancel = new AbortController();
  const signal = options.signal === undefined
    ? cancel.signal
    : AbortSignal.any([options.signal, cancel.signal]);
  socketInternals.onCancel(socket, (reason) => cancel.abort(reason));
  let pending: Promise<Connection>;
  try {
    pending = connect({ ...options, signal });
  } catch (error) {
    pending = Promise.reject(error);
  }
  pending.then(
    (conn) => socketInternals.attach(socket, conn),
    (error) => {
      if (!socket.destroyed) socketInternals.fail(socket, error);
    },
  );
}

/**
 * Connects like Node's `tls.connect`: returns a {@link NodeTlsSocket} at once and connects
 * (TCP and the TLS handshake, with every option and callback of `connect()`) in the background;
 * `'connect'` and `'secureConnect'` are emitted when the handshake is done, and `onSecureConnect`
 * is a one-time `'secureConnect'` listener. Writes made before then wait for it. Failures
 * (refused, `CERT_VERIFY_FAILED`, timeouts, bad TLS options) surface as the socket's `'error'`
 * event, then `'close'`. Destroying the socket while it connects cancels the connect.
 *
 * For `createConnection` options, which are called with Node's option names (`host`, `port`,
 * `servername`), pass this library's options in a closure.
 *
 * @example
 * ```ts
 * import { readFileSync } from "node:fs";
 * import WebSocket from "ws";
 * import { nodeConnect } from "../../mod.ts";
 * const caPem = readFileSync("ca.pem", "utf8");
 * const ws = new WebSocket("wss://localhost:8443/chat", {
 *   // ws calls it with Node's option names; its types want a net.Socket.
 *   createConnection: (() =>
 *     nodeConnect({ hostname: "localhost", port: 8443, caCerts: [caPem] })) as never,
 * });
 * ws.on("open", () => ws.send("hello"));
 * ```
 * @throws {TypeError | RangeError} for a missing `hostname`, a bad `port`, bad socket options or
 * a non-function `onSecureConnect` (the TLS options are checked by `connect()`: their errors are
 * `'error'` events).
 */
export function nodeConnect(
  options: NodeConnectOptions,
  onSecureConnect?: () => void,
): NodeTlsSocket {
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
  if (onSecureConnect !== undefined && typeof onSecureConnect !== "function") {
    throw new TypeError("onSecureConnect must be a function");
  }
  const { socket: socketOptions, rest } = splitSocketOptions(options);
  const socket = new NodeTlsSocket(socketOptions);
  if (onSecureConnect !== undefined) socket.once("secureConnect", onSecureConnect);
  connectInBackground(socket, rest as ConnectOptions);
  return socket;
}
