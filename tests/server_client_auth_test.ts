/**
 * Client authentication on our server (`listen()` with `requestClientCert`), against
 * `openssl s_client` (TLS 1.3 and 1.2) and our own client: a good certificate, none, and each
 * kind of bad one, with the typed error our side reports (`TlsError` code, `verifyCode`) and the
 * alert the client receives (read from s_client's stderr).
 *
 * What OpenSSL 3.0 really reports, and these tests assert (server trusting only the root):
 *
 * | client certificate                  | our onError                    | alert to the client      |
 * | ----------------------------------- | ------------------------------ | ------------------------ |
 * | none, `"require"`                   | HANDSHAKE_FAILED (no cert)     | 116 (1.3) / 40 (1.2)     |
 * | self-signed                         | CERT_VERIFY_FAILED, 18         | 48 unknown ca            |
 * | expired                             | CERT_VERIFY_FAILED, 10         | 45 certificate expired   |
 * | issued by another root              | CERT_VERIFY_FAILED, 20         | 48 unknown ca            |
 * | no clientAuth EKU (the server leaf) | CERT_VERIFY_FAILED, 26         | 43 unsupported cert.     |
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, type Connection, type ListenOptions, TlsError } from "../mod.ts";
import { test } from "./harness.ts";
import { type LeafPem, sharedTestPki } from "./support/pki.ts";
import {
  libraryClient,
  opensslClient,
  otherRuntime,
  parseOpensslClient,
  parseScriptClient,
} from "./support/clients.ts";
import { type EchoServer, withEchoServer } from "./support/listener.ts";
import { acceptableCaNames } from "./support/cli_output.ts";

const pki = sharedTestPki();
const text = (s: string) => new TextEncoder().encode(s);
const CLIENT_SUBJECT = "CN=test-client,O=libssl-ffi tests";

/** What our server records of one accepted client (plus the line it received). */
const describe = (conn: Connection) => ({
  protocol: conn.protocol,
  peerSubject: conn.peerCertificate?.subject ?? null,
  chain: conn.peerCertificateChain.map((c) => c.subject),
});

/** An echo server asking for client certificates from `pki.rootCa`; leak-checked afterwards. */
function withServer(
  options: Partial<ListenOptions>,
  body: (server: EchoServer<ReturnType<typeof describe>>) => Promise<void>,
): Promise<void> {
  return withEchoServer(
    { caCerts: [pki.rootCa.cert], requestClientCert: "require", ...options },
    describe,
    body,
  );
}

/** s_client arguments presenting `leaf` (with the intermediate when it has one). */
function identity(leaf: LeafPem): { cert: string; key: string; chain?: string } {
  return leaf.chainPem === leaf.cert
    ? { cert: leaf.certPath, key: leaf.keyPath }
    : { cert: leaf.certPath, key: leaf.keyPath, chain: pki.intermediateCa.certPath };
}

// ---- good certificate -----------------------------------------------------------------------

for (const version of ["1.3", "1.2"] as const) {
  test(`TLS ${version}: s_client with a good certificate: accepted, the server sees its chain`, async () => {
    await withServer({}, async (server) => {
      const client = opensslClient({
        port: server.port,
        caFile: pki.rootCaPath,
        tls: version,
        ...identity(pki.client),
        input: "ping with cert\n",
      });
      const result = await client.result;
      const report = parseOpensslClient(result);
      assert.equal(report.code, 0, result.stderr);
      assert.equal(report.protocol, `TLSv${version}`);
      assert.deepEqual(report.alerts, []);
      assert.match(result.stdout, /echo:ping with cert/);
      // s_client saw the acceptable-CA list (our root, alone) in the CertificateRequest.
      assert.deepEqual(acceptableCaNames(result.stdout), [
        [["O", "libssl-ffi tests"], ["CN", "libssl-ffi Test Root CA"]],
      ]);
      await server.waitForSeen(1);
      const seen = server.seen[0]!;
      assert.equal(seen.protocol, `TLSv${version}`);
      assert.equal(seen.peerSubject, CLIENT_SUBJECT);
      assert.deepEqual(seen.chain, [
        CLIENT_SUBJECT,
        "CN=libssl-ffi Test Intermediate CA,O=libssl-ffi tests",
        "CN=libssl-ffi Test Root CA,O=libssl-ffi tests",
      ]);
      assert.equal(seen.received, "ping with cert\n");
      assert.deepEqual(server.errors, []);
    });
  });
}

// ---- no certificate, and bad ones -----------------------------------------------------------

