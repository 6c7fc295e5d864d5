/**
 * `gnutls-serv` as a test peer (see `peer_process.ts` for how peers start, are found ready and
 * are stopped): an independent TLS implementation, and the one that serves OCSP staples as they
 * are, garbage included.
 *
 * @example
 * ```ts
 * import { startGnutlsServer } from "./gnutls_peer.ts";
 * import { sharedTestPki } from "./pki.ts";
 * const pki = sharedTestPki();
 * await using server = await startGnutlsServer({ cert: pki.serverChainPath, key: pki.server.keyPath,
 *   echo: true });
 * // connect to 127.0.0.1:server.port with SNI "localhost", trusting pki.rootCaPath
 * ```
 * @module
 */

import { type PeerProcess, startCommandPeer } from "./peer_process.ts";

/**
 * The `gnutls-serv` peer returned by {@link startGnutlsServer}.
 *
 * @example
 * ```ts
 * import { type GnutlsServer, startGnutlsServer } from "./gnutls_peer.ts";
 * import { sharedTestPki } from "./pki.ts";
 * const pki = sharedTestPki();
 * const server: GnutlsServer = await startGnutlsServer({ cert: pki.serverChainPath, key: pki.server.keyPath });
 * await server.stop();
 * ```
 */
export type GnutlsServer = PeerProcess;

/**
 * Options for {@link startGnutlsServer}.
 *
 * @example
 * ```ts
 * import type { GnutlsServerOptions } from "./gnutls_peer.ts";
 * import { sharedTestPki } from "./pki.ts";
 * const pki = sharedTestPki();
 * const options: GnutlsServerOptions = {
 *   cert: pki.serverChainPath, key: pki.server.keyPath, tls: "1.3", echo: true,
 * };
 * console.log(options);
 * ```
 */
export interface GnutlsServerOptions {
  /** `--x509certfile`: leaf + intermediates (gnutls-serv has no separate chain option). */
  cert?: string;
  /** `--x509keyfile`. */
  key?: string;
  /** `--x509cafile`: trust for client certificates. */
  caFile?: string;
  /**
   * Client certificates. `"none"` (default): `-a`, not requested. `"request"`: requested, and
   * verified if sent (`--verify-client-cert`). `"require"`: `-r --verify-client-cert`.
   */
  clientCert?: "none" | "request" | "require";
  /** Pin one version (builds a `--priority`); ignored when `priority` is given. */
  tls?: "1.2" | "1.3";
  /** `--priority`, e.g. `"NORMAL:-VERS-ALL:+VERS-TLS1.2"`. */
  priority?: string;
  /** `--alpn` once per protocol. */
  alpn?: string[];
  /** `--alpn-fatal`: a client offering none of `alpn` gets a fatal alert. */
  alpnFatal?: boolean;
  /**
   * `--echo`: echo every record back (it logs "received cmd" lines). Default: HTTP mode, which
   * answers a `GET` with an HTML status page.
   */
  echo?: boolean;
  /**
   * `--ocsp-response FILE`, plus `--ignore-ocsp-response-errors` unless `ignoreOcspResponseErrors`
   * is `false`: staple these bytes as they are (garbage and truncated bytes included).
   */
  ocspResponse?: string;
  /**
   * With `ocspResponse`: pass `--ignore-ocsp-response-errors` (default `true`). With `false`
   * gnutls-serv checks the response when it loads it, and refuses to start on one it cannot use.
   */
  ignoreOcspResponseErrors?: boolean;
  /** More arguments. */
  extraArgs?: string[];
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** The executable. Default `gnutls-serv` from PATH. */
  gnutlsServ?: string;
}

/**
 * Builds the `gnutls-serv` argument list for `options` and `port`.
 *
 * @example
 * ```ts
 * import { gnutlsServerArgs } from "./gnutls_peer.ts";
 * console.log(gnutlsServerArgs({ cert: "/tmp/c.pem", key: "/tmp/k.pem", tls: "1.3" }, 5556).join(" "));
 * ```
 */
export function gnutlsServerArgs(options: GnutlsServerOptions, port: number): string[] {
  const args = ["-p", String(port)];
  if (options.cert !== undefined) args.push("--x509certfile", options.cert);
  if (options.key !== undefined) args.push("--x509keyfile", options.key);
  if (options.caFile !== undefined) args.push("--x509cafile", options.caFile);
  const clientCert = options.clientCert ?? "none";
  if (clientCert === "none") args.push("-a");
  if (clientCert === "request") args.push("--verify-client-cert");
  if (clientCert === "require") args.push("-r", "--verify-client-cert");
  const priority = options.priority ??
    (options.tls === undefined ? undefined : `NORMAL:-VERS-ALL:+VERS-TLS${options.tls}`);
  if (priority !== undefined) args.push("--priority", priority);
  for (const protocol of options.alpn ?? []) args.push("--alpn", protocol);
  if (options.alpnFatal === true) args.push("--alpn-fatal");
  if (options.echo === true) args.push("--echo");
  if (options.ocspResponse !== undefined) {
    args.push("--ocsp-response", options.ocspResponse);
    if (options.ignoreOcspResponseErrors !== false) args.push("--ignore-ocsp-response-errors");
  }
  args.push(...(options.extraArgs ?? []));
  return args;
}

/**
 * Starts `gnutls-serv` on a free port and resolves once it listens on IPv4. It binds
 * `0.0.0.0:port` AND `[::]:port` (no option to bind one address), so the port is picked first:
 * with `-p 0` the two sockets get different ports and neither is printed usefully. When one of
 * the two binds fails it prints `bind() failed` and carries on with the other, so that output
 * counts as "port taken" and the start is retried on another port. It serves connections
 * concurrently, ignores stdin, and prints every peer certificate in full. Default mode is HTTP
 * (a `GET` gets an HTML status page); `echo` echoes.
 *
 * @example
 * ```ts
 * import { startGnutlsServer } from "./gnutls_peer.ts";
 * import { sharedTestPki } from "./pki.ts";
 * const pki = sharedTestPki();
 * await using server = await startGnutlsServer({ cert: pki.serverChainPath, key: pki.server.keyPath, echo: true });
 * // ... connect to 127.0.0.1:server.port
 * await server.waitFor(/Version: TLS1\.3/);
 * ```
 */
export function startGnutlsServer(options: GnutlsServerOptions): Promise<GnutlsServer> {
  return startCommandPeer("gnutls-serv", {
    command: options.gnutlsServ ?? "gnutls-serv",
    args: (port) => gnutlsServerArgs(options, port),
    env: options.env,
    lineBuffered: true,
    // It binds 0.0.0.0 and [::] in turn and carries on when one bind fails, e.g. serving only
    // [::]:port while another process owns 127.0.0.1:port. Only its IPv4 listener counts.
    bindFailedPattern: /bind\(\) failed/,
  });
}
