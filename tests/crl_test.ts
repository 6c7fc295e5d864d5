/**
 * Revocation by CRL (`crls`, `crlCheck`) on both roles, with a PKI made by `openssl ca`
 * (`-revoke`, `-gencrl`, an expired CRL through `-crl_lastupdate/-crl_nextupdate`):
 * - our client against `openssl s_server`: good, revoked (23), missing CRL (3), expired CRL
 *   (12), leaf vs chain checking (a leaf under a revoked intermediate);
 * - `openssl s_client -cert` against our server with `requestClientCert: "require"`: good,
 *   revoked (23, alert 44 certificate revoked), missing (3) and expired (12) CRLs;
 * - `crlCheck` alone, with the CRLs in the system store's hashed directory (`SSL_CERT_DIR`,
 *   in a child process);
 * - bad input: a clear error naming the option.
 *
 * @module
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync } from "node:fs";
import { join } from "node:path";
import { connect, type ConnectOptions, listen, TlsContext, TlsError } from "../mod.ts";
import { test } from "./harness.ts";
import { createCrlPki, type CrlLeaf } from "./support/crl_pki.ts";
import { startOpensslServer } from "./support/openssl_peer.ts";
import { opensslClient, parseOpensslClient } from "./support/clients.ts";
import { rejectsWithTlsError, withEchoServer } from "./support/listener.ts";
import { clearCacheAndAssertNoLeaks } from "./support/leaks.ts";
import { runScript } from "./support/subprocess.ts";

const pki = createCrlPki();

/** Our client's options against s_server on `port`, trusting the CRL PKI's root. */
function clientOptions(port: number, extra: Partial<ConnectOptions>): ConnectOptions {
  return {
    hostname: "127.0.0.1",
    servername: "localhost",
    port,
    caCerts: [pki.root.cert],
    handshakeTimeout: 5_000,
    ...extra,
  };
}

/** Runs `body` against `openssl s_server` serving `leaf` with its intermediate. */
async function withServer(leaf: CrlLeaf, body: (port: number) => Promise<void>): Promise<void> {
  const server = await startOpensslServer({
    cert: leaf.certPath,
    key: leaf.keyPath,
    chain: leaf.intermediatePath,
  });
  try {
    await body(server.port);
  } finally {
    await server.stop();
  }
  clearCacheAndAssertNoLeaks();
}

// ---- our client against openssl s_server ------------------------------------------------------

interface ClientCase {
  name: string;
  leaf: CrlLeaf;
  options: Partial<ConnectOptions>;
  /** null: the handshake succeeds. */
  verifyCode: number | null;
  message?: RegExp;
}

