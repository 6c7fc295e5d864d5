/**
 * nginx (Debian `nginx`) as a test peer: an HTTPS server on a free port of 127.0.0.1 with a
 * configuration written by the test, in one process (`master_process off`, `daemon off`), so that
 * it starts, is found ready and is stopped like every other peer (`peer_process.ts`).
 *
 * Every server answers `GET /` with one line naming what it saw of the client:
 * `client=<ssl_client_s_dn> verify=<ssl_client_verify> proto=<server_protocol> sni=<ssl_server_name>`,
 * and `GET /bytes` with the file given as `body` (for byte-exact transfers).
 *
 * nginx traps, met here:
 * - It refuses to start without writable temp directories (`client_body_temp_path` and the proxy,
 *   FastCGI, uWSGI and SCGI ones default to /var/lib/nginx, which a non-root user cannot write):
 *   every one is put in the peer's temp dir.
 * - `listen ... ssl http2` is the 1.22 spelling (Debian 12); 1.25+ (Debian 13) prefers
 *   `http2 on;` and only warns about the old one, so the old one works on both.
 * - `ssl_verify_client on` sends the acceptable-CA list from `ssl_client_certificate` (that file's
 *   subjects, in order), and verifies against the same file.
 *
 * @example
 * ```ts
 * import { startNginx } from "./nginx_peer.ts";
 * import { sharedTestPki } from "./pki.ts";
 * const pki = sharedTestPki();
 * await using nginx = await startNginx({ cert: pki.server.chainPath, key: pki.server.keyPath,
 *   clientCas: [pki.rootCaPath] });
 * // https://127.0.0.1:${nginx.port}/ with SNI "localhost", trusting pki.rootCaPath
 * ```
 * @module
 */

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type PeerProcess, startCommandPeer } from "./peer_process.ts";

/**
 * Options for {@link startNginx}. Paths are absolute.
 *
 * @example
 * ```ts
 * import type { NginxOptions } from "./nginx_peer.ts";
 * const options: NginxOptions = { cert: "/tmp/chain.pem", key: "/tmp/key.pem", http2: true };
 * console.log(options);
 * ```
 */
export interface NginxOptions {
  /** `ssl_certificate`: the leaf followed by its intermediates. */
  cert: string;
  /** `ssl_certificate_key`. */
  key: string;
  /**
   * `ssl_client_certificate` + `ssl_verify_client on`: client certificates are required and
   * verified against these CA files (concatenated, in this order: the acceptable-CA list). Absent:
   * no client certificate is asked for.
   */
  clientCas?: string[];
  /** Offer HTTP/2 through ALPN (`listen ... http2`). Default `false`: HTTP/1.1 only. */
  http2?: boolean;
  /** `ssl_stapling` with this DER OCSP response file (`ssl_stapling_file`). Default: no stapling. */
  staple?: string;
  /** Served at `GET /bytes`. */
  body?: string;
}

/**
 * A running nginx: a {@link PeerProcess} plus the directory holding its configuration.
 *
 * @example
 * ```ts
 * import { type Nginx, startNginx } from "./nginx_peer.ts";
 * import { sharedTestPki } from "./pki.ts";
 * const pki = sharedTestPki();
 * const nginx: Nginx = await startNginx({ cert: pki.server.chainPath, key: pki.server.keyPath });
 * console.log(nginx.configText);
 * await nginx.stop();
 * ```
 */
export interface Nginx extends PeerProcess {
  /** The nginx.conf it runs (for failure messages). */
  configText: string;
}

/** The nginx binary: on PATH, or Debian's /usr/sbin (not on a non-root user's PATH). */
function nginxBinary(): string {
  for (const candidate of ["nginx", "/usr/sbin/nginx"]) {
    try {
      execFileSync(candidate, ["-v"], { stdio: "ignore" });
      return candidate;
    } catch {
      // Not this one.
    }
  }
  throw new Error("nginx is not installed: apt-get install -y nginx (scripts/test.sh does it)");
}

/** The nginx.conf for `options`, listening on 127.0.0.1:`port`, everything under `dir`. */
export function nginxConfig(options: NginxOptions, port: number, dir: string): string {
  const clientAuth = options.clientCas === undefined ? "" : [
    `ssl_client_certificate ${join(dir, "client-cas.pem")};`,
    "ssl_verify_client on;",
    "ssl_verify_depth 4;",
  ].join("\n      ");
  const stapling = options.staple === undefined
    ? ""
    : `ssl_stapling on;\n      ssl_stapling_file ${options.staple};`;
  const temp = (name: string) => `${name}_temp_path ${join(dir, name)};`;
  return `
daemon off;
master_process off;
worker_processes 1;
pid ${join(dir, "nginx.pid")};
error_log stderr info;
events { worker_connections 1024; }
http {
  access_log off;
  ${temp("client_body")}
  ${temp("proxy")}
  ${temp("fastcgi")}
  ${temp("uwsgi")}
  ${temp("scgi")}
  keepalive_requests 100000;
  server {
      listen 127.0.0.1:${port} ssl${options.http2 === true ? " http2" : ""};
      server_name localhost;
      ssl_certificate ${options.cert};
      ssl_certificate_key ${options.key};
      ssl_protocols TLSv1.2 TLSv1.3;
      ${clientAuth}
      ${stapling}
      location = / {
        default_type text/plain;
        return 200 "client=$ssl_client_s_dn verify=$ssl_client_verify proto=$server_protocol sni=$ssl_server_name\\n";
      }
      location = /bytes {
        default_type application/octet-stream;
        alias ${options.body ?? join(dir, "empty")};
      }
  }
}
`;
}

/**
 * Starts nginx with {@link nginxConfig}. Stop it with `await using` or `stop()`; its temp dir is
 * removed then.
 */
export async function startNginx(options: NginxOptions): Promise<Nginx> {
  const binary = nginxBinary();
  const dir = mkdtempSync(join(tmpdir(), "libssl-ffi-nginx-"));
  writeFileSync(join(dir, "empty"), "");
  if (options.clientCas !== undefined) {
    writeFileSync(
      join(dir, "client-cas.pem"),
      options.clientCas.map((path) => readFileSync(path, "utf8")).join(""),
    );
  }
  let configText = "";
  try {
    const peer = await startCommandPeer("nginx", {
      command: binary,
      args: (port) => {
        configText = nginxConfig(options, port, dir);
        writeFileSync(join(dir, "nginx.conf"), configText);
        // -e: the error log before the configuration is read (1.19.5+); -p: the prefix.
        return ["-p", dir, "-e", "stderr", "-c", join(dir, "nginx.conf")];
      },
      lineBuffered: false,
      bindFailedPattern: /Address already in use/,
    });
    const stop = peer.stop.bind(peer);
    const stopAndClean = async (): Promise<void> => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    };
    return Object.assign(peer, {
      configText,
      stop: stopAndClean,
      [Symbol.asyncDispose]: stopAndClean,
    });
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}
