/**
 * A small PKI with revocation, made with `openssl ca` (`-revoke`, `-gencrl`) at test time:
 * root → intermediate → leaves, some revoked, and a second intermediate that the root revoked.
 * Each CA has its own `openssl ca` database, so each CRL lists only what that CA revoked.
 *
 * @module
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { issueWithOpensslCa, leafKeyUsage, opensslTime, type Pem, runIn } from "./pki.ts";

/**
 * A CRL as PEM text, as a file, and as DER bytes.
 *
 * @example
 * ```ts
 * import { createCrlPki } from "./crl_pki.ts";
 * const { pem, path, der } = createCrlPki().intermediateCrl;
 * console.log(pem.startsWith("-----BEGIN X509 CRL-----"), path, der.length);
 * ```
 */
export interface CrlFile {
  /** `-----BEGIN X509 CRL-----` PEM. */
  pem: string;
  /** Absolute path of the PEM file. */
  path: string;
  /** The same CRL as DER. */
  der: Uint8Array;
}

/**
 * A leaf with its chain (leaf + its intermediate) as PEM and as a file.
 *
 * @example
 * ```ts
 * import { createCrlPki } from "./crl_pki.ts";
 * console.log(createCrlPki().revokedServer.chainPath);
 * ```
 */
export interface CrlLeaf extends Pem {
  /** Leaf PEM then its intermediate's PEM. */
  chainPem: string;
  /** Absolute path of `chainPem`. */
  chainPath: string;
  /** Absolute path of the intermediate that issued it (for `-cert_chain`). */
  intermediatePath: string;
}

/**
 * The revocation PKI (see {@link createCrlPki}).
 *
 * @example
 * ```ts
 * import { createCrlPki } from "./crl_pki.ts";
 * const pki = createCrlPki();
 * console.log(pki.root.certPath, pki.rootCrl.path, pki.intermediateCrl.path);
 * ```
 */
export interface CrlPki {
  /** Everything lives here. */
  dir: string;
  /** Self-signed root. */
  root: Pem;
  /** Issued by `root`, not revoked. */
  intermediate: Pem;
  /** Issued by `root`, revoked in `rootCrl`. */
  revokedIntermediate: Pem;
  /** localhost server leaf from `intermediate`. */
  server: CrlLeaf;
  /** localhost server leaf from `intermediate`, revoked in `intermediateCrl`. */
  revokedServer: CrlLeaf;
  /** localhost server leaf from `revokedIntermediate` (itself not revoked). */
  serverUnderRevokedIntermediate: CrlLeaf;
  /** Client leaf (clientAuth) from `intermediate`. */
  client: CrlLeaf;
  /** Client leaf from `intermediate`, revoked in `intermediateCrl`. */
  revokedClient: CrlLeaf;
  /** The root's CRL: lists `revokedIntermediate`. */
  rootCrl: CrlFile;
  /** The intermediate's CRL: lists `revokedServer` and `revokedClient`. */
  intermediateCrl: CrlFile;
  /** The intermediate's CRL again, but its nextUpdate passed yesterday. */
  expiredIntermediateCrl: CrlFile;
  /** `revokedIntermediate`'s CRL (empty). */
  revokedIntermediateCrl: CrlFile;
}

const DAY_MS = 24 * 60 * 60 * 1000;

function config(keyType: "ec"): string {
  const ca = (db: string) =>
    [
      `database = ${db}`,
      "serial = serial.txt",
      "new_certs_dir = issued",
      "default_md = sha256",
      "policy = policy_any",
      "unique_subject = no",
      "copy_extensions = none",
      "email_in_dn = no",
      "default_crl_days = 30",
    ].join("\n");
  const leaf = (eku: string, san: string | null) =>
    [
      "basicConstraints = critical,CA:FALSE",
      `keyUsage = ${leafKeyUsage(keyType)}`,
      `extendedKeyUsage = ${eku}`,
      "subjectKeyIdentifier = hash",
      "authorityKeyIdentifier = keyid:always",
      ...(san === null ? [] : [`subjectAltName = ${san}`]),
    ].join("\n");
  return `[req]
distinguished_name = req_dn
prompt = no
[req_dn]
CN = unused
[ca]
default_ca = root_ca
[root_ca]
${ca("root_index.txt")}
[inter_ca]
${ca("inter_index.txt")}
[inter2_ca]
${ca("inter2_index.txt")}
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
${leaf("serverAuth", "DNS:localhost,IP:127.0.0.1")}
[v3_client]
${leaf("clientAuth", null)}
`;
}

let shared: CrlPki | undefined;

