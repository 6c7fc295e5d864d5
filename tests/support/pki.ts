/**
 * A throwaway test PKI, built at test time with the system `openssl` CLI in a fresh temp dir.
 *
 * Nothing is committed and nothing can expire: every certificate's validity is computed from the
 * current clock when the PKI is created. Certificates are issued with `openssl ca` (the only 3.0
 * command that accepts explicit `-startdate`/`-enddate`, which the expired and not-yet-valid
 * leaves need) against a minimal config written into the temp dir, so the system `openssl.cnf`
 * plays no part. Serial numbers are random (`-rand_serial`). Keys are EC P-256 by default,
 * written as unencrypted PKCS#8 PEM.
 *
 * Only `node:` built-ins are used, so this runs identically under `deno test` and `bun test`.
 *
 * @example
 * ```ts
 * import { sharedTestPki } from "./support/pki.ts";
 * const pki = sharedTestPki();
 * // pki.server.chainPath: leaf + intermediate; trust pki.rootCaPath on the client side.
 * console.log(pki.server.certPath, pki.server.keyPath, pki.rootCaPath);
 * ```
 * @module
 */

import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";

/**
 * A certificate and its private key, as PEM text and as files in the PKI's temp dir.
 *
 * @example
 * ```ts
 * import { sharedTestPki } from "./pki.ts";
 * const { cert, key, certPath, keyPath } = sharedTestPki().rootCa;
 * console.log(cert.startsWith("-----BEGIN CERTIFICATE-----"), key, certPath, keyPath);
 * ```
 */
export interface Pem {
  /** The certificate, one PEM block. */
  cert: string;
  /** Its private key: unencrypted PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`). */
  key: string;
  /** Absolute path of the file holding `cert`. */
  certPath: string;
  /** Absolute path of the file holding `key`. */
  keyPath: string;
}

/**
 * An end-entity certificate: a {@link Pem} plus the chain a peer should present.
 *
 * The chain is the leaf followed by every intermediate up to (not including) the root. For leaves
 * issued directly by a root, or self-signed, it is just the leaf. Presenting the chain matters for
 * the bad-leaf cases: without the intermediate a verifier stops at "unable to get local issuer
 * certificate" (20) before it ever looks at validity dates, host names or purposes.
 *
 * @example
 * ```ts
 * import { sharedTestPki } from "./pki.ts";
 * const { chainPath, keyPath } = sharedTestPki().expiredServer;
 * console.log(chainPath, keyPath); // serve these to get verify error 10 on the client
 * ```
 */
export interface LeafPem extends Pem {
  /** The leaf PEM followed by its issuing intermediates' PEM (not the root). */
  chainPem: string;
  /** Absolute path of the file holding `chainPem`. */
  chainPath: string;
}

/**
 * A passphrase-protected private key: PKCS#8 encrypted with PBES2 / AES-256-CBC.
 *
 * @example
 * ```ts
 * import { sharedTestPki } from "./pki.ts";
 * const { pem, path, passphrase } = sharedTestPki().clientEncryptedKey;
 * console.log(pem.startsWith("-----BEGIN ENCRYPTED PRIVATE KEY-----"), path, passphrase);
 * ```
 */
export interface EncryptedKey {
  /** The key as `-----BEGIN ENCRYPTED PRIVATE KEY-----` PEM. */
  pem: string;
  /** Absolute path of the file holding `pem`. */
  path: string;
  /** The passphrase that decrypts it: `"test-passphrase"`. */
  passphrase: string;
}

/**
 * The kind of keys a PKI is built with: EC P-256 or RSA 2048.
 *
 * @example
 * ```ts
 * import { sharedTestPki, type TestKeyType } from "./pki.ts";
 * const keyType: TestKeyType = "rsa";
 * console.log(sharedTestPki({ keyType }).keyType); // "rsa"
 * ```
 */
export type TestKeyType = "ec" | "rsa";

/**
 * Options for {@link createTestPki}.
 *
 * @example
 * ```ts
 * import { createTestPki, type TestPkiOptions } from "./pki.ts";
 * const options: TestPkiOptions = { keyType: "rsa" };
 * createTestPki(options).remove();
 * ```
 */
