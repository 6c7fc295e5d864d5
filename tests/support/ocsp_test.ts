/**
 * Checks that every OCSP fixture of `ocsp.ts` is what it claims, with the `openssl` CLI only:
 * `openssl ocsp -respin F -issuer <intermediate> -cert <leaf> -CAfile <root> -resp_text`,
 * `openssl x509`/`verify`, `s_server -status_file` / `gnutls-serv --ocsp-response` seen through
 * `openssl s_client -status`, and a live `openssl ocsp` responder queried with `-url`.
 *
 * @module
 */

import assert from "node:assert/strict";
import process from "node:process";
import { test } from "../harness.ts";
import {
  leafWithOcspUrl,
  OCSP_REQUEST_LOGGED,
  ocspFixtures,
  type OcspResponseFile,
  parseOpensslTime,
  startOcspResponder,
} from "./ocsp.ts";
import { freePort } from "./peer_process.ts";
import { opensslServerArgs, startOpensslServer } from "./openssl_peer.ts";
import { gnutlsServerArgs, startGnutlsServer } from "./gnutls_peer.ts";
import { sharedTestPki } from "./pki.ts";
import { runOpenssl, type RunResult } from "./probes.ts";
import {
  cliAtLeast,
  nameAfter,
  type NameEntry,
  stapledResponse,
  statusReport,
} from "./cli_output.ts";

const pki = sharedTestPki();
const ocsp = ocspFixtures(pki);
const DAY_MS = 24 * 60 * 60 * 1000;

/** `O=libssl-ffi tests, CN=cn`, parsed (the CLI's spacing differs between releases). */
function testName(cn: string): NameEntry[] {
  return [["O", "libssl-ffi tests"], ["CN", cn]];
}
const INTERMEDIATE = testName("libssl-ffi Test Intermediate CA");

/** `openssl ocsp -respin F -issuer <intermediate> -cert <cert> -CAfile <root> -resp_text`. */
function checkResponse(file: OcspResponseFile, cert: string, ...extra: string[]) {
  return runOpenssl([
    "ocsp",
    "-respin",
    file.path,
    "-issuer",
    ocsp.issuer.certPath,
    "-cert",
    cert,
    "-CAfile",
    ocsp.rootCaPath,
    "-resp_text",
    ...extra,
  ]);
}

/** The `<cert>: <status>` line `openssl ocsp` prints for `cert`. */
function statusLine(cert: string, status: string): string {
  return `${cert}: ${status}`;
}

const server = pki.server.certPath;
const { responses } = ocsp;

test("ocsp: fixtures are cached per PKI and live under the PKI's dir", () => {
  assert.equal(ocspFixtures(pki), ocsp);
  assert.equal(ocspFixtures(), ocsp);
  assert.ok(ocsp.dir.startsWith(pki.dir));
  assert.equal(ocsp.issuer, pki.intermediateCa);
  assert.equal(ocsp.rootCaPath, pki.rootCaPath);
});

test("ocsp: responder certificates have the claimed issuers and extensions", async () => {
  const text = async (path: string): Promise<string> => {
    const r = await runOpenssl(["x509", "-in", path, "-noout", "-text"]);
    assert.equal(r.status, 0, r.output);
    return r.stdout;
  };
  const responder = await text(ocsp.responder.certPath);
  assert.deepEqual(nameAfter(responder, "Issuer"), INTERMEDIATE);
  assert.match(responder, /Extended Key Usage: *\n *OCSP Signing\n/);
  assert.match(responder, /OCSP No Check/);
  assert.match(responder, /CA:FALSE/);

  const withoutEku = await text(ocsp.responderWithoutEku.certPath);
  assert.deepEqual(nameAfter(withoutEku, "Issuer"), INTERMEDIATE);
  assert.match(withoutEku, /Extended Key Usage: *\n *TLS Web Server Authentication\n/);
  assert.doesNotMatch(withoutEku, /OCSP Signing/);

  const unrelated = await text(ocsp.unrelatedSigner.certPath);
  assert.deepEqual(nameAfter(unrelated, "Issuer"), testName("libssl-ffi Unrelated OCSP Signer"));
  assert.deepEqual(nameAfter(unrelated, "Subject"), testName("libssl-ffi Unrelated OCSP Signer"));

  const mustStaple = await text(ocsp.mustStapleServer.certPath);
  assert.match(mustStaple, /TLS Feature: *\n *status_request\n/);
  assert.match(mustStaple, /DNS:localhost, IP Address:127\.0\.0\.1/);

  for (const leaf of [ocsp.revokedServer, ocsp.unknownServer, ocsp.mustStapleServer]) {
    const r = await runOpenssl([
      "verify",
      "-CAfile",
      ocsp.rootCaPath,
      "-untrusted",
      ocsp.issuer.certPath,
      "-purpose",
      "sslserver",
      leaf.certPath,
    ]);
    assert.equal(r.status, 0, r.output);
    assert.match(r.stdout, /: OK\n/);
  }
});

