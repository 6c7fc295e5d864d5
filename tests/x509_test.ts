import assert from "node:assert/strict";
import { Certificate, TlsContext, TlsError } from "../mod.ts";
import { test } from "./harness.ts";
import { sharedTestPki } from "./support/pki.ts";
import { handshakePair, makePair } from "./support/memory_pair.ts";
import { assertNoLiveNativeObjects } from "./support/leaks.ts";

const pki = sharedTestPki();

function isTlsError(code: string) {
  return (e: unknown) => {
    assert.ok(e instanceof TlsError, String(e));
    assert.equal(e.code, code, e.message);
    return true;
  };
}

test("Certificate: subject, issuer, DER and PEM round trip", () => {
  const cert = Certificate.fromPem(pki.server.cert);
  assert.equal(cert.subject, "CN=localhost,O=libssl-ffi tests");
  assert.equal(cert.issuer, "CN=libssl-ffi Test Intermediate CA,O=libssl-ffi tests");
  assert.equal(cert.der[0], 0x30);
  assert.equal(cert.toPEM().trim(), pki.server.cert.trim());
  assert.deepEqual(Certificate.fromPem(cert.der).der, cert.der, "DER input");
  assert.deepEqual(
    Certificate.parseAll(pki.server.chainPem).map((c) => c.subject.split(",")[0]),
    ["CN=localhost", "CN=libssl-ffi Test Intermediate CA"],
  );
  assertNoLiveNativeObjects();
});

test("DER trust anchors and identities work like PEM", async () => {
  const rootDer = Certificate.fromPem(pki.rootCa.cert).der;
  const p = makePair({ caCerts: [rootDer] }, { cert: pki.server.chainPem, key: pki.server.key });
  try {
    await handshakePair(p.client, p.server);
  } finally {
    p.close();
  }
  assertNoLiveNativeObjects();
});

test("unparseable certificates are INVALID_CERTIFICATE", () => {
  const bad = [
    "not a certificate",
    "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    new Uint8Array([0x30, 0x82, 0xff, 0xff, 1, 2, 3]),
    new Uint8Array(0),
    // A good certificate followed by a broken one: nothing may be silently dropped.
    pki.server.cert + "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
  ];
  for (const input of bad) {
    assert.throws(() => Certificate.fromPem(input), isTlsError("INVALID_CERTIFICATE"));
    assert.throws(
      () => new TlsContext("client", { caCerts: [input] }),
      isTlsError("INVALID_CERTIFICATE"),
    );
  }
  const truncatedDer = Certificate.fromPem(pki.server.cert).der.subarray(0, 100);
  assert.throws(() => Certificate.fromPem(truncatedDer), isTlsError("INVALID_CERTIFICATE"));
  assertNoLiveNativeObjects();
});

test("keys: garbage is INVALID_KEY, a mismatched key is INVALID_KEY", () => {
  assert.throws(
    () => new TlsContext("server", { cert: pki.server.cert, key: "garbage" }),
    isTlsError("INVALID_KEY"),
  );
  assert.throws(
    () => new TlsContext("server", { cert: pki.server.cert, key: pki.client.key }),
    (e: unknown) => {
      isTlsError("INVALID_KEY")(e);
      assert.match((e as Error).message, /does not match/);
      return true;
    },
  );
  assertNoLiveNativeObjects();
});

test("encrypted keys: right passphrase loads; none or wrong is BAD_PASSPHRASE, never a prompt", () => {
  const { pem, passphrase } = pki.clientEncryptedKey;
  new TlsContext("client", {
    caCerts: [pki.rootCa.cert],
    cert: pki.client.cert,
    key: pem,
    passphrase,
  }).close();
  const bytes = new TextEncoder().encode(passphrase);
  new TlsContext("client", { cert: pki.client.cert, key: pem, passphrase: bytes }).close();
  assert.deepEqual(bytes, new Uint8Array(bytes.length), "byte passphrases are zeroed after use");
  assert.throws(
    () => new TlsContext("client", { cert: pki.client.cert, key: pem }),
    isTlsError("BAD_PASSPHRASE"),
  );
  assert.throws(
    () => new TlsContext("client", { cert: pki.client.cert, key: pem, passphrase: "wrong" }),
    isTlsError("BAD_PASSPHRASE"),
  );
  assertNoLiveNativeObjects();
});

test("bad options are TypeError/RangeError before any native work", () => {
  const before = JSON.stringify(pki.rootCa.cert.length);
  // deno-lint-ignore no-explicit-any
  const ctx = (role: any, options: any) => new TlsContext(role, options);
  assert.throws(() => ctx("clinet", {}), TypeError);
  assert.throws(() => ctx("client", null), TypeError);
  assert.throws(() => ctx("client", { minVersion: "TLSv1.0" }), RangeError);
  assert.throws(() => ctx("client", { maxVersion: "1.3" }), RangeError);
  assert.throws(() => ctx("client", { minVersion: "TLSv1.3", maxVersion: "TLSv1.2" }), RangeError);
  assert.throws(() => ctx("client", { caCerts: pki.rootCa.cert }), TypeError);
  assert.throws(() => ctx("client", { caCerts: [42] }), TypeError);
  assert.throws(() => ctx("client", { cert: pki.client.cert }), TypeError, "cert without key");
  assert.throws(() => ctx("server", {}), TypeError, "a server needs an identity");
  assert.throws(() => ctx("client", { onVerifyCertificate: true }), TypeError);
  assert.throws(() => ctx("server", { ...serverId(), onClientCertificate: () => null }), TypeError);
  assert.throws(() => ctx("client", { requestClientCert: "require" }), TypeError);
  assert.equal(JSON.stringify(pki.rootCa.cert.length), before);
  assertNoLiveNativeObjects();
});