export interface TestPkiOptions {
  /** `"ec"` (P-256, the default, fast) or `"rsa"` (2048-bit, roughly 10x slower to create). */
  keyType?: TestKeyType;
  /** The `openssl` executable to run. Default: `"openssl"` from `PATH`. */
  openssl?: string;
}

/**
 * A complete test PKI. All paths are absolute and live under `dir`.
 *
 * Chain of trust: `rootCa` → `intermediateCa` (pathlen:0) → the leaves, except `selfSignedServer`
 * and `selfSignedClient` (self-signed), and `otherRootServer` and `otherRootClient` (issued
 * directly by the unrelated `otherRootCa`).
 *
 * Every server leaf except `wrongHostServer` and `ipOnlyServer` has CN=localhost and
 * SAN DNS:localhost, IP:127.0.0.1, IP:::1. What `openssl verify` reports for each bad leaf, when
 * given its `chainPath` and trusting only `rootCaPath`, is noted per field.
 *
 * @example
 * ```ts
 * import { createTestPki } from "./pki.ts";
 * const pki = createTestPki();
 * try {
 *   console.log(pki.serverChainPath, pki.rootCaPath, pki.client.keyPath);
 * } finally {
 *   pki.remove();
 * }
 * ```
 */
export interface TestPki {
  /**
   * The temp dir holding every file: `<os tmpdir>/libssl-ffi-pki-<pid>-XXXXXX/pki-XXXXXX`.
   * Besides the PEM files it holds `openssl.cnf`, the CSRs and `openssl ca`'s database.
   */
  dir: string;
  /** The kind of keys every certificate in this PKI uses. */
  keyType: TestKeyType;
  /** Self-signed root: CA:TRUE, keyCertSign + cRLSign. */
  rootCa: Pem;
  /** `rootCa.certPath`: the one file a verifier should trust. */
  rootCaPath: string;
  /** Issued by `rootCa`: CA:TRUE, pathlen:0. */
  intermediateCa: Pem;
  /** The good server: CN=localhost, SAN DNS:localhost, IP:127.0.0.1, IP:::1, EKU serverAuth. */
  server: LeafPem;
  /** `server.chainPem`: server leaf + intermediate. */
  serverChainPem: string;
  /** `server.chainPath`. */
  serverChainPath: string;
  /** The good client: CN=test-client, EKU clientAuth. */
  client: LeafPem;
  /** `client.chainPem`: client leaf + intermediate. */
  clientChainPem: string;
  /** `client.chainPath`. */
  clientChainPath: string;
  /** `client.key`, encrypted with passphrase `"test-passphrase"`. */
  clientEncryptedKey: EncryptedKey;
  /** Like `server`, but notAfter is in the past. Verify error 10 (certificate has expired). */
  expiredServer: LeafPem;
  /** Like `server`, but notBefore is in the future. Verify error 9 (not yet valid). */
  notYetValidServer: LeafPem;
  /** CN and SAN DNS:wrong.example only. Verify error 62 (hostname mismatch) for localhost. */
  wrongHostServer: LeafPem;
  /** Self-signed, otherwise like `server`. Verify error 18 (self-signed certificate). */
  selfSignedServer: LeafPem;
  /** An unrelated self-signed root, for untrusted-root cases. */
  otherRootCa: Pem;
  /** Like `server`, but issued directly by `otherRootCa`. Verify error 20 against `rootCa`. */
  otherRootServer: LeafPem;
  /** Like `server`, but EKU clientAuth only. Verify error 26 (unsupported purpose) as a server. */
  clientAuthOnlyServer: LeafPem;
  /**
   * SAN IP:127.0.0.1 only, with a CN that is not a host name (so OpenSSL's CN fallback cannot
   * match `localhost` either). Verifies for IP 127.0.0.1; fails for host `localhost` (62).
   */
  ipOnlyServer: LeafPem;
  /**
   * Like `client` (CN=expired-client, EKU clientAuth, issued by the intermediate), but notAfter
   * is in the past. Verify error 10 (certificate has expired) for a server trusting `rootCa`.
   */
  expiredClient: LeafPem;
  /**
   * Self-signed client certificate (CN=self-signed-client, EKU clientAuth). Verify error 18
   * (self-signed certificate) for a server trusting `rootCa`.
   */
  selfSignedClient: LeafPem;
  /**
   * Client certificate issued directly by the unrelated `otherRootCa` (CN=other-root-client,
   * EKU clientAuth). Verify error 20 (unable to get local issuer certificate) against `rootCa`.
   */
  otherRootClient: LeafPem;
  /** Deletes `dir` now (idempotent). Otherwise it is deleted when the process exits. */
  remove(): void;
}

