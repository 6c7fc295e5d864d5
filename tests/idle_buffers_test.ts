/**
 * What a connection keeps once it is idle after bulk traffic. OpenSSL's write BIO (a memory BIO,
 * which never shrinks) is replaced by a fresh one a second after the last large write, so the
 * ~340 KiB it grew to for 256 KiB chunks go back to the heap. And a read that waits for the peer
 * holds no receive buffer: on Deno the connection's read buffer, grown to 256 KiB by the bulk
 * receive, goes back to a small process-wide pool while it waits; Bun and node:net hand over
 * chunks, and the last one lent to OpenSSL is let go of once read; and OpenSSL's own record
 * buffer is freed.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  clearContextCache,
  connect,
  type Connection,
  nativeMemoryInUse,
  TlsContext,
  TlsEngine,
} from "../mod.ts";
import { test } from "./harness.ts";
import { sharedTestPki } from "./support/pki.ts";
import { startNodeTlsServer } from "./support/node_peer.ts";
import { collectGarbage } from "./support/gc.ts";
import { freeBuffersIsSafe } from "../src/core/capabilities.ts";
import { assertNoLiveNativeObjects } from "./support/leaks.ts";
import { handshakePair, readAll, transfer } from "./support/memory_pair.ts";

const pki = sharedTestPki();

/** Node's `tls` in echo mode, and the options that connect to it. */
async function echoPeer() {
  const server = await startNodeTlsServer({
    cert: pki.serverChainPath,
    key: pki.server.keyPath,
    mode: "echo",
  });
  return {
    server,
    options: { hostname: "localhost", port: server.port, caCerts: [pki.rootCa.cert] },
  };
}

test(
  "16 connections that each echoed 1 MiB through node's tls give their grown write buffers back when idle",
  async () => {
    const { server, options } = await echoPeer();
    const echoed = new Uint8Array(64 * 1024);
    /** Reads `n` bytes (the echo), checking them. */
    const readBack = async (conn: Connection, n: number) => {
      for (let got = 0; got < n;) {
        const r = await conn.read(echoed);
        assert.notEqual(r, null, `the echo ended after ${got} of ${n} bytes`);
        assert.ok(echoed.subarray(0, r!).every((b) => b === 0x61), "echoed bytes differ");
        got += r!;
      }
    };
    const payload = new Uint8Array(1 << 20).fill(0x61);
    const conns: Connection[] = [];
    try {
      const count = 16;
      for (let i = 0; i < count; i++) {
        const conn = await connect(options);
        conns.push(conn);
        const [written] = await Promise.all([conn.write(payload), readBack(conn, payload.length)]);
        assert.equal(written, payload.length);
      }
      await collectGarbage();
      const busy = nativeMemoryInUse()!;
      // The write BIOs are renewed 1 s after their last large output, by a timer that looks
      // once a second: 2.5 s covers both.
      await new Promise((r) => setTimeout(r, 2_500));
      await collectGarbage();
      const idle = nativeMemoryInUse()!;
      // Each write BIO had grown to about 340 KiB (256 KiB of plaintext per SSL_write, plus
      // record overhead, plus a third); without the renewal the heap does not move.
      const freed = busy - idle;
      assert.ok(
        freed > count * 200 * 1024,
        `native heap ${busy} -> ${idle}: ${Math.round(freed / count / 1024)} KiB freed per ` +
          "connection, expected over 200",
      );
      // The connections still work: a fresh write BIO takes the next write.
      for (const conn of conns) {
        assert.equal(await conn.write(payload.subarray(0, 1000)), 1000);
        await readBack(conn, 1000);
      }
      // What an idle connection held is what closing it frees: OpenSSL's state (~26 KiB), not
      // the grown write BIO (~340 KiB), nor a 256 KiB read buffer (Deno) or the last chunk lent
      // to OpenSSL (Bun, node:net).
      await Promise.all(conns.map((conn) => conn.close()));
      conns.length = 0;
      await collectGarbage();
      const perConnection = (idle - nativeMemoryInUse()!) / count;
      console.log(`an idle connection after a 1 MiB echo: ${Math.round(perConnection)} bytes`);
      assert.ok(
        perConnection < 80 * 1024,
        `an idle connection held ${Math.round(perConnection / 1024)} KiB, expected under 80`,
      );
    } finally {
      await Promise.all(conns.map((conn) => conn.close()));
      await server.stop();
      clearContextCache(); // connect() cached the context: nothing may outlive this test
    }
    assertNoLiveNativeObjects();
  },
  { timeout: 60_000 },
);

