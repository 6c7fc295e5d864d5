/**
 * 2,000 DTLS handshakes between our client and our listener (one datagram echoed each; every
 * tenth client fails verification, half close with `await using`, half with `close()`): live
 * native objects, registered connections, UDP sockets and the native heap return to baseline.
 */
import assert from "node:assert/strict";
import { readdirSync, readlinkSync } from "node:fs";
import {
  clearContextCache,
  connectDtls,
  listenDtls,
  liveNativeObjects,
  nativeMemoryInUse,
  registeredConnections,
  TlsError,
} from "../mod.ts";
import { test } from "./harness.ts";
import { collectGarbage } from "./support/gc.ts";
import { sharedTestPki } from "./support/pki.ts";

const pki = sharedTestPki();

/** Open sockets of this process (UDP ones included), from /proc. */
function openSockets(): number {
  let sockets = 0;
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).startsWith("socket:")) sockets++;
    } catch {
      // closed while we looked
    }
  }
  return sockets;
}

async function settle(): Promise<void> {
  await collectGarbage();
  await new Promise((r) => setTimeout(r, 100)); // UDP sockets close asynchronously
}

/** A listener that echoes every datagram. */
async function echoServer() {
  const server = await listenDtls({
    hostname: "127.0.0.1",
    cert: pki.serverChainPem,
    key: pki.server.key,
  });
  (async () => {
    for await (const conn of server) {
      (async () => {
        for (let d = await conn.receive(); d !== null; d = await conn.receive()) conn.send(d);
        await conn.close();
      })().catch(() => conn.close());
    }
  })();
  return server;
}

/** One client: every tenth fails verification, half close with `await using`, half with close(). */
async function once(port: number, i: number): Promise<void> {
  const options = {
    hostname: "127.0.0.1",
    port,
    servername: "localhost",
    caCerts: [pki.rootCa.cert],
  };
  const payload = new TextEncoder().encode("ping");
  if (i % 10 === 9) {
    await assert.rejects(
      connectDtls({ ...options, servername: "wrong.example" }),
      (e) => e instanceof TlsError && e.verifyCode === 62,
    );
    return;
  }
  if (i % 2 === 0) {
    await using conn = await connectDtls(options);
    conn.send(payload);
    assert.equal((await conn.receive())?.length, 4);
  } else {
    const conn = await connectDtls(options);
    conn.send(payload);
    assert.equal((await conn.receive())?.length, 4);
    await conn.close();
  }
}

// Measured with each listener closed: a DTLS 1.2 server keeps every full handshake's session in
// its SSL_CTX's internal session cache (OpenSSL's default, up to 20,480 sessions, ~2 KB each),
// which is freed with the context, so a heap reading with the listener open grows by design.
test(
  "2,000 DTLS handshakes: live objects, sockets and native heap back to baseline",
  async () => {
    // Warm-up: caches and the runtimes' own UDP buffers level off after about a thousand
    // handshakes (measured on Deno: +1 MB over the first 100, then flat over 5 rounds of 1,000).
    const warmUp = 1_000;
    const first = await echoServer();
    try {
      for (let i = 0; i < warmUp; i++) await once(first.addr.port, i);
    } finally {
      await first.close();
    }
    await settle();
    const sockets = openSockets();
    const heap = nativeMemoryInUse()!;
    const live = liveNativeObjects().total;
    const readings = [heap];
    // In four rounds of 500, each with a fresh listener and a settle after it: on Deno the malloc
    // reading moves by up to ±3 MB between runs (node:dgram's buffers live on the Rust side), and
    // one long batch read 1.5 MB high once; in rounds it ends within the noise.
    const rounds = 4;
    for (let round = 0; round < rounds; round++) {
      const server = await echoServer();
      try {
        for (let i = 0; i < 2_000 / rounds; i++) await once(server.addr.port, i);
      } finally {
        await server.close();
      }
      await settle();
      readings.push(nativeMemoryInUse()!);
    }
    const heapAfter = nativeMemoryInUse()!;
    console.log(
      `2,000 DTLS handshakes: sockets ${sockets} -> ${openSockets()}, native heap ${heap} -> ${heapAfter}`,
    );
    assert.equal(liveNativeObjects().total, live, JSON.stringify(liveNativeObjects().byKind));
    assert.ok(openSockets() <= sockets, `sockets: ${sockets} before, ${openSockets()} after`);
    // A leak grows with every round; allocator and runtime buffers level off after the first
    // (on OpenSSL 4.0 under Bun: +1.7 MB in round 1, then flat or down). So the last three rounds
    // (1,500 handshakes) must not grow past the first round's reading by 1.5 MiB (a leak of ~1 KB
    // per handshake would: less than one DTLS `SSL` object, BIO pair or session), and the whole
    // run not by more than 2 MiB. Not 1 MiB: Node 26 on OpenSSL 4.0 once read +1.2 MB (12.28 ->
    // 13.49 MB) in CI, and a soak of the same pair (12 rounds of 500 after the warm-up) moved
    // between 12.7 and 13.7 MB with no trend: noise, not a leak.
    const growth = `after each round: ${readings.join(", ")}`;
    assert.ok(heapAfter - readings[1]! < 1.5 * 1024 * 1024, `native heap kept growing (${growth})`);
    assert.ok(
      heapAfter - heap < 2 * 1024 * 1024,
      `native heap grew by ${heapAfter - heap} (${growth})`,
    );
    clearContextCache();
    assert.equal(liveNativeObjects().total, 0);
    assert.equal(registeredConnections(), 0);
  },
  { timeout: 180_000 },
);