const PASSPHRASE = "test-passphrase";
const SUBJECT_O = "libssl-ffi tests";
const DAY_MS = 24 * 60 * 60 * 1000;
const LOCALHOST_SAN = "DNS:localhost,IP:127.0.0.1,IP:::1";

/**
 * Cleanup. Every PKI of this module instance lives in one per-process root temp dir, deleted:
 * - by `remove()` (one PKI), or
 * - by an exit hook: `process.on("exit")` fires for `deno run`, `bun run` and `process.exit()`,
 *   but NOT at the end of `deno test` or `bun test`; `deno test` does dispatch the web `unload`
 *   event, so that is hooked too; and
 * - by a reaper: a detached `sh` loop that deletes the root once this process is gone. It is the
 *   only thing that works at the end of `bun test` (which fires neither event), and it also covers
 *   crashes and signals. It is started through a synchronous `sh` that exits at once, so neither
 *   runtime tracks it (no Deno resource-sanitizer noise, nothing for Bun to wait for).
 */
let processRoot: string | null = null;

function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

function removeProcessRoot(): void {
  if (processRoot === null) return;
  try {
    removeDir(processRoot);
  } catch {
    // Best effort: never turn a test run's exit into a crash; the reaper retries.
  }
  processRoot = null;
}

const REAPER = 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; rm -rf -- "$2"';

function startReaper(root: string): void {
  try {
    execFileSync(
      "sh",
      ["-c", `(${REAPER}) </dev/null >/dev/null 2>&1 &`, "pki-reaper", String(process.pid), root],
      { stdio: "ignore" },
    );
  } catch {
    // No `sh`: the exit hooks still cover normal exits.
  }
}

let exitHooksInstalled = false;

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on("exit", removeProcessRoot); // listeners must be synchronous; rmSync is
  const target = globalThis as { addEventListener?: (type: string, fn: () => void) => void };
  target.addEventListener?.("unload", removeProcessRoot);
}

/** A new, empty dir for one PKI under this process's root temp dir. */
function newPkiDir(): string {
  if (processRoot === null || !existsSync(processRoot)) {
    processRoot = mkdtempSync(join(tmpdir(), `libssl-ffi-pki-${process.pid}-`));
    installExitHooks();
    startReaper(processRoot);
  }
  return mkdtempSync(join(processRoot, "pki-"));
}

/**
 * `YYYYMMDDHHMMSSZ` (GeneralizedTime), the form `openssl ca -startdate/-enddate` takes.
 *
 * @example
 * ```ts
 * import { opensslTime } from "./pki.ts";
 * console.log(opensslTime(Date.UTC(2026, 0, 1))); // 20260101000000Z
 * ```
 */
export function opensslTime(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:T]/g, "").replace(/\.\d{3}Z$/, "Z");
}

/**
 * The keyUsage of a test leaf: RSA leaves also get keyEncipherment (TLS 1.2 RSA key
 * transport); EC leaves must not.
 *
 * @example
 * ```ts
 * import { leafKeyUsage } from "./pki.ts";
 * console.log(leafKeyUsage("ec")); // critical,digitalSignature
 * ```
 */
export function leafKeyUsage(keyType: TestKeyType): string {
  return keyType === "rsa"
    ? "critical,digitalSignature,keyEncipherment"
    : "critical,digitalSignature";
}

/**
 * Runs `command args` synchronously in `dir` with `env`; returns its stdout. On failure throws
 * an error that starts with `label` and carries the command's stderr.
 *
 * @example
 * ```ts
 * import { runIn } from "./pki.ts";
 * import { tmpdir } from "node:os";
 * const version = runIn("example", tmpdir(), {}, "openssl", ["version"]);
 * console.log(version); // OpenSSL 3.0.x ...
 * ```
 */