test(
  "64 idle connections to node's tls: a read() waiting for the peer holds no receive buffer, ours or OpenSSL's",
  async () => {
    const { server, options } = await echoPeer();
    const conns: Connection[] = [];
    const count = 64;
    try {
      for (let i = 0; i < count; i++) conns.push(await connect(options));
      await collectGarbage();
      const before = nativeMemoryInUse()!;
      // Each now waits in a read, as an idle connection of a server or client does.
      const waiting = conns.map((conn) => conn.read(new Uint8Array(16)).catch(() => null));
      // OpenSSL's record buffer of a read that waits is freed by the idle watch, which looks once
      // a second, at its second look after the read: 1-2 s.
      await new Promise((r) => setTimeout(r, 2_500));
      await collectGarbage();
      const perRead = (nativeMemoryInUse()! - before) / count;
      console.log(`a read waiting for the peer: ${Math.round(perRead)} bytes of native heap`);
      // The SSL_read that finds no input makes OpenSSL 3 allocate its record buffer (~17 KiB) and
      // keep it until a record arrives: the engine frees it (SSL_free_buffers) once the read has
      // waited a second or two, where that is safe. What is left is the session from the server's tickets (~4 KiB). A read that held a
      // 16 KiB receive buffer of ours (beyond the 8 pooled ones) would add 16 (measured on Deno
      // without readLazily: 32); OpenSSL's kept record buffer 17 (20 in all).
      const limit = freeBuffersIsSafe() ? 8 : 24;
      assert.ok(
        perRead < limit * 1024,
        `a waiting read holds ${Math.round(perRead / 1024)} KiB of native heap, expected under ` +
          `${limit}`,
      );
      // The reads still work: each gets its echo.
      await Promise.all(conns.map((conn) => conn.write(new TextEncoder().encode("ping"))));
      for (const read of waiting) assert.equal(await read, 4);
    } finally {
      await Promise.all(conns.map((conn) => conn.close()));
      await server.stop();
      clearContextCache();
    }
    assertNoLiveNativeObjects();
  },
  { timeout: 60_000 },
);

test(
  "after the handshake the memory BIOs keep none of its flights: a client that sent a 16 KiB certificate chain holds no more native heap than one that sent none",
  async () => {
    // The client's Certificate message goes through its write BIO, a memory BIO that never
    // shrinks: without the renewal after the handshake each connection keeps a buffer of at
    // least the flight's size. The chain is the client's, padded with copies of the
    // intermediate (OpenSSL sends them as configured; the server ignores what the path does not
    // need), and lives in the context: the only per-connection difference is the flight.
    const padding = 30;
    const bigChain = [pki.client.cert, ...Array(padding).fill(pki.intermediateCa.cert)].join("");
    const flight = new TextEncoder().encode(bigChain).length * 3 / 4; // DER is ~3/4 of PEM
    const serverContext = new TlsContext("server", {
      cert: pki.serverChainPem,
      key: pki.server.key,
      caCerts: [pki.rootCa.cert],
      requestClientCert: "optional",
    });
    const plain = new TlsContext("client", { caCerts: [pki.rootCa.cert] });
    const withChain = new TlsContext("client", {
      caCerts: [pki.rootCa.cert],
      cert: bigChain,
      key: pki.client.key,
    });
    const count = 20;
    const kept: TlsEngine[] = [];
    /** The native heap per client engine kept after a handshake (its server closed). */
    const perClient = async (context: TlsContext) => {
      await collectGarbage();
      const before = nativeMemoryInUse()!;
      for (let i = 0; i < count; i++) {
        const client = new TlsEngine(context, { servername: "localhost" });
        const server = new TlsEngine(serverContext);
        kept.push(client);
        try {
          await handshakePair(client, server);
        } finally {
          server.close();
        }
      }
      await collectGarbage();
      return (nativeMemoryInUse()! - before) / count;
    };
    try {
      // A first round of each warms up what is made once (the chain's verification, the
      // runtime's own allocations).
      await perClient(plain);
      await perClient(withChain);
      const a = await perClient(plain);
      const b = await perClient(withChain);
      console.log(
        `per client engine: ${Math.round(a)} bytes, ${Math.round(b)} with a ${
          Math.round(flight)
        }-byte certificate flight`,
      );
      assert.ok(
        b - a < flight / 2,
        `a client that sent a ${Math.round(flight)}-byte certificate chain keeps ${
          Math.round(b - a)
        } bytes more native heap than one that sent none: its write BIO kept the flight`,
      );
      // The renewed BIOs serve on: the server's tickets, still unread, and a record each way.
      const server = new TlsEngine(serverContext);
      const client = new TlsEngine(withChain, { servername: "localhost" });
      try {
        await handshakePair(client, server);
        assert.equal(client.write(new TextEncoder().encode("ping")), 4);
        transfer(client, server);
        assert.equal(new TextDecoder().decode(readAll(server)!), "ping");
        assert.equal(server.write(new TextEncoder().encode("pong")), 4);
        transfer(server, client);
        assert.equal(new TextDecoder().decode(readAll(client)!), "pong");
        assert.equal(client.peerCertificate?.subject.includes("localhost"), true);
      } finally {
        client.close();
        server.close();
      }
    } finally {
      for (const engine of kept) engine.close();
      plain.close();
      withChain.close();
      serverContext.close();
    }
    assertNoLiveNativeObjects();
  },
);
