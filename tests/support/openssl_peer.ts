/**
 * `openssl s_server` as a test peer, on a free port of 127.0.0.1 (see `peer_process.ts` for how
 * peers start, are found ready and are stopped).
 *
 * @example
 * ```ts
 * import { startOpensslServer } from "./openssl_peer.ts";
 * import { sharedTestPki } from "./pki.ts";
 * const pki = sharedTestPki();
 * await using server = await startOpensslServer({ cert: pki.server.certPath, key: pki.server.keyPath,
 *   chain: pki.intermediateCa.certPath });
 * // connect to 127.0.0.1:server.port with SNI "localhost", trusting pki.rootCaPath
 * ```
 * @module
 */

import { type PeerProcess, startCommandPeer } from "./peer_process.ts";

/**
 * The `openssl s_server` peer returned by {@link startOpensslServer}.
 *
 * @example
 * ```ts
 * import { type OpensslServer, startOpensslServer } from "./openssl_peer.ts";
 * import { sharedTestPki } from "./pki.ts";
 * const pki = sharedTestPki();
 * const server: OpensslServer = await startOpensslServer({ cert: pki.server.certPath, key: pki.server.keyPath });
 * await server.stop();
 * ```
 */
export type OpensslServer = PeerProcess;

/**
 * A protocol version pin: the server accepts only this version.
 *
 * @example
 * ```ts
 * import type { TlsVersion } from "./openssl_peer.ts";
 * const version: TlsVersion = "1.3";
 * console.log(version);
 * ```
 */
export type TlsVersion = "1.0" | "1.1" | "1.2" | "1.3";

/**
 * Options for {@link startOpensslServer}. Paths are absolute (or relative to `wwwRoot` when set).
 *
 * @example
 * ```ts
 * import type { OpensslServerOptions } from "./openssl_peer.ts";
 * import { sharedTestPki } from "./pki.ts";
 * const pki = sharedTestPki();
 * const options: OpensslServerOptions = {
 *   cert: pki.server.certPath, key: pki.server.keyPath, chain: pki.intermediateCa.certPath,
 *   caFile: pki.rootCaPath, verify: "require", tls: "1.3", alpn: ["h2", "http/1.1"],
 * };
 * console.log(options);
 * ```
 */
export interface OpensslServerOptions {
  /**
   * `-cert`: the leaf. Only the FIRST certificate of the file is used (a leaf + intermediate file
   * serves the leaf alone): put intermediates in `chain`. Required unless `extraArgs` has
   * `-nocert`.
   */
  cert?: string;
  /** `-key`. */
  key?: string;
  /** `-cert_chain`: the intermediates sent after the leaf, e.g. `pki.intermediateCa.certPath`. */
  chain?: string;
  /**
   * `-CAfile`: trust for client certificates, the acceptable-CA list sent in a
   * CertificateRequest, AND extra material for the server's own chain building (so leave it out
   * of missing-intermediate tests).
   */
  caFile?: string;
  /**
   * Client certificates. `"none"` (default): not requested. `"request"`: `-verify 1` (asked for;
   * a missing or bad one is logged, the handshake goes on). `"require"`:
   * `-Verify 1 -verify_return_error` (a missing or unverifiable one fails the handshake).
   */
  verify?: "none" | "request" | "require";
  /**
   * Pin one version: `-tls1`, `-tls1_1`, `-tls1_2`, `-tls1_3`. For 1.0 and 1.1 the cipher string
   * defaults to `DEFAULT:@SECLEVEL=0` (they are refused at the system's default level).
   */
  tls?: TlsVersion;
  /** `-cipher`: TLS 1.2 and older cipher list. */
  cipher?: string;
  /** `-ciphersuites`: TLS 1.3 suites. */
  ciphersuites?: string;
  /** `-alpn a,b`: protocols the server accepts, in its preference order. */
  alpn?: string[];
  /** `-www`: answer `GET /` with an HTTP/1.0 status page (then close_notify + close). */
  www?: boolean;
  /**
   * `-WWW -http_server_binmode`, run in this dir: `GET /name HTTP/1.0` answers
   * `HTTP/1.0 200 ok` + `Content-type` header + the bytes of `./name`, then close_notify
   * (no Content-Length). For byte-exact bulk transfers.
   */
  wwwRoot?: string;
  /** `-rev`: every line received is sent back reversed; a line `CLOSE` ends the connection. */
  rev?: boolean;
  /**
   * `-quiet`: no connection reports. NOTE: with `-quiet` (or `-brief`) the stdin commands
   * (`K`, `k`, `R`, `r`, `c`, `q`, `Q`) are NOT interpreted: lines are sent as data.
   */
  quiet?: boolean;
  /** Interface to bind. Default `127.0.0.1`. */
  host?: string;
  /**
   * `-status_file`: a DER OCSP response stapled, as it is, to every handshake whose client asks
   * for one (`status_request`). `s_server` parses it per handshake and fails that handshake
   * (`cert_status: Error reading OCSP response`) if it is not DER of an `OCSPResponse`; a
   * well-formed tryLater, stale, wrongly signed or wrong-certificate response is served as it is.
   * Serve garbage or truncated bytes with `gnutls-serv` (`ocspResponse`) instead.
   */
  statusFile?: string;
  /** More arguments, e.g. `["-nocert", "-psk", hex]`. */
  extraArgs?: string[];
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** The `openssl` executable. Default `openssl` from PATH. */
  openssl?: string;
}