export function runIn(
  label: string,
  dir: string,
  env: Record<string, string | undefined>,
  command: string,
  args: string[],
  timeout?: number,
): string {
  try {
    return execFileSync(command, args, {
      cwd: dir,
      env,
      stdio: ["ignore", "pipe", "pipe"],
      encoding: "utf8",
      ...(timeout === undefined ? {} : { timeout }),
    });
  } catch (error) {
    const stderr = (error as { stderr?: unknown }).stderr;
    const detail = typeof stderr === "string"
      ? stderr.trim()
      : stderr instanceof Uint8Array
      ? new TextDecoder().decode(stderr).trim()
      : "";
    throw new Error(
      `${label}: \`${command} ${args.join(" ")}\` failed in ${dir}` +
        (detail === "" ? `: ${String(error)}` : `:\n${detail}`),
      { cause: error },
    );
  }
}

/**
 * One certificate for {@link issueWithOpensslCa}.
 *
 * @example
 * ```ts
 * import type { IssueRequest } from "./pki.ts";
 * const now = Date.now();
 * const request: IssueRequest = {
 *   name: "leaf",
 *   commonName: "localhost",
 *   extensions: "v3_server",
 *   issuer: null,
 *   notBefore: now,
 *   notAfter: now + 86_400_000,
 * };
 * console.log(request);
 * ```
 */
export interface IssueRequest {
  /** File stem: `<name>.key`, `<name>.csr`, `<name>.pem` in the directory. */
  name: string;
  /** The subject is `/O=libssl-ffi tests/CN=<commonName>`. */
  commonName: string;
  /** The config section with the certificate's extensions. */
  extensions: string;
  /** The issuing CA, or `null` for a self-signed certificate. */
  issuer: Pem | null;
  notBefore: number;
  notAfter: number;
  /** A file to read `extensions` from instead of the config. */
  extfile?: string;
}

/**
 * Makes a key and a CSR with `openssl req`, then signs it with `openssl ca`, in a directory set
 * up with an `openssl.cnf` that has a `[test_ca]` (as pki.ts and ocsp.ts write them). `run` runs
 * one openssl command in that directory.
 *
 * @example
 * ```ts
 * import { issueWithOpensslCa, runIn, sharedTestPki } from "./pki.ts";
 * const pki = sharedTestPki();
 * const run = (args: string[]) => runIn("example", pki.dir, {}, "openssl", args);
 * const now = Date.now();
 * const pem = issueWithOpensslCa(run, pki.dir, pki.keyType, {
 *   name: "example",
 *   commonName: "example",
 *   extensions: "v3_client",
 *   issuer: pki.rootCa,
 *   notBefore: now,
 *   notAfter: now + 86_400_000,
 * });
 * console.log(pem.certPath);
 * ```
 */
