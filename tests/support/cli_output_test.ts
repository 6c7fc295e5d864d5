/**
 * Checks `cli_output.ts` on the text each OpenSSL release really prints (captured from 3.0.19,
 * 3.5.9 and 4.0.3), so that the parsers are tested on every release whichever one the host
 * has, and on the `openssl` command of this machine.
 *
 * @module
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { test } from "../harness.ts";
import {
  acceptableCaNames,
  badBinderAlert,
  cliAtLeast,
  nameAfter,
  opensslCliVersion,
  parseName,
  parseOpensslVersion,
  stapledResponse,
  statusReport,
} from "./cli_output.ts";
import { sharedTestPki } from "./pki.ts";

const LOCALHOST = [["O", "libssl-ffi tests"], ["CN", "localhost"]];

test("cli_output: parseOpensslVersion prefers the library the command runs with", () => {
  assert.deepEqual(
    parseOpensslVersion("OpenSSL 3.0.19 27 Jan 2026 (Library: OpenSSL 3.0.19 27 Jan 2026)\n"),
    {
      major: 3,
      minor: 0,
      patch: 19,
      text: "OpenSSL 3.0.19 27 Jan 2026 (Library: OpenSSL 3.0.19 27 Jan 2026)",
    },
  );
  assert.equal(
    parseOpensslVersion("OpenSSL 3.5.9 29 Sep 2026 (Library: OpenSSL 3.6.1 1 Jan 2027)").minor,
    6,
  );
  assert.equal(parseOpensslVersion("OpenSSL 4.0.3 29 Sep 2026").major, 4);
  assert.throws(() => parseOpensslVersion("LibreSSL 3.9.0"), /cannot parse/);
});

test("cli_output: opensslCliVersion and cliAtLeast agree with `openssl version`", () => {
  const v = opensslCliVersion();
  assert.equal(v.text, execFileSync("openssl", ["version"], { encoding: "utf8" }).trim());
  assert.ok(v.major >= 3, v.text);
  assert.equal(cliAtLeast(v.major, v.minor), true);
  assert.equal(cliAtLeast(v.major, v.minor + 1), false);
  assert.equal(cliAtLeast(v.major + 1, 0), false);
  assert.equal(cliAtLeast(v.major - 1, 99), true);
  assert.deepEqual(
    badBinderAlert(),
    cliAtLeast(3, 4)
      ? { code: 51, text: "decrypt error" }
      : { code: 47, text: "illegal parameter" },
  );
});

test("cli_output: parseName reads 3.0's and 3.5+'s spacing alike, and refuses prose", () => {
  assert.deepEqual(parseName("O = libssl-ffi tests, CN = localhost"), LOCALHOST);
  assert.deepEqual(parseName("O=libssl-ffi tests, CN=localhost"), LOCALHOST);
  // RFC 2253 escapes, a multi-valued RDN, an attribute without a short name.
  assert.deepEqual(parseName("O=a\\, b, CN=x + serialNumber=7, 1.2.3.4=#0101"), [
    ["O", "a, b"],
    ["CN", "x"],
    ["serialNumber", "7"],
    ["1.2.3.4", "#0101"],
  ]);
  assert.deepEqual(parseName("CN = "), [["CN", ""]]);
  assert.throws(() => parseName("no client certificate CA names sent"), /not a distinguished name/);
  assert.throws(() => parseName("O = x, garbage"), /not a distinguished name/);
});

test("cli_output: nameAfter takes exactly one LABEL: line", () => {
  const text30 = "        Issuer: O = libssl-ffi tests, CN = localhost\n" +
    "        Subject: O = libssl-ffi tests, CN = localhost\n" +
    "        Subject Public Key Info:\n            X509v3 Subject Key Identifier: \n";
  const text35 = text30.replaceAll(" = ", "=");
  for (const text of [text30, text35]) {
    assert.deepEqual(nameAfter(text, "Issuer"), LOCALHOST);
    assert.deepEqual(nameAfter(text, "Subject"), LOCALHOST);
  }
  assert.throws(() => nameAfter(text30, "Responder Id"), /found 0/);
  assert.throws(() => nameAfter(text30 + text30, "Issuer"), /found 2/);
  // On this machine's openssl, for real.
  const pki = sharedTestPki();
  const text = execFileSync("openssl", ["x509", "-noout", "-text", "-in", pki.server.certPath], {
    encoding: "utf8",
  });
  assert.deepEqual(nameAfter(text, "Subject"), LOCALHOST);
  assert.deepEqual(nameAfter(text, "Issuer"), [
    ["O", "libssl-ffi tests"],
    ["CN", "libssl-ffi Test Intermediate CA"],
  ]);
});

test("cli_output: acceptableCaNames, both spellings, several names, none", () => {
  const root = [["O", "libssl-ffi tests"], ["CN", "libssl-ffi Test Root CA"]];
  const inter = [["O", "libssl-ffi tests"], ["CN", "libssl-ffi Test Intermediate CA"]];
  const out30 = "---\nAcceptable client certificate CA names\n" +
    "O = libssl-ffi tests, CN = libssl-ffi Test Root CA\n" +
    "Requested Signature Algorithms: ECDSA+SHA256:ed25519\n---\n";
  const out35 = "---\nAcceptable client certificate CA names\n" +
    "O=libssl-ffi tests, CN=libssl-ffi Test Root CA\n" +
    "O=libssl-ffi tests, CN=libssl-ffi Test Intermediate CA\n" +
    "Client Certificate Types: RSA sign, ECDSA sign\n";
  assert.deepEqual(acceptableCaNames(out30), [root]);
  assert.deepEqual(acceptableCaNames(out35), [root, inter]);
  assert.deepEqual(acceptableCaNames("---\nNo client certificate CA names sent\n---\n"), []);
  assert.throws(() => acceptableCaNames("CONNECTED(00000003)\n---\n"), /no client CA names/);
});

/** A printed OCSP response as s_client shows it (shortened). */
const RESPONSE = "OCSP Response Data:\n    OCSP Response Status: successful (0x0)\n" +
  "    Responder Id: O = libssl-ffi tests, CN = libssl-ffi Test Intermediate CA\n" +
  "    Cert Status: good\n";
