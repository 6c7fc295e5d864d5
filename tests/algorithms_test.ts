/**
 * Algorithms: `sigalgs` on both sides, TLS 1.3 suites chosen through `ciphers` (names starting
 * with `TLS_`), `maxSendFragment` (every record on the wire is no larger) and
 * `conn.peerSignatureAlgorithm`, against `openssl s_server` / `s_client` (what they print:
 * `CIPHER is`, `Peer signature type`) and between our own engines.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, type ConnectOptions, listen, TlsContext, type TlsError } from "../mod.ts";
import { test } from "./harness.ts";
import { sharedTestPki, type TestPki } from "./support/pki.ts";
import { startOpensslServer } from "./support/openssl_peer.ts";
import { opensslClient, parseOpensslClient } from "./support/clients.ts";
import { localClientOptions, localServerOptions, until } from "./support/listener.ts";
import { handshakePair, makePair, readAll, transfer } from "./support/memory_pair.ts";
import { clearCacheAndAssertNoLeaks as finish } from "./support/leaks.ts";

const pki = sharedTestPki();

function opensslServer(p: TestPki = pki, extraArgs: string[] = [], tls?: "1.2" | "1.3") {
  return startOpensslServer({
    cert: p.server.certPath,
    key: p.server.keyPath,
    chain: p.intermediateCa.certPath,
    quiet: true,
    extraArgs,
    ...(tls === undefined ? {} : { tls }),
  });
}

function clientTo(port: number, extra: Partial<ConnectOptions> = {}, p: TestPki = pki) {
  return connect({ hostname: "localhost", port, caCerts: [p.rootCa.cert], ...extra });
}

/**
 * What s_client printed as the server's signature scheme, as the IANA name: OpenSSL 3.5+ prints
 * the name itself; 3.0 prints a type ("ECDSA", "RSA-PSS", "RSA") and the digest, which this maps
 * the way `conn.peerSignatureAlgorithm` does on 3.0.
 */
function printedSignature(stdout: string): string {
  const type = /Peer signature type: (\S+)/.exec(stdout)?.[1];
  assert.ok(type !== undefined, `no "Peer signature type" in:\n${stdout}`);
  if (type.includes("_") || type.startsWith("ed")) return type;
  const digest = /Peer signing digest: (\S+)/.exec(stdout)?.[1]?.toLowerCase();
  assert.ok(digest !== undefined, `no "Peer signing digest" in:\n${stdout}`);
  const curve: Record<string, string> = {
    sha256: "secp256r1_",
    sha384: "secp384r1_",
    sha512: "secp521r1_",
  };
  if (type === "ECDSA") return `ecdsa_${curve[digest] ?? ""}${digest}`;
  if (type === "RSA-PSS") return `rsa_pss_rsae_${digest}`;
  if (type === "RSA") return `rsa_pkcs1_${digest}`;
  return `${type}/${digest}`;
}

test("peerSignatureAlgorithm equals what s_client prints, and what our client sees, EC and RSA, TLS 1.3 and 1.2", async () => {
  const rsa = sharedTestPki({ keyType: "rsa" });
  const cases = [
    [pki, "1.3", undefined, "ecdsa_secp256r1_sha256"],
    [pki, "1.2", undefined, "ecdsa_secp256r1_sha256"],
    [pki, "1.2", ["ecdsa_secp384r1_sha384"], "ecdsa_secp384r1_sha384"],
    [rsa, "1.3", undefined, "rsa_pss_rsae_sha256"],
    [rsa, "1.2", ["rsa_pkcs1_sha384"], "rsa_pkcs1_sha384"],
  ] as const;
  for (const [p, tls, sigalgs, expected] of cases) {
    const label = `${p.keyType} TLS ${tls} ${sigalgs ?? "default"}`;
    await using server = listen({
      ...localServerOptions({ cert: p.server.chainPem, key: p.server.key }),
      ...(sigalgs === undefined ? {} : { sigalgs }),
    });
    // s_client's view of our server.
    {
      const accepted = server.accept();
      const client = opensslClient({ port: server.addr.port, caFile: p.rootCaPath, tls });
      try {
        const conn = await accepted;
        await conn.handshake();
        // The client sent no certificate: nothing it signed.
        assert.equal(conn.peerSignatureAlgorithm, null, label);
        conn.close();
        const result = await client.result;
        assert.equal(printedSignature(result.stdout), expected, label);
      } finally {
        await client.stop();
      }
    }
    // Ours, of the same server.
    {
      const accepted = server.accept();
      await using conn = await connect(
        localClientOptions(server.addr.port, {
          caCerts: [p.rootCa.cert],
          maxVersion: tls === "1.2" ? "TLSv1.2" : "TLSv1.3",
        }),
      );
      (await accepted).close();
      assert.equal(conn.peerSignatureAlgorithm, expected, label);
    }
  }
  finish();
});

