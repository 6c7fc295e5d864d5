/**
 * Checks the throwaway test PKI from `pki.ts` with the `openssl` CLI itself: the good chains
 * verify, and each bad leaf fails with exactly the verify error the TLS tests will expect.
 *
 * @module
 */

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { runtime, test } from "../harness.ts";
import { createTestPki, type LeafPem, type Pem, sharedTestPki, type TestPki } from "./pki.ts";
import { nameAfter, type NameEntry } from "./cli_output.ts";

interface OpensslResult {
  status: number;
  output: string;
}

/** Runs `openssl`, returning its exit status and stdout + stderr instead of throwing on failure. */
function openssl(args: string[]): OpensslResult {
  try {
    const stdout = execFileSync("openssl", args, {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
    return { status: 0, output: stdout };
  } catch (error) {
    const e = error as { status?: unknown; stdout?: unknown; stderr?: unknown };
    if (typeof e.status !== "number") throw error;
    return { status: e.status, output: `${String(e.stdout ?? "")}${String(e.stderr ?? "")}` };
  }
}

/** `openssl verify` of `leaf`, trusting only `trusted`, with the leaf's chain as untrusted. */
function verify(leaf: LeafPem | Pem, trusted: string, extra: string[] = []): OpensslResult {
  const untrusted = "chainPath" in leaf ? ["-untrusted", leaf.chainPath] : [];
  return openssl(["verify", "-CAfile", trusted, ...untrusted, ...extra, leaf.certPath]);
}

/** The first `error N at D depth lookup` code in `openssl verify` output, or null. */
function verifyErrorCode(result: OpensslResult): number | null {
  const match = /error (\d+) at \d+ depth lookup/.exec(result.output);
  return match?.[1] === undefined ? null : Number(match[1]);
}

function assertVerifies(result: OpensslResult): void {
  assert.equal(result.status, 0, result.output);
  assert.match(result.output, /: OK\s*$/);
}

function assertVerifyError(result: OpensslResult, code: number): void {
  assert.notEqual(result.status, 0, result.output);
  assert.equal(verifyErrorCode(result), code, result.output);
}

/** `O=libssl-ffi tests, CN=cn`, parsed (the CLI's spacing differs between releases). */
function testName(cn: string): NameEntry[] {
  return [["O", "libssl-ffi tests"], ["CN", cn]];
}
const ROOT_NAME = testName("libssl-ffi Test Root CA");

function certText(pem: Pem): string {
  const result = openssl(["x509", "-noout", "-text", "-in", pem.certPath]);
  assert.equal(result.status, 0, result.output);
  return result.output;
}

function serial(pem: Pem): string {
  const result = openssl(["x509", "-noout", "-serial", "-in", pem.certPath]);
  assert.equal(result.status, 0, result.output);
  return result.output.trim();
}

function allCerts(pki: TestPki): [string, Pem][] {
  return [
    ["rootCa", pki.rootCa],
    ["intermediateCa", pki.intermediateCa],
    ["otherRootCa", pki.otherRootCa],
    ["server", pki.server],
    ["client", pki.client],
    ["expiredServer", pki.expiredServer],
    ["notYetValidServer", pki.notYetValidServer],
    ["wrongHostServer", pki.wrongHostServer],
    ["selfSignedServer", pki.selfSignedServer],
    ["otherRootServer", pki.otherRootServer],
    ["clientAuthOnlyServer", pki.clientAuthOnlyServer],
    ["ipOnlyServer", pki.ipOnlyServer],
  ];
}

const PEM_CERT = /^-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n$/;
const PEM_KEY = /^-----BEGIN PRIVATE KEY-----\n[A-Za-z0-9+/=\n]+-----END PRIVATE KEY-----\n$/;

test("sharedTestPki is memoized and every file matches its PEM", () => {
  const pki = sharedTestPki();
  assert.equal(sharedTestPki(), pki);
  assert.equal(pki.keyType, "ec");
  assert.ok(existsSync(pki.dir));
  assert.equal(pki.rootCaPath, pki.rootCa.certPath);
  assert.equal(pki.serverChainPem, pki.server.chainPem);
  assert.equal(pki.serverChainPath, pki.server.chainPath);
  assert.equal(pki.clientChainPem, pki.client.chainPem);
  assert.equal(pki.clientChainPath, pki.client.chainPath);
  for (const [name, pem] of allCerts(pki)) {
    assert.match(pem.cert, PEM_CERT, name);
    assert.match(pem.key, PEM_KEY, name);
    assert.ok(pem.certPath.startsWith(pki.dir) && pem.keyPath.startsWith(pki.dir), name);
    const text = certText(pem);
    assert.match(text, /Public Key Algorithm: id-ecPublicKey/, name);
    assert.match(text, /NIST CURVE: P-256/, name);
    // The key really belongs to the certificate.
    const fromCert = openssl(["x509", "-noout", "-pubkey", "-in", pem.certPath]).output;
    const fromKey = openssl(["pkey", "-pubout", "-in", pem.keyPath]).output;
    assert.equal(fromKey, fromCert, name);
  }
});

test("the chains are leaf + intermediate, or just the leaf", () => {
  const pki = sharedTestPki();
  assert.equal(pki.server.chainPem, pki.server.cert + pki.intermediateCa.cert);
  assert.equal(pki.client.chainPem, pki.client.cert + pki.intermediateCa.cert);
  assert.equal(pki.expiredServer.chainPem, pki.expiredServer.cert + pki.intermediateCa.cert);
  assert.equal(pki.selfSignedServer.chainPem, pki.selfSignedServer.cert);
  assert.equal(pki.otherRootServer.chainPem, pki.otherRootServer.cert);
});

test("serial numbers are random and distinct", () => {
  const pki = sharedTestPki();
  const serials = allCerts(pki).map(([, pem]) => serial(pem));
  assert.equal(new Set(serials).size, serials.length);
  for (const s of serials) assert.match(s, /^serial=[0-9A-F]{32,40}$/);
});

test("the CAs have the right basic constraints", () => {
  const pki = sharedTestPki();
  const root = certText(pki.rootCa);
  assert.match(root, /Basic Constraints: critical\n\s+CA:TRUE\n/);
  assert.match(root, /Certificate Sign, CRL Sign/);
  assert.deepEqual(nameAfter(root, "Issuer"), ROOT_NAME);
  assert.deepEqual(nameAfter(root, "Subject"), ROOT_NAME);
  const intermediate = certText(pki.intermediateCa);
  assert.match(intermediate, /Basic Constraints: critical\n\s+CA:TRUE, pathlen:0\n/);
  assert.deepEqual(nameAfter(intermediate, "Issuer"), ROOT_NAME);
  assertVerifies(verify(pki.intermediateCa, pki.rootCaPath, ["-x509_strict"]));
});

test("server leaf: CN, SAN, EKU, and its chain verifies against the root", () => {
  const pki = sharedTestPki();
  const text = certText(pki.server);
  assert.deepEqual(nameAfter(text, "Subject"), testName("localhost"));
  assert.match(
    text,
    /Subject Alternative Name: \n\s+DNS:localhost, IP Address:127\.0\.0\.1, IP Address:0:0:0:0:0:0:0:1\n/,
  );
  assert.match(text, /Extended Key Usage: \n\s+TLS Web Server Authentication\n/);
  assert.match(text, /Basic Constraints: critical\n\s+CA:FALSE\n/);
  // The plain form: the intermediate alone as -untrusted.
  assertVerifies(
    openssl([
      "verify",
      "-CAfile",
      pki.rootCaPath,
      "-untrusted",
      pki.intermediateCa.certPath,
      pki.server.certPath,
    ]),
  );
  // And as a TLS client would check it, for each name it is meant to serve.
  for (
    const name of [["-verify_hostname", "localhost"], ["-verify_ip", "127.0.0.1"], [
      "-verify_ip",
      "::1",
    ]]
  ) {
    assertVerifies(
      verify(pki.server, pki.rootCaPath, ["-x509_strict", "-purpose", "sslserver", ...name]),
    );
  }
  // Without the intermediate the chain cannot be built.
  assertVerifyError(
    openssl(["verify", "-CAfile", pki.rootCaPath, pki.server.certPath]),
    20,
  );
});

test("client leaf: CN=test-client, EKU clientAuth, verifies as an SSL client only", () => {
  const pki = sharedTestPki();
  const text = certText(pki.client);
  assert.deepEqual(nameAfter(text, "Subject"), testName("test-client"));
  assert.match(text, /Extended Key Usage: \n\s+TLS Web Client Authentication\n/);
  assertVerifies(verify(pki.client, pki.rootCaPath, ["-x509_strict", "-purpose", "sslclient"]));
  assertVerifyError(verify(pki.client, pki.rootCaPath, ["-purpose", "sslserver"]), 26);
});

test("expired server fails with error 10", () => {
  const pki = sharedTestPki();
  assertVerifyError(verify(pki.expiredServer, pki.rootCaPath), 10);
  const result = openssl(["x509", "-noout", "-checkend", "0", "-in", pki.expiredServer.certPath]);
  assert.equal(result.status, 1, result.output);
});

test("not-yet-valid server fails with error 9", () => {
  const pki = sharedTestPki();
  assertVerifyError(verify(pki.notYetValidServer, pki.rootCaPath), 9);
});

test("self-signed server fails with error 18", () => {
  const pki = sharedTestPki();
  assertVerifyError(verify(pki.selfSignedServer, pki.rootCaPath), 18);
  assert.deepEqual(nameAfter(certText(pki.selfSignedServer), "Issuer"), testName("localhost"));
});

test("wrong-host server verifies, but not for localhost (error 62)", () => {
  const pki = sharedTestPki();
  assertVerifies(verify(pki.wrongHostServer, pki.rootCaPath, ["-purpose", "sslserver"]));
  assertVerifyError(
    verify(pki.wrongHostServer, pki.rootCaPath, ["-verify_hostname", "localhost"]),
    62,
  );
  assertVerifies(
    verify(pki.wrongHostServer, pki.rootCaPath, ["-verify_hostname", "wrong.example"]),
  );
});

test("clientAuth-only server fails -purpose sslserver with error 26", () => {
  const pki = sharedTestPki();
  assertVerifies(
    verify(pki.clientAuthOnlyServer, pki.rootCaPath, ["-verify_hostname", "localhost"]),
  );
  assertVerifyError(
    verify(pki.clientAuthOnlyServer, pki.rootCaPath, ["-purpose", "sslserver"]),
    26,
  );
});

test("other root's leaf fails against our root (20) and verifies against its own", () => {
  const pki = sharedTestPki();
  assertVerifyError(verify(pki.otherRootServer, pki.rootCaPath), 20);
  assertVerifies(
    verify(pki.otherRootServer, pki.otherRootCa.certPath, [
      "-purpose",
      "sslserver",
      "-verify_hostname",
      "localhost",
    ]),
  );
  // Our leaves do not chain to the other root either.
  assertVerifyError(verify(pki.server, pki.otherRootCa.certPath), 20);
});

test("IP-only server verifies for 127.0.0.1 but not for localhost or ::1", () => {
  const pki = sharedTestPki();
  const text = certText(pki.ipOnlyServer);
  assert.match(text, /Subject Alternative Name: \n\s+IP Address:127\.0\.0\.1\n/);
  assertVerifies(
    verify(pki.ipOnlyServer, pki.rootCaPath, ["-purpose", "sslserver", "-verify_ip", "127.0.0.1"]),
  );
  assertVerifyError(
    verify(pki.ipOnlyServer, pki.rootCaPath, ["-verify_hostname", "localhost"]),
    62,
  );
  assertVerifyError(verify(pki.ipOnlyServer, pki.rootCaPath, ["-verify_ip", "::1"]), 64);
});

test("encrypted client key: AES-256 PKCS#8, opens only with the passphrase", () => {
  const pki = sharedTestPki();
  const { pem, path, passphrase } = pki.clientEncryptedKey;
  assert.equal(passphrase, "test-passphrase");
  assert.match(pem, /^-----BEGIN ENCRYPTED PRIVATE KEY-----\n/);
  assert.match(openssl(["asn1parse", "-in", path]).output, /:aes-256-cbc\n/);
  const decrypted = openssl(["pkey", "-in", path, "-passin", `pass:${passphrase}`]);
  assert.equal(decrypted.status, 0, decrypted.output);
  assert.equal(decrypted.output, pki.client.key);
  assert.notEqual(openssl(["pkey", "-in", path, "-passin", "pass:wrong"]).status, 0);
});

test("createTestPki builds an independent PKI and remove() deletes it", () => {
  const started = performance.now();
  const pki = createTestPki();
  const elapsed = performance.now() - started;
  console.log(`createTestPki (ec): ${elapsed.toFixed(0)} ms`);
  const shared = sharedTestPki();
  assert.notEqual(pki.dir, shared.dir);
  assert.notEqual(serial(pki.rootCa), serial(shared.rootCa));
  assertVerifyError(verify(pki.server, shared.rootCaPath), 20);
  assertVerifies(verify(pki.server, pki.rootCaPath, ["-purpose", "sslserver"]));
  pki.remove();
  assert.equal(existsSync(pki.dir), false);
  pki.remove(); // idempotent
});

test("keyType rsa builds RSA keys that verify the same way", () => {
  const started = performance.now();
  const pki = createTestPki({ keyType: "rsa" });
  console.log(`createTestPki (rsa): ${(performance.now() - started).toFixed(0)} ms`);
  try {
    assert.equal(pki.keyType, "rsa");
    assert.match(pki.server.key, PEM_KEY);
    const text = certText(pki.server);
    assert.match(text, /Public Key Algorithm: rsaEncryption/);
    assert.match(text, /Digital Signature, Key Encipherment/);
    assertVerifies(verify(pki.server, pki.rootCaPath, ["-purpose", "sslserver"]));
    assertVerifyError(verify(pki.expiredServer, pki.rootCaPath), 10);
  } finally {
    pki.remove();
  }
}, { timeout: 60_000 });

/** How a child process that built PKIs ends. */
const ENDINGS = ["test runner", "natural end", "process.exit(0)", "SIGKILL"] as const;

/** Builds two PKIs and ends as `PKI_EXIT_ENDING` says (run from a scratch dir). */
const CHILD = fileURLToPath(new URL("../fixtures/pki_exit_child.ts", import.meta.url));

for (const ending of ENDINGS) {
  test(`the temp dirs are removed when the process ends (${ending})`, async () => {
    const scratch = mkdtempSync(join(tmpdir(), "libssl-ffi-pki-exit-test-"));
    try {
      const dirsFile = join(scratch, "dirs.txt");
      const testRunner = {
        deno: ["test", "--allow-all", "--no-config", CHILD],
        bun: ["test", CHILD],
        node: ["--test", CHILD],
      };
      const args = ending === "test runner"
        ? testRunner[runtime]
        : (runtime === "deno" ? ["run", "--allow-all", "--no-config", CHILD] : [CHILD]);
      try {
        execFileSync(process.execPath, args, {
          cwd: scratch,
          // Without NODE_TEST_CONTEXT: under `node --test` it tells a child `node --test` that it
          // is one of the parent run's file processes (it then reports to us and runs nothing).
          env: {
            ...Object.fromEntries(
              Object.entries(process.env).filter(([k]) => k !== "NODE_TEST_CONTEXT"),
            ),
            PKI_EXIT_ENDING: ending,
            PKI_EXIT_DIRS_FILE: dirsFile,
          },
          stdio: ["ignore", "pipe", "pipe"],
        });
      } catch (error) {
        if (ending !== "SIGKILL") throw error;
      }
      const dirs = readFileSync(dirsFile, "utf8").trim().split("\n");
      assert.equal(dirs.length, 2, dirs.join("\n"));
      // Each PKI dir sits in the child's per-process root; all of it must go.
      const roots = [...new Set(dirs.map((dir) => dirname(dir)))];
      assert.equal(roots.length, 1);
      const gone = () => [...dirs, ...roots].every((dir) => !existsSync(dir));
      // Exit hooks delete at once; the reaper polls the pid once a second.
      for (let waited = 0; !gone() && waited < 5_000; waited += 100) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.ok(gone(), `survived the child's exit: ${[...dirs, ...roots].join(", ")}`);
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  }, { timeout: 60_000 });
}

test("the PKI lives in the OS temp dir, not in the repo", () => {
  const dir = sharedTestPki().dir;
  assert.ok(dir.startsWith(tmpdir()));
  assert.match(basename(dirname(dir)), /^libssl-ffi-pki-\d+-/);
  assert.equal(dir.startsWith(dirname(fileURLToPath(import.meta.url))), false);
});
