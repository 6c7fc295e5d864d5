/**
 * TLS 1.3 KeyUpdate: `conn.updateKeys({ requestPeer })` and the `"keyUpdate"` events of
 * `onHandshakeEvent`, against `openssl s_server` / `s_client` (stdin commands `K` / `k`),
 * `gnutls-serv` / `gnutls-cli` (`^rekey^` / `^rekey1^`) and between our own client and server,
 * with data flowing both ways afterwards; a RangeError on TLS 1.2.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  connect,
  type Connection,
  type HandshakeEvent,
  listen,
  type NetAddr,
  TlsError,
} from "../mod.ts";
import { test } from "./harness.ts";
import { sharedTestPki } from "./support/pki.ts";
import { startOpensslServer } from "./support/openssl_peer.ts";
import { startGnutlsServer } from "./support/gnutls_peer.ts";
import { spawnClient } from "./support/clients.ts";
import { localClientOptions, localServerOptions, until } from "./support/listener.ts";
import { handshakePair, makePair, readAll, transfer } from "./support/memory_pair.ts";
import { clearCacheAndAssertNoLeaks as finish } from "./support/leaks.ts";

const pki = sharedTestPki();
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The key update events of a recorded event list, as "sent"/"sent+request"/"received". */
function keyUpdates(events: readonly HandshakeEvent[]): string[] {
  return events.filter((e) => e.type === "keyUpdate").map((e) =>
    e.keyUpdate!.sent ? (e.keyUpdate!.requestPeer ? "sent+request" : "sent") : "received"
  );
}

/** Reads from `conn` until the text read so far matches `pattern`. */
async function readUntil(conn: Connection, pattern: RegExp): Promise<string> {
  const buf = new Uint8Array(4096);
  let text = "";
  while (!pattern.test(text)) {
    const n = await conn.read(buf);
    if (n === null) {
      throw new Error(`end of stream before ${pattern}; read ${JSON.stringify(text)}`);
    }
    text += decoder.decode(buf.subarray(0, n));
  }
  return text;
}

test("updateKeys and s_server's K / k: events on our client, data both ways after each", async () => {
  await using server = await startOpensslServer({
    cert: pki.server.certPath,
    key: pki.server.keyPath,
    chain: pki.intermediateCa.certPath,
    tls: "1.3",
  });
  const events: HandshakeEvent[] = [];
  await using conn = await connect({
    hostname: "localhost",
    port: server.port,
    caCerts: [pki.rootCa.cert],
    onHandshakeEvent: (e) => events.push(e),
  });
  await server.waitFor(/CIPHER is/);
  assert.deepEqual(keyUpdates(events), []);

  // K: the server updates and requests an update: we read its KeyUpdate and answer with ours
  // (OpenSSL 3.0 would wait for this side's next SSL_read or SSL_write; the engine sends it as
  // soon as the read needs more input).
  // One command per read of its stdin: wait until it ran before sending data.
  let mark = server.output().length;
  server.send("K\n");
  await server.waitFor(/SSL_do_handshake -> 1/, 5_000, mark);
  server.send("after-K\n");
  await readUntil(conn, /after-K/);
  // Answered by the read itself, before this side writes anything.
  assert.deepEqual(keyUpdates(events), ["received", "sent"]);
  let since = server.output().length;
  await conn.write(encoder.encode("ping-1\n"));
  await server.waitFor(/ping-1/, 5_000, since);
  assert.deepEqual(keyUpdates(events), ["received", "sent"]);
  const answered = events.find((e) => e.type === "keyUpdate" && e.keyUpdate?.sent === true)!;
  assert.equal(answered.state, "TWCKU");
  assert.match(answered.stateLong, /key update/);

  // k: an update without a request: nothing sent in answer.
  events.length = 0;
  mark = server.output().length;
  server.send("k\n");
  await server.waitFor(/SSL_do_handshake -> 1/, 5_000, mark);
  server.send("after-k\n");
  await readUntil(conn, /after-k/);
  since = server.output().length;
  await conn.write(encoder.encode("ping-k\n"));
  await server.waitFor(/ping-k/, 5_000, since);
  assert.deepEqual(keyUpdates(events), ["received"]);

  // Ours, asking the server to update too: its answer arrives with its next data.
  events.length = 0;
  await conn.updateKeys({ requestPeer: true });
  assert.deepEqual(keyUpdates(events), ["sent+request"]);
  since = server.output().length;
  await conn.write(encoder.encode("ping-2\n"));
  await server.waitFor(/ping-2/, 5_000, since);
  server.send("after-ours\n");
  await readUntil(conn, /after-ours/);
  assert.deepEqual(keyUpdates(events), ["sent+request", "received"]);

  // And one without a request.
  events.length = 0;
  await conn.updateKeys();
  since = server.output().length;
  await conn.write(encoder.encode("ping-3\n"));
  await server.waitFor(/ping-3/, 5_000, since);
  server.send("after-ours-2\n");
  await readUntil(conn, /after-ours-2/);
  assert.deepEqual(keyUpdates(events), ["sent"]);
  conn.close();
  finish();
});