const VERSION_FLAG: Record<TlsVersion, string> = {
  "1.0": "-tls1",
  "1.1": "-tls1_1",
  "1.2": "-tls1_2",
  "1.3": "-tls1_3",
};

/**
 * Builds the `openssl s_server` argument list (without the executable) for `options` and `port`.
 *
 * @example
 * ```ts
 * import { opensslServerArgs } from "./openssl_peer.ts";
 * console.log(opensslServerArgs({ cert: "/tmp/c.pem", key: "/tmp/k.pem", tls: "1.2" }, 4433).join(" "));
 * // s_server -accept 127.0.0.1:4433 -cert /tmp/c.pem -key /tmp/k.pem -tls1_2
 * ```
 */
export function opensslServerArgs(options: OpensslServerOptions, port: number): string[] {
  const args = ["s_server", "-accept", `${options.host ?? "127.0.0.1"}:${port}`];
  if (options.cert !== undefined) args.push("-cert", options.cert);
  if (options.key !== undefined) args.push("-key", options.key);
  if (options.chain !== undefined) args.push("-cert_chain", options.chain);
  if (options.caFile !== undefined) args.push("-CAfile", options.caFile);
  if (options.verify === "request") args.push("-verify", "1");
  if (options.verify === "require") args.push("-Verify", "1", "-verify_return_error");
  if (options.tls !== undefined) args.push(VERSION_FLAG[options.tls]);
  const cipher = options.cipher ??
    (options.tls === "1.0" || options.tls === "1.1" ? "DEFAULT:@SECLEVEL=0" : undefined);
  if (cipher !== undefined) args.push("-cipher", cipher);
  if (options.ciphersuites !== undefined) args.push("-ciphersuites", options.ciphersuites);
  if (options.alpn !== undefined) args.push("-alpn", options.alpn.join(","));
  if (options.www === true) args.push("-www");
  if (options.wwwRoot !== undefined) args.push("-WWW", "-http_server_binmode");
  if (options.rev === true) args.push("-rev");
  if (options.quiet === true) args.push("-quiet");
  if (options.statusFile !== undefined) args.push("-status_file", options.statusFile);
  args.push(...(options.extraArgs ?? []));
  return args;
}

/**
 * Starts `openssl s_server` on a free port of 127.0.0.1 and resolves once it listens.
 *
 * Behaviour worth knowing (OpenSSL 3.0):
 * - ONE connection at a time: a second client's handshake waits until the first one closes.
 * - Default mode (no `www`/`wwwRoot`/`rev`): after each handshake it prints the session and
 *   `CIPHER is ...`; bytes from the client are copied to stdout as they arrive; lines written
 *   with `send()` go to the client. Stdin commands (a whole line, not with `quiet`): `K` / `k`
 *   TLS 1.3 KeyUpdate with / without update_requested, `R` / `r` renegotiation with / without a
 *   certificate request (TLS 1.2), `c` TLS 1.3 post-handshake CertificateRequest, `q` close this
 *   connection (no close_notify), `Q` shut the server down. ANY line starting with `q`/`Q` is a
 *   command, so never send data lines starting with q. Stdin is read only while a client is
 *   connected; text sent earlier is delivered to the next client.
 * - It stops when stdin reaches EOF, so this keeps stdin open until `stop()`.
 * - `-www` / `-WWW` / `-rev` never read stdin.
 *
 * @example
 * ```ts
 * import { startOpensslServer } from "./openssl_peer.ts";
 * import { sharedTestPki } from "./pki.ts";
 * const pki = sharedTestPki();
 * await using server = await startOpensslServer({
 *   cert: pki.server.certPath, key: pki.server.keyPath, chain: pki.intermediateCa.certPath,
 *   tls: "1.3",
 * });
 * // ... connect a client to 127.0.0.1:server.port, then:
 * await server.waitFor(/CIPHER is (\S+)/);
 * server.send("K\n"); // KeyUpdate
 * ```
 */
export function startOpensslServer(options: OpensslServerOptions): Promise<OpensslServer> {
  return startCommandPeer("openssl s_server", {
    command: options.openssl ?? "openssl",
    args: (port) => opensslServerArgs(options, port),
    cwd: options.wwwRoot,
    env: options.env,
    lineBuffered: true,
    // Printed once it listens, unless -quiet or -brief: waiting for it too means output() holds
    // it before any test connects.
    readyPattern: [options.quiet === true ? "-quiet" : "", ...(options.extraArgs ?? [])]
        .some((arg) => arg === "-quiet" || arg === "-brief")
      ? undefined
      : /^ACCEPT$/m,
    // A host name or IPv6 address may give an IPv6 listener; 127.0.0.1 (default) an IPv4 one.
    anyFamily: !/^\d+\.\d+\.\d+\.\d+$/.test(options.host ?? "127.0.0.1"),
  });
}