test("ocsp: good, signed by the issuer", async () => {
  const r = await checkResponse(responses.good, server);
  assert.equal(r.status, 0, r.output);
  assert.match(r.stderr, /Response verify OK/);
  assert.ok(r.stdout.includes(statusLine(server, "good")), r.output);
  assert.match(r.stdout, /OCSP Response Status: successful \(0x0\)/);
  assert.deepEqual(nameAfter(r.stdout, "Responder Id"), INTERMEDIATE);
  const file = responses.good;
  assert.equal(file.certStatus, "good");
  assert.ok(Math.abs(file.thisUpdate!.getTime() - Date.now()) < 10 * 60_000);
  assert.equal(file.nextUpdate!.getTime() - file.thisUpdate!.getTime(), DAY_MS);
  assert.equal(file.signerCertPath, ocsp.issuer.certPath);
  assert.equal(file.aboutCertPath, server);
});

test("ocsp: good, signed by the delegated OCSPSigning responder", async () => {
  const r = await checkResponse(responses.goodByResponder, server);
  assert.equal(r.status, 0, r.output);
  assert.match(r.stderr, /Response verify OK/);
  assert.ok(r.stdout.includes(statusLine(server, "good")), r.output);
  assert.deepEqual(nameAfter(r.stdout, "Responder Id"), testName("libssl-ffi Test OCSP Responder"));
  // With the intermediate at hand as an untrusted certificate, it verifies at the first try.
  const strict = await checkResponse(
    responses.goodByResponder,
    server,
    "-verify_other",
    ocsp.issuer.certPath,
  );
  assert.equal(strict.status, 0, strict.output);
  assert.doesNotMatch(strict.stderr, /error/);
});

test("ocsp: good, signed by a responder without the OCSPSigning EKU, fails", async () => {
  const r = await checkResponse(
    responses.goodByResponderWithoutEku,
    server,
    "-verify_other",
    ocsp.issuer.certPath,
  );
  assert.equal(r.status, 1, r.output);
  assert.match(r.stderr, /Response Verify Failure/);
  assert.match(r.stderr, /missing ocspsigning usage/);
  assert.deepEqual(
    nameAfter(r.stdout, "Responder Id"),
    testName("libssl-ffi Test Non-OCSP Signer"),
  );
  // The bytes themselves still say good.
  assert.ok(r.stdout.includes(statusLine(server, "good")), r.output);
});

test("ocsp: revoked, keyCompromise, at the recorded time", async () => {
  const leaf = ocsp.revokedServer.certPath;
  const r = await checkResponse(responses.revoked, leaf);
  assert.equal(r.status, 0, r.output);
  assert.match(r.stderr, /Response verify OK/);
  assert.ok(r.stdout.includes(statusLine(leaf, "revoked")), r.output);
  assert.match(r.stdout, /Reason: keyCompromise\n/);
  assert.equal(ocsp.revocationReason, "keyCompromise");
  const time = /Revocation Time: (.*)\n/.exec(r.stdout)?.[1];
  assert.ok(time !== undefined, r.output);
  assert.equal(parseOpensslTime(time).getTime(), ocsp.revokedAt.getTime());
  assert.ok(Math.abs(ocsp.revokedAt.getTime() - (Date.now() - DAY_MS)) < 10 * 60_000);
  assert.equal(responses.revoked.certStatus, "revoked");
});

test("ocsp: unknown, for a leaf not in the index", async () => {
  const leaf = ocsp.unknownServer.certPath;
  const r = await checkResponse(responses.unknown, leaf);
  assert.equal(r.status, 0, r.output);
  assert.match(r.stderr, /Response verify OK/);
  assert.ok(r.stdout.includes(statusLine(leaf, "unknown")), r.output);
  assert.equal(responses.unknown.certStatus, "unknown");
});