/** Our echo server: echoes every connection's data until it closes. */
function echo(conn: Connection<NetAddr>): Promise<void> {
  return (async () => {
    const buf = new Uint8Array(4096);
    try {
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        await conn.write(buf.slice(0, n));
      }
    } catch {
      // The client went away.
    } finally {
      conn.close();
    }
  })();
}

test("s_client's K / k against our server: events on our server, data both ways after each", async () => {
  const events: HandshakeEvent[] = [];
  const server = listen(localServerOptions({ onHandshakeEvent: (e) => events.push(e) }));
  const accepted = server.accept();
  const client = spawnClient("openssl", [
    "s_client",
    "-connect",
    `127.0.0.1:${server.addr.port}`,
    "-servername",
    "localhost",
    "-CAfile",
    pki.rootCaPath,
    "-tls1_3",
  ], { endInput: false }); // (no -ign_eof: it turns the command letters off)
  try {
    const conn = await accepted;
    const echoing = echo(conn);
    await client.waitFor(/Verify return code: 0/);
    client.write("before\n");
    await client.waitFor(/before/); // the echo (s_client does not print what it sends)
    events.length = 0;
    // One command per read of its stdin: wait until it ran before sending data.
    client.write("K\n");
    await client.waitFor(/KEYUPDATE/);
    client.write("after-K\n");
    await client.waitFor(/after-K/);
    assert.deepEqual(keyUpdates(events), ["received", "sent"]);
    assert.equal(events.find((e) => e.keyUpdate?.sent === true)?.state, "TWSKU");
    events.length = 0;
    client.write("k\n");
    await client.waitFor(/KEYUPDATE[\s\S]*KEYUPDATE/);
    client.write("after-k\n");
    await client.waitFor(/after-k/);
    assert.deepEqual(keyUpdates(events), ["received"]);
    // Ours, from the server side, asking s_client to update too.
    events.length = 0;
    await conn.updateKeys({ requestPeer: true });
    client.write("after-ours\n");
    await client.waitFor(/after-ours/);
    assert.deepEqual(keyUpdates(events), ["sent+request", "received"]);
    client.end();
    await echoing;
  } finally {
    await client.stop();
    server.close();
  }
  finish();
});

test("GnuTLS: updateKeys against gnutls-serv, and gnutls-cli's ^rekey^ / ^rekey1^ against our server", async () => {
  {
    await using server = await startGnutlsServer({
      cert: pki.server.chainPath,
      key: pki.server.keyPath,
      tls: "1.3",
      echo: true,
    });
    const events: HandshakeEvent[] = [];
    await using conn = await connect({
      hostname: "localhost",
      port: server.port,
      caCerts: [pki.rootCa.cert],
      onHandshakeEvent: (e) => events.push(e),
    });
    for (const requestPeer of [true, false, true]) {
      events.length = 0;
      await conn.updateKeys({ requestPeer });
      const line = `ping-${requestPeer}-${Math.random()}\n`;
      await conn.write(encoder.encode(line));
      await readUntil(conn, new RegExp(line.trim().replace(/\./g, "\\.")));
      assert.deepEqual(
        keyUpdates(events),
        requestPeer ? ["sent+request", "received"] : ["sent"],
        `requestPeer ${requestPeer}`,
      );
    }
  }
  {
    const events: HandshakeEvent[] = [];
    await using server = listen(localServerOptions({ onHandshakeEvent: (e) => events.push(e) }));
    const accepted = server.accept();
    const client = spawnClient("gnutls-cli", [
      "127.0.0.1",
      "-p",
      String(server.addr.port),
      "--x509cafile",
      pki.rootCaPath,
      "--sni-hostname",
      "localhost",
      "--verify-hostname",
      "localhost",
      "--priority",
      "NORMAL:-VERS-ALL:+VERS-TLS1.3",
      "--inline-commands",
    ], { endInput: false });
    try {
      const conn = await accepted;
      const echoing = echo(conn);
      await client.waitFor(/Simple Client Mode/);
      client.write("before\n");
      await client.waitFor(/before/); // the echo (gnutls-cli does not print what it sends)
      // ^rekey^: GnuTLS updates its keys and asks us to update ours.
      events.length = 0;
      client.write("^rekey^\n");
      await client.waitFor(/Rekey was completed/);
      client.write("after-both\n");
      await client.waitFor(/after-both/);
      assert.deepEqual(keyUpdates(events), ["received", "sent"]);
      // ^rekey1^: only its own keys.
      events.length = 0;
      client.write("^rekey1^\n");
      await client.waitFor(/Rekey was completed[\s\S]*Rekey was completed/);
      client.write("after-one\n");
      await client.waitFor(/after-one/);
      assert.deepEqual(keyUpdates(events), ["received"]);
      client.end();
      await echoing;
    } finally {
      await client.stop();
    }
  }
  finish();
});