const CERT = "Certificate:\n    Data:\n        Issuer: O=libssl-ffi tests, CN=x\n" +
  "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const BAR = "======================================";

test("cli_output: statusReport, OpenSSL 3.0 to 3.5 (and 3.6+ on TLS 1.2)", () => {
  assert.deepEqual(statusReport("CONNECTED(00000003)\nOCSP response: no response sent\n---\n"), {
    kind: "none",
  });
  // 3.6+, TLS 1.2, nothing stapled.
  assert.deepEqual(
    statusReport("CONNECTED(00000003)\nOCSP response: no OCSP response received\n---\n"),
    { kind: "none" },
  );
  assert.deepEqual(
    statusReport("CONNECTED(00000003)\nOCSP response: response parse error\n    0000 - 04\n"),
    { kind: "parse-error" },
  );
  // 3.0: the certificate right before the closing bar; 3.6+ on TLS 1.2: a blank line between.
  for (const tail of ["", "\n"]) {
    const out =
      `CONNECTED(00000003)\nOCSP response: \n${BAR}\n${RESPONSE}${CERT}${tail}${BAR}\n---\n`;
    assert.deepEqual(statusReport(out), {
      kind: "responses",
      responses: [(RESPONSE + CERT).trim()],
    });
    assert.match(stapledResponse(out), /Cert Status: good/);
    assert.deepEqual(nameAfter(stapledResponse(out), "Responder Id"), [
      ["O", "libssl-ffi tests"],
      ["CN", "libssl-ffi Test Intermediate CA"],
    ]);
  }
});

test("cli_output: statusReport, OpenSSL 3.6+ on TLS 1.3", () => {
  assert.deepEqual(statusReport("CONNECTED(00000003)\nOCSP responses: no responses sent\n---\n"), {
    kind: "none",
  });
  const one = `CONNECTED(00000003)\nOCSP responses: number of responses: 1\n${BAR}\n` +
    `${RESPONSE}${CERT}\n${BAR}\n---\nCertificate chain\n`;
  assert.deepEqual(statusReport(one), { kind: "responses", responses: [(RESPONSE + CERT).trim()] });
  assert.match(stapledResponse(one), /Cert Status: good/);
  const two = `OCSP responses: number of responses: 2\n${BAR}\n${RESPONSE}${BAR}\n${BAR}\n` +
    `${RESPONSE.replace("good", "revoked")}${BAR}\n---\n`;
  const report = statusReport(two);
  assert.equal(report.kind, "responses");
  assert.equal(report.kind === "responses" ? report.responses.length : 0, 2);
  assert.throws(() => stapledResponse(two), /expected one stapled OCSP response/);
  assert.throws(
    () => statusReport(`OCSP responses: number of responses: 2\n${BAR}\n${RESPONSE}${BAR}\n---\n`),
    /announced 2 OCSP responses, found 1/,
  );
});

test("cli_output: statusReport refuses output without an OCSP report", () => {
  assert.throws(
    () => statusReport("CONNECTED(00000003)\n---\nCertificate chain\n"),
    /no OCSP report/,
  );
  assert.throws(
    () => stapledResponse("CONNECTED(00000003)\nOCSP responses: no responses sent\n"),
    /expected one stapled OCSP response, got {"kind":"none"}/,
  );
});