interface BadCase {
  name: string;
  leaf: LeafPem | null;
  /** Our onError. */
  code: TlsError["code"];
  verifyCode?: number;
  message: RegExp;
  /** The alert s_client receives, per version. */
  alert: Record<"1.3" | "1.2", { number: number; text: RegExp }>;
}

/** The same alert on TLS 1.3 and TLS 1.2. */
function bothVersions(number: number, text: RegExp): BadCase["alert"] {
  return { "1.3": { number, text }, "1.2": { number, text } };
}

const BAD_CASES: BadCase[] = [
  {
    name: "no certificate",
    leaf: null,
    code: "HANDSHAKE_FAILED",
    message: /peer did not return a certificate/,
    alert: {
      "1.3": { number: 116, text: /certificate required/ },
      "1.2": { number: 40, text: /handshake failure/ },
    },
  },
  {
    name: "a self-signed certificate",
    leaf: pki.selfSignedClient,
    code: "CERT_VERIFY_FAILED",
    verifyCode: 18,
    message: /self-signed certificate/,
    alert: bothVersions(48, /unknown ca/),
  },
  {
    name: "an expired certificate",
    leaf: pki.expiredClient,
    code: "CERT_VERIFY_FAILED",
    verifyCode: 10,
    message: /certificate has expired/,
    alert: bothVersions(45, /certificate expired/),
  },
  {
    name: "a certificate from another CA",
    leaf: pki.otherRootClient,
    code: "CERT_VERIFY_FAILED",
    verifyCode: 20,
    message: /unable to get local issuer certificate/,
    alert: bothVersions(48, /unknown ca/),
  },
  {
    name: "a certificate without clientAuth usage",
    leaf: pki.server,
    code: "CERT_VERIFY_FAILED",
    verifyCode: 26,
    message: /unsuitable certificate purpose/,
    alert: bothVersions(43, /unsupported certificate/),
  },
];

for (const bad of BAD_CASES) {
  test(`s_client with ${bad.name} (TLS 1.3 and 1.2): ${bad.code}${bad.verifyCode === undefined ? "" : ` ${bad.verifyCode}`}, alert ${bad.alert["1.3"].number}/${bad.alert["1.2"].number}`, async () => {
    await withServer({}, async (server) => {
      for (const version of ["1.3", "1.2"] as const) {
        const before = server.errors.length;
        const client = opensslClient({
          port: server.port,
          caFile: pki.rootCaPath,
          tls: version,
          ...(bad.leaf === null ? {} : identity(bad.leaf)),
          input: "ping\n",
        });
        const result = await client.result;
        const report = parseOpensslClient(result);
        assert.notEqual(report.code, 0, `TLS ${version}: s_client succeeded:\n${result.stdout}`);
        const expected = bad.alert[version];
        assert.deepEqual(
          report.alerts.map((a) => a.number),
          [expected.number],
          `TLS ${version}: ${result.stderr}`,
        );
        assert.match(report.alerts[0]!.text, expected.text);
        assert.doesNotMatch(result.stdout, /echo:/, "no data was served");

        await server.waitForErrors(before + 1);
        const error = server.errors[before]!;
        assert.equal(error.code, bad.code, `TLS ${version}: ${error.message}`);
        assert.equal(error.verifyCode, bad.verifyCode, `TLS ${version}: ${error.message}`);
        assert.match(error.message, bad.message);
      }
      assert.equal(server.seen.length, 0, "no connection was delivered");
      assert.equal(server.errors.length, 2);
    });
  });
}

// ---- optional --------------------------------------------------------------------------------

test(`requestClientCert "optional": no certificate is fine (peerCertificate null), a good one is seen, a bad one still fails`, async () => {
  await withServer({ requestClientCert: "optional" }, async (server) => {
    for (const version of ["1.3", "1.2"] as const) {
      const client = opensslClient({
        port: server.port,
        caFile: pki.rootCaPath,
        tls: version,
        input: `ping anonymous ${version}\n`,
      });
      const result = await client.result;
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /echo:ping anonymous/);
    }
    const withCert = opensslClient({
      port: server.port,
      caFile: pki.rootCaPath,
      ...identity(pki.client),
      input: "ping identified\n",
    });
    assert.equal((await withCert.result).code, 0, withCert.stderr());
    await server.waitForSeen(3);
    assert.deepEqual(server.seen.map((s) => s.peerSubject), [null, null, CLIENT_SUBJECT]);
    assert.deepEqual(server.seen.map((s) => s.chain.length), [0, 0, 3]);

    const expired = opensslClient({
      port: server.port,
      caFile: pki.rootCaPath,
      ...identity(pki.expiredClient),
      input: "ping\n",
    });
    const expiredReport = parseOpensslClient(await expired.result);
    assert.deepEqual(expiredReport.alerts.map((a) => a.number), [45]);
    await server.waitForErrors(1);
    assert.equal(server.errors[0]!.code, "CERT_VERIFY_FAILED");
    assert.equal(server.errors[0]!.verifyCode, 10);
  });
});

