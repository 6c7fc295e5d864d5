/**
 * `tlsConnector()`: this library as undici's `connect` option, so that undici's `fetch`,
 * `request` and `Agent` (HTTP/1.1 and HTTP/2) run over it with every option and callback of
 * `connect()`. undici is not imported: the connector has the shape undici calls.
 *
 * @module
 */
import type { Socket } from "node:net";
import type { ConnectOptions, TlsClientOptions } from "../connect.ts";
import { connectInBackground, splitSocketOptions } from "./node_connect.ts";
import { type NodeSocketOptions, NodeTlsSocket } from "./node_socket.ts";

/** What undici passes to its `connect` function (`buildConnector.Options`). */
export interface UndiciConnectOptions {
  /** The host to connect to (an IPv6 address without brackets). */
  hostname: string;
  /** `host[:port]`, as in the URL. */
  host?: string;
  /** `"https:"` (the only protocol the connector serves) or `"http:"`. */
  protocol: string;
  /** The port, as in the URL: a string, `""` for the default (443). */
  port: string | number;
  /** The name to verify the server's certificate for; default `hostname`. */
  servername?: string | null;
  /** A local address to bind: not supported (a non-null value is an error). */
  localAddress?: string | null;
  /** A socket to run TLS over (a proxy tunnel): not supported (an error). */
  httpSocket?: unknown;
  /** undici's `allowH2`: `true` offers HTTP/2 (ALPN `["h2", "http/1.1"]`). */
  allowH2?: boolean;
  /** A Unix socket path: not supported (an error). */
  socketPath?: string | null;
}

/**
 * The callback undici passes: `(null, socket)` once connected, `(error, null)` on failure. The
 * socket is a {@link NodeTlsSocket} (a `Duplex` shaped like `tls.TLSSocket`, not a `net.Socket`
 * instance); it is typed as undici's own callback type names it, so that the connector fits
 * undici's `connect` option.
 */
export type UndiciConnectCallback = (
  ...args: [error: null, socket: Socket] | [error: Error, socket: null]
) => void;

/** A function with the shape of undici's `connect` option (`buildConnector.connector`). */
export type UndiciConnector = (
  options: UndiciConnectOptions,
  callback: UndiciConnectCallback,
) => NodeTlsSocket | undefined;

/**
 * Options for {@link tlsConnector}: every client option of `connect()` (without `hostname` and
 * `port`, which come from each request's origin) plus the socket's stream options.
 */
export interface TlsConnectorOptions extends TlsClientOptions, NodeSocketOptions {}

/**
 * Makes a function for undici's `connect` option: each connection undici opens goes through
 * this library's `connect()` with `options` (trust, client certificates and their callbacks,
 * OCSP, sessions, PSK, ...) and undici's `hostname`, `port` and `servername`. ALPN: the
 * `alpnProtocols` given, else `["h2", "http/1.1"]` when undici allows HTTP/2 (`allowH2: true`,
 * which undici passes to a custom connector only when the Agent was given it), else
 * `["http/1.1"]`. Only `https:` origins; `localAddress`, `socketPath` and `httpSocket` (proxy
 * tunnels) are refused with a `TypeError` through the callback.
 *
 * The socket is returned too, so that undici can cancel a connect in progress.
 *
 * @example
 * ```ts
 * import { readFileSync } from "node:fs";
 * import { Agent, fetch } from "undici";
 * import { tlsConnector } from "../../mod.ts";
 * const caPem = readFileSync("ca.pem", "utf8");
 * const cert = readFileSync("client.pem", "utf8");
 * const key = readFileSync("client.key", "utf8");
 * const agent = new Agent({
 *   allowH2: true,
 *   connect: tlsConnector({ caCerts: [caPem], onClientCertificate: () => ({ cert, key }), ocsp: "require" }),
 * });
 * const res = await fetch("https://localhost:8443/", { dispatcher: agent });
 * console.log(res.status, await res.text());
 * await agent.close();
 * ```
 * @throws {TypeError | RangeError} for bad socket options (the TLS options are checked on each
 * connect: their errors reach undici's callback).
 */
export function tlsConnector(options: TlsConnectorOptions = {}): UndiciConnector {
  if (typeof options !== "object" || options === null) {
    throw new TypeError("options must be an object");
  }
  const { socket: socketOptions, rest } = splitSocketOptions(options);
  const tls = rest as TlsClientOptions & { hostname?: unknown; port?: unknown };
  if (tls.hostname !== undefined || tls.port !== undefined) {
    throw new TypeError(
      "tlsConnector takes no hostname or port: they come from each request's origin",
    );
  }
  return (connectOptions, callback) => {
    if (typeof callback !== "function") throw new TypeError("callback must be a function");
    const refuse = (message: string) => {
      queueMicrotask(() => callback(new TypeError(message), null));
      return undefined;
    };
    if (typeof connectOptions !== "object" || connectOptions === null) {
      return refuse("tlsConnector: the connect options must be an object");
    }
    const { hostname, protocol, port, servername, localAddress, httpSocket, allowH2, socketPath } =
      connectOptions;
    if (protocol !== "https:") {
      return refuse(`tlsConnector serves https: origins only, not ${String(protocol)}`);
    }
    if (httpSocket !== undefined && httpSocket !== null) {
      return refuse("tlsConnector does not support httpSocket (TLS through a proxy tunnel)");
    }
    if (localAddress !== undefined && localAddress !== null) {
      return refuse("tlsConnector does not support localAddress");
    }
    if (socketPath !== undefined && socketPath !== null) {
      return refuse("tlsConnector does not support socketPath");
    }
    const portNumber = port === "" || port === undefined || port === null ? 443 : Number(port);
    if (!Number.isInteger(portNumber) || portNumber < 1 || portNumber > 65535) {
      return refuse(`tlsConnector: bad port ${String(port)}`);
    }
    if (typeof hostname !== "string" || hostname === "") {
      return refuse("tlsConnector: hostname must be a non-empty string");
    }
    const connect: ConnectOptions = {
      ...tls,
      hostname,
      port: portNumber,
      alpnProtocols: tls.alpnProtocols ?? (allowH2 === true ? ["h2", "http/1.1"] : ["http/1.1"]),
    };
    const name = servername || tls.servername;
    if (name) connect.servername = name;
    const socket = new NodeTlsSocket(socketOptions);
    let called = false;
    const once = (error: Error | null) => {
      if (called) return;
      called = true;
      socket.off("secureConnect", onConnect);
      socket.off("error", once);
      if (error === null) callback(null, socket as unknown as Socket);
      else callback(error, null);
    };
    const onConnect = () => once(null);
    socket.once("secureConnect", onConnect);
    socket.on("error", once);
    connectInBackground(socket, connect);
    return socket;
  };
}
