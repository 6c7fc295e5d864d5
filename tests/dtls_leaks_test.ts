/**
 * DTLS handshakes between our client and our listener, in rounds of 500 after a warm-up (one
 * datagram echoed each; every tenth client fails verification, half close with `await using`,
 * half with `close()`): live native objects, registered connections and UDP sockets return to
 * baseline, and the native heap shows no trend across the rounds.
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
import { runtime, test } from "./harness.ts";
import { assertHeapLevelsOff } from "./support/leaks.ts";
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
  "DTLS handshakes in rounds of 500: live objects and sockets back to baseline, native heap without a trend",
  async () => {
    /** 500 handshakes against a fresh listener, closed after them. */
    const round = async () => {
      const server = await echoServer();
      try {
        for (let i = 0; i < 500; i++) await once(server.addr.port, i);
      } finally {
        await server.close();
      }
    };
    // Warm-up: caches and the runtimes' own UDP buffers level off after about a thousand
    // handshakes (measured on Deno: +1 MB over the first 100, then flat over 5 rounds of 1,000),
    // and the first round with a fresh listener once more (on OpenSSL 4.0 under Bun: +1.7 MB in
    // it, then flat or down).
    const first = await echoServer();
    try {
      for (let i = 0; i < 1_000; i++) await once(first.addr.port, i);
    } finally {
      await first.close();
    }
    await round();
    await settle();
    const sockets = openSockets();
    const live = liveNativeObjects().total;
    // The trend of the heap over at least 2,000 more handshakes on Bun, 4,000 on Node.js and
    // 6,000 on Deno, more when the noise hides it (see assertHeapLevelsOff). 500 bytes per
    // handshake: a leaked DTLS `SSL`, BIO pair, session or certificate is larger. Each round has a
    // fresh listener and a settle after it. The rounds per runtime follow the noise of its heap
    // figure: Bun's (mimalloc serves Bun, so glibc's heap is mostly OpenSSL's) moves by 1 KB over
    // 8,000 handshakes; Node.js's by ±1 MB between rounds; Deno's by ±2 MB over its node:dgram
    // (whose buffers live on the Rust side; now the fallback, LIBSSL_FFI_UDP=runtime), by a few KB
    // over the libc sockets it uses now. Checked by leaking 1 KB per handshake on purpose: every
    // runtime fails, Deno over node:dgram only from about 10 rounds on (over 6 its noise hid it
    // once): Deno keeps 12, for the fallback.
    const minRounds = { bun: 4, node: 8, deno: 12 }[runtime];
    const readings = await assertHeapLevelsOff({
      round,
      read: async () => {
        await settle();
        return nativeMemoryInUse()!;
      },
      operationsPerRound: 500,
      maxBytesPerOperation: 500,
      minRounds,
      maxRounds: minRounds + 8,
    });
    console.log(
      `DTLS handshakes: sockets ${sockets} -> ${openSockets()}, native heap after each round of ` +
        `500: ${readings.join(", ")}`,
    );
    assert.equal(liveNativeObjects().total, live, JSON.stringify(liveNativeObjects().byKind));
    assert.ok(openSockets() <= sockets, `sockets: ${sockets} before, ${openSockets()} after`);
    clearContextCache();
    assert.equal(liveNativeObjects().total, 0);
    assert.equal(registeredConnections(), 0);
  },
  { timeout: 300_000 },
);
