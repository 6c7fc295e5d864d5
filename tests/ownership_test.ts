import assert from "node:assert/strict";
import {
  liveNativeObjects,
  nativeMemoryInUse,
  registeredConnections,
  TlsContext,
  TlsEngine,
  TlsError,
} from "../mod.ts";
import { test } from "./harness.ts";
import { sharedTestPki } from "./support/pki.ts";
import { handshakePair, readAll, transfer } from "./support/memory_pair.ts";
import { assertNoLiveNativeObjects } from "./support/leaks.ts";
import { canCollectGarbage, collectGarbage } from "./support/gc.ts";

const pki = sharedTestPki();
const message = new TextEncoder().encode("hello over TLS");

/** One full connection: handshake (or a verification failure), a message, close_notify. */
async function oneConnection(client: TlsContext, server: TlsContext, fail: boolean) {
  const c = new TlsEngine(client, { servername: fail ? "wrong.example" : "localhost" });
  const s = new TlsEngine(server);
  try {
    if (fail) {
      await assert.rejects(
        handshakePair(c, s),
        (e) => e instanceof TlsError && e.code === "CERT_VERIFY_FAILED" && e.verifyCode === 62,
      );
      return;
    }
    await handshakePair(c, s);
    c.write(message);
    c.closeWrite();
    transfer(c, s);
    assert.equal(readAll(s)?.length, message.length);
    assert.equal(s.read(new Uint8Array(1)), null);
  } finally {
    c.close();
    s.close();
  }
}

test(
  "10,000 in-memory handshakes: live native objects back to zero, native heap flat",
  async () => {
    assert.ok(canCollectGarbage(), "the test runner exposes GC");
    const client = new TlsContext("client", { caCerts: [pki.rootCa.cert] });
    const server = new TlsContext("server", { cert: pki.server.chainPem, key: pki.server.key });
    try {
      // Warm up: OpenSSL caches algorithm fetches and error strings on first use.
      for (let i = 0; i < 300; i++) await oneConnection(client, server, i % 10 === 9);
      const liveBefore = liveNativeObjects().total;
      // The heap is read after a full GC (JS ArrayBuffers live on the C heap too), once per round
      // of 2,000 connections.
      await collectGarbage();
      const heap: number[] = [nativeMemoryInUse()!];
      for (let round = 0; round < 5; round++) {
        for (let i = 0; i < 2_000; i++) {
          await oneConnection(client, server, i % 10 === 9); // one in ten fails verification
        }
        assert.equal(liveNativeObjects().total, liveBefore, "connection objects all freed");
        await collectGarbage();
        heap.push(nativeMemoryInUse()!);
      }
      assert.equal(registeredConnections(), 0);
      assert.ok(heap.every((h) => h !== null && h > 0), "mallinfo2 is callable on x86-64 glibc");
      const growth = heap[heap.length - 1]! - heap[0]!;
      console.log(
        `native heap after each 2,000 connections: ${heap.join(", ")} (growth ${growth})`,
      );
      // An SSL object is tens of KB: leaking even 100 bytes per connection shows as ~1 MB here.
      // (V8 itself drifts by ~100 KB per round on Deno, without a trend.)
      assert.ok(
        growth < 1024 * 1024,
        `native heap grew by ${growth} bytes over 10,000 connections`,
      );
    } finally {
      client.close();
      server.close();
    }
    assertNoLiveNativeObjects();
    assert.equal(liveNativeObjects().finalized, 0, "everything was closed explicitly");
  },
  { timeout: 180_000 },
);

test("a context closed while its connections live: they keep working, then all is freed", async () => {
  const client = new TlsContext("client", { caCerts: [pki.rootCa.cert] });
  const server = new TlsContext("server", { cert: pki.server.chainPem, key: pki.server.key });
  const c = new TlsEngine(client, { servername: "localhost" });
  const s = new TlsEngine(server);
  client.close();
  server.close();
  client.close(); // idempotent
  assert.throws(
    () => new TlsEngine(client, { servername: "localhost" }),
    (e) => e instanceof TlsError && e.code === "CLOSED",
  );
  await handshakePair(c, s);
  c.write(message);
  transfer(c, s);
  assert.equal(readAll(s)?.length, message.length);
  c.close();
  s.close();
  assertNoLiveNativeObjects();
});

test("the FinalizationRegistry backstop frees connections nobody closed", async () => {
  assert.ok(canCollectGarbage(), "the test runner exposes GC");
  const client = new TlsContext("client", { caCerts: [pki.rootCa.cert] });
  const server = new TlsContext("server", { cert: pki.server.chainPem, key: pki.server.key });
  const finalizedBefore = liveNativeObjects().finalized;
  await (async () => {
    for (let i = 0; i < 20; i++) {
      await handshakePair(
        new TlsEngine(client, { servername: "localhost" }),
        new TlsEngine(server),
      );
    }
  })();
  client.close();
  server.close();
  assert.equal(liveNativeObjects().byKind.SSL, 40, "dropped, not yet collected");
  for (let i = 0; i < 20 && liveNativeObjects().total > 0; i++) await collectGarbage();
  assertNoLiveNativeObjects();
  assert.equal(liveNativeObjects().finalized - finalizedBefore, 40);
});