const CLIENT_CASES: ClientCase[] = [
  {
    name: "good leaf, both CRLs (crlCheck defaults to chain)",
    leaf: pki.server,
    options: { crls: [pki.rootCrl.pem, pki.intermediateCrl.pem] },
    verifyCode: null,
  },
  {
    name: "revoked leaf, both CRLs",
    leaf: pki.revokedServer,
    options: { crls: [pki.rootCrl.pem, pki.intermediateCrl.pem] },
    verifyCode: 23,
    message: /certificate revoked \(verify error 23\)/,
  },
  {
    name: "revoked leaf, the intermediate's CRL as DER, crlCheck leaf",
    leaf: pki.revokedServer,
    options: { crls: pki.intermediateCrl.der, crlCheck: "leaf" },
    verifyCode: 23,
  },
  {
    name: "revoked leaf, both CRLs in one PEM text",
    leaf: pki.revokedServer,
    options: { crls: pki.rootCrl.pem + pki.intermediateCrl.pem },
    verifyCode: 23,
  },
  {
    name: "revoked leaf, Node's crl (alias of crls), one PEM",
    leaf: pki.revokedServer,
    options: { crl: pki.intermediateCrl.pem, crlCheck: "leaf" },
    verifyCode: 23,
  },
  {
    name: "revoked leaf, crlCheck leaf, the CRL inside the caCerts PEM (no crls)",
    leaf: pki.revokedServer,
    options: { caCerts: [pki.root.cert + pki.intermediateCrl.pem], crlCheck: "leaf" },
    verifyCode: 23,
  },
  {
    name: "good leaf, crlCheck chain, both CRLs inside the caCerts PEM (no crls)",
    leaf: pki.server,
    options: {
      caCerts: [pki.rootCrl.pem + pki.root.cert + pki.intermediateCrl.pem],
      crlCheck: "chain",
    },
    verifyCode: null,
  },
  {
    name: "revoked leaf without crls or crlCheck: not checked",
    leaf: pki.revokedServer,
    options: {},
    verifyCode: null,
  },
  {
    name: "good leaf, only the intermediate's CRL, crlCheck leaf",
    leaf: pki.server,
    options: { crls: [pki.intermediateCrl.pem], crlCheck: "leaf" },
    verifyCode: null,
  },
  {
    name: "good leaf, only the intermediate's CRL, crlCheck chain: the root's CRL is missing",
    leaf: pki.server,
    options: { crls: [pki.intermediateCrl.pem] },
    verifyCode: 3,
    message: /unable to get certificate CRL/,
  },
  {
    name: "good leaf, crlCheck leaf and no CRL at all",
    leaf: pki.server,
    options: { crlCheck: "leaf" },
    verifyCode: 3,
  },
  {
    name: "good leaf, the intermediate's CRL expired",
    leaf: pki.server,
    options: { crls: [pki.expiredIntermediateCrl.pem], crlCheck: "leaf" },
    verifyCode: 12,
    message: /CRL has expired/,
  },
  {
    name: "leaf under a revoked intermediate, crlCheck leaf: accepted",
    leaf: pki.serverUnderRevokedIntermediate,
    options: { crls: [pki.rootCrl.pem, pki.revokedIntermediateCrl.pem], crlCheck: "leaf" },
    verifyCode: null,
  },
  {
    name: "leaf under a revoked intermediate, crlCheck chain: revoked",
    leaf: pki.serverUnderRevokedIntermediate,
    options: { crls: [pki.rootCrl.pem, pki.revokedIntermediateCrl.pem], crlCheck: "chain" },
    verifyCode: 23,
  },
];

for (const c of CLIENT_CASES) {
  const expected = c.verifyCode === null ? "connects" : `verify error ${c.verifyCode}`;
  test(`client vs s_server: ${c.name} -> ${expected}`, async () => {
    await withServer(c.leaf, async (port) => {
      if (c.verifyCode === null) {
        const conn = await connect(clientOptions(port, c.options));
        assert.equal(conn.peerCertificate?.subject.includes("CN=localhost"), true);
        conn.close();
        return;
      }
      const error = await rejectsWithTlsError(
        connect(clientOptions(port, c.options)),
        "CERT_VERIFY_FAILED",
        c.message,
      );
      assert.equal(error.verifyCode, c.verifyCode, error.message);
    });
  });
}

test("client vs s_server: a TlsContext with crls serves many connections; the context owns the CRLs", async () => {
  await withServer(pki.revokedServer, async (port) => {
    const context = new TlsContext("client", {
      caCerts: [pki.root.cert],
      crls: [pki.rootCrl.der, pki.intermediateCrl.der],
    });
    try {
      for (let i = 0; i < 2; i++) {
        const error = await rejectsWithTlsError(
          connect({ hostname: "127.0.0.1", servername: "localhost", port, context }),
          "CERT_VERIFY_FAILED",
        );
        assert.equal(error.verifyCode, 23);
      }
    } finally {
      context.close();
    }
  });
});

// ---- openssl s_client against our server ------------------------------------------------------

interface ServerCase {
  name: string;
  leaf: CrlLeaf;
  crls: readonly (string | Uint8Array)[];
  crlCheck?: "leaf" | "chain";
  verifyCode: number | null;
  /** The alert s_client receives. */
  alert?: number;
}