test("ocsp: stale (nextUpdate in the past)", async () => {
  const r = await checkResponse(responses.stale, server);
  assert.equal(r.status, 0, r.output);
  assert.match(r.stderr, /Response verify OK/);
  assert.match(r.output, /WARNING: Status times invalid\./);
  assert.match(r.output, /status expired/);
  const { thisUpdate, nextUpdate } = responses.stale;
  assert.ok(Math.abs(thisUpdate!.getTime() - (Date.now() - 10 * DAY_MS)) < 10 * 60_000);
  assert.equal(nextUpdate!.getTime() - thisUpdate!.getTime(), DAY_MS);
  assert.ok(nextUpdate!.getTime() < Date.now() - 8 * DAY_MS);
});

test("ocsp: future-dated (thisUpdate in the future)", async () => {
  const r = await checkResponse(responses.futureDated, server);
  assert.equal(r.status, 0, r.output);
  assert.match(r.stderr, /Response verify OK/);
  assert.match(r.output, /WARNING: Status times invalid\./);
  assert.match(r.output, /status not yet valid/);
  const { thisUpdate } = responses.futureDated;
  assert.ok(Math.abs(thisUpdate!.getTime() - (Date.now() + 2 * DAY_MS)) < 10 * 60_000);
  const produced = /Produced At: (.*)\n/.exec(r.stdout)?.[1];
  assert.ok(produced !== undefined && parseOpensslTime(produced) > new Date(Date.now() + DAY_MS));
});

test("ocsp: signed by an unrelated self-signed key fails", async () => {
  const r = await checkResponse(responses.unrelatedSigner, server);
  assert.equal(r.status, 1, r.output);
  assert.match(r.stderr, /Response Verify Failure/);
  assert.match(r.stderr, /Verify error: self-signed certificate/);
  assert.deepEqual(
    nameAfter(r.stdout, "Responder Id"),
    testName("libssl-ffi Unrelated OCSP Signer"),
  );
});

test("ocsp: a response for another certificate has no status for pki.server", async () => {
  const r = await checkResponse(responses.wrongCert, server);
  assert.equal(r.status, 1, r.output);
  assert.match(r.stderr, /Response verify OK/);
  assert.ok(r.output.includes(`${server}: ERROR: No Status found.`), r.output);
  const own = await checkResponse(responses.wrongCert, ocsp.mustStapleServer.certPath);
  assert.equal(own.status, 0, own.output);
  assert.ok(own.stdout.includes(statusLine(ocsp.mustStapleServer.certPath, "good")));
});

test("ocsp: tryLater, garbage and truncated bytes", async () => {
  assert.deepEqual([...responses.tryLater.der], [0x30, 0x03, 0x0a, 0x01, 0x03]);
  const tryLater = await checkResponse(responses.tryLater, server);
  assert.equal(tryLater.status, 1, tryLater.output);
  assert.match(tryLater.output, /Responder Error: trylater \(3\)/);

  assert.equal(responses.garbage.der.length, 64);
  assert.notEqual(responses.garbage.der[0], 0x30);
  const garbage = await checkResponse(responses.garbage, server);
  assert.equal(garbage.status, 1, garbage.output);
  assert.match(garbage.stderr, /Error reading OCSP response/);

  const good = responses.good.der;
  const truncated = responses.truncated.der;
  assert.equal(truncated.length, Math.floor(good.length / 2));
  assert.deepEqual(truncated, good.slice(0, truncated.length));
  const cut = await checkResponse(responses.truncated, server);
  assert.equal(cut.status, 1, cut.output);
  assert.match(cut.stderr, /Error reading OCSP response/);
  assert.match(cut.stderr, /not enough data/);

  for (const file of [responses.tryLater, responses.garbage, responses.truncated]) {
    assert.equal(file.certStatus, null);
    assert.equal(file.thisUpdate, null);
  }
});

test("ocsp: no embedded certificates, signed by the issuer", async () => {
  const r = await checkResponse(responses.noCerts, server);
  assert.equal(r.status, 0, r.output);
  assert.match(r.stderr, /Response verify OK/);
  assert.ok(r.stdout.includes(statusLine(server, "good")), r.output);
  assert.doesNotMatch(r.stdout, /BEGIN CERTIFICATE/);
  assert.ok(responses.noCerts.der.length < responses.good.der.length);
  const withCerts = await checkResponse(responses.good, server);
  assert.match(withCerts.stdout, /BEGIN CERTIFICATE/);
});

test("ocsp: must-staple leaf and its good response", async () => {
  const leaf = ocsp.mustStapleServer.certPath;
  const r = await checkResponse(responses.mustStapleGood, leaf);
  assert.equal(r.status, 0, r.output);
  assert.match(r.stderr, /Response verify OK/);
  assert.ok(r.stdout.includes(statusLine(leaf, "good")), r.output);
});

