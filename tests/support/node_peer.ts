/**
 * A Node.js `tls` server as a test peer: `tests/fixtures/node_tls_server.mjs` run by the
 * machine's real `node` in a child process (see `peer_process.ts` for how peers start, are found
 * ready and are stopped), plus {@link patternBytes}, the byte pattern its `"send"` mode writes.
 *
 * @example
 * ```ts
 * import { patternBytes, startNodeTlsServer } from "./node_peer.ts";
 * import { sharedTestPki } from "./pki.ts";
 * const pki = sharedTestPki();
 * await using server = await startNodeTlsServer({ cert: pki.serverChainPath, key: pki.server.keyPath,
 *   mode: "send", sendBytes: 1024 });
 * // a client reading 127.0.0.1:server.port to the end receives patternBytes(1024)
 * console.log(patternBytes(4));
 * ```
 * @module
 */

import { fileURLToPath } from "node:url";
import { type PeerProcess, startCommandPeer } from "./peer_process.ts";

/** The server program (plain JavaScript: `node` runs it). */
const NODE_TLS_SERVER = fileURLToPath(new URL("../fixtures/node_tls_server.mjs", import.meta.url));

/**
 * The Node.js `tls` server peer returned by {@link startNodeTlsServer}.
 *
 * @example
 * ```ts
 * import { type NodeTlsServer, startNodeTlsServer } from "./node_peer.ts";
 * import { sharedTestPki } from "./pki.ts";
 * const pki = sharedTestPki();
 * const server: NodeTlsServer = await startNodeTlsServer({ cert: pki.serverChainPath, key: pki.server.keyPath });
 * await server.stop();
 * ```
 */
export type NodeTlsServer = PeerProcess;

/**
 * Options for {@link startNodeTlsServer}.
 *
 * @example
 * ```ts
 * import type { NodeTlsServerOptions } from "./node_peer.ts";
 * import { sharedTestPki } from "./pki.ts";
 * const pki = sharedTestPki();
 * const options: NodeTlsServerOptions = {
 *   cert: pki.serverChainPath, key: pki.server.keyPath, mode: "send", sendBytes: 1 << 20,
 *   serverOptions: { minVersion: "TLSv1.3" },
 * };
 * console.log(options);
 * ```
 */
export interface NodeTlsServerOptions {
  /** Path of the certificate chain PEM (leaf first). */
  cert?: string;
  /** Path of the key PEM. */
  key?: string;
  /** Path of the CA PEM used to verify client certificates. */
  ca?: string;
  /** Ask for a client certificate. */
  requestCert?: boolean;
  /** With `requestCert`: fail handshakes without a valid one. Default false. */
  rejectUnauthorized?: boolean;
  /** `ALPNProtocols`. */
  alpn?: string[];
  /**
   * What to do on each connection. `"echo"` (default): write back everything received, end when
   * the client ends. `"http"`: after a request head (`\r\n\r\n`), answer `HTTP/1.1 200 OK` with
   * `httpBody` and a Content-Length, then end. `"send"`: write `sendBytes` bytes of
   * {@link patternBytes} at once, then end (close_notify).
   */
  mode?: "echo" | "http" | "send";
  /** Body for `"http"`. Default `"hello from node\n"`. */
  httpBody?: string;
  /** Byte count for `"send"`. Default 1 MiB. */
  sendBytes?: number;
  /**
   * Any other JSON-serialisable `tls.createServer` options (`minVersion`, `maxVersion`,
   * `ciphers`, `sessionTimeout`, ...). Applied first; the fields above win.
   */
  serverOptions?: Record<string, unknown>;
  /** The node executable. Default `node` from PATH. */
  node?: string;
  /** Extra environment variables. */
  env?: Record<string, string>;
}

/**
 * `length` bytes of the deterministic pattern `byte[i] = (offset + i) % 251` that the Node peer's
 * `"send"` mode writes. 251 is prime, so no record or buffer size lines up with the period.
 *
 * @example
 * ```ts
 * import { patternBytes } from "./node_peer.ts";
 * console.log(patternBytes(4)); // Uint8Array [0, 1, 2, 3]
 * ```
 */
export function patternBytes(length: number, offset = 0): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (offset + i) % 251;
  return bytes;
}

/**
 * What `tests/fixtures/node_tls_server.mjs` reads from its first argument (JSON): the options it
 * acts on, and where to listen.
 *
 * @example
 * ```ts
 * import type { NodeTlsServerConfig } from "./node_peer.ts";
 * const config: NodeTlsServerConfig = { port: 4433, host: "127.0.0.1", mode: "echo" };
 * console.log(JSON.stringify(config));
 * ```
 */
export type NodeTlsServerConfig =
  // The options the server acts on (`undefined` ones are dropped by JSON.stringify)...
  & {
    [K in Exclude<keyof NodeTlsServerOptions, "node" | "env">]?:
      | NodeTlsServerOptions[K]
      | undefined;
  }
  // ...and where it listens.
  & { port: number; host: string };

/**
 * Starts a Node.js `tls.createServer` in the machine's real `node` (a child process, NOT in
 * this runtime, whose own `node:tls` may be the thing under test) on a free port of 127.0.0.1.
 * Unlike `s_server` it serves connections concurrently. It prints one `SECURE ...` line per
 * handshake (protocol, cipher, ALPN, client-certificate result), `TLSCLIENTERROR ...` for failed
 * handshakes, and accepts `destroy` / `end` lines on stdin (via `send`). It exits when its stdin
 * closes. The server itself is `tests/fixtures/node_tls_server.mjs`.
 *
 * @example
 * ```ts
 * import { startNodeTlsServer } from "./node_peer.ts";
 * import { sharedTestPki } from "./pki.ts";
 * const pki = sharedTestPki();
 * await using server = await startNodeTlsServer({ cert: pki.serverChainPath, key: pki.server.keyPath, mode: "echo" });
 * // ... connect to 127.0.0.1:server.port, then:
 * const [, protocol] = await server.waitFor(/SECURE (\S+)/);
 * console.log(protocol);
 * server.send("destroy\n"); // drop the connection without close_notify
 * ```
 */
export function startNodeTlsServer(options: NodeTlsServerOptions = {}): Promise<NodeTlsServer> {
  return startCommandPeer("node tls server", {
    command: options.node ?? "node",
    args: (port) => {
      const config: NodeTlsServerConfig = {
        port,
        host: "127.0.0.1",
        cert: options.cert,
        key: options.key,
        ca: options.ca,
        requestCert: options.requestCert,
        rejectUnauthorized: options.rejectUnauthorized,
        alpn: options.alpn,
        mode: options.mode,
        httpBody: options.httpBody,
        sendBytes: options.sendBytes,
        serverOptions: options.serverOptions,
      };
      return [NODE_TLS_SERVER, JSON.stringify(config)];
    },
    env: options.env,
    lineBuffered: false,
    readyPattern: /^LISTENING \d+$/m,
  });
}
