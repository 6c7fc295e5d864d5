/**
 * Checks the in-process misbehaving servers and proxies (`raw_peers.ts`) with independent
 * clients (`probes.ts`).
 *
 * @module
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import net from "node:net";
import { test } from "../harness.ts";
import { patternBytes, startNodeTlsServer } from "./node_peer.ts";
import { startOpensslServer } from "./openssl_peer.ts";
import { canConnect } from "./peer_process.ts";
import {
  assertStopped,
  collect,
  type Collected,
  pki,
  runOpenssl,
  sClient,
  serverFiles,
  text,
  tlsClient,
} from "./probes.ts";
import { type RawBehaviour, startRawServer, startTcpProxy } from "./raw_peers.ts";

test("peers: raw servers misbehave as named", async () => {
  const clientHelloLike = new Uint8Array([0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x00, 0x00, 0x00]);
  const cases: Array<[RawBehaviour, (r: Collected) => void]> = [
    ["reset", (r) => assert.equal(r.error?.code, "ECONNRESET", String(r.error))],
    ["eof", (r) => {
      assert.equal(r.ended, true);
      assert.equal(r.data.length, 0);
    }],
    ["http", (r) => {
      assert.match(text(r.data), /^HTTP\/1\.1 400 Bad Request\r\n/);
      assert.equal(r.ended, true);
    }],
    ["garbage", (r) => {
      assert.equal(r.data.length, 1024);
      assert.equal(r.ended, true);
    }],
    ["hugeRecord", (r) => {
      assert.deepEqual([...r.data], [0x16, 0x03, 0x03, 0xff, 0xff]);
      assert.equal(r.ended, false); // still open when we gave up
    }],
    ["alertFirst", (r) => {
      assert.deepEqual([...r.data], [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]);
      assert.equal(r.ended, true);
    }],
    ["silent", (r) => {
      assert.equal(r.data.length, 0);
      assert.equal(r.ended, false);
      assert.equal(r.error, null);
    }],
    [{ write: new Uint8Array([1, 2, 3]), then: "reset" }, (r) => {
      assert.equal(r.error?.code, "ECONNRESET", String(r.error));
    }],
  ];
  for (const [behaviour, check] of cases) {
    const server = await startRawServer(behaviour);
    try {
      const socket = net.connect({ host: "127.0.0.1", port: server.port });
      const done = collect(socket, 300);
      socket.on("connect", () => socket.write(clientHelloLike));
      const result = await done;
      try {
        check(result);
      } catch (error) {
        throw new Error(`behaviour ${JSON.stringify(behaviour)}: ${String(error)}`, {
          cause: error,
        });
      }
      assert.equal(server.connections(), 1);
      if (behaviour !== "reset") assert.deepEqual(server.received(), clientHelloLike);
    } finally {
      await server.stop();
    }
    assert.equal(await canConnect(server.port), false);
  }
});

test("peers: drip proxy delivers one byte per read and a TLS handshake survives it", async () => {
  const payload = patternBytes(400);
  const raw = await startRawServer({ write: payload }, { respondOn: "connect" });
  const proxy = await startTcpProxy(raw.port, "drip");
  const slowProxy = await startTcpProxy(raw.port, "drip", { dripDelayMs: 1 });
  const server = await startOpensslServer(serverFiles);
  const tlsProxy = await startTcpProxy(server.port, "drip");
  try {
    // dripDelayMs 0 (setImmediate): one byte per write. A reader in another process sees one
    // byte per read; a reader in this process does on Bun, but Deno coalesces ~20-40 bytes per
    // read, so only "many reads" holds on both.
    const fast = await collect(net.connect({ host: "127.0.0.1", port: proxy.port }));
    assert.ok(Buffer.from(fast.data).equals(Buffer.from(payload)));
    assert.ok(fast.chunks >= 8, `${fast.chunks} reads`);
    // dripDelayMs 1: one byte per read here too (about 1-2 ms per byte).
    const slow = await collect(net.connect({ host: "127.0.0.1", port: slowProxy.port }));
    assert.ok(Buffer.from(slow.data).equals(Buffer.from(payload)));
    assert.ok(slow.chunks >= payload.length * 0.9, `${slow.chunks} reads`);

    const started = Date.now();
    const client = await runOpenssl(sClient(tlsProxy.port));
    assert.match(client.output, /Verification: OK/);
    const toClient = tlsProxy.bytes().toClient;
    assert.ok(toClient > 1000, `${toClient} bytes dripped`);
    console.log(`drip: TLS handshake of ${toClient} server bytes in ${Date.now() - started} ms`);
  } finally {
    await proxy.stop();
    await slowProxy.stop();
    await tlsProxy.stop();
    await raw.stop();
    await assertStopped(server);
  }
  assert.equal(await canConnect(proxy.port), false);
});

test("peers: flipBit proxy corrupts exactly one bit, and TLS notices", async () => {
  const payload = patternBytes(10_000);
  const raw = await startRawServer({ write: payload }, { respondOn: "connect" });
  const proxy = await startTcpProxy(raw.port, "flipBit", { flipAfter: 4096 });
  const node = await startNodeTlsServer({
    cert: pki.serverChainPath,
    key: pki.server.keyPath,
    mode: "send",
    sendBytes: 64 * 1024,
  });
  const tlsProxy = await startTcpProxy(node.port, "flipBit", { flipAfter: 8192 });
  try {
    const result = await collect(net.connect({ host: "127.0.0.1", port: proxy.port }));
    assert.equal(result.data.length, payload.length);
    const diffs: Array<[number, number]> = [];
    result.data.forEach((byte, i) => {
      const xor = byte ^ (payload[i] ?? 0);
      if (xor !== 0) diffs.push([i, xor]);
    });
    assert.deepEqual(diffs, [[4096, 0x01]]);
    assert.equal(proxy.flips(), 1);

    const socket = tlsClient(tlsProxy.port);
    const done = collect(socket);
    const tlsResult = await done;
    assert.equal(tlsProxy.flips(), 1);
    assert.ok(tlsResult.error !== null, "a corrupted record must fail");
    assert.ok(tlsResult.data.length < 64 * 1024);
    console.log(`flipBit: client error ${tlsResult.error.message}`);
  } finally {
    await proxy.stop();
    await tlsProxy.stop();
    await raw.stop();
    await assertStopped(node);
  }
});
