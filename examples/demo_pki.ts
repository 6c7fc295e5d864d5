/**
 * A throwaway PKI for the examples and the benchmark: certificate authorities, server and
 * client certificates (EC P-256 keys, valid for two days), made with the `openssl` command-line
 * tool in a directory of PEM files. Only `node:` built-ins, so it runs on Deno and on Bun alike
 * (Deno needs `--allow-run --allow-read --allow-write`, plus `--allow-env` for the temporary
 * directory).
 *
 * For real certificates use a real CA; this is for trying things out on one machine.
 *
 * @example
 * ```ts
 * import { DemoPki } from "./demo_pki.ts";
 *
 * // A new temporary directory, deleted when `pki` goes out of scope.
 * using pki = DemoPki.temporary("my-demo-", { organization: "My Lab" });
 * const ca = pki.rootCa("ca", "My Lab Root CA");
 * // subjectAltName DNS:localhost, IP:127.0.0.1 (the default names for localhost)
 * const server = pki.issue("server", { commonName: "localhost", issuer: ca, usage: "server" });
 * const device = pki.issue("device", {
 *   commonName: "printer.lan", issuer: ca, usage: "server", names: ["printer.lan", "192.168.1.20"],
 * });
 * const client = pki.issue("alice", { commonName: "alice", issuer: ca, usage: "client" });
 * // ca.cert, server.cert, server.key, client.cert, ... are paths of PEM files in pki.dir
 * console.log(ca.cert, server.cert, server.key, device.cert, client.cert, client.key);
 * ```
 * @module
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Options for {@link DemoPki}.
 *
 * @example
 * ```ts
 * import type { DemoPkiOptions } from "./demo_pki.ts";
 * const options: DemoPkiOptions = { organization: "libssl-ffi demo" };
 * console.log(options);
 * ```
 */
export interface DemoPkiOptions {
  /** The organisation (`O=`) in every subject. Default: none, the subject is `CN=...` only. */
  organization?: string;
}

/**
 * A certificate of a {@link DemoPki} and its key: absolute paths of PEM files.
 *
 * @example
 * ```ts
 * import { readFileSync } from "node:fs";
 * import { type DemoCertificate, DemoPki } from "./demo_pki.ts";
 * using pki = DemoPki.temporary("my-demo-");
 * const ca: DemoCertificate = pki.rootCa("ca", "Demo CA");
 * console.log(readFileSync(ca.cert, "utf8"));
 * ```
 */
export interface DemoCertificate {
  /** The certificate (PEM): `<dir>/<name>.pem`. */
  cert: string;
  /** Its private key (PEM, not encrypted): `<dir>/<name>.key`. */
  key: string;
}

/**
 * What {@link DemoPki.issue} makes.
 *
 * @example
 * ```ts
 * import { DemoPki, type IssueOptions } from "./demo_pki.ts";
 * using pki = DemoPki.temporary("my-demo-");
 * const options: IssueOptions = {
 *   commonName: "sni.test", issuer: pki.rootCa("ca", "Demo CA"), usage: "server",
 * };
 * console.log(pki.issue("sni", options).cert);
 * ```
 */
export interface IssueOptions {
  /** The subject's common name (`CN=`). */
  commonName: string;
  /** The CA that signs it: a {@link DemoPki.rootCa}, or an issued certificate with usage `"ca"`. */
  issuer: DemoCertificate;
  /**
   * `"ca"`: an intermediate CA (`basicConstraints=critical,CA:TRUE`,
   * `keyUsage=critical,keyCertSign,cRLSign`). `"server"`: a TLS server
   * (`extendedKeyUsage=serverAuth`, `CA:FALSE`, and a subjectAltName, which is what clients check
   * the host name against). `"client"`: a TLS client (`extendedKeyUsage=clientAuth`, `CA:FALSE`).
   */
  usage: "ca" | "server" | "client";
  /**
   * The subjectAltName: host names and IP addresses (`"localhost"`, `"127.0.0.1"`, `"::1"`).
   * Default for a server: its common name, and for `localhost` also `127.0.0.1` (where local
   * clients connect); for the others: none.
   */
  names?: string[];
}

/** See {@link IssueOptions.names}. */
function defaultNames({ usage, commonName }: IssueOptions): string[] {
  if (usage !== "server") return [];
  return commonName === "localhost" ? ["localhost", "127.0.0.1"] : [commonName];
}

/** Every key is a fresh EC P-256 key (`-nodes`: not encrypted). */
const NEW_EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
/** Long enough for a demo, short enough that a leaked key is worthless by the day after. */
const VALID_DAYS = "2";

/**
 * A directory of certificates and keys made with the `openssl` CLI. Every method runs `openssl`
 * synchronously in {@link DemoPki.dir} and throws (with its stderr) if it fails.
 *
 * @example
 * ```ts
 * import { DemoPki } from "./demo_pki.ts";
 * using pki = DemoPki.temporary("my-demo-", { organization: "My Lab" });
 * const root = pki.rootCa("ca", "My Root CA");
 * const intermediate = pki.issue("int", { commonName: "My Intermediate CA", issuer: root, usage: "ca" });
 * const server = pki.issue("server", { commonName: "localhost", issuer: intermediate, usage: "server" });
 * // A server sends server.cert and intermediate.cert; clients trust root.cert.
 * console.log(server.cert, intermediate.cert, root.cert);
 * ```
 */