test("our client and our server: updateKeys with requestPeer, both sides see it, data flows", async () => {
  const serverEvents: HandshakeEvent[] = [];
  const clientEvents: HandshakeEvent[] = [];
  const server = listen(
    localServerOptions({ onHandshakeEvent: (e) => serverEvents.push(e) }),
  );
  const accepted = server.accept();
  const client = await connect(
    localClientOptions(server.addr.port, { onHandshakeEvent: (e) => clientEvents.push(e) }),
  );
  const conn = await accepted;
  const echoing = echo(conn);
  await client.write(encoder.encode("one\n"));
  await readUntil(client, /one/);
  clientEvents.length = 0;
  serverEvents.length = 0;
  await client.updateKeys({ requestPeer: true });
  await client.write(encoder.encode("two\n"));
  await readUntil(client, /two/);
  assert.deepEqual(keyUpdates(clientEvents), ["sent+request", "received"]);
  assert.deepEqual(keyUpdates(serverEvents), ["received", "sent"]);
  // From the server side, without a request, many times (the keys change each time).
  clientEvents.length = 0;
  for (let i = 0; i < 5; i++) await conn.updateKeys();
  await client.write(encoder.encode("three\n"));
  await readUntil(client, /three/);
  assert.deepEqual(keyUpdates(clientEvents), Array(5).fill("received"));
  await client[Symbol.asyncDispose]();
  await echoing;
  await assert.rejects(conn.updateKeys(), { name: "TlsError", code: "CLOSED" });
  server.close();
  finish();
});

test("updateKeys on TLS 1.2 is a RangeError; the sans-I/O engine updates keys too", async () => {
  {
    await using server = listen(localServerOptions({ maxVersion: "TLSv1.2" }));
    const accepted = server.accept();
    await using client = await connect(localClientOptions(server.addr.port));
    await using conn = await accepted;
    await conn.handshake();
    await assert.rejects(client.updateKeys({ requestPeer: true }), {
      name: "RangeError",
      message: /needs TLS 1\.3/,
    });
    await assert.rejects(client.updateKeys({ requestPeer: "yes" as never }), TypeError);
    // The connection is still fine.
    assert.equal(client.protocol, "TLSv1.2");
    await conn.write(encoder.encode("still\n"));
    await readUntil(client, /still/);
  }
  {
    const pair = makePair({ caCerts: [pki.rootCa.cert] }, {
      cert: pki.server.chainPem,
      key: pki.server.key,
    });
    try {
      const { client, server } = pair;
      assert.throws(() => client.updateKeys(), {
        name: "TypeError",
        message: /before the handshake/,
      });
      await handshakePair(client, server);
      client.updateKeys({ requestPeer: true });
      assert.ok(client.pendingOutgoing > 0, "the KeyUpdate is waiting to be sent");
      client.write(encoder.encode("hello"));
      transfer(client, server);
      assert.equal(decoder.decode(readAll(server)!), "hello");
      // The server's answer (its own KeyUpdate) is queued by that read, before it writes
      // anything (OpenSSL 3.0 alone would wait for its next write).
      const answer = server.outgoing();
      assert.ok(answer !== null && answer.length > 0, "the answer is waiting to be sent");
      client.receive(answer);
      assert.equal(client.read(new Uint8Array(16)), 0);
      server.write(encoder.encode("back"));
      transfer(server, client);
      assert.equal(decoder.decode(readAll(client)!), "back");
      client.closeWrite();
      assert.throws(() => client.updateKeys(), (e) => e instanceof TlsError && e.code === "CLOSED");
    } finally {
      pair.close();
    }
  }
  await until("nothing left", () => true);
  finish();
});