test("sigalgs on our client: s_server signs with the one offered; none it can use fails clearly", async () => {
  {
    await using server = await opensslServer(pki, [], "1.2");
    await using conn = await clientTo(server.port, {
      sigalgs: "ecdsa_secp521r1_sha512:ecdsa_secp256r1_sha256",
    });
    // TLS 1.2 ties no curve to the hash: the P-256 key signs with SHA-512, the first offered.
    assert.equal(conn.peerSignatureAlgorithm, "ecdsa_secp521r1_sha512");
  }
  {
    await using server = await opensslServer(pki);
    // TLS 1.3 does: only ecdsa_secp256r1_sha256 suits a P-256 key.
    await using conn = await clientTo(server.port, {
      sigalgs: ["ed25519", "ecdsa_secp256r1_sha256"],
    });
    assert.equal(conn.peerSignatureAlgorithm, "ecdsa_secp256r1_sha256");
  }
  for (const maxVersion of ["TLSv1.3", "TLSv1.2"] as const) {
    await using server = await opensslServer(pki);
    // An ECDSA P-256 server cannot sign with these: it says handshake_failure.
    await assert.rejects(
      clientTo(server.port, { maxVersion, sigalgs: ["ed25519", "rsa_pss_rsae_sha256"] }),
      (e: TlsError) => {
        assert.equal(e.name, "TlsError");
        assert.equal(e.code, "ALERT_RECEIVED", e.message);
        assert.equal(e.alert?.code, 40, e.message);
        return true;
      },
      maxVersion,
    );
  }
  finish();
});

test("sigalgs on our server: s_client offering none of them is refused with a clear error", async () => {
  const errors: TlsError[] = [];
  const server = listen(
    localServerOptions({ sigalgs: ["ecdsa_secp256r1_sha256"], onError: (e) => errors.push(e) }),
  );
  for (const tls of ["1.3", "1.2"] as const) {
    errors.length = 0;
    const client = opensslClient({
      port: server.addr.port,
      caFile: pki.rootCaPath,
      tls,
      extraArgs: ["-sigalgs", "ed25519:rsa_pss_rsae_sha256"],
    });
    try {
      const report = parseOpensslClient(await client.result);
      assert.equal(report.alerts[0]?.number, 40, `TLS ${tls}: ${JSON.stringify(report)}`);
      await until("the server's error", () => errors.length > 0);
      assert.equal(errors[0]!.code, "HANDSHAKE_FAILED", errors[0]!.message);
      assert.match(errors[0]!.message, /signature algorithm.*sigalgs/);
    } finally {
      await client.stop();
    }
  }
  // One it shares still works.
  const accepted = server.accept();
  const ok = await connect(localClientOptions(server.addr.port));
  (await accepted).close();
  assert.equal(ok.peerSignatureAlgorithm, "ecdsa_secp256r1_sha256");
  await ok[Symbol.asyncDispose]();
  server.close();
  finish();
});

test("sigalgs: names OpenSSL does not know and malformed values are TypeErrors", () => {
  assert.throws(
    () => new TlsContext("client", { sigalgs: ["ecdsa_secp256r1_sha256", "no_such_alg"] }),
    { name: "TypeError", message: /"no_such_alg" is not a signature algorithm OpenSSL/ },
  );
  for (const bad of [[], "", [""], ["a:b"], [42], 42]) {
    assert.throws(() => new TlsContext("server", { sigalgs: bad as never }), TypeError);
  }
  // The colon-separated string of Node's option works too.
  new TlsContext("client", { sigalgs: "ecdsa_secp256r1_sha256:rsa_pss_rsae_sha256" }).close();
  finish();
});

