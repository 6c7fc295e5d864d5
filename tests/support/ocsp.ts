/**
 * OCSP test material for issue #7, built at test time with the system `openssl` CLI (and
 * `faketime` for the stale and future-dated responses) on top of a {@link TestPki}.
 *
 * Everything is about leaves issued by `pki.intermediateCa`, so the OCSP issuer is the
 * intermediate and the trust anchor is `pki.rootCaPath`. {@link ocspFixtures} adds, in a new dir
 * under `pki.dir` (deleted with the PKI):
 * - responder certificates: a delegated responder issued by the intermediate (EKU OCSPSigning +
 *   OCSP No Check), a delegated one WITHOUT the OCSPSigning EKU (EKU serverAuth), and an
 *   unrelated self-signed one;
 * - server leaves (CN=localhost, SAN DNS:localhost, IP:127.0.0.1, IP:::1, issued by the
 *   intermediate): `revokedServer` (revoked, keyCompromise, at `revokedAt`), `unknownServer`
 *   (not in the responder's index) and `mustStapleServer` (TLS Feature status_request);
 * - the responder's `index.txt` (`pki.server`, `revokedServer`, `mustStapleServer` and every
 *   {@link leafWithOcspUrl} leaf; NOT `unknownServer`);
 * - DER OCSP responses, each as a file and as bytes (see {@link OcspResponses}).
 *
 * Responses are made offline: `openssl ocsp -index index.txt -CA issuer -rsigner R -rkey K
 * -issuer issuer -cert LEAF -no_nonce -respout F -ndays 1` builds the request in memory and
 * answers it from the index, no responder process needed. For the live refresh tests,
 * {@link startOcspResponder} runs `openssl ocsp -port N` on the same index.
 *
 * Synchronous like `pki.ts` (about 30 `openssl` runs, ~0.3 s with EC keys); only `node:`
 * built-ins, so it runs identically under `deno test` and `bun test`.
 *
 * @example
 * ```ts
 * import { ocspFixtures } from "./support/ocsp.ts";
 * import { startOpensslServer } from "./support/openssl_peer.ts";
 * import { sharedTestPki } from "./support/pki.ts";
 * const pki = sharedTestPki();
 * const ocsp = ocspFixtures(pki);
 * const server = await startOpensslServer({
 *   cert: pki.server.certPath, key: pki.server.keyPath, chain: pki.intermediateCa.certPath,
 *   statusFile: ocsp.responses.good.path,
 * });
 * await server.stop();
 * ```
 * @module
 */

