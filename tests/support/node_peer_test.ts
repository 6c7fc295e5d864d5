/**
 * Checks the Node.js `tls` server peer (`node_peer.ts`, `tests/fixtures/node_tls_server.mjs`)
 * with independent clients (`probes.ts`).
 *
 * @module
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { test } from "../harness.ts";
import { patternBytes, startNodeTlsServer } from "./node_peer.ts";
import { assertStopped, collect, pki, secureConnected, text, tlsClient } from "./probes.ts";

test("peers: node tls server echoes, answers HTTP, and sends N pattern bytes", async () => {
  const echo = await startNodeTlsServer({
    cert: pki.serverChainPath,
    key: pki.server.keyPath,
    alpn: ["h2"],
  });
  const http = await startNodeTlsServer({
    cert: pki.serverChainPath,
    key: pki.server.keyPath,
    mode: "http",
    httpBody: "body!",
  });
  const send = await startNodeTlsServer({
    cert: pki.serverChainPath,
    key: pki.server.keyPath,
    mode: "send",
    sendBytes: 1_000_003,
  });
  try {
    const payload = patternBytes(200_000, 7);
    const a = tlsClient(echo.port, { ALPNProtocols: ["h2"] });
    const aDone = collect(a);
    await secureConnected(a);
    a.end(payload);
    const echoed = await aDone;
    assert.equal(echoed.error, null);
    assert.ok(Buffer.from(echoed.data).equals(Buffer.from(payload)));
    await echo.waitFor(/SECURE TLSv1\.3 \S+ alpn=h2 authorized=false peer=-/);

    const b = tlsClient(http.port);
    const bDone = collect(b);
    await secureConnected(b);
    b.write("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    const response = text((await bDone).data);
    assert.match(response, /^HTTP\/1\.1 200 OK\r\nContent-Length: 5\r\n/);
    assert.ok(response.endsWith("\r\n\r\nbody!"));

    const c = tlsClient(send.port);
    const cDone = collect(c);
    await secureConnected(c);
    const sent = await cDone;
    assert.equal(sent.error, null);
    assert.equal(sent.ended, true);
    assert.ok(Buffer.from(sent.data).equals(Buffer.from(patternBytes(1_000_003))));
  } finally {
    await assertStopped(echo);
    await assertStopped(http);
    await assertStopped(send);
  }
});

test("peers: node tls server 'destroy' drops connections without close_notify", async () => {
  const server = await startNodeTlsServer({ cert: pki.serverChainPath, key: pki.server.keyPath });
  try {
    const socket = tlsClient(server.port);
    const done = collect(socket);
    await secureConnected(socket);
    await server.waitFor(/SECURE/);
    server.send("destroy\n");
    const result = await done;
    assert.equal(result.data.length, 0);
    await server.waitFor(/CLOSE/);
  } finally {
    await assertStopped(server);
  }
});