test("ciphers picks the TLS 1.3 suite: conn.cipher and s_server / s_client report it", async () => {
  for (const suite of ["TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_GCM_SHA256"]) {
    await using server = await startOpensslServer({
      cert: pki.server.certPath,
      key: pki.server.keyPath,
      chain: pki.intermediateCa.certPath,
    });
    await using conn = await clientTo(server.port, { ciphers: suite });
    assert.equal(conn.cipher, suite);
    const [, printed] = await server.waitFor(/CIPHER is (\S+)/);
    assert.equal(printed, suite);
  }
  {
    // Our server, and a list with suites of both versions: each version takes its own.
    const ciphers = "TLS_AES_128_GCM_SHA256:ECDHE-ECDSA-AES256-GCM-SHA384";
    await using server = listen(localServerOptions({ ciphers }));
    for (
      const [tls, expected] of [
        ["1.3", "TLS_AES_128_GCM_SHA256"],
        ["1.2", "ECDHE-ECDSA-AES256-GCM-SHA384"],
      ] as const
    ) {
      const accepted = server.accept();
      const client = opensslClient({ port: server.addr.port, caFile: pki.rootCaPath, tls });
      try {
        const conn = await accepted;
        await conn.handshake();
        assert.equal(conn.cipher, expected);
        conn.close();
        assert.equal(parseOpensslClient(await client.result).cipher, expected);
      } finally {
        await client.stop();
      }
    }
  }
  {
    // Only TLS 1.2 names: TLS 1.3 keeps its default suites (as before this option knew them).
    await using server = await opensslServer(pki);
    await using conn = await clientTo(server.port, { ciphers: "ECDHE-ECDSA-AES128-GCM-SHA256" });
    assert.equal(conn.protocol, "TLSv1.3");
    assert.equal(conn.cipher, "TLS_AES_256_GCM_SHA384");
  }
  {
    // No suite in common with the server: its alert.
    await using server = await opensslServer(
      pki,
      ["-ciphersuites", "TLS_AES_256_GCM_SHA384"],
      "1.3",
    );
    await assert.rejects(clientTo(server.port, { ciphers: "TLS_AES_128_GCM_SHA256" }), {
      name: "TlsError",
      code: "ALERT_RECEIVED",
    });
  }
  assert.throws(
    () => new TlsContext("client", { ciphers: "TLS_AES_128_GCM_SHA256:TLS_NO_SUCH_SUITE" }),
    { name: "TlsError", code: "HANDSHAKE_FAILED", message: /"TLS_NO_SUCH_SUITE"/ },
  );
  assert.throws(() => new TlsContext("client", { ciphers: ":" }), TypeError);
  finish();
});

/** The TLS records in `bytes` (which must hold whole records): their types and lengths. */
function records(bytes: Uint8Array): { type: number; length: number }[] {
  const out: { type: number; length: number }[] = [];
  for (let off = 0; off < bytes.length;) {
    const length = (bytes[off + 3]! << 8) | bytes[off + 4]!;
    out.push({ type: bytes[off]!, length });
    off += 5 + length;
  }
  return out;
}