test("ocsp: the openssl and gnutls peers' options map to the real flags", () => {
  const s = opensslServerArgs({ cert: "c", key: "k", statusFile: "/tmp/r.der" }, 4433);
  assert.deepEqual(s.slice(s.indexOf("-status_file")), ["-status_file", "/tmp/r.der"]);
  assert.ok(!opensslServerArgs({ cert: "c" }, 4433).includes("-status_file"));
  const g = gnutlsServerArgs({ ocspResponse: "/tmp/r.der" }, 5556);
  assert.deepEqual(g.slice(g.indexOf("--ocsp-response")), [
    "--ocsp-response",
    "/tmp/r.der",
    "--ignore-ocsp-response-errors",
  ]);
  const strict = gnutlsServerArgs(
    { ocspResponse: "/tmp/r.der", ignoreOcspResponseErrors: false },
    5556,
  );
  assert.deepEqual(strict.slice(strict.indexOf("--ocsp-response")), [
    "--ocsp-response",
    "/tmp/r.der",
  ]);
});

/** `s_client -status` against 127.0.0.1:port; returns its output. */
async function sClientStatus(port: number): Promise<RunResult> {
  return await runOpenssl([
    "s_client",
    "-connect",
    `127.0.0.1:${port}`,
    "-servername",
    "localhost",
    "-CAfile",
    ocsp.rootCaPath,
    "-status",
  ]);
}

test("ocsp: s_server statusFile staples the response", async () => {
  // From OpenSSL 3.6 (the TLS 1.3 multi-stapling rewrite, openssl PR 20945) a server sends only a
  // response that covers its leaf: tryLater (no single response in it) is no longer stapled.
  // Up to 3.5 s_server staples the file as it is.
  const tryLaterStapled = !cliAtLeast(3, 6);
  const cases: Array<[string, string, string, OcspResponseFile, RegExp | null]> = [
    [server, pki.server.keyPath, "good", responses.good, /Cert Status: good/],
    [
      ocsp.revokedServer.certPath,
      ocsp.revokedServer.keyPath,
      "revoked",
      responses.revoked,
      /Cert Status: revoked\n\s*Revocation Time: .*\n\s*Revocation Reason: keyCompromise/,
    ],
    [
      server,
      pki.server.keyPath,
      "tryLater",
      responses.tryLater,
      tryLaterStapled ? /^\s*OCSP Response Status: trylater \(0x3\)$/m : null,
    ],
  ];
  for (const [cert, key, name, file, expected] of cases) {
    const peer = await startOpensslServer({
      cert,
      key,
      chain: ocsp.issuer.certPath,
      statusFile: file.path,
    });
    try {
      const r = await sClientStatus(peer.port);
      if (expected === null) {
        assert.deepEqual(statusReport(r.stdout), { kind: "none" }, `${name}: ${r.output}`);
      } else {
        assert.match(stapledResponse(r.stdout), expected, `${name}: ${r.output}`);
      }
      assert.match(r.stdout, /Verify return code: 0 \(ok\)/, `${name}: ${r.output}`);
    } finally {
      await peer.stop();
    }
  }
  // Without statusFile nothing is stapled.
  const plain = await startOpensslServer({
    cert: server,
    key: pki.server.keyPath,
    chain: ocsp.issuer.certPath,
  });
  try {
    const r = await sClientStatus(plain.port);
    assert.deepEqual(statusReport(r.stdout), { kind: "none" }, r.output);
  } finally {
    await plain.stop();
  }
});