export function issueWithOpensslCa(
  run: (args: string[]) => unknown,
  dir: string,
  keyType: TestKeyType,
  request: IssueRequest,
): Pem {
  const { name, issuer, extfile } = request;
  const newKey = keyType === "rsa"
    ? ["-newkey", "rsa:2048"]
    : ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];
  // Key + CSR in one run; -noenc writes the key as unencrypted PKCS#8.
  run([
    "req",
    "-config",
    "openssl.cnf",
    "-new",
    ...newKey,
    "-noenc",
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.csr`,
    "-subj",
    `/O=${SUBJECT_O}/CN=${request.commonName}`,
  ]);
  run([
    "ca",
    "-config",
    "openssl.cnf",
    "-batch",
    "-notext",
    "-preserveDN",
    "-rand_serial",
    ...(issuer === null
      ? ["-selfsign", "-keyfile", `${name}.key`]
      : ["-cert", issuer.certPath, "-keyfile", issuer.keyPath]),
    ...(extfile === undefined ? [] : ["-extfile", extfile]),
    "-extensions",
    request.extensions,
    "-startdate",
    opensslTime(request.notBefore),
    "-enddate",
    opensslTime(request.notAfter),
    "-in",
    `${name}.csr`,
    "-out",
    `${name}.pem`,
  ]);
  const read = (file: string): string => readFileSync(join(dir, file), "utf8");
  return {
    cert: read(`${name}.pem`),
    key: read(`${name}.key`),
    certPath: join(dir, `${name}.pem`),
    keyPath: join(dir, `${name}.key`),
  };
}

/** A minimal config for `openssl req` and `openssl ca`; every path is relative to the temp dir. */
function opensslConfig(keyType: TestKeyType): string {
  const keyUsage = leafKeyUsage(keyType);
  const leaf = (eku: string, san: string | null): string =>
    [
      "basicConstraints = critical,CA:FALSE",
      `keyUsage = ${keyUsage}`,
      `extendedKeyUsage = ${eku}`,
      "subjectKeyIdentifier = hash",
      "authorityKeyIdentifier = keyid:always",
      ...(san === null ? [] : [`subjectAltName = ${san}`]),
    ].join("\n");
  return `# Written by tests/support/pki.ts; used only for this throwaway PKI.
[req]
distinguished_name = req_dn
prompt = no
[req_dn]
CN = unused

[ca]
default_ca = test_ca
[test_ca]
database = index.txt
# Never read: every certificate uses -rand_serial. openssl ca 3.0 still insists it is set.
serial = serial.txt
new_certs_dir = issued
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
email_in_dn = no
[policy_any]
organizationName = optional
commonName = supplied

[v3_root]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[v3_intermediate]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[v3_server]
${leaf("serverAuth", LOCALHOST_SAN)}
[v3_client]
${leaf("clientAuth", null)}
[v3_wrong_host]
${leaf("serverAuth", "DNS:wrong.example")}
[v3_client_auth_only]
${leaf("clientAuth", LOCALHOST_SAN)}
[v3_ip_only]
${leaf("serverAuth", "IP:127.0.0.1")}
`;
}

/**
 * Builds a fresh PKI in a new temp dir with the `openssl` CLI. Synchronous; about 30 `openssl`
 * runs: about 0.2-0.3 s with EC keys, 2.5-3.5 s with RSA. Its dir is deleted by `remove()`, or
 * when the process exits (including at the end of `deno test` / `bun test`, and after a crash).
 *
 * @example
 * ```ts
 * import { createTestPki } from "./pki.ts";
 * const pki = createTestPki({ keyType: "rsa" });
 * console.log(pki.server.key.startsWith("-----BEGIN PRIVATE KEY-----")); // true
 * pki.remove();
 * ```
 */
export function createTestPki(options: TestPkiOptions = {}): TestPki {
  const keyType = options.keyType ?? "ec";
  const openssl = options.openssl ?? "openssl";
  const dir = newPkiDir();
  try {
    return build(dir, keyType, openssl);
  } catch (error) {
    removeDir(dir);
    throw error;
  }
}

function build(dir: string, keyType: TestKeyType, openssl: string): TestPki {
  const configPath = join(dir, "openssl.cnf");
  writeFileSync(configPath, opensslConfig(keyType));
  writeFileSync(join(dir, "index.txt"), "");
  mkdirSync(join(dir, "issued"));
  // OPENSSL_CONF keeps the system config out of commands that take no -config (pkcs8).
  const env = { ...process.env, OPENSSL_CONF: configPath };

  const run = (args: string[]): string => runIn("test PKI", dir, env, openssl, args);
  const issue = (spec: IssueRequest): Pem => issueWithOpensslCa(run, dir, keyType, spec);
  const read = (file: string): string => readFileSync(join(dir, file), "utf8");

  const withChain = (pem: Pem, name: string, intermediates: Pem[]): LeafPem => {
    const chainPem = [pem, ...intermediates].map((p) => p.cert).join("");
    const chainPath = join(dir, `${name}.chain.pem`);
    writeFileSync(chainPath, chainPem);
    return { ...pem, chainPem, chainPath };
  };

  const now = Date.now();
  // Back-date "valid" certificates a day so a peer with a slightly slow clock still accepts them.
  const validFrom = now - DAY_MS;
  const caUntil = now + 3650 * DAY_MS;
  const leafUntil = now + 365 * DAY_MS;

  const rootCa = issue({
    name: "root-ca",
    commonName: "libssl-ffi Test Root CA",
    extensions: "v3_root",
    issuer: null,
    notBefore: validFrom,
    notAfter: caUntil,
  });
  const intermediateCa = issue({
    name: "intermediate-ca",
    commonName: "libssl-ffi Test Intermediate CA",
    extensions: "v3_intermediate",
    issuer: rootCa,
    notBefore: validFrom,
    notAfter: caUntil,
  });
  const otherRootCa = issue({
    name: "other-root-ca",
    commonName: "libssl-ffi Other Root CA",
    extensions: "v3_root",
    issuer: null,
    notBefore: validFrom,
    notAfter: caUntil,
  });

  const leaf = (
    name: string,
    commonName: string,
    extensions: string,
    issuer: Pem | null = intermediateCa,
    notBefore = validFrom,
    notAfter = leafUntil,
  ): LeafPem => {
    const pem = issue({ name, commonName, extensions, issuer, notBefore, notAfter });
    return withChain(pem, name, issuer === intermediateCa ? [intermediateCa] : []);
  };

  const server = leaf("server", "localhost", "v3_server");
  const client = leaf("client", "test-client", "v3_client");
  const expiredServer = leaf(
    "expired-server",
    "localhost",
    "v3_server",
    intermediateCa,
    now - 60 * DAY_MS,
    now - 30 * DAY_MS,
  );
  const notYetValidServer = leaf(
    "not-yet-valid-server",
    "localhost",
    "v3_server",
    intermediateCa,
    now + 30 * DAY_MS,
    now + 60 * DAY_MS,
  );
  const wrongHostServer = leaf("wrong-host-server", "wrong.example", "v3_wrong_host");
  const selfSignedServer = leaf("self-signed-server", "localhost", "v3_server", null);
  const otherRootServer = leaf("other-root-server", "localhost", "v3_server", otherRootCa);
  const clientAuthOnlyServer = leaf("client-auth-only-server", "localhost", "v3_client_auth_only");
  const ipOnlyServer = leaf("ip-only-server", "ip-only test server", "v3_ip_only");
  const expiredClient = leaf(
    "expired-client",
    "expired-client",
    "v3_client",
    intermediateCa,
    now - 60 * DAY_MS,
    now - 30 * DAY_MS,
  );
  const selfSignedClient = leaf("self-signed-client", "self-signed-client", "v3_client", null);
  const otherRootClient = leaf("other-root-client", "other-root-client", "v3_client", otherRootCa);

  run([
    "pkcs8",
    "-topk8",
    "-v2",
    "aes-256-cbc",
    "-v2prf",
    "hmacWithSHA256",
    "-in",
    "client.key",
    "-out",
    "client.encrypted.key",
    "-passout",
    `pass:${PASSPHRASE}`,
  ]);
  const clientEncryptedKey: EncryptedKey = {
    pem: read("client.encrypted.key"),
    path: join(dir, "client.encrypted.key"),
    passphrase: PASSPHRASE,
  };

  return {
    dir,
    keyType,
    rootCa,
    rootCaPath: rootCa.certPath,
    intermediateCa,
    server,
    serverChainPem: server.chainPem,
    serverChainPath: server.chainPath,
    client,
    clientChainPem: client.chainPem,
    clientChainPath: client.chainPath,
    clientEncryptedKey,
    expiredServer,
    notYetValidServer,
    wrongHostServer,
    selfSignedServer,
    otherRootCa,
    otherRootServer,
    clientAuthOnlyServer,
    ipOnlyServer,
    expiredClient,
    selfSignedClient,
    otherRootClient,
    remove: () => removeDir(dir),
  };
}

const shared = new Map<TestKeyType, TestPki>();

/**
 * The process-wide PKI for a key type: created on first call, then reused; removed at exit.
 * Prefer {@link createTestPki} for a PKI a test deletes; `remove()` on the shared one deletes it
 * for every later caller too (the next call then builds a new one).
 *
 * @example
 * ```ts
 * import { sharedTestPki } from "./pki.ts";
 * console.log(sharedTestPki() === sharedTestPki()); // true
 * console.log(sharedTestPki({ keyType: "rsa" }).keyType); // "rsa"
 * ```
 */
export function sharedTestPki(options: TestPkiOptions = {}): TestPki {
  const keyType = options.keyType ?? "ec";
  let pki = shared.get(keyType);
  if (pki === undefined) {
    const created = createTestPki(options);
    const remove = created.remove;
    // Removing the shared PKI also forgets it, so a later call builds a fresh one.
    pki = { ...created, remove: () => (shared.delete(keyType), remove()) };
    shared.set(keyType, pki);
  }
  return pki;
}
