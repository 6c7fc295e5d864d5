/**
 * `idleTimeout` (issue #17): after the handshake, a connection without traffic in either
 * direction for that long closes itself with close_notify; traffic postpones it; the timer
 * never keeps a process alive. Servers (our listener) and clients (against `openssl s_server`).
 *
 * @module
 */

import assert from "node:assert/strict";
import { connect, listen, TlsError } from "../mod.ts";
import { test } from "./harness.ts";
import { clearCacheAndAssertNoLeaks } from "./support/leaks.ts";
import { localClientOptions, localServerOptions } from "./support/listener.ts";
import { startOpensslServer } from "./support/openssl_peer.ts";
import { sharedTestPki } from "./support/pki.ts";

const pki = sharedTestPki();
const enc = new TextEncoder();
const isTimeout = (e: unknown) => {
  assert.ok(e instanceof TlsError, String(e));
  assert.equal(e.code, "TIMEOUT", e.message);
  assert.match(e.message, /idleTimeout/);
  return true;
};

test("listener idleTimeout: a silent client after the handshake gets a clean end", async () => {
  const server = listen(localServerOptions({ idleTimeout: 300 }));
  try {
    const serverSide = (async () => {
      const conn = await server.accept();
      const buf = new Uint8Array(16);
      const n = await conn.read(buf); // "hello"
      await conn.write(buf.subarray(0, n ?? 0));
      // Then nothing: the server's pending read ends with TIMEOUT.
      await assert.rejects(conn.read(buf), isTimeout);
      assert.equal(conn.closed, true);
    })();
    const client = await connect(localClientOptions(server.addr.port));
    await client.write(enc.encode("hello"));
    const buf = new Uint8Array(16);
    assert.equal(await client.read(buf), 5);
    // The server closed cleanly: close_notify, so a clean end of stream here, not a truncation.
    assert.equal(await client.read(buf), null);
    client.close(); // our close_notify and FIN end the server's lingering close at once
    await serverSide;
  } finally {
    server.close();
  }
  clearCacheAndAssertNoLeaks();
});

test("idleTimeout: traffic postpones it; setIdleTimeout(0) removes it", async () => {
  const server = listen(localServerOptions({ idleTimeout: 1_000 }));
  try {
    const echoed = (async () => {
      const conn = await server.accept();
      const buf = new Uint8Array(64);
      for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
        await conn.write(buf.subarray(0, n));
      }
      conn.close();
    })();
    const client = await connect(localClientOptions(server.addr.port));
    const buf = new Uint8Array(64);
    // 2.5 s of a ping every 100 ms: far longer than the limit, never idle for it.
    const until = Date.now() + 2_500;
    while (Date.now() < until) {
      await client.write(enc.encode("p"));
      assert.equal(await client.read(buf), 1);
      await new Promise((r) => setTimeout(r, 100));
    }
    client.close();
    await echoed;
  } finally {
    server.close();
  }
  clearCacheAndAssertNoLeaks();
});

test("client idleTimeout against openssl s_server: TIMEOUT, closed, nothing left", async () => {
  await using server = await startOpensslServer({
    cert: pki.server.certPath,
    key: pki.server.keyPath,
    chain: pki.intermediateCa.certPath,
  });
  const conn = await connect(localClientOptions(server.port, { idleTimeout: 300 }));
  await assert.rejects(conn.read(new Uint8Array(16)), isTimeout);
  assert.equal(conn.closed, true);
  await assert.rejects(conn.write(enc.encode("late")), isTimeout);
  clearCacheAndAssertNoLeaks();
});

test("setIdleTimeout and idleTimeout: bad values are RangeErrors; 0 and Infinity mean none", async () => {
  for (const bad of [-1, Number.NaN, "1000"]) {
    assert.throws(() => listen(localServerOptions({ idleTimeout: bad as number })), RangeError);
    await assert.rejects(
      connect(localClientOptions(1, { idleTimeout: bad as number })),
      RangeError,
    );
  }
  const server = listen(localServerOptions({ idleTimeout: Infinity }));
  try {
    const accepted = server.accept();
    const client = await connect(localClientOptions(server.addr.port, { idleTimeout: 0 }));
    const conn = await accepted;
    assert.throws(() => client.setIdleTimeout(-5), RangeError);
    client.setIdleTimeout(200);
    client.setIdleTimeout(0); // removed again: the read below must not time out
    const read = client.read(new Uint8Array(8));
    await new Promise((r) => setTimeout(r, 500));
    await conn.write(enc.encode("still"));
    assert.equal(await read, 5);
    client.close();
    conn.close();
    assert.throws(() => client.setIdleTimeout(100), (e) => e instanceof TlsError);
  } finally {
    server.close();
  }
  clearCacheAndAssertNoLeaks();
});