const SERVER_CASES: ServerCase[] = [
  {
    name: "good client certificate",
    leaf: pki.client,
    crls: [pki.rootCrl.pem, pki.intermediateCrl.pem],
    verifyCode: null,
  },
  {
    name: "revoked client certificate",
    leaf: pki.revokedClient,
    crls: [pki.rootCrl.pem, pki.intermediateCrl.pem],
    verifyCode: 23,
    alert: 44,
  },
  {
    name: "good client certificate, the root's CRL missing (chain)",
    leaf: pki.client,
    crls: [pki.intermediateCrl.der],
    verifyCode: 3,
  },
  {
    name: "good client certificate, expired CRL (leaf)",
    leaf: pki.client,
    crls: [pki.expiredIntermediateCrl.pem],
    crlCheck: "leaf",
    verifyCode: 12,
  },
];

for (const c of SERVER_CASES) {
  for (const version of ["1.3", "1.2"] as const) {
    const expected = c.verifyCode === null ? "accepted" : `verify error ${c.verifyCode}`;
    test(`s_client -cert vs our server, TLS ${version}: ${c.name} -> ${expected}`, async () => {
      await withEchoServer(
        {
          cert: pki.server.chainPem,
          key: pki.server.key,
          caCerts: [pki.root.cert],
          requestClientCert: "require",
          crls: c.crls,
          ...(c.crlCheck === undefined ? {} : { crlCheck: c.crlCheck }),
        },
        (conn) => ({ subject: conn.peerCertificate?.subject ?? null }),
        async (server) => {
          const client = opensslClient({
            port: server.port,
            caFile: pki.root.certPath,
            tls: version,
            cert: c.leaf.certPath,
            key: c.leaf.keyPath,
            chain: c.leaf.intermediatePath,
            input: "ping\n",
          });
          const result = await client.result;
          const report = parseOpensslClient(result);
          if (c.verifyCode === null) {
            assert.equal(report.code, 0, result.stderr);
            assert.match(result.stdout, /echo:ping/);
            await server.waitForSeen(1);
            assert.match(server.seen[0]!.subject ?? "", /CN=crl-client/);
            assert.deepEqual(server.errors, []);
            return;
          }
          assert.notEqual(report.code, 0, result.stdout);
          assert.doesNotMatch(result.stdout, /echo:/);
          if (c.alert !== undefined) {
            assert.deepEqual(report.alerts.map((a) => a.number), [c.alert], result.stderr);
          }
          await server.waitForErrors(1);
          const error = server.errors[0]!;
          assert.equal(error.code, "CERT_VERIFY_FAILED", error.message);
          assert.equal(error.verifyCode, c.verifyCode, error.message);
          assert.equal(server.seen.length, 0);
        },
      );
    });
  }
}

// ---- crlCheck alone: the CRLs in the trust store ----------------------------------------------

test("crlCheck without crls uses the CRLs of the system store's hashed directory (SSL_CERT_DIR)", () => {
  const dir = mkdtempSync(join(pki.dir, "certdir-"));
  copyFileSync(pki.root.certPath, join(dir, "root.pem"));
  copyFileSync(pki.rootCrl.path, join(dir, "root.crl.pem"));
  copyFileSync(pki.intermediateCrl.path, join(dir, "inter.crl.pem"));
  execFileSync("openssl", ["rehash", dir], { stdio: "ignore" });
  const run = (leaf: CrlLeaf, crlCheck: string) => {
    const r = runScript("tests/fixtures/crl_system_store.ts", [
      leaf.chainPath,
      leaf.keyPath,
      crlCheck,
    ], {
      env: { SSL_CERT_DIR: dir, SSL_CERT_FILE: join(dir, "none.pem") },
    });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout.trim().split("\n").at(-1)!);
  };
  assert.deepEqual(run(pki.revokedServer, "chain"), {
    ok: false,
    code: "CERT_VERIFY_FAILED",
    verifyCode: 23,
  });
  assert.deepEqual(run(pki.server, "chain"), { ok: true });
  // The same revoked leaf, crlCheck off: the directory's CRLs are not consulted.
  assert.deepEqual(run(pki.revokedServer, "off"), { ok: true });
});