function serverId() {
  return { cert: pki.server.cert, key: pki.server.key };
}

test("a passphrase function is asked only for an encrypted key, through OpenSSL's callback", () => {
  const { pem, passphrase } = pki.clientEncryptedKey;
  const asked: number[] = [];
  new TlsContext("client", {
    cert: pki.client.cert,
    key: pem,
    passphrase: (request) => {
      asked.push(request.maxLength);
      return passphrase;
    },
  }).close();
  assert.equal(asked.length, 1, "asked once");
  assert.ok(asked[0]! >= 64, `OpenSSL offers a buffer (${asked[0]} bytes)`);
  // Bytes returned by the function are wiped after use.
  const bytes = new TextEncoder().encode(passphrase);
  new TlsContext("client", { cert: pki.client.cert, key: pem, passphrase: () => bytes }).close();
  assert.deepEqual(bytes, new Uint8Array(bytes.length));
  // An unencrypted key never asks.
  let unencryptedAsked = 0;
  new TlsContext("client", {
    cert: pki.client.cert,
    key: pki.client.key,
    passphrase: () => {
      unencryptedAsked++;
      return "x";
    },
  }).close();
  assert.equal(unencryptedAsked, 0);
  // A wrong answer is BAD_PASSPHRASE; a throwing function is CALLBACK_ERROR with its error.
  assert.throws(
    () => new TlsContext("client", { cert: pki.client.cert, key: pem, passphrase: () => "nope" }),
    isTlsError("BAD_PASSPHRASE"),
  );
  const error = new Error("the user cancelled");
  assert.throws(
    () =>
      new TlsContext("client", {
        cert: pki.client.cert,
        key: pem,
        passphrase: () => {
          throw error;
        },
      }),
    (e: unknown) => {
      assert.ok(e instanceof TlsError && e.code === "CALLBACK_ERROR");
      assert.equal(e.cause, error);
      return true;
    },
  );
  assertNoLiveNativeObjects();
});

test("a traditional encrypted PEM key (Proc-Type: 4,ENCRYPTED) loads with its passphrase", async () => {
  const { execFileSync } = await import("node:child_process");
  // `openssl ec -aes256` writes the traditional (pre-PKCS#8) encrypted form.
  const traditional = execFileSync(
    "openssl",
    ["ec", "-in", pki.client.keyPath, "-aes256", "-passout", "pass:trad-pass"],
    { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] },
  );
  assert.match(traditional, /Proc-Type: 4,ENCRYPTED/);
  new TlsContext("client", {
    cert: pki.client.cert,
    key: traditional,
    passphrase: "trad-pass",
  }).close();
  new TlsContext("client", {
    cert: pki.client.cert,
    key: traditional,
    passphrase: () => "trad-pass",
  }).close();
  assert.throws(
    () => new TlsContext("client", { cert: pki.client.cert, key: traditional, passphrase: "x" }),
    isTlsError("BAD_PASSPHRASE"),
  );
  assert.throws(
    () => new TlsContext("client", { cert: pki.client.cert, key: traditional }),
    isTlsError("BAD_PASSPHRASE"),
  );
  assertNoLiveNativeObjects();
});

test("text that is not PEM: the option is named, and a file path is recognised as one", () => {
  const isNotPem = (label: string, path: boolean) => (e: unknown) => {
    assert.ok(e instanceof TlsError, String(e));
    assert.match(e.message, new RegExp(`^${label.replace(/[[\]]/g, "\\$&")}: no PEM block found`));
    assert.doesNotMatch(e.message, /as DER/);
    if (path) assert.match(e.message, /looks like a file path: pass the file's contents/);
    else assert.doesNotMatch(e.message, /file path/);
    return true;
  };
  // A file name where the PEM text belongs: the most common newcomer mistake.
  assert.throws(
    () => new TlsContext("client", { caCerts: [pki.rootCa.cert, "./certs/ca.pem"] }),
    isNotPem("caCerts[1]", true),
  );
  assert.throws(
    () => new TlsContext("server", { cert: "server.crt", key: pki.server.key }),
    isNotPem("cert", true),
  );
  assert.throws(
    () =>
      new TlsContext("server", { cert: pki.server.chainPem, key: "/etc/ssl/private/server.key" }),
    isNotPem("key", true),
  );
  assert.throws(() => Certificate.fromPem("not a certificate"), isNotPem("certificate", false));
  assert.throws(
    () => Certificate.fromPem("C:\\certs\\root.cer"),
    (e) => e instanceof TlsError && e.code === "INVALID_CERTIFICATE" && /file path/.test(e.message),
  );
  assertNoLiveNativeObjects();
});
