/**
 * Small writes made in the same tick go out as one TLS record (counted by `openssl s_server
 * -trace`), larger ones on their own, and every byte arrives in the order it was written.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, listen } from "../mod.ts";
import { test } from "./harness.ts";
import { sharedTestPki } from "./support/pki.ts";
import { startOpensslServer } from "./support/openssl_peer.ts";
import { clearCacheAndAssertNoLeaks as finish } from "./support/leaks.ts";

const pki = sharedTestPki();
const enc = new TextEncoder();

/**
 * The application-data records s_server -trace reports having received ("Received Record" up to
 * OpenSSL 3.4, "Received TLS Record" from 3.5).
 */
function receivedDataRecords(trace: string): number {
  return trace.split(/(?=(?:Received|Sent) (?:TLS )?Record)/).filter((block) =>
    /^Received (?:TLS )?Record/.test(block) &&
    /Inner Content Type = ApplicationData \(23\)/.test(block)
  ).length;
}

test("writes of the same tick are one record; awaited writes are one record each", async () => {
  await using server = await startOpensslServer({
    cert: pki.server.certPath,
    key: pki.server.keyPath,
    chain: pki.intermediateCa.certPath,
    tls: "1.3",
    extraArgs: ["-trace"],
  });
  await using conn = await connect({
    hostname: "127.0.0.1",
    port: server.port,
    caCerts: [pki.rootCa.cert],
    servername: "localhost",
  });
  // An HTTP-like head and body, written without awaiting in between.
  const written = await Promise.all([
    conn.write(enc.encode("HEAD")),
    conn.write(enc.encode("-")),
    conn.write(enc.encode("BODY;")),
  ]);
  assert.deepEqual(written, [4, 1, 5], "each write resolves to its own length");
  await server.waitFor(/BODY;/);
  assert.equal(receivedDataRecords(server.stdout()), 1, "three writes, one record");
  // Awaited one after the other: nothing to coalesce.
  await conn.write(enc.encode("one;"));
  await server.waitFor(/one;/);
  await conn.write(enc.encode("two;"));
  await server.waitFor(/two;/);
  assert.equal(receivedDataRecords(server.stdout()), 3);
  conn.close();
  finish();
});

test("a large write between small ones keeps the order; a batch stops at 16 KiB", async () => {
  await using listener = listen({
    hostname: "127.0.0.1",
    port: 0,
    cert: pki.server.chainPem,
    key: pki.server.key,
  });
  const received = (async () => {
    const conn = await listener.accept();
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(65536);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
    }
    conn.close();
    return Buffer.concat(chunks);
  })();
  const client = await connect({
    hostname: "127.0.0.1",
    port: listener.addr.port,
    caCerts: [pki.rootCa.cert],
    servername: "localhost",
  });
  const big = new Uint8Array(20_000).fill(0x62); // "b": over the batch limit, sent on its own
  const mid = new Uint8Array(10_000).fill(0x6d); // "m": two of them do not fit one batch
  const parts = [enc.encode("first"), big, enc.encode("after-big"), mid, mid, enc.encode("end")];
  const results = await Promise.all(parts.map((p) => client.write(p)));
  assert.deepEqual(results, parts.map((p) => p.length));
  await client.closeWrite();
  const got = await received;
  assert.equal(Buffer.compare(got, Buffer.concat(parts)), 0, "every byte, in the order written");
  client.close();
  listener.close();
  finish();
});

test("a write after closeWrite() in the same tick fails; the ones before it arrive", async () => {
  await using listener = listen({
    hostname: "127.0.0.1",
    port: 0,
    cert: pki.server.chainPem,
    key: pki.server.key,
  });
  const received = (async () => {
    const conn = await listener.accept();
    const buf = new Uint8Array(1024);
    let text = "";
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    conn.close();
    return text;
  })();
  const client = await connect({
    hostname: "127.0.0.1",
    port: listener.addr.port,
    caCerts: [pki.rootCa.cert],
    servername: "localhost",
  });
  const before = client.write(enc.encode("before"));
  const closed = client.closeWrite();
  const after = client.write(enc.encode("after"));
  assert.equal(await before, 6);
  await closed;
  await assert.rejects(after, (e: unknown) => (e as { code?: string }).code === "CLOSED");
  assert.equal(await received, "before");
  client.close();
  listener.close();
  finish();
});
