/**
 * Everything that must fail, failing well: each case a typed `TlsError` naming the cause, no
 * crash, no hang, nothing left behind, and a good connection right after.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, TlsError } from "../mod.ts";
import { test } from "./harness.ts";
import { type LeafPem, sharedTestPki } from "./support/pki.ts";
import { startOpensslServer } from "./support/openssl_peer.ts";
import { type RawBehaviour, startRawServer, startTcpProxy } from "./support/raw_peers.ts";
import { clearCacheAndAssertNoLeaks as finish } from "./support/leaks.ts";
import { runScript } from "./support/subprocess.ts";

const pki = sharedTestPki();
const ca = [pki.rootCa.cert];

function isTlsError(code: string, check: (e: TlsError) => void = () => {}) {
  return (e: unknown) => {
    assert.ok(e instanceof TlsError, `expected TlsError ${code}, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    check(e);
    return true;
  };
}

/** Proves the process is still healthy: a good connection to a good server. */
async function goodConnectionWorks(): Promise<void> {
  await using server = await startOpensslServer({
    cert: pki.server.certPath,
    key: pki.server.keyPath,
    chain: pki.intermediateCa.certPath,
  });
  const conn = await connect({ hostname: "localhost", port: server.port, caCerts: ca });
  assert.equal(conn.protocol, "TLSv1.3");
  conn.close();
}

// ---- certificate verification against openssl s_server -----------------------------------------

interface VerifyCase {
  name: string;
  leaf: LeafPem;
  withChain?: boolean;
  hostname?: string;
  caCerts?: string[];
  verifyCode: number;
}

const verifyCases: VerifyCase[] = [
  { name: "expired leaf", leaf: pki.expiredServer, verifyCode: 10 },
  { name: "wrong host", leaf: pki.wrongHostServer, verifyCode: 62 },
  { name: "untrusted root", leaf: pki.otherRootServer, verifyCode: 20 },
  { name: "self-signed leaf", leaf: pki.selfSignedServer, withChain: false, verifyCode: 18 },
  { name: "missing intermediate", leaf: pki.server, withChain: false, verifyCode: 20 },
  {
    name: "IP target, certificate without that IP",
    leaf: pki.wrongHostServer,
    hostname: "127.0.0.1",
    verifyCode: 64,
  },
  {
    name: "our root not in caCerts",
    leaf: pki.server,
    caCerts: [pki.otherRootCa.cert],
    verifyCode: 20,
  },
];

for (const c of verifyCases) {
  test(`s_server with ${c.name}: CERT_VERIFY_FAILED, verify error ${c.verifyCode}`, async () => {
    // -cert takes the leaf only; the chain (when any) goes through -cert_chain. No -CAfile: it
    // would feed s_server's own chain building.
    {
      await using server = await startOpensslServer({
        cert: c.leaf.certPath,
        key: c.leaf.keyPath,
        ...(c.withChain === false ? {} : { chain: c.leaf.chainPath }),
      });
      await assert.rejects(
        connect({
          hostname: c.hostname ?? "localhost",
          port: server.port,
          caCerts: c.caCerts ?? ca,
        }),
        isTlsError("CERT_VERIFY_FAILED", (e) => {
          assert.equal(e.verifyCode, c.verifyCode, e.message);
          assert.ok((e.verifyMessage ?? "").length > 0);
        }),
      );
    }
    finish();
  });
}

test("IP target with a matching IP SAN: verified, no SNI sent", async () => {
  {
    await using server = await startOpensslServer({
      cert: pki.server.certPath,
      key: pki.server.keyPath,
      chain: pki.intermediateCa.certPath,
    });
    const conn = await connect({ hostname: "127.0.0.1", port: server.port, caCerts: ca });
    conn.close();
    // s_server reports the SNI it received only when there was one.
    assert.doesNotMatch(server.output(), /Hostname in TLS extension/);
  }
  finish();
});

