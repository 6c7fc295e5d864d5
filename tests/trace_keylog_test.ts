/**
 * Handshake tracing (`onHandshakeEvent`, OpenSSL's info callback) and key logging (`onKeylog`,
 * `SSLKEYLOGFILE`), in memory and against `openssl s_server -keylogfile`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { clearContextCache, connect, type HandshakeEvent, TlsError } from "../mod.ts";
import { test } from "./harness.ts";
import { sharedTestPki } from "./support/pki.ts";
import { handshakePair, makePair, transfer } from "./support/memory_pair.ts";
import { startOpensslServer } from "./support/openssl_peer.ts";
import { assertNoLiveNativeObjects } from "./support/leaks.ts";
import { runScript } from "./support/subprocess.ts";

const pki = sharedTestPki();
const server = { cert: pki.server.chainPem, key: pki.server.key };

const TLS13_LABELS = [
  "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
  "CLIENT_TRAFFIC_SECRET_0",
  "EXPORTER_SECRET",
  "SERVER_HANDSHAKE_TRAFFIC_SECRET",
  "SERVER_TRAFFIC_SECRET_0",
];

const labels = (lines: string[]) => [...new Set(lines.map((l) => l.split(" ")[0]))].sort();

test("onKeylog: both sides log the same secrets, in NSS format (TLS 1.3 and 1.2)", async () => {
  for (const version of ["TLSv1.3", "TLSv1.2"] as const) {
    const c: string[] = [];
    const s: string[] = [];
    const p = makePair(
      { caCerts: [pki.rootCa.cert], maxVersion: version, onKeylog: (l) => c.push(l) },
      { ...server, onKeylog: (l) => s.push(l) },
    );
    try {
      await handshakePair(p.client, p.server);
      assert.deepEqual(labels(c), version === "TLSv1.3" ? TLS13_LABELS : ["CLIENT_RANDOM"]);
      assert.deepEqual([...c].sort(), [...s].sort(), "the two sides agree on every secret");
      // LABEL <64 hex client random> <hex secret>
      for (const line of c) assert.match(line, /^[A-Z_0-9]+ [0-9a-f]{64} [0-9a-f]{64,}$/);
    } finally {
      p.close();
    }
  }
  assertNoLiveNativeObjects();
});

test("onKeylog lines equal openssl s_server's -keylogfile for the same connection", async () => {
  const dir = mkdtempSync(join(tmpdir(), "libssl-ffi-keylog-"));
  const serverLog = join(dir, "server.keys");
  const peer = await startOpensslServer({
    cert: pki.server.certPath,
    key: pki.server.keyPath,
    chain: pki.intermediateCa.certPath,
    www: true,
    extraArgs: ["-keylogfile", serverLog],
  });
  try {
    const lines: string[] = [];
    const conn = await connect({
      hostname: "localhost",
      port: peer.port,
      caCerts: [pki.rootCa.cert],
      onKeylog: (l) => lines.push(l),
    });
    await conn.write(new TextEncoder().encode("GET / HTTP/1.0\r\n\r\n"));
    while ((await conn.read(new Uint8Array(65536))) !== null) { /* drain */ }
    conn.close();
    const fromServer = readFileSync(serverLog, "utf8").split("\n").filter((l) => /^[A-Z]/.test(l));
    assert.deepEqual([...lines].sort(), [...fromServer].sort());
  } finally {
    await peer.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  clearContextCache();
  assertNoLiveNativeObjects();
});

test("SSLKEYLOGFILE: lines appended (file created 0600), equal to the server's", async () => {
  const dir = mkdtempSync(join(tmpdir(), "libssl-ffi-keylog-"));
  const serverLog = join(dir, "server.keys");
  const ourLog = join(dir, "client.keys");
  const peer = await startOpensslServer({
    cert: pki.server.certPath,
    key: pki.server.keyPath,
    chain: pki.intermediateCa.certPath,
    extraArgs: ["-keylogfile", serverLog],
  });
  try {
    for (let i = 0; i < 2; i++) {
      const r = runScript("tests/fixtures/connect_system_store.ts", [
        "localhost",
        String(peer.port),
      ], {
        env: { SSL_CERT_FILE: pki.rootCaPath, SSLKEYLOGFILE: ourLog },
      });
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout.trim().split("\n").pop()!), {
        ok: true,
        protocol: "TLSv1.3",
      });
    }
    const ours = readFileSync(ourLog, "utf8").trim().split("\n");
    assert.equal(ours.length, 10, "two connections, five secrets each, appended");
    const theirs = readFileSync(serverLog, "utf8").split("\n").filter((l) => /^[A-Z]/.test(l));
    assert.deepEqual([...ours].sort(), [...theirs].sort());
    assert.equal(statSync(ourLog).mode & 0o777, 0o600);
  } finally {
    await peer.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}, { timeout: 60_000 });