// ---- bad input --------------------------------------------------------------------------------

test("a bad CRL is a clear error naming the option", () => {
  const made = (crls: unknown) => () =>
    new TlsContext("client", { caCerts: [pki.root.cert], crls: crls as string });
  assert.throws(
    made([pki.rootCrl.pem, "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"]),
    (e) => {
      assert.ok(e instanceof TlsError && e.code === "INVALID_CERTIFICATE", String(e));
      assert.match(e.message, /^crls\[1\]: could not parse CRL \(PEM text\) as PEM/);
      return true;
    },
  );
  assert.throws(made([pki.root.cert]), (e) => {
    assert.ok(e instanceof TlsError && e.code === "INVALID_CERTIFICATE", String(e));
    assert.match(e.message, /^crls\[0\]: no CRL found in the PEM text/);
    return true;
  });
  assert.throws(made(new Uint8Array([0x30, 0x03, 1, 2, 3])), (e) => {
    assert.ok(e instanceof TlsError && e.code === "INVALID_CERTIFICATE", String(e));
    assert.match(e.message, /^crls: could not parse CRL \(5 bytes\) as DER/);
    return true;
  });
  assert.throws(made("root.crl.pem"), /crls: no PEM block found .*looks like a file path/);
  assert.throws(made([42]), new TypeError("crls[0] must be a PEM string or a Uint8Array"));
  assert.throws(
    () => new TlsContext("client", { crlCheck: "all" as "leaf" }),
    new TypeError('crlCheck must be "leaf" or "chain", got "all"'),
  );
  assert.throws(
    () =>
      listen({ port: 0, cert: pki.server.chainPem, key: pki.server.key, crls: [pki.rootCrl.pem] }),
    /crls needs requestClientCert/,
  );
  assert.throws(
    () => new TlsContext("client", { unsafelyDisableVerification: true, crlCheck: "leaf" }),
    /crlCheck cannot be combined with unsafelyDisableVerification/,
  );
  clearCacheAndAssertNoLeaks();
});

// ---- the client example -----------------------------------------------------------------------

test("examples/client.ts --crl / --crl-check against s_server -www: revoked refused (23), good served, bad usage 2", async () => {
  for (
    const [leaf, flags, status, pattern] of [
      [
        pki.revokedServer,
        ["--crl", pki.intermediateCrl.path, "--crl-check", "leaf"],
        1,
        /TLS error CERT_VERIFY_FAILED: .*certificate revoked \(verify error 23\)/,
      ],
      [
        pki.server,
        ["--crl", pki.rootCrl.path, "--crl", pki.intermediateCrl.path],
        0,
        /HTTP\/1\.0 200 ok/,
      ],
    ] as const
  ) {
    const server = await startOpensslServer({
      cert: leaf.certPath,
      key: leaf.keyPath,
      chain: leaf.intermediatePath,
      www: true,
    });
    try {
      const r = runScript("examples/client.ts", [
        `localhost:${server.port}`,
        "--ca",
        pki.root.certPath,
        ...flags,
        "--request",
        "GET / HTTP/1.0\\r\\n\\r\\n",
      ]);
      assert.equal(r.status, status, r.stdout + r.stderr);
      assert.match(r.stdout + r.stderr, pattern);
    } finally {
      await server.stop();
    }
  }
  const usage = runScript("examples/client.ts", ["localhost:1", "--crl-check", "all"]);
  assert.equal(usage.status, 2, usage.stderr);
  assert.match(usage.stderr, /--crl-check takes leaf or chain, got all/);
});