/**
 * Builds the revocation PKI once per process (EC keys, about 25 `openssl` runs) in a temp dir
 * removed at exit.
 *
 * @example
 * ```ts
 * import { createCrlPki } from "./crl_pki.ts";
 * console.log(createCrlPki().revokedClient.certPath);
 * ```
 */
export function createCrlPki(): CrlPki {
  if (shared !== undefined) return shared;
  const dir = mkdtempSync(join(tmpdir(), `libssl-ffi-crl-${process.pid}-`));
  process.on("exit", () => {
    try {
      runIn("crl cleanup", tmpdir(), {}, "rm", ["-rf", dir]);
    } catch {
      // best effort
    }
  });
  mkdirSync(join(dir, "issued"));
  writeFileSync(join(dir, "openssl.cnf"), config("ec"));
  for (const db of ["root_index.txt", "inter_index.txt", "inter2_index.txt"]) {
    writeFileSync(join(dir, db), "");
  }
  let section = "root_ca";
  const run = (args: string[]) =>
    runIn("crl pki", dir, {}, "openssl", args[0] === "ca" ? [...args, "-name", section] : args);
  const now = Date.now();
  const issue = (name: string, cn: string, ext: string, issuer: Pem | null) =>
    issueWithOpensslCa(run, dir, "ec", {
      name,
      commonName: cn,
      extensions: ext,
      issuer,
      notBefore: now - DAY_MS,
      notAfter: now + 30 * DAY_MS,
    });
  const root = issue("root", "CRL Test Root", "v3_root", null);
  const intermediate = issue("inter", "CRL Test Intermediate", "v3_intermediate", root);
  const revokedIntermediate = issue("inter2", "CRL Revoked Intermediate", "v3_intermediate", root);
  const leaf = (name: string, cn: string, ext: string, issuer: Pem): CrlLeaf => {
    const pem = issue(name, cn, ext, issuer);
    const chainPem = pem.cert + issuer.cert;
    const chainPath = join(dir, `${name}-chain.pem`);
    writeFileSync(chainPath, chainPem);
    return { ...pem, chainPem, chainPath, intermediatePath: issuer.certPath };
  };
  section = "inter_ca";
  const server = leaf("server", "localhost", "v3_server", intermediate);
  const revokedServer = leaf("revoked-server", "localhost", "v3_server", intermediate);
  const client = leaf("client", "crl-client", "v3_client", intermediate);
  const revokedClient = leaf("revoked-client", "crl-revoked-client", "v3_client", intermediate);
  section = "inter2_ca";
  const serverUnderRevokedIntermediate = leaf(
    "server-under-revoked",
    "localhost",
    "v3_server",
    revokedIntermediate,
  );

  const ca = (issuer: Pem) => ["-cert", issuer.certPath, "-keyfile", issuer.keyPath];
  const crl = (name: string, issuer: Pem, extra: string[] = []): CrlFile => {
    run([
      "ca",
      "-config",
      "openssl.cnf",
      "-gencrl",
      ...ca(issuer),
      ...extra,
      "-out",
      `${name}.crl.pem`,
    ]);
    run(["crl", "-in", `${name}.crl.pem`, "-outform", "DER", "-out", `${name}.crl.der`]);
    const path = join(dir, `${name}.crl.pem`);
    return {
      pem: readFileSync(path, "utf8"),
      path,
      der: new Uint8Array(readFileSync(join(dir, `${name}.crl.der`))),
    };
  };
  section = "root_ca";
  run(["ca", "-config", "openssl.cnf", "-revoke", revokedIntermediate.certPath, ...ca(root)]);
  const rootCrl = crl("root", root);
  section = "inter_ca";
  run(["ca", "-config", "openssl.cnf", "-revoke", revokedServer.certPath, ...ca(intermediate)]);
  run(["ca", "-config", "openssl.cnf", "-revoke", revokedClient.certPath, ...ca(intermediate)]);
  const intermediateCrl = crl("inter", intermediate);
  const expiredIntermediateCrl = crl("inter-expired", intermediate, [
    "-crl_lastupdate",
    opensslTime(now - 2 * DAY_MS),
    "-crl_nextupdate",
    opensslTime(now - DAY_MS),
  ]);
  section = "inter2_ca";
  const revokedIntermediateCrl = crl("inter2", revokedIntermediate);
  shared = {
    dir,
    root,
    intermediate,
    revokedIntermediate,
    server,
    revokedServer,
    serverUnderRevokedIntermediate,
    client,
    revokedClient,
    rootCrl,
    intermediateCrl,
    expiredIntermediateCrl,
    revokedIntermediateCrl,
  };
  return shared;
}