export class DemoPki {
  /** The directory that holds every file. */
  readonly dir: string;
  readonly #organization: string | undefined;

  /**
   * A PKI in a new temporary directory (`<os tmpdir>/<prefix>XXXXXX`), with no certificates
   * yet. {@link DemoPki.remove} (or the end of a `using` scope) deletes the directory.
   *
   * @example
   * ```ts
   * import { DemoPki } from "./demo_pki.ts";
   * const pki = DemoPki.temporary("my-demo-");
   * try {
   *   console.log(pki.rootCa("ca", "Demo CA").cert);
   * } finally {
   *   pki.remove();
   * }
   * ```
   */
  static temporary(prefix: string, options: DemoPkiOptions = {}): DemoPki {
    return new DemoPki(mkdtempSync(join(tmpdir(), prefix)), options);
  }

  /** A PKI whose files go in `dir`, an existing directory. */
  constructor(dir: string, options: DemoPkiOptions = {}) {
    this.dir = dir;
    this.#organization = options.organization;
  }

  /**
   * Makes a self-signed root CA, `<name>.pem` and `<name>.key`: what clients trust.
   *
   * @example
   * ```ts
   * import { DemoPki } from "./demo_pki.ts";
   * using pki = DemoPki.temporary("my-demo-");
   * const ca = pki.rootCa("ca", "Demo Root CA"); // CN=Demo Root CA
   * console.log(ca.cert);
   * ```
   */
  rootCa(name: string, commonName: string): DemoCertificate {
    this.openssl(
      "req",
      "-x509",
      ...NEW_EC_KEY,
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.pem`,
      "-days",
      VALID_DAYS,
      "-subj",
      this.#subject(commonName),
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    );
    return this.#files(name);
  }

  /**
   * Makes a key and a certificate signed by `options.issuer`: `<name>.pem` and `<name>.key`
   * (plus `<name>.csr`, the request, and `<name>.ext`, its extensions).
   *
   * @example
   * ```ts
   * import { DemoPki } from "./demo_pki.ts";
   * using pki = DemoPki.temporary("my-demo-");
   * const ca = pki.rootCa("ca", "Demo CA");
   * const alice = pki.issue("alice", { commonName: "alice", issuer: ca, usage: "client" });
   * console.log(alice.cert, alice.key);
   * ```
   */
  issue(name: string, options: IssueOptions): DemoCertificate {
    const names = options.names ?? defaultNames(options);
    const extensions = {
      ca: ["basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign,cRLSign"],
      server: ["extendedKeyUsage=serverAuth", "basicConstraints=CA:FALSE"],
      client: ["extendedKeyUsage=clientAuth", "basicConstraints=CA:FALSE"],
    }[options.usage];
    if (names.length > 0) {
      // An IPv4 address is all digits and dots, an IPv6 one has colons; the rest are DNS names.
      const san = names.map((n) => (/^[\d.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`));
      extensions.unshift(`subjectAltName=${san.join(",")}`);
    }
    writeFileSync(join(this.dir, `${name}.ext`), extensions.join("\n") + "\n");
    this.openssl(
      "req",
      ...NEW_EC_KEY,
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.csr`,
      "-subj",
      this.#subject(options.commonName),
    );
    this.openssl(
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      options.issuer.cert,
      "-CAkey",
      options.issuer.key,
      "-CAcreateserial",
      "-days",
      VALID_DAYS,
      "-extfile",
      `${name}.ext`,
      "-out",
      `${name}.pem`,
    );
    return this.#files(name);
  }

  /**
   * Runs `openssl args...` in {@link DemoPki.dir} and returns what it printed on stdout, for
   * steps of your own (an OCSP response, a CRL, ...). Throws if it fails.
   *
   * @example
   * ```ts
   * import { DemoPki } from "./demo_pki.ts";
   * using pki = DemoPki.temporary("my-demo-");
   * pki.rootCa("ca", "Demo CA");
   * console.log(pki.openssl("x509", "-in", "ca.pem", "-noout", "-subject")); // subject=CN = Demo CA
   * ```
   */
  openssl(...args: string[]): string {
    return execFileSync("openssl", args, { cwd: this.dir, stdio: "pipe", encoding: "utf8" });
  }

  /**
   * Deletes {@link DemoPki.dir} and everything in it. Safe to call more than once.
   *
   * @example
   * ```ts
   * import { DemoPki } from "./demo_pki.ts";
   * const pki = DemoPki.temporary("my-demo-");
   * pki.remove();
   * pki.remove(); // nothing left to do
   * ```
   */
  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** {@link DemoPki.remove}, for `using`. */
  [Symbol.dispose](): void {
    this.remove();
  }

  #subject(commonName: string): string {
    return this.#organization === undefined
      ? `/CN=${commonName}`
      : `/O=${this.#organization}/CN=${commonName}`;
  }

  #files(name: string): DemoCertificate {
    return { cert: join(this.dir, `${name}.pem`), key: join(this.dir, `${name}.key`) };
  }
}
