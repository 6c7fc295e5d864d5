/**
 * Checks the `openssl s_server` peer (`openssl_peer.ts`) with independent clients
 * (`probes.ts`).
 *
 * @module
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "../harness.ts";
import { patternBytes } from "./node_peer.ts";
import { startOpensslServer } from "./openssl_peer.ts";
import {
  assertStopped,
  clientCertArgs,
  collect,
  pki,
  receive,
  runOpenssl,
  sClient,
  secureConnected,
  serverFiles,
  tempDir,
  text,
  tlsClient,
} from "./probes.ts";

test("peers: s_server serves the PKI chain and s_client verifies it (no probe noise)", async () => {
  const server = await startOpensslServer(serverFiles);
  try {
    // Readiness is read from /proc: no probe connection shows up as an error.
    assert.doesNotMatch(server.output(), /ERROR/);
    assert.match(server.stdout(), /^ACCEPT$/m); // line-buffered, and waited for by the start
    const client = await runOpenssl(sClient(server.port));
    assert.match(client.output, /Verification: OK/);
    assert.match(client.output, /Protocol version: TLSv1\.3/);
    const [, cipher] = await server.waitFor(/CIPHER is (\S+)/);
    assert.match(cipher ?? "", /^TLS_/);
    // A second, sequential connection works (no -naccept).
    const again = await runOpenssl(sClient(server.port, "-tls1_2"));
    assert.match(again.output, /Protocol version: TLSv1\.2/);
    assert.match(again.output, /Verification: OK/);
  } finally {
    await assertStopped(server);
  }
});

test("peers: s_server verify=require rejects a client without a certificate", async () => {
  const server = await startOpensslServer({
    ...serverFiles,
    caFile: pki.rootCaPath,
    verify: "require",
  });
  try {
    // -ign_eof: keep reading after stdin's EOF, else s_client may quit before the alert arrives.
    const without = await runOpenssl(sClient(server.port, "-ign_eof"));
    assert.notEqual(without.status, 0);
    // TLS 1.3: the client finishes its handshake first and learns of the refusal on its first read.
    assert.match(without.output, /alert certificate required/);
    await server.waitFor(/peer did not return a certificate/);
    const mark = server.output().length;
    // The client leaf alone does not verify at the server (the intermediate is missing)...
    const leafOnly = await runOpenssl(
      sClient(server.port, "-cert", pki.client.certPath, "-key", pki.client.keyPath, "-ign_eof"),
    );
    assert.notEqual(leafOnly.status, 0);
    // Until that connection is over: s_server prints the failure again (ERROR, verify error)
    // when it ends it, which must not land after mark2.
    await server.waitFor(
      /unable to get local issuer certificate[\s\S]*CONNECTION CLOSED/,
      5_000,
      mark,
    );
    const mark2 = server.output().length;
    // ...with the chain it does.
    const withChain = await runOpenssl(sClient(server.port, ...clientCertArgs));
    assert.equal(withChain.status, 0, withChain.output);
    assert.match(withChain.output, /Verification: OK/);
    await server.waitFor(/CIPHER is/, 5_000, mark2);
    assert.doesNotMatch(server.output().slice(mark2), /ERROR/);
  } finally {
    await assertStopped(server);
  }
});

test("peers: s_server send() reaches the client; K sends a KeyUpdate; client bytes reach stdout", async () => {
  const server = await startOpensslServer({
    ...serverFiles,
    tls: "1.3",
  });
  const socket = tlsClient(server.port);
  try {
    await secureConnected(socket);
    await server.waitFor(/CIPHER is/);
    server.send("hello from s_server\n");
    await receive(socket, "hello from s_server\n");
    const mark = server.output().length;
    server.send("K\n");
    const [update] = await server.waitFor(/SSL_do_handshake -> 1/, 5_000, mark);
    assert.ok(update);
    server.send("after update\n");
    await receive(socket, "after update\n");
    socket.write("from the client\n");
    await server.waitFor(/from the client/);
  } finally {
    socket.destroy();
    await assertStopped(server);
  }
});

test("peers: s_server -rev reverses each line", async () => {
  const server = await startOpensslServer({
    ...serverFiles,
    rev: true,
  });
  const socket = tlsClient(server.port);
  try {
    await secureConnected(socket);
    socket.write("hello\n");
    await receive(socket, "olleh");
  } finally {
    socket.destroy();
    await assertStopped(server);
  }
});

test("peers: s_server -www status page and -WWW byte-exact file", async () => {
  const dir = tempDir();
  const size = 3 * 1024 * 1024 + 17;
  const expected = patternBytes(size);
  writeFileSync(join(dir, "bulk.bin"), expected);
  const www = await startOpensslServer({
    ...serverFiles,
    www: true,
  });
  const files = await startOpensslServer({
    ...serverFiles,
    wwwRoot: dir,
  });
  try {
    const a = tlsClient(www.port);
    const aDone = collect(a);
    await secureConnected(a);
    a.write("GET / HTTP/1.0\r\n\r\n");
    const page = await aDone;
    assert.equal(page.error, null);
    assert.match(text(page.data), /^HTTP\/1\.0 200 ok\r\n/);
    assert.match(text(page.data), /Ciphers supported in s_server binary/);

    const b = tlsClient(files.port);
    const bDone = collect(b);
    await secureConnected(b);
    b.write("GET /bulk.bin HTTP/1.0\r\n\r\n");
    const got = await bDone;
    assert.equal(got.error, null);
    assert.equal(got.ended, true);
    const all = got.data;
    const headEnd = text(all.subarray(0, 200)).indexOf("\r\n\r\n");
    assert.ok(headEnd > 0);
    assert.match(text(all.subarray(0, headEnd)), /^HTTP\/1\.0 200 ok\r\nContent-type: text\/plain/);
    const body = all.subarray(headEnd + 4);
    assert.equal(body.length, size);
    assert.ok(Buffer.from(body).equals(Buffer.from(expected)));
  } finally {
    await assertStopped(www);
    await assertStopped(files);
    rmSync(dir, { recursive: true, force: true });
  }
});
