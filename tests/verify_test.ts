import assert from "node:assert/strict";
import { TlsError } from "../mod.ts";
import { test } from "./harness.ts";
import { type LeafPem, sharedTestPki } from "./support/pki.ts";
import { handshakePair, makePair } from "./support/memory_pair.ts";
import { assertNoLiveNativeObjects } from "./support/leaks.ts";
import { runScript } from "./support/subprocess.ts";

const pki = sharedTestPki();

interface Case {
  name: string;
  leaf: LeafPem;
  servername?: string;
  chain?: boolean;
  caCerts?: string[];
  verifyCode: number;
}

const cases: Case[] = [
  { name: "expired leaf", leaf: pki.expiredServer, verifyCode: 10 },
  { name: "not-yet-valid leaf", leaf: pki.notYetValidServer, verifyCode: 9 },
  { name: "wrong host name", leaf: pki.wrongHostServer, verifyCode: 62 },
  { name: "self-signed leaf", leaf: pki.selfSignedServer, verifyCode: 18 },
  { name: "untrusted root", leaf: pki.otherRootServer, verifyCode: 20 },
  { name: "missing intermediate", leaf: pki.server, chain: false, verifyCode: 20 },
  { name: "clientAuth-only EKU", leaf: pki.clientAuthOnlyServer, verifyCode: 26 },
  { name: "IP mismatch", leaf: pki.ipOnlyServer, servername: "127.0.0.2", verifyCode: 64 },
  {
    name: "our root not trusted (other CA given)",
    leaf: pki.server,
    caCerts: [pki.otherRootCa.cert],
    verifyCode: 20,
  },
];

for (const c of cases) {
  test(`verification fails: ${c.name} -> CERT_VERIFY_FAILED, verify error ${c.verifyCode}`, async () => {
    const p = makePair(
      { caCerts: c.caCerts ?? [pki.rootCa.cert] },
      { cert: c.chain === false ? c.leaf.cert : c.leaf.chainPem, key: c.leaf.key },
      { servername: c.servername ?? "localhost" },
    );
    try {
      await assert.rejects(handshakePair(p.client, p.server), (e: unknown) => {
        assert.ok(e instanceof TlsError, String(e));
        assert.equal(e.code, "CERT_VERIFY_FAILED", e.message);
        assert.equal(e.verifyCode, c.verifyCode, e.message);
        assert.ok(e.verifyMessage !== undefined && e.verifyMessage.length > 0);
        assert.ok(e.message.includes(e.verifyMessage));
        assert.ok(e.openssl.some((x) => x.reasonText === "certificate verify failed"));
        return true;
      });
    } finally {
      p.close();
    }
    assertNoLiveNativeObjects();
  });
}

test("an IP address target is verified as an IP and sends no SNI", async () => {
  const p = makePair(
    { caCerts: [pki.rootCa.cert] },
    { cert: pki.ipOnlyServer.chainPem, key: pki.ipOnlyServer.key },
    { servername: "127.0.0.1" },
  );
  try {
    await handshakePair(p.client, p.server);
    assert.equal(p.client.verifyResult, 0);
    assert.equal(p.server.servername, undefined, "no SNI for an IP literal");
  } finally {
    p.close();
  }
  assertNoLiveNativeObjects();
});

test("IPv6 literal target verified against the SAN", async () => {
  const p = makePair(
    { caCerts: [pki.rootCa.cert] },
    { cert: pki.server.chainPem, key: pki.server.key },
    { servername: "::1" },
  );
  try {
    await handshakePair(p.client, p.server);
    assert.equal(p.server.servername, undefined);
  } finally {
    p.close();
  }
  assertNoLiveNativeObjects();
});

test("the system trust store is used when caCerts is absent (SSL_CERT_FILE)", () => {
  // OpenSSL reads SSL_CERT_FILE (a C getenv) when the context loads its default paths, so this
  // runs in child processes. Our root is not in the system store: the default store must reject
  // the server, and SSL_CERT_FILE pointing at our root must accept it.
  const args = [pki.server.chainPath, pki.server.keyPath];
  const run = (caFile: string) => {
    const r = runScript("tests/fixtures/system_store_handshake.ts", args, {
      env: { SSL_CERT_FILE: caFile },
    });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout.trim().split("\n").pop()!);
  };
  assert.deepEqual(run(pki.rootCaPath), { ok: true });
  assert.deepEqual(run("/etc/ssl/certs/ca-certificates.crt"), {
    ok: false,
    code: "CERT_VERIFY_FAILED",
    verifyCode: 20,
  });
}, { timeout: 60_000 });

test("unsafelyDisableVerification accepts an untrusted, wrongly named server", async () => {
  const p = makePair(
    { unsafelyDisableVerification: true },
    { cert: pki.selfSignedServer.cert, key: pki.selfSignedServer.key },
    {},
  );
  try {
    await handshakePair(p.client, p.server);
    assert.equal(p.client.verifyResult, 18, "OpenSSL still reports what it found");
  } finally {
    p.close();
  }
  assertNoLiveNativeObjects();
});

test("server requiring a client certificate: verified, and absent is refused", async () => {
  const serverOptions = {
    cert: pki.server.chainPem,
    key: pki.server.key,
    caCerts: [pki.rootCa.cert],
    requestClientCert: "require" as const,
  };
  const withCert = makePair(
    { caCerts: [pki.rootCa.cert], cert: pki.client.chainPem, key: pki.client.key },
    serverOptions,
  );
  try {
    await handshakePair(withCert.client, withCert.server);
    assert.equal(withCert.server.peerCertificate?.subject.split(",")[0], "CN=test-client");
    assert.equal(withCert.server.verifyResult, 0);
  } finally {
    withCert.close();
  }
  const without = makePair({ caCerts: [pki.rootCa.cert] }, serverOptions);
  try {
    // TLS 1.3: the client finishes its handshake before the server judges its (empty)
    // certificate; the server's alert arrives on the client's first read.
    await assert.rejects(handshakePair(without.client, without.server), (e: unknown) => {
      assert.ok(e instanceof TlsError);
      assert.equal(e.code, "HANDSHAKE_FAILED");
      assert.match(e.message, /peer did not return a certificate/);
      return true;
    });
    transfer(without);
    assert.throws(() => without.client.read(new Uint8Array(10)), (e: unknown) => {
      assert.ok(e instanceof TlsError);
      assert.equal(e.code, "ALERT_RECEIVED");
      assert.equal(e.alert?.code, 116); // certificate_required
      return true;
    });
  } finally {
    without.close();
  }
  assertNoLiveNativeObjects();
});

function transfer(
  p: { client: { receive(b: Uint8Array): void }; server: { outgoing(): Uint8Array | null } },
) {
  const bytes = p.server.outgoing();
  if (bytes !== null) p.client.receive(bytes);
}