test("ocsp: s_server refuses garbage bytes; gnutls-serv staples them", async () => {
  const peer = await startOpensslServer({
    cert: server,
    key: pki.server.keyPath,
    chain: ocsp.issuer.certPath,
    statusFile: responses.garbage.path,
  });
  try {
    const r = await sClientStatus(peer.port);
    await peer.waitFor(/cert_status: Error reading OCSP response/);
    if (cliAtLeast(3, 6)) {
      // 3.6+: s_server logs the unreadable file and completes the handshake without a staple.
      assert.equal(r.status, 0, r.output);
      assert.deepEqual(statusReport(r.stdout), { kind: "none" }, r.output);
    } else {
      // Up to 3.5 its status callback fails the handshake.
      assert.notEqual(r.status, 0, r.output);
    }
  } finally {
    await peer.stop();
  }

  for (const file of [responses.garbage, responses.truncated]) {
    const gnutls = await startGnutlsServer({
      cert: pki.serverChainPath,
      key: pki.server.keyPath,
      ocspResponse: file.path,
    });
    try {
      const r = await sClientStatus(gnutls.port);
      assert.notEqual(r.status, 0, r.output);
      if (cliAtLeast(3, 6)) {
        // 3.6+: libssl parses the staple itself before s_client's callback would, and fails the
        // handshake with the ASN.1 error about the OCSP_RESPONSE.
        assert.match(r.stderr, /Type=OCSP_RESPONSE/, r.output);
        assert.match(r.stderr, /tlsv1 bad certificate status response/, r.output);
      } else {
        // Up to 3.5: s_client's own status callback cannot parse it and fails the handshake.
        assert.deepEqual(statusReport(r.stdout), { kind: "parse-error" }, r.output);
        assert.match(r.output, /invalid status response/, r.output);
      }
    } finally {
      await gnutls.stop();
    }
  }

  const good = await startGnutlsServer({
    cert: pki.serverChainPath,
    key: pki.server.keyPath,
    ocspResponse: responses.good.path,
    ignoreOcspResponseErrors: false,
  });
  try {
    const r = await sClientStatus(good.port);
    assert.match(stapledResponse(r.stdout), /Cert Status: good/, r.output);
  } finally {
    await good.stop();
  }
  // Without --ignore-ocsp-response-errors gnutls-serv checks the file at start, and exits.
  await assert.rejects(
    startGnutlsServer({
      cert: pki.serverChainPath,
      key: pki.server.keyPath,
      ocspResponse: responses.stale.path,
      ignoreOcspResponseErrors: false,
    }),
    /Cannot set OCSP status request file: .*expired/,
  );
});

test("ocsp: leafWithOcspUrl + startOcspResponder answer live", async () => {
  const port = await freePort();
  const leaf = leafWithOcspUrl(port);
  assert.equal(leafWithOcspUrl(port), leaf);
  assert.equal(leaf.ocspUrl, `http://127.0.0.1:${port}`);
  const uri = await runOpenssl(["x509", "-in", leaf.certPath, "-noout", "-ocsp_uri"]);
  assert.equal(uri.stdout.trim(), leaf.ocspUrl);

  const responder = await startOcspResponder({ port });
  try {
    assert.equal(responder.url, leaf.ocspUrl);
    const query = (cert: string, ...extra: string[]) =>
      runOpenssl([
        "ocsp",
        "-url",
        responder.url,
        "-issuer",
        ocsp.issuer.certPath,
        "-cert",
        cert,
        "-CAfile",
        ocsp.rootCaPath,
        ...extra,
      ]);
    const good = await query(leaf.certPath, "-resp_text");
    assert.equal(good.status, 0, good.output);
    assert.match(good.stderr, /Response verify OK/);
    assert.ok(good.stdout.includes(statusLine(leaf.certPath, "good")), good.output);
    assert.deepEqual(nameAfter(good.stdout, "Responder Id"), INTERMEDIATE);
    const revoked = await query(ocsp.revokedServer.certPath);
    assert.ok(revoked.stdout.includes(statusLine(ocsp.revokedServer.certPath, "revoked")));
    const unknown = await query(ocsp.unknownServer.certPath);
    assert.ok(unknown.stdout.includes(statusLine(ocsp.unknownServer.certPath, "unknown")));
    await responder.waitFor(OCSP_REQUEST_LOGGED);
  } finally {
    await responder.stop();
  }
  assert.throws(() => process.kill(responder.pid, 0));
});

test("ocsp: startOcspResponder on a free port, signed by the delegated responder", async () => {
  const responder = await startOcspResponder({ signer: "responder" });
  try {
    assert.match(responder.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const r = await runOpenssl([
      "ocsp",
      "-url",
      responder.url,
      "-issuer",
      ocsp.issuer.certPath,
      "-cert",
      server,
      "-CAfile",
      ocsp.rootCaPath,
      "-verify_other",
      ocsp.issuer.certPath,
      "-resp_text",
    ]);
    assert.equal(r.status, 0, r.output);
    assert.match(r.stderr, /Response verify OK/);
    assert.deepEqual(
      nameAfter(r.stdout, "Responder Id"),
      testName("libssl-ffi Test OCSP Responder"),
    );
    assert.ok(r.stdout.includes(statusLine(server, "good")), r.output);
  } finally {
    await responder.stop();
  }
});