test("the system trust store (SSL_CERT_FILE) is used when caCerts is absent", async () => {
  {
    await using server = await startOpensslServer({
      cert: pki.server.certPath,
      key: pki.server.keyPath,
      chain: pki.intermediateCa.certPath,
    });
    const run = (caFile: string) => {
      const r = runScript(
        "tests/fixtures/connect_system_store.ts",
        ["localhost", String(server.port)],
        { env: { SSL_CERT_FILE: caFile } },
      );
      assert.equal(r.status, 0, r.stderr);
      return JSON.parse(r.stdout.trim().split("\n").pop()!);
    };
    assert.deepEqual(run(pki.rootCaPath), { ok: true, protocol: "TLSv1.3" });
    assert.deepEqual(run("/etc/ssl/certs/ca-certificates.crt"), {
      ok: false,
      code: "CERT_VERIFY_FAILED",
      verifyCode: 20,
    });
  }
  finish();
}, { timeout: 60_000 });

// ---- protocol refusals ----------------------------------------------------------------------

test("a TLS 1.0-only server is refused with a clear error", async () => {
  {
    await using server = await startOpensslServer({
      cert: pki.server.certPath,
      key: pki.server.keyPath,
      chain: pki.intermediateCa.certPath,
      tls: "1.0",
    });
    await assert.rejects(
      connect({ hostname: "localhost", port: server.port, caCerts: ca }),
      isTlsError("ALERT_RECEIVED", (e) => assert.equal(e.alert?.code, 70)), // protocol_version
    );
  }
  finish();
});

test("no shared cipher: the server's handshake_failure alert is surfaced", async () => {
  // A CBC suite our default TLS 1.2 list does not offer.
  {
    await using server = await startOpensslServer({
      cert: pki.server.certPath,
      key: pki.server.keyPath,
      chain: pki.intermediateCa.certPath,
      tls: "1.2",
      cipher: "ECDHE-ECDSA-AES128-SHA",
    });
    await assert.rejects(
      connect({ hostname: "localhost", port: server.port, caCerts: ca }),
      isTlsError("ALERT_RECEIVED", (e) => assert.equal(e.alert?.code, 40)),
    );
  }
  finish();
});

// ---- truncation, timeouts, aborts ------------------------------------------------------------

