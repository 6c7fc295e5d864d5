/**
 * What a connection keeps once it is idle after bulk traffic: OpenSSL's write BIO (a memory BIO,
 * which never shrinks) is replaced by a fresh one a second after the last large write, so the
 * ~340 KiB it grew to for 256 KiB chunks go back to the heap. (What the reads kept is the same
 * in both readings: the difference is the write side's.)
 *
 * @module
 */
import assert from "node:assert/strict";
import { clearContextCache, connect, type Connection, nativeMemoryInUse } from "../mod.ts";
import { test } from "./harness.ts";
import { sharedTestPki } from "./support/pki.ts";
import { startNodeTlsServer } from "./support/node_peer.ts";
import { collectGarbage } from "./support/gc.ts";
import { assertNoLiveNativeObjects } from "./support/leaks.ts";

const pki = sharedTestPki();

test(
  "16 connections that each sent 1 MiB (echoed by node's tls) give their grown write buffers back when idle",
  async () => {
    const server = await startNodeTlsServer({
      cert: pki.serverChainPath,
      key: pki.server.keyPath,
      mode: "echo",
    });
    const options = { hostname: "localhost", port: server.port, caCerts: [pki.rootCa.cert] };
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
    } finally {
      await Promise.all(conns.map((conn) => conn.close()));
      await server.stop();
      clearContextCache(); // connect() cached the context: nothing may outlive this test
    }
    assertNoLiveNativeObjects();
  },
  { timeout: 60_000 },
);