test("onVerifyCertificate on the server can accept what OpenSSL rejected (expired, error 10)", async () => {
  const calls: { depth: number; error: number; preverified: boolean }[] = [];
  await withServer({
    onVerifyCertificate: (info) => {
      calls.push({ depth: info.depth, error: info.error, preverified: info.preverified });
      return info.preverified || info.error === 10;
    },
  }, async (server) => {
    const client = opensslClient({
      port: server.port,
      caFile: pki.rootCaPath,
      ...identity(pki.expiredClient),
      input: "ping expired but accepted\n",
    });
    const result = await client.result;
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /echo:ping expired but accepted/);
    await server.waitForSeen(1);
    assert.equal(server.seen[0]!.peerSubject, "CN=expired-client,O=libssl-ffi tests");
    assert.ok(
      calls.some((c) => c.depth === 0 && c.error === 10 && !c.preverified),
      JSON.stringify(calls),
    );
  });
});

// ---- our own client --------------------------------------------------------------------------

for (const version of ["TLSv1.3", "TLSv1.2"] as const) {
  test(`${version}: our client with a certificate is accepted; without one it gets a typed alert`, async () => {
    await withServer({}, async (server) => {
      const base = {
        hostname: "127.0.0.1",
        port: server.port,
        servername: "localhost",
        caCerts: [pki.rootCa.cert],
        maxVersion: version,
      };
      const conn = await connect({ ...base, cert: pki.client.chainPem, key: pki.client.key });
      try {
        await conn.write(text("ping ours\n"));
        const buf = new Uint8Array(256);
        let got = "";
        for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
          got += new TextDecoder().decode(buf.subarray(0, n));
        }
        assert.equal(got, "echo:ping ours\n");
      } finally {
        conn.close();
      }
      await server.waitForSeen(1);
      assert.equal(server.seen[0]!.peerSubject, CLIENT_SUBJECT);

      // Without a certificate: TLS 1.2 fails in connect() (alert 40); in TLS 1.3 the client's
      // handshake completes first, and the server's alert 116 arrives on the first read.
      const isAlert = (code: number) => (e: unknown) => {
        assert.ok(e instanceof TlsError, String(e));
        assert.equal(e.code, "ALERT_RECEIVED", e.message);
        assert.equal(e.alert?.code, code, e.message);
        return true;
      };
      if (version === "TLSv1.2") {
        await assert.rejects(connect(base), isAlert(40));
      } else {
        const anonymous = await connect(base);
        try {
          await anonymous.write(text("ping\n")).catch(() => {});
          await assert.rejects(anonymous.read(new Uint8Array(64)), isAlert(116));
        } finally {
          anonymous.close();
        }
      }
      await server.waitForErrors(1);
      assert.equal(server.errors[0]!.code, "HANDSHAKE_FAILED");
      assert.match(server.errors[0]!.message, /peer did not return a certificate/);
      assert.equal(server.seen.length, 1);
    });
  });
}

test(
  `our client on ${otherRuntime()} with a good certificate and with an expired one`,
  async () => {
    await withServer({}, async (server) => {
      const good = libraryClient(otherRuntime(), {
        port: server.port,
        caFile: pki.rootCaPath,
        cert: pki.client.chainPath,
        key: pki.client.keyPath,
        input: "ping cross-runtime\n",
      });
      const goodReport = parseScriptClient(await good.result);
      assert.equal(goodReport.ok, true, JSON.stringify(goodReport));
      assert.equal(goodReport.received, "echo:ping cross-runtime\n");
      await server.waitForSeen(1);
      assert.equal(server.seen[0]!.peerSubject, CLIENT_SUBJECT);

      const expired = libraryClient(otherRuntime(), {
        port: server.port,
        caFile: pki.rootCaPath,
        cert: pki.expiredClient.chainPath,
        key: pki.expiredClient.keyPath,
        input: "ping\n",
        maxVersion: "TLSv1.2", // the alert then fails connect() itself
      });
      const expiredReport = parseScriptClient(await expired.result);
      assert.equal(expiredReport.ok, false);
      assert.equal(expiredReport.code, "ALERT_RECEIVED", JSON.stringify(expiredReport));
      assert.equal((expiredReport.alert as { code: number } | null)?.code, 45);
      await server.waitForErrors(1);
      assert.equal(server.errors[0]!.verifyCode, 10);
    });
  },
  { timeout: 40_000 },
);