test("server killed mid-stream: UNEXPECTED_EOF, never a clean end", async () => {
  const { mkdtempSync, rmSync, writeFileSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const dir = mkdtempSync(join(tmpdir(), "libssl-ffi-kill-"));
  writeFileSync(join(dir, "big.bin"), new Uint8Array(256 * 1024 * 1024));
  const server = await startOpensslServer({
    cert: pki.server.certPath,
    key: pki.server.keyPath,
    chain: pki.intermediateCa.certPath,
    wwwRoot: dir,
  });
  try {
    const conn = await connect({ hostname: "localhost", port: server.port, caCerts: ca });
    try {
      await conn.write(new TextEncoder().encode("GET /big.bin HTTP/1.0\r\n\r\n"));
      const buf = new Uint8Array(64 * 1024);
      let total = 0;
      await assert.rejects(
        (async () => {
          for (;;) {
            const n = await conn.read(buf);
            if (n === null) throw new Error("a clean EOF: the truncation went unnoticed");
            total += n;
            if (total > 1024 * 1024 && !server.process.killed) server.kill("SIGKILL");
          }
        })(),
        isTlsError("UNEXPECTED_EOF"),
      );
      assert.ok(total > 1024 * 1024);
    } finally {
      conn.close();
    }
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  finish();
}, { timeout: 60_000 });

test("a server that accepts and never answers: TIMEOUT after handshakeTimeout", async () => {
  {
    await using server = await startRawServer("silent");
    const started = performance.now();
    await assert.rejects(
      connect({ hostname: "127.0.0.1", port: server.port, caCerts: ca, handshakeTimeout: 300 }),
      isTlsError("TIMEOUT", (e) => assert.match(e.message, /300 ms/)),
    );
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 290 && elapsed < 5000, `took ${elapsed} ms`);
    assert.equal(server.connections(), 1);
  }
  finish();
});

test("abort: ABORTED with the signal's reason, before and during the handshake", async () => {
  {
    await using server = await startRawServer("silent");
    const reason = new Error("user pressed cancel");
    const controller = new AbortController();
    const pending = connect({
      hostname: "127.0.0.1",
      port: server.port,
      caCerts: ca,
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(reason), 100);
    await assert.rejects(pending, isTlsError("ABORTED", (e) => assert.equal(e.cause, reason)));
    const before = server.connections();
    await assert.rejects(
      connect({
        hostname: "127.0.0.1",
        port: server.port,
        caCerts: ca,
        signal: AbortSignal.abort(),
      }),
      isTlsError("ABORTED"),
    );
    assert.equal(server.connections(), before, "an aborted signal does not even connect");
  }
  finish();
});

test("abort after the handshake: pending reads reject with ABORTED", async () => {
  {
    await using server = await startOpensslServer({
      cert: pki.server.certPath,
      key: pki.server.keyPath,
      chain: pki.intermediateCa.certPath,
    });
    const controller = new AbortController();
    const conn = await connect({
      hostname: "localhost",
      port: server.port,
      caCerts: ca,
      signal: controller.signal,
    });
    const pending = conn.read(new Uint8Array(100)); // s_server sends nothing by itself
    setTimeout(() => controller.abort(), 50);
    await assert.rejects(pending, isTlsError("ABORTED"));
    // A read that fails for good releases the connection at once (issue #17): closed, and
    // close() stays a harmless no-op.
    assert.equal(conn.closed, true, "the failed read released the connection");
    conn.close();
  }
  finish();
});

test("connection refused: NETWORK_ERROR with the OS error as cause", async () => {
  const { freePort } = await import("./support/peer_process.ts");
  const port = await freePort();
  await assert.rejects(
    connect({ hostname: "127.0.0.1", port, caCerts: ca }),
    isTlsError("NETWORK_ERROR", (e) => {
      assert.ok(e.cause instanceof Error);
      assert.match(e.message, /refused/i);
    }),
  );
  finish();
});

// ---- misbehaving peers ----------------------------------------------------------------------

const raw: [RawBehaviour, string, (e: TlsError) => void][] = [
  ["reset", "UNEXPECTED_EOF", (e) => assert.match(e.message, /reset/)],
  ["eof", "UNEXPECTED_EOF", () => {}],
  [
    "http",
    "HANDSHAKE_FAILED",
    (e) => assert.match(e.message, /wrong version number|packet length/),
  ],
  ["garbage", "HANDSHAKE_FAILED", () => {}],
  ["hugeRecord", "HANDSHAKE_FAILED", (e) => assert.match(e.message, /length|too long|overflow/)],
  ["alertFirst", "ALERT_RECEIVED", (e) => assert.equal(e.alert?.code, 40)],
];

for (const [behaviour, code, check] of raw) {
  test(`a peer that answers with ${behaviour}: ${code}, then a good connection works`, async () => {
    // Every behaviour answers the ClientHello (a reset right at accept is tested below).
    {
      await using server = await startRawServer(behaviour, { respondOn: "data" });
      await assert.rejects(
        connect({ hostname: "127.0.0.1", port: server.port, caCerts: ca, handshakeTimeout: 5000 }),
        isTlsError(code, check),
      );
    }
    finish();
    await goodConnectionWorks();
    finish();
  });
}

test("a reset right after accept: a typed error naming the reset", async () => {
  // Depending on timing the reset lands in the TCP connect (NETWORK_ERROR) or in the first read
  // of the handshake (UNEXPECTED_EOF); both say "reset".
  {
    await using server = await startRawServer("reset", { respondOn: "connect" });
    await assert.rejects(
      connect({ hostname: "127.0.0.1", port: server.port, caCerts: ca }),
      (e: unknown) => {
        assert.ok(e instanceof TlsError, String(e));
        assert.ok(["NETWORK_ERROR", "UNEXPECTED_EOF"].includes(e.code), e.code);
        assert.match(e.message, /reset/i);
        return true;
      },
    );
  }
  finish();
});

test("a truncated ServerHello followed by EOF: UNEXPECTED_EOF", async () => {
  {
    await using server = await startRawServer({
      write: new Uint8Array([0x16, 0x03, 0x03, 0x00, 0x50, 0x02, 0x00, 0x00]),
      then: "end",
    });
    await assert.rejects(
      connect({ hostname: "127.0.0.1", port: server.port, caCerts: ca }),
      isTlsError("UNEXPECTED_EOF"),
    );
  }
  finish();
});

test("a proxy that flips one bit mid-stream: the record fails its MAC, cleanly", async () => {
  {
    await using server = await startOpensslServer({
      cert: pki.server.certPath,
      key: pki.server.keyPath,
      chain: pki.intermediateCa.certPath,
      www: true,
    });
    await using proxy = await startTcpProxy(server.port, "flipBit", { flipAfter: 4096 });
    const conn = await connect({ hostname: "localhost", port: proxy.port, caCerts: ca });
    try {
      await conn.write(new TextEncoder().encode("GET / HTTP/1.0\r\n\r\n"));
      await assert.rejects(
        (async () => {
          const buf = new Uint8Array(65536);
          while ((await conn.read(buf)) !== null) { /* keep reading until the bad record */ }
        })(),
        isTlsError("PROTOCOL_ERROR", (e) => assert.match(e.message, /bad record mac|decrypt/)),
      );
      assert.equal(proxy.flips(), 1);
    } finally {
      conn.close();
    }
  }
  finish();
});

// ---- bad arguments --------------------------------------------------------------------------

test("bad arguments are TypeError / RangeError, before any I/O", async () => {
  // deno-lint-ignore no-explicit-any
  const c = (o: any) => connect(o);
  await assert.rejects(c(null), TypeError);
  await assert.rejects(c({ port: 443 }), TypeError);
  await assert.rejects(c({ hostname: "", port: 443 }), TypeError);
  await assert.rejects(c({ hostname: "localhost", port: 0 }), RangeError);
  await assert.rejects(c({ hostname: "localhost", port: 70000 }), RangeError);
  await assert.rejects(c({ hostname: "localhost", port: 1.5 }), RangeError);
  await assert.rejects(c({ hostname: "localhost", port: 443, handshakeTimeout: -1 }), RangeError);
  await assert.rejects(c({ hostname: "localhost", port: 443, minVersion: "SSLv3" }), RangeError);
  await assert.rejects(c({ hostname: "localhost", port: 443, signal: "stop" }), TypeError);
  await assert.rejects(c({ hostname: "localhost", port: 443, alpnProtocols: "h2" }), TypeError);
  await assert.rejects(c({ hostname: "localhost", port: 443, caCerts: ["junk"] }), TlsError);
  // Server options are refused, not silently ignored.
  await assert.rejects(c({ hostname: "localhost", port: 443, ocspStaple: new Uint8Array(1) }), {
    name: "TypeError",
    message: /server option/,
  });
  await assert.rejects(c({ hostname: "localhost", port: 443, requestClientCert: "require" }), {
    name: "TypeError",
    message: /server option/,
  });
  const { startTls } = await import("../mod.ts");
  // deno-lint-ignore no-explicit-any
  await assert.rejects(startTls({} as any, { hostname: "x" }), TypeError);
  finish();
});

test("startTls: abort after the handshake rejects a pending read with ABORTED, not EOF", async () => {
  const { Duplex } = await import("node:stream");
  const net = (await import("node:net")).default;
  const { startTls } = await import("../mod.ts");
  const server = await startOpensslServer({
    cert: pki.server.certPath,
    key: pki.server.keyPath,
    chain: pki.intermediateCa.certPath,
  });
  const socket = net.connect({ host: "127.0.0.1", port: server.port });
  try {
    await new Promise((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    const controller = new AbortController();
    const conn = await startTls(Duplex.toWeb(socket), {
      hostname: "localhost",
      caCerts: ca,
      signal: controller.signal,
    });
    // Cancelling a Web stream reader reads as end of stream: it must still surface as ABORTED.
    const pending = conn.read(new Uint8Array(100));
    setTimeout(() => controller.abort(), 50);
    await assert.rejects(pending, isTlsError("ABORTED"));
    conn.close();
  } finally {
    socket.destroy();
    await server.stop();
  }
  finish();
});