import {
  appendFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { type PeerProcess, startCommandPeer } from "./peer_process.ts";
import {
  issueWithOpensslCa,
  leafKeyUsage,
  type LeafPem,
  opensslTime,
  type Pem,
  runIn,
  sharedTestPki,
  type TestPki,
} from "./pki.ts";

/**
 * A certificate status as `openssl ocsp` prints it (`OCSP_cert_status_str`).
 *
 * @example
 * ```ts
 * import type { OcspCertStatus } from "./ocsp.ts";
 * const status: OcspCertStatus = "revoked";
 * console.log(status);
 * ```
 */
export type OcspCertStatus = "good" | "revoked" | "unknown";

/**
 * One OCSP response fixture: the file to staple (`statusFile` / `ocspResponse`) and its bytes,
 * plus what it says, read back from the file with `openssl ocsp -respin F -resp_text -noverify`
 * (all `null` for the responses that are not successful signed ones).
 *
 * @example
 * ```ts
 * import { ocspFixtures } from "./ocsp.ts";
 * const { path, der, certStatus, thisUpdate, nextUpdate } = ocspFixtures().responses.good;
 * console.log(path, der.length, certStatus, thisUpdate?.toISOString(), nextUpdate?.toISOString());
 * ```
 */
export interface OcspResponseFile {
  /** Absolute path of the DER file. */
  path: string;
  /** The file's bytes. */
  der: Uint8Array;
  /** Path of the certificate the response's single CertID names, or `null` (none). */
  aboutCertPath: string | null;
  /** Path of the certificate that signed it (the responder), or `null` (not signed). */
  signerCertPath: string | null;
  /** `Cert Status:` of the single response, or `null`. */
  certStatus: OcspCertStatus | null;
  /** `This Update:` (whole seconds), or `null`. */
  thisUpdate: Date | null;
  /** `Next Update:` (whole seconds), or `null`. */
  nextUpdate: Date | null;
}

/**
 * The response fixtures. Unless noted, each is a successful BasicOCSPResponse for `pki.server`,
 * signed by the issuer itself (the intermediate CA's key, Responder Id = its name), embedding the
 * signer's certificate only, with thisUpdate = creation time, nextUpdate = thisUpdate + 1 day,
 * no nonce, SHA-1 CertID.
 *
 * What `openssl ocsp -respin F -issuer <intermediate> -cert <leaf> -CAfile <root>` reports for
 * each (stderr + stdout) is noted per field; `tests/support/ocsp_test.ts` checks all of it.
 *
 * @example
 * ```ts
 * import { ocspFixtures } from "./ocsp.ts";
 * const { responses } = ocspFixtures();
 * for (const [name, file] of Object.entries(responses)) console.log(name, file.path);
 * ```
 */
export interface OcspResponses {
  /** good. `Response verify OK`, `server.pem: good`. */
  good: OcspResponseFile;
  /**
   * good, signed by the delegated `responder` (EKU OCSPSigning). `Response verify OK`. The
   * response embeds only the responder's certificate, not the intermediate: a verifier needs the
   * intermediate from elsewhere (the peer's chain; `openssl ocsp` retries with `-issuer` trusted).
   */
  goodByResponder: OcspResponseFile;
  /**
   * good, signed by `responderWithoutEku` (issued by the intermediate, EKU serverAuth only).
   * INVALID: `Response Verify Failure` ... `missing ocspsigning usage`.
   */
  goodByResponderWithoutEku: OcspResponseFile;
  /**
   * For `revokedServer`: revoked, `Reason: keyCompromise`, `Revocation Time:` =
   * {@link OcspFixtures.revokedAt}. Verifies OK.
   */
  revoked: OcspResponseFile;
  /** For `unknownServer` (not in the index): unknown. Verifies OK. */
  unknown: OcspResponseFile;
  /**
   * good, made under `faketime -f '-10d'` with `-ndays 1`: thisUpdate = now - 10 d, nextUpdate =
   * now - 9 d. Signature verifies (`Response verify OK`), then `WARNING: Status times invalid.`
   * + `status expired`.
   */
  stale: OcspResponseFile;
  /**
   * good, made under `faketime -f '+2d'` with `-ndays 1`: thisUpdate = now + 2 d (producedAt too).
   * `Response verify OK`, then `WARNING: Status times invalid.` + `status not yet valid`.
   */
  futureDated: OcspResponseFile;
  /**
   * good, signed by the unrelated self-signed `unrelatedSigner` (embedded). INVALID:
   * `Response Verify Failure` ... `Verify error: self-signed certificate`.
   */
  unrelatedSigner: OcspResponseFile;
  /**
   * A valid, good response for `mustStapleServer`, to be served for `pki.server`: signature OK,
   * but for `-cert server.pem`: `ERROR: No Status found.` (exit 1).
   */
  wrongCert: OcspResponseFile;
  /**
   * `OCSPResponse { responseStatus tryLater }` without a body: the bytes `30 03 0a 01 03`.
   * `Responder Error: trylater (3)`.
   */
  tryLater: OcspResponseFile;
  /**
   * 64 random bytes whose first byte is `0x04` (never a SEQUENCE): `Error reading OCSP response`
   * ... `wrong tag`. `s_server -status_file` refuses it per handshake; use `gnutls-serv`.
   */
  garbage: OcspResponseFile;
  /**
   * The first half of `good`'s bytes: `Error reading OCSP response` ... `not enough data`.
   * `s_server -status_file` refuses it per handshake; use `gnutls-serv`.
   */
  truncated: OcspResponseFile;
  /**
   * good, signed by the issuer but with no certificates embedded (`-resp_no_certs`). Verifies
   * OK when the verifier has the issuer's certificate (`openssl ocsp` gets it from `-issuer`).
   */
  noCerts: OcspResponseFile;
  /** good, for `mustStapleServer`. */
  mustStapleGood: OcspResponseFile;
}

/**
 * Everything {@link ocspFixtures} builds. Paths are absolute, under `dir`.
 *
 * @example
 * ```ts
 * import { ocspFixtures } from "./ocsp.ts";
 * const ocsp = ocspFixtures();
 * console.log(ocsp.issuer.certPath, ocsp.revokedServer.chainPath, ocsp.revokedAt, ocsp.revocationReason);
 * ```
 */
export interface OcspFixtures {
  /** The dir holding every file: `<pki.dir>/ocsp-XXXXXX`. */
  dir: string;
  /** The PKI this was built on. */
  pki: TestPki;
  /** The OCSP issuer of every leaf here: `pki.intermediateCa`. */
  issuer: Pem;
  /** `pki.rootCaPath`: the trust anchor. */
  rootCaPath: string;
  /**
   * The responder's database (`openssl ca` index format, plus `index.txt.attr` with
   * `unique_subject = no`). An `openssl ocsp -port` responder reads it once, at start.
   */
  indexPath: string;
  /**
   * Delegated responder: CN=libssl-ffi Test OCSP Responder, issued by the intermediate, CA:FALSE,
   * keyUsage digitalSignature, EKU OCSPSigning, OCSP No Check.
   */
  responder: Pem;
  /** Like `responder` (CN=libssl-ffi Test Non-OCSP Signer) but EKU serverAuth only. */
  responderWithoutEku: Pem;
  /** Self-signed, unrelated to the PKI (CN=libssl-ffi Unrelated OCSP Signer). */
  unrelatedSigner: Pem;
  /** Server leaf (like `pki.server`), revoked in the index. Its chain: leaf + intermediate. */
  revokedServer: LeafPem;
  /** The revocation time in the index and in `responses.revoked` (whole seconds, now - 1 d). */
  revokedAt: Date;
  /** The revocation reason, as OpenSSL names it (`OCSP_crl_reason_str`): `"keyCompromise"`. */
  revocationReason: "keyCompromise";
  /** Server leaf that is not in the index: the responder says unknown. */
  unknownServer: LeafPem;
  /** Server leaf with the TLS Feature extension `status_request` (must-staple). In the index. */
  mustStapleServer: LeafPem;
  /** The response fixtures. */
  responses: OcspResponses;
}

/**
 * A server leaf whose Authority Information Access names a local OCSP responder.
 *
 * @example
 * ```ts
 * import { leafWithOcspUrl } from "./ocsp.ts";
 * const leaf = leafWithOcspUrl(8888);
 * console.log(leaf.ocspUrl, leaf.chainPath); // http://127.0.0.1:8888
 * ```
 */
export interface OcspUrlLeaf extends LeafPem {
  /** `http://127.0.0.1:<port>`: the AIA `OCSP;URI:` value. */
  ocspUrl: string;
}

const DAY_MS = 24 * 60 * 60 * 1000;
const RUN_TIMEOUT_MS = 15_000;
const LOCALHOST_SAN = "DNS:localhost,IP:127.0.0.1,IP:::1";

function opensslConfig(keyUsage: string): string {
  const server = [
    "basicConstraints = critical,CA:FALSE",
    `keyUsage = ${keyUsage}`,
    "extendedKeyUsage = serverAuth",
    "subjectKeyIdentifier = hash",
    "authorityKeyIdentifier = keyid:always",
    `subjectAltName = ${LOCALHOST_SAN}`,
  ].join("\n");
  return `# Written by tests/support/ocsp.ts; used only for this throwaway PKI.
[req]
distinguished_name = req_dn
prompt = no
[req_dn]
CN = unused

[ca]
default_ca = test_ca
[test_ca]
# The CA's own database; the OCSP responder's index is index.txt, written by ocsp.ts.
database = ca-index.txt
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

[v3_ocsp_responder]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = OCSPSigning
noCheck = ignored
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[v3_not_ocsp_responder]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[v3_unrelated_signer]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = OCSPSigning
subjectKeyIdentifier = hash
[v3_server]
${server}
[v3_must_staple]
${server}
tlsfeature = status_request
`;
}

/** `YYMMDDHHMMSSZ` (UTCTime), the form of dates in an `openssl ca` index. */
function utcTime(ms: number): string {
  return opensslTime(ms).slice(2);
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/**
 * Parses a time as OpenSSL prints it (`ASN1_TIME_print`: `Nov 22 20:50:33 2026 GMT`), e.g. the
 * `This Update:` or `Revocation Time:` of `openssl ocsp -resp_text`.
 *
 * @example
 * ```ts
 * import { parseOpensslTime } from "./ocsp.ts";
 * console.log(parseOpensslTime("Jan  1 00:00:00 2026 GMT").toISOString()); // 2026-01-01T00:00:00.000Z
 * ```
 */
export function parseOpensslTime(text: string): Date {
  const match = /^([A-Z][a-z]{2}) +(\d{1,2}) (\d{2}):(\d{2}):(\d{2}) (\d{4}) GMT$/.exec(
    text.trim(),
  );
  const month = match === null ? -1 : MONTHS.indexOf(match[1]!);
  if (match === null || month < 0) throw new Error(`not an OpenSSL time: ${JSON.stringify(text)}`);
  const [, , day, hh, mm, ss, year] = match.map(Number) as number[];
  return new Date(Date.UTC(year!, month, day!, hh!, mm!, ss!));
}

/** Builds and caches; see {@link ocspFixtures}. */
class Builder {
  readonly dir: string;
  readonly pki: TestPki;
  readonly env: Record<string, string>;
  readonly openssl: string;
  readonly leaves = new Map<number, OcspUrlLeaf>();

  constructor(pki: TestPki, openssl: string) {
    this.pki = pki;
    this.openssl = openssl;
    this.dir = mkdtempSync(join(pki.dir, "ocsp-"));
    writeFileSync(join(this.dir, "openssl.cnf"), opensslConfig(leafKeyUsage(pki.keyType)));
    writeFileSync(join(this.dir, "ca-index.txt"), "");
    writeFileSync(join(this.dir, "index.txt"), "");
    // Several valid entries share a subject (CN=localhost): tell every reader of the index.
    writeFileSync(join(this.dir, "index.txt.attr"), "unique_subject = no\n");
    mkdirSync(join(this.dir, "issued"));
    this.env = {
      ...(process.env as Record<string, string>),
      OPENSSL_CONF: join(this.dir, "openssl.cnf"),
    };
  }

  /** Runs a command in `dir`; returns stdout. Throws with its stderr on failure. */
  run(args: string[], command = this.openssl): string {
    return runIn("OCSP fixtures", this.dir, this.env, command, args, RUN_TIMEOUT_MS);
  }

  read(file: string): string {
    return readFileSync(join(this.dir, file), "utf8");
  }

  /** Key + CSR, then `openssl ca` (issuer null: self-signed). */
  issue(
    name: string,
    commonName: string,
    extensions: string,
    issuer: Pem | null,
    extfile?: string,
  ): Pem {
    const now = Date.now();
    return issueWithOpensslCa((args) => this.run(args), this.dir, this.pki.keyType, {
      name,
      commonName,
      extensions,
      issuer,
      notBefore: now - DAY_MS,
      notAfter: now + 365 * DAY_MS,
      ...(extfile === undefined ? {} : { extfile }),
    });
  }

  /** A server leaf issued by the intermediate, with its chain file. */
  serverLeaf(name: string, extensions: string, extfile?: string): LeafPem {
    const issuer = this.pki.intermediateCa;
    const pem = this.issue(name, "localhost", extensions, issuer, extfile);
    const chainPem = pem.cert + issuer.cert;
    const chainPath = join(this.dir, `${name}.chain.pem`);
    writeFileSync(chainPath, chainPem);
    return { ...pem, chainPem, chainPath };
  }

  /** Appends `cert` to the responder's index: valid, or revoked at `revokedAt` for `reason`. */
  addToIndex(certPath: string, revoked?: { at: Date; reason: string }): void {
    const out = this.run([
      "x509",
      "-in",
      certPath,
      "-noout",
      "-serial",
      "-enddate",
      "-subject",
      "-nameopt",
      "compat",
    ]);
    const field = (name: string): string => {
      const match = new RegExp(`^${name}=(.*)$`, "m").exec(out);
      if (match?.[1] === undefined) throw new Error(`OCSP fixtures: no ${name} in ${out}`);
      return match[1];
    };
    const expiry = utcTime(parseOpensslTime(field("notAfter")).getTime());
    const revocation = revoked === undefined
      ? ""
      : `${utcTime(revoked.at.getTime())},${revoked.reason}`;
    const line = [
      revoked === undefined ? "V" : "R",
      expiry,
      revocation,
      field("serial"),
      "unknown",
      field("subject"),
    ].join("\t");
    appendFileSync(join(this.dir, "index.txt"), `${line}\n`);
  }

  /**
   * `openssl ocsp` as an offline responder: answers a request for `about`, signed by `signer`,
   * into `name`.der. `fakeOffset` (e.g. `-10d`) runs it under `faketime -f`.
   */
  respond(
    name: string,
    about: string,
    signer: Pem,
    options: { fakeOffset?: string; noCerts?: boolean } = {},
  ): OcspResponseFile {
    const issuer = this.pki.intermediateCa.certPath;
    const path = join(this.dir, `${name}.der`);
    const args = [
      "ocsp",
      "-index",
      "index.txt",
      "-CA",
      issuer,
      "-rsigner",
      signer.certPath,
      "-rkey",
      signer.keyPath,
      "-issuer",
      issuer,
      "-cert",
      about,
      "-no_nonce",
      "-ndays",
      "1",
      ...(options.noCerts === true ? ["-resp_no_certs"] : []),
      "-respout",
      path,
    ];
    if (options.fakeOffset === undefined) this.run(args);
    else this.run(["-f", options.fakeOffset, this.openssl, ...args], "faketime");
    return this.describe(path, about, signer.certPath);
  }

  /** Reads a response file back with `openssl ocsp -resp_text -noverify`. */
  describe(path: string, about: string | null, signer: string | null): OcspResponseFile {
    const der = new Uint8Array(readFileSync(path));
    const text = signer === null
      ? ""
      : this.run(["ocsp", "-respin", path, "-resp_text", "-noverify"]);
    const field = (name: string): string | null =>
      new RegExp(`^\\s*${name}: (.*)$`, "m").exec(text)?.[1]?.trim() ?? null;
    const status = field("Cert Status");
    const thisUpdate = field("This Update");
    const nextUpdate = field("Next Update");
    return {
      path,
      der,
      aboutCertPath: about,
      signerCertPath: signer,
      certStatus: status === "good" || status === "revoked" || status === "unknown" ? status : null,
      thisUpdate: thisUpdate === null ? null : parseOpensslTime(thisUpdate),
      nextUpdate: nextUpdate === null ? null : parseOpensslTime(nextUpdate),
    };
  }

  /** Writes raw bytes as a response fixture. */
  rawResponse(name: string, bytes: Uint8Array): OcspResponseFile {
    const path = join(this.dir, `${name}.der`);
    writeFileSync(path, bytes);
    return this.describe(path, null, null);
  }

  build(): OcspFixtures {
    const pki = this.pki;
    const issuer = pki.intermediateCa;
    const responder = this.issue(
      "ocsp-responder",
      "libssl-ffi Test OCSP Responder",
      "v3_ocsp_responder",
      issuer,
    );
    const responderWithoutEku = this.issue(
      "non-ocsp-signer",
      "libssl-ffi Test Non-OCSP Signer",
      "v3_not_ocsp_responder",
      issuer,
    );
    const unrelatedSigner = this.issue(
      "unrelated-signer",
      "libssl-ffi Unrelated OCSP Signer",
      "v3_unrelated_signer",
      null,
    );
    const revokedServer = this.serverLeaf("revoked-server", "v3_server");
    const unknownServer = this.serverLeaf("unknown-server", "v3_server");
    const mustStapleServer = this.serverLeaf("must-staple-server", "v3_must_staple");

    // Whole seconds: that is all the index (and the response) can hold.
    const revokedAt = new Date(Math.floor((Date.now() - DAY_MS) / 1000) * 1000);
    const revocationReason = "keyCompromise";
    this.addToIndex(pki.server.certPath);
    this.addToIndex(revokedServer.certPath, { at: revokedAt, reason: revocationReason });
    this.addToIndex(mustStapleServer.certPath);

    const server = pki.server.certPath;
    const good = this.respond("good", server, issuer);
    const goodBytes = good.der;
    // Never a DER SEQUENCE (0x30): an OCTET STRING tag, then random bytes.
    const garbageBytes = new Uint8Array(64);
    crypto.getRandomValues(garbageBytes);
    garbageBytes[0] = 0x04;
    const responses: OcspResponses = {
      good,
      goodByResponder: this.respond("good-by-responder", server, responder),
      goodByResponderWithoutEku: this.respond(
        "good-by-non-ocsp-signer",
        server,
        responderWithoutEku,
      ),
      revoked: this.respond("revoked", revokedServer.certPath, issuer),
      unknown: this.respond("unknown", unknownServer.certPath, issuer),
      stale: this.respond("stale", server, issuer, { fakeOffset: "-10d" }),
      futureDated: this.respond("future-dated", server, issuer, { fakeOffset: "+2d" }),
      unrelatedSigner: this.respond("unrelated-signer", server, unrelatedSigner),
      wrongCert: this.respond("wrong-cert", mustStapleServer.certPath, issuer),
      tryLater: this.rawResponse("try-later", new Uint8Array([0x30, 0x03, 0x0a, 0x01, 0x03])),
      garbage: this.rawResponse("garbage", garbageBytes),
      truncated: this.rawResponse(
        "truncated",
        goodBytes.slice(0, Math.floor(goodBytes.length / 2)),
      ),
      noCerts: this.respond("no-certs", server, issuer, { noCerts: true }),
      mustStapleGood: this.respond("must-staple-good", mustStapleServer.certPath, issuer),
    };

    return {
      dir: this.dir,
      pki,
      issuer,
      rootCaPath: pki.rootCaPath,
      indexPath: join(this.dir, "index.txt"),
      responder,
      responderWithoutEku,
      unrelatedSigner,
      revokedServer,
      revokedAt,
      revocationReason,
      unknownServer,
      mustStapleServer,
      responses,
    };
  }

  leafWithOcspUrl(port: number): OcspUrlLeaf {
    const cached = this.leaves.get(port);
    if (cached !== undefined && existsSync(cached.certPath)) return cached;
    const ocspUrl = `http://127.0.0.1:${port}`;
    const section = `v3_ocsp_url_${port}`;
    const extfile = join(this.dir, `ocsp-url-${port}.cnf`);
    const config = this.read("openssl.cnf");
    const serverSection = /\[v3_server\]\n([\s\S]*?)\n\[/.exec(config)?.[1] ?? "";
    writeFileSync(
      extfile,
      `[${section}]\n${serverSection}\nauthorityInfoAccess = OCSP;URI:${ocspUrl}\n`,
    );
    const leaf = this.serverLeaf(`ocsp-url-${port}-server`, section, extfile);
    this.addToIndex(leaf.certPath);
    const result = { ...leaf, ocspUrl };
    this.leaves.set(port, result);
    return result;
  }
}

const builders = new Map<string, { builder: Builder; fixtures: OcspFixtures }>();

function builderFor(pki: TestPki): { builder: Builder; fixtures: OcspFixtures } {
  let entry = builders.get(pki.dir);
  if (entry === undefined || !existsSync(entry.fixtures.dir)) {
    const builder = new Builder(pki, "openssl");
    entry = { builder, fixtures: builder.build() };
    builders.set(pki.dir, entry);
  }
  return entry;
}

/**
 * The OCSP fixtures for `pki` (default: `sharedTestPki()`): built on first call for that PKI,
 * then reused for the rest of the process (rebuilt if the PKI's dir was removed). Synchronous.
 *
 * @example
 * ```ts
 * import { ocspFixtures } from "./ocsp.ts";
 * import { startGnutlsServer } from "./gnutls_peer.ts";
 * const ocsp = ocspFixtures();
 * // Garbage bytes: s_server refuses to staple them, gnutls-serv staples them as they are.
 * const server = await startGnutlsServer({
 *   cert: ocsp.pki.serverChainPath, key: ocsp.pki.server.keyPath,
 *   ocspResponse: ocsp.responses.garbage.path,
 * });
 * await server.stop();
 * ```
 */
export function ocspFixtures(pki: TestPki = sharedTestPki()): OcspFixtures {
  return builderFor(pki).fixtures;
}

/**
 * A server leaf (CN=localhost, issued by the intermediate, valid, in the responder's index) whose
 * Authority Information Access is `OCSP;URI:http://127.0.0.1:<port>`. Cached per port. Issue it
 * BEFORE {@link startOcspResponder}: the responder reads its index once, at start.
 *
 * @example
 * ```ts
 * import { leafWithOcspUrl, startOcspResponder } from "./ocsp.ts";
 * import { freePort } from "./peer_process.ts";
 * const port = await freePort();
 * const leaf = leafWithOcspUrl(port);
 * const responder = await startOcspResponder({ port });
 * try {
 *   console.log(leaf.ocspUrl === responder.url); // true
 * } finally {
 *   await responder.stop();
 * }
 * ```
 */
export function leafWithOcspUrl(port: number, pki: TestPki = sharedTestPki()): OcspUrlLeaf {
  return builderFor(pki).builder.leafWithOcspUrl(port);
}

/**
 * Options for {@link startOcspResponder}.
 *
 * @example
 * ```ts
 * import type { OcspResponderOptions } from "./ocsp.ts";
 * const options: OcspResponderOptions = { port: 8888, signer: "responder", ndays: 1 };
 * console.log(options);
 * ```
 */
export interface OcspResponderOptions {
  /** Port on 127.0.0.1 (it listens on `[::]`, dual-stack). Default: a free one. */
  port?: number;
  /** The PKI. Default `sharedTestPki()`. */
  pki?: TestPki;
  /**
   * Who signs: `"issuer"` (default: the intermediate CA's own key) or `"responder"` (the
   * delegated OCSPSigning responder of {@link OcspFixtures.responder}).
   */
  signer?: "issuer" | "responder";
  /** `-ndays`: nextUpdate = thisUpdate + this many days. Default 1. */
  ndays?: number;
  /** The index to answer from. Default {@link OcspFixtures.indexPath}. Read once, at start. */
  index?: string;
  /** More `openssl ocsp` arguments, e.g. `["-resp_no_certs"]`. */
  extraArgs?: string[];
}

/**
 * The line `openssl ocsp -port` logs for each request it receives, for
 * `responder.waitFor(OCSP_REQUEST_LOGGED)`: `ocsp: Received request, 1st line: POST / HTTP/1.0`
 * up to 3.0, `ocsp: received request, 1st line: ...` (lower case) from 3.5 on.
 *
 * @example
 * ```ts
 * import { OCSP_REQUEST_LOGGED } from "./ocsp.ts";
 * console.log(OCSP_REQUEST_LOGGED.test("ocsp: received request, 1st line: POST / HTTP/1.0")); // true
 * ```
 */
export const OCSP_REQUEST_LOGGED =
  /^ocsp: [Rr]eceived request, 1st line: (?:POST|GET) \S+ HTTP\/1\.[01]$/m;

/**
 * A running `openssl ocsp` responder: a {@link PeerProcess} plus its URL.
 *
 * @example
 * ```ts
 * import { type OcspResponder, startOcspResponder } from "./ocsp.ts";
 * const responder: OcspResponder = await startOcspResponder();
 * console.log(responder.url);
 * await responder.stop();
 * ```
 */
export interface OcspResponder extends PeerProcess {
  /** `http://127.0.0.1:<port>`. */
  url: string;
}

/**
 * Starts `openssl ocsp -index <index> -port N -CA <intermediate> -rsigner ... -rkey ... -ndays 1`
 * as a child process, with the cleanup of `peer_process.ts` (`await using`, or
 * `await responder.stop()` in a `finally`). It answers `POST /` and `GET /<base64 request>`, one connection at a time, and
 * logs each request (see {@link OCSP_REQUEST_LOGGED}). It reads the index once, at start.
 *
 * @example
 * ```ts
 * import { ocspFixtures, startOcspResponder } from "./ocsp.ts";
 * const responder = await startOcspResponder({ signer: "responder" });
 * try {
 *   // openssl ocsp -url responder.url -issuer <intermediate> -cert <pki.server> ... => good
 *   console.log(responder.url, ocspFixtures().indexPath);
 * } finally {
 *   await responder.stop();
 * }
 * ```
 */
export async function startOcspResponder(
  options: OcspResponderOptions = {},
): Promise<OcspResponder> {
  const fixtures = ocspFixtures(options.pki ?? sharedTestPki());
  const issuer = fixtures.issuer;
  const signer = options.signer === "responder" ? fixtures.responder : issuer;
  const peer = await startCommandPeer("openssl ocsp responder", {
    command: "openssl",
    args: (port) => [
      "ocsp",
      "-index",
      options.index ?? fixtures.indexPath,
      "-port",
      String(port),
      "-CA",
      issuer.certPath,
      "-rsigner",
      signer.certPath,
      "-rkey",
      signer.keyPath,
      "-ndays",
      String(options.ndays ?? 1),
      ...(options.extraArgs ?? []),
    ],
    ...(options.port === undefined ? {} : { port: options.port }),
    cwd: fixtures.dir,
    env: { OPENSSL_CONF: join(fixtures.dir, "openssl.cnf") },
    // `ACCEPT [::]:<port> PID=<pid>` on stdout once it listens.
    readyPattern: /^ACCEPT /m,
    anyFamily: true,
  });
  return Object.assign(peer, { url: `http://127.0.0.1:${peer.port}` });
}