test("maxSendFragment: every record on the wire carries at most that much, on both sides", async () => {
  for (const maxVersion of ["TLSv1.3", "TLSv1.2"] as const) {
    for (const fragment of [512, 1000, undefined]) {
      const extra = fragment === undefined ? {} : { maxSendFragment: fragment };
      const pair = makePair(
        { caCerts: [pki.rootCa.cert], maxVersion, ...extra },
        { cert: pki.server.chainPem, key: pki.server.key, ...extra },
      );
      try {
        const { client, server } = pair;
        await handshakePair(client, server);
        transfer(server, client); // TLS 1.3 tickets
        readAll(client);
        const data = new Uint8Array(5000).map((_, i) => i & 0xff);
        for (const [from, to] of [[client, server], [server, client]] as const) {
          from.write(data);
          const wire = from.outgoing()!;
          const sizes = records(wire).map((r) => r.length);
          // AEAD overhead: TLS 1.3 adds the content type and a 16-byte tag; TLS 1.2 GCM an
          // 8-byte explicit nonce and the tag.
          const overhead = maxVersion === "TLSv1.3" ? 17 : 24;
          const limit = fragment ?? 16384;
          assert.equal(sizes.length, Math.ceil(data.length / limit), `${maxVersion} ${fragment}`);
          for (const size of sizes) assert.ok(size <= limit + overhead, `${size} > ${limit}`);
          to.receive(wire);
          assert.deepEqual(readAll(to), data);
        }
      } finally {
        pair.close();
      }
    }
  }
  for (const bad of [511, 16385, 1.5, "1024", -1]) {
    assert.throws(
      () => new TlsContext("client", { maxSendFragment: bad as never }),
      { name: "RangeError", message: /512 to 16384/ },
      String(bad),
    );
  }
  finish();
});

test("maxSendFragment against s_server: data arrives whole in small records", async () => {
  await using server = await startOpensslServer({
    cert: pki.server.certPath,
    key: pki.server.keyPath,
    chain: pki.intermediateCa.certPath,
    rev: true,
  });
  const conn = await clientTo(server.port, { maxSendFragment: 512 });
  const line = "x".repeat(3000) + "y";
  await conn.write(new TextEncoder().encode(`${line}\n`));
  const buf = new Uint8Array(8192);
  let text = "";
  while (!text.includes("\n")) {
    const n = await conn.read(buf);
    if (n === null) break;
    text += new TextDecoder().decode(buf.subarray(0, n));
  }
  assert.equal(text.trim(), [...line].reverse().join(""));
  await conn[Symbol.asyncDispose]();
  finish();
});

test("ciphers with TLS 1.3 suites and a PSK: the suite chosen stands, TLS 1.2 keeps its PSK suites", async () => {
  const key = new Uint8Array(32).fill(7);
  const hexKey = Array.from(key, (b) => b.toString(16).padStart(2, "0")).join("");
  const psk = { identity: "alice", key };
  {
    await using server = await startOpensslServer({
      tls: "1.3",
      quiet: true,
      extraArgs: ["-nocert", "-psk", hexKey, "-psk_identity", "alice"],
    });
    await using conn = await connect({
      hostname: "127.0.0.1",
      port: server.port,
      psk,
      ciphers: "TLS_CHACHA20_POLY1305_SHA256",
    });
    assert.equal(conn.cipher, "TLS_CHACHA20_POLY1305_SHA256");
    assert.equal(conn.pskIdentity, "alice");
  }
  {
    // Only TLS 1.3 names: TLS 1.2 still gets the PSK feature's default list.
    await using server = await startOpensslServer({
      tls: "1.2",
      cipher: "PSK",
      quiet: true,
      extraArgs: ["-nocert", "-psk", hexKey, "-psk_identity", "alice"],
    });
    await using conn = await connect({
      hostname: "127.0.0.1",
      port: server.port,
      psk,
      ciphers: "TLS_AES_128_GCM_SHA256",
    });
    assert.equal(conn.protocol, "TLSv1.2");
    assert.match(conn.cipher, /PSK/);
  }
  finish();
});

test("peerSignatureAlgorithm on a server: the scheme of the client's CertificateVerify (s_client -cert)", async () => {
  const server = listen(
    localServerOptions({ requestClientCert: "require", caCerts: [pki.rootCa.cert] }),
  );
  try {
    for (const tls of ["1.3", "1.2"] as const) {
      const accepted = server.accept();
      const client = opensslClient({
        port: server.addr.port,
        caFile: pki.rootCaPath,
        tls,
        cert: pki.client.certPath,
        key: pki.client.keyPath,
        chain: pki.intermediateCa.certPath,
      });
      try {
        const conn = await accepted;
        await conn.handshake();
        assert.equal(conn.peerSignatureAlgorithm, "ecdsa_secp256r1_sha256", `TLS ${tls}`);
        conn.close();
        await client.result;
      } finally {
        await client.stop();
      }
    }
  } finally {
    server.close();
  }
  finish();
});