test("onHandshakeEvent: start, OpenSSL's states in order, done", async () => {
  const c: HandshakeEvent[] = [];
  const s: HandshakeEvent[] = [];
  const p = makePair(
    { caCerts: [pki.rootCa.cert], onHandshakeEvent: (e) => c.push(e) },
    { ...server, onHandshakeEvent: (e) => s.push(e) },
  );
  try {
    await handshakePair(p.client, p.server);
    assert.equal(c[0]?.type, "start");
    assert.equal(c.findLast((e) => e.type !== "exit")?.type, "done");
    const states = c.filter((e) => e.type === "loop").map((e) => e.stateLong);
    const at = (name: string) => states.indexOf(name);
    assert.ok(at("SSLv3/TLS write client hello") >= 0, states.join(" | "));
    assert.ok(at("SSLv3/TLS read server hello") > at("SSLv3/TLS write client hello"));
    assert.ok(at("SSLv3/TLS write finished") > at("SSLv3/TLS read server hello"));
    assert.ok(s.some((e) => e.stateLong === "SSLv3/TLS read client hello"));
    assert.ok(c.every((e) => e.state.length > 0 && e.alert === undefined));
  } finally {
    p.close();
  }
  assertNoLiveNativeObjects();
});

test("onHandshakeEvent reports an alert we send and one we receive", async () => {
  const c: HandshakeEvent[] = [];
  const s: HandshakeEvent[] = [];
  const p = makePair(
    { caCerts: [pki.otherRootCa.cert], onHandshakeEvent: (e) => c.push(e) },
    { ...server, onHandshakeEvent: (e) => s.push(e) },
  );
  try {
    await assert.rejects(handshakePair(p.client, p.server), (e) => e instanceof TlsError);
    transfer(p.client, p.server);
    assert.throws(() => p.server.handshake(), (e) => e instanceof TlsError);
    const sent = c.find((e) => e.type === "alert");
    assert.deepEqual(sent?.alert, {
      level: "fatal",
      code: 48,
      description: "unknown CA",
      sent: true,
    });
    const received = s.find((e) => e.type === "alert");
    assert.deepEqual(received?.alert, {
      level: "fatal",
      code: 48,
      description: "unknown CA",
      sent: false,
    });
  } finally {
    p.close();
  }
  assertNoLiveNativeObjects();
});

test("a throwing onHandshakeEvent or onKeylog fails the handshake with the error as cause", async () => {
  for (const key of ["onHandshakeEvent", "onKeylog"] as const) {
    const error = new Error(`boom in ${key}`);
    const p = makePair({
      caCerts: [pki.rootCa.cert],
      [key]: () => {
        throw error;
      },
    }, server);
    try {
      await assert.rejects(handshakePair(p.client, p.server), (e: unknown) => {
        assert.ok(e instanceof TlsError && e.code === "CALLBACK_ERROR", String(e));
        assert.equal(e.cause, error);
        return true;
      });
    } finally {
      p.close();
    }
  }
  assertNoLiveNativeObjects();
});

test("onHandshakeEvent against s_server: the alert it sends us is reported as received", async () => {
  const peer = await startOpensslServer({
    cert: pki.server.certPath,
    key: pki.server.keyPath,
    chain: pki.intermediateCa.certPath,
    caFile: pki.rootCaPath,
    verify: "require",
  });
  try {
    const events: HandshakeEvent[] = [];
    const conn = await connect({
      hostname: "localhost",
      port: peer.port,
      caCerts: [pki.rootCa.cert],
      onHandshakeEvent: (e) => events.push(e),
    });
    try {
      // TLS 1.3: we sent no certificate; s_server's refusal arrives on our first read.
      await assert.rejects(conn.read(new Uint8Array(10)), (e) => e instanceof TlsError);
    } finally {
      conn.close();
    }
    const types = events.map((e) => e.type);
    assert.equal(types[0], "start");
    assert.ok(types.indexOf("done") > 0);
    const alert = events.find((e) => e.type === "alert");
    assert.deepEqual(alert?.alert, {
      level: "fatal",
      code: 116,
      description: "certificate required",
      sent: false,
    });
    assert.ok(types.indexOf("alert") > types.indexOf("done"), "after the client's handshake");
  } finally {
    await peer.stop();
  }
  clearContextCache();
  assertNoLiveNativeObjects();
});
