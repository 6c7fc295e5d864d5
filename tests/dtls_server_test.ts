/**
 * DTLS servers (`listenDtls`) against real clients over UDP: `openssl s_client -dtls1_2` with
 * certificates and with PSK, `gnutls-cli --udp`, and our own clients (several at once on one
 * server socket, data both ways). The stateless cookie exchange: a ClientHello without a valid
 * cookie (replayed from other addresses, as a spoofer would) gets a HelloVerifyRequest and
 * allocates no native object; garbage is dropped. And loss: a seeded proxy that drops,
 * duplicates and reorders datagrams; handshakes still complete through retransmission, nothing
 * hangs, duplicates never reach the application (DTLS replay protection).
 */
import assert from "node:assert/strict";
import dgram from "node:dgram";
import {
  connectDtls,
  type DtlsConnection,
  type DtlsListener,
  type DtlsListenOptions,
  listenDtls,
  liveNativeObjects,
  TlsError,
} from "../mod.ts";
import { test } from "./harness.ts";
import { startDtlsClient, startLossyProxy } from "./support/dtls_peers.ts";
import { clearCacheAndAssertNoLeaks as finish } from "./support/leaks.ts";
import { sharedTestPki } from "./support/pki.ts";

const pki = sharedTestPki();
const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array | null) => (b === null ? null : new TextDecoder().decode(b));
const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const KEY = Uint8Array.from({ length: 32 }, (_, i) => 50 + i);
const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Serves every connection of `server`: each datagram comes back as "echo:" + datagram. */
function echo(server: DtlsListener): { served: DtlsConnection[]; done: Promise<void> } {
  const served: DtlsConnection[] = [];
  const done = (async () => {
    for await (const conn of server) {
      served.push(conn);
      (async () => {
        for (let d = await conn.receive(); d !== null; d = await conn.receive()) {
          conn.send(text(`echo:${str(d)}`));
        }
        conn.close();
      })().catch(() => conn.close());
    }
  })();
  return { served, done };
}

function serverOptions(extra: Partial<DtlsListenOptions> = {}): DtlsListenOptions {
  return {
    hostname: "127.0.0.1",
    port: 0,
    cert: pki.serverChainPem,
    key: pki.server.key,
    ...extra,
  };
}

test("listenDtls: openssl s_client -dtls1_2 verifies the chain; data both ways", async () => {
  try {
    const errors: TlsError[] = [];
    await using server = await listenDtls(serverOptions({ onError: (e) => errors.push(e) }));
    const { served } = echo(server);
    await using client = startDtlsClient("openssl", server.addr.port, [
      "-CAfile",
      pki.rootCaPath,
      "-servername",
      "localhost",
      "-verify_return_error",
    ]);
    await client.waitFor(/Verify return code: 0 \(ok\)/);
    client.send("ping from s_client\n");
    await client.waitFor(/echo:ping from s_client/);
    assert.equal(served.length, 1);
    assert.equal(served[0]!.protocol, "DTLSv1.2");
    assert.equal(served[0]!.servername, "localhost");
    assert.deepEqual(errors, []);
  } finally {
    finish();
  }
});

test("listenDtls with PSK: s_client -dtls1_2 -psk; the identity and hint", async () => {
  try {
    const seen: string[] = [];
    await using server = await listenDtls({
      hostname: "127.0.0.1",
      psk: (identity) => {
        seen.push(String(identity));
        return identity === "device-7" ? KEY : null;
      },
      pskIdentityHint: "coap-hint",
    });
    const { served } = echo(server);
    await using client = startDtlsClient("openssl", server.addr.port, [
      "-psk",
      hex(KEY),
      "-psk_identity",
      "device-7",
    ]);
    await client.waitFor(/Cipher is \S*PSK/);
    assert.match(client.output(), /identity hint: coap-hint/i);
    client.send("psk ping\n");
    await client.waitFor(/echo:psk ping/);
    assert.equal(served[0]!.pskIdentity, "device-7");
    assert.equal(served[0]!.peerCertificate, null);
    assert.deepEqual(seen, ["device-7"]);
  } finally {
    finish();
  }
});

test("listenDtls: gnutls-cli --udp against our server", async () => {
  try {
    await using server = await listenDtls(serverOptions());
    echo(server);
    await using client = startDtlsClient("gnutls", server.addr.port, [
      "--x509cafile",
      pki.rootCaPath,
    ]);
    await client.waitFor(/Handshake was completed/);
    client.send("from gnutls\n");
    await client.waitFor(/echo:from gnutls/);
  } finally {
    finish();
  }
});

test("listenDtls: five of our clients at once on one socket, data both ways; nothing leaks", async () => {
  try {
    await using server = await listenDtls(serverOptions());
    const { served } = echo(server);
    const clients = await Promise.all(
      [0, 1, 2, 3, 4].map(() =>
        connectDtls({
          hostname: "127.0.0.1",
          port: server.addr.port,
          servername: "localhost",
          caCerts: [pki.rootCa.cert],
        })
      ),
    );
    assert.equal(server.connectionCount, 5);
    for (const [i, c] of clients.entries()) c.send(text(`n${i}`));
    for (const [i, c] of clients.entries()) assert.equal(str(await c.receive()), `echo:n${i}`);
    // Each client's own address maps to its own session.
    assert.equal(new Set(served.map((c) => c.remoteAddr.port)).size, 5);
    for (const c of clients) c.close();
    // The clients' close_notify ends the server sessions (receive() gives null, they close).
    for (let i = 0; i < 50 && server.connectionCount > 0; i++) await delay(20);
    assert.equal(server.connectionCount, 0);
  } finally {
    finish();
  }
});

/** The first datagram our client sends (its ClientHello, no cookie), caught by a mute socket. */
async function captureClientHello(): Promise<Uint8Array> {
  const sniffer = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => sniffer.bind(0, "127.0.0.1", resolve));
  const first = new Promise<Uint8Array>((resolve) =>
    sniffer.once("message", (m: Uint8Array) => resolve(new Uint8Array(m)))
  );
  const attempt = connectDtls({
    hostname: "127.0.0.1",
    port: sniffer.address().port,
    servername: "localhost",
    caCerts: [pki.rootCa.cert],
    handshakeTimeout: 300,
  }).catch((e) => e);
  const hello = await first;
  await attempt;
  sniffer.close();
  return hello;
}

test("listenDtls: ClientHellos without a valid cookie (20 sources, then a burst of 2,000) get a HelloVerifyRequest and allocate nothing", async () => {
  try {
    const hello = await captureClientHello();
    assert.equal(hello[0], 22); // handshake record
    assert.equal(hello[13], 1); // ClientHello
    await using server = await listenDtls(serverOptions());
    const before = liveNativeObjects();
    // 20 "spoofed" sources: each a different address (port), as a flood with forged sources is.
    const replies: Uint8Array[] = [];
    const sockets: dgram.Socket[] = [];
    for (let i = 0; i < 20; i++) {
      const s = dgram.createSocket("udp4");
      await new Promise<void>((resolve) => s.bind(0, "127.0.0.1", resolve));
      s.on("message", (m: Uint8Array) => replies.push(new Uint8Array(m)));
      sockets.push(s);
      s.send(hello, server.addr.port, "127.0.0.1");
      s.send(crypto.getRandomValues(new Uint8Array(100)), server.addr.port, "127.0.0.1");
    }
    for (let i = 0; i < 100 && replies.length < 20; i++) await delay(10);
    await delay(50);
    for (const s of sockets) s.close();
    assert.equal(replies.length, 20, "one HelloVerifyRequest per ClientHello, nothing for garbage");
    for (const r of replies) {
      assert.equal(r[0], 22); // handshake record
      assert.equal(r[13], 3); // hello_verify_request
    }
    assert.equal(server.connectionCount, 0);
    assert.deepEqual(liveNativeObjects().byKind, before.byKind);
    // Then a burst: 2,000 cookie-less ClientHellos (and 2,000 garbage datagrams) from 4 sockets,
    // as fast as they go. Some HelloVerifyRequests may be lost to full UDP buffers; no state is.
    const burst: dgram.Socket[] = [];
    let burstReplies = 0;
    for (let i = 0; i < 4; i++) {
      const s = dgram.createSocket("udp4");
      await new Promise<void>((resolve) => s.bind(0, "127.0.0.1", resolve));
      s.on("message", () => burstReplies++);
      burst.push(s);
    }
    const junk = crypto.getRandomValues(new Uint8Array(100));
    for (let i = 0; i < 500; i++) {
      for (const s of burst) {
        s.send(hello, server.addr.port, "127.0.0.1");
        s.send(junk, server.addr.port, "127.0.0.1");
      }
      if (i % 50 === 49) await delay(1); // let the sockets drain now and then
    }
    for (let i = 0; i < 100 && burstReplies < 2_000; i++) await delay(10);
    for (const s of burst) s.close();
    assert.ok(burstReplies > 0, "the listener answered the burst");
    assert.equal(server.connectionCount, 0);
    assert.deepEqual(liveNativeObjects().byKind, before.byKind, "the burst allocated nothing");
    // The listener still serves a real client afterwards.
    echo(server);
    await using conn = await connectDtls({
      hostname: "127.0.0.1",
      port: server.addr.port,
      servername: "localhost",
      caCerts: [pki.rootCa.cert],
    });
    conn.send(text("after the flood"));
    assert.equal(str(await conn.receive()), "echo:after the flood");
  } finally {
    finish();
  }
});

test(
  "listenDtls: maxConnections bounds the sessions; the extra client gets in once one closes",
  async () => {
    try {
      await using server = await listenDtls(serverOptions({ maxConnections: 1 }));
      echo(server);
      const opts = {
        hostname: "127.0.0.1",
        port: server.addr.port,
        servername: "localhost",
        caCerts: [pki.rootCa.cert],
      };
      const first = await connectDtls(opts);
      const second = connectDtls({ ...opts, handshakeTimeout: 8_000 });
      await delay(300);
      assert.equal(server.connectionCount, 1);
      assert.ok(server.droppedCount >= 1);
      first.close(); // frees the slot; the second client's retransmitted ClientHello gets in
      const conn = await second;
      conn.send(text("second"));
      assert.equal(str(await conn.receive()), "echo:second");
      conn.close();
    } finally {
      finish();
    }
  },
  { timeout: 30_000 },
);

test(
  "loss: 15% dropped, 10% duplicated, 10% reordered; handshakes complete, nothing hangs",
  async () => {
    try {
      await using server = await listenDtls(serverOptions());
      echo(server);
      for (const seed of [1, 2, 3]) {
        await using proxy = await startLossyProxy({
          target: server.addr.port,
          seed,
          drop: 0.15,
          duplicate: 0.1,
          reorder: 0.1,
        });
        await using conn = await connectDtls({
          hostname: "127.0.0.1",
          port: proxy.port,
          servername: "localhost",
          caCerts: [pki.rootCa.cert],
          mtu: 400, // fragmented handshake messages: more datagrams to lose
          handshakeTimeout: 25_000,
        });
        // Data: each datagram is retried until its echo comes back (UDP may lose either way).
        let next = conn.receive(); // one receive at a time: a pending one takes the next datagram
        for (let i = 0; i < 3; i++) {
          let answered = false;
          for (let attempt = 0; attempt < 20 && !answered; attempt++) {
            conn.send(text(`m${seed}.${i}`));
            const reply = await Promise.race([next, delay(250).then(() => undefined)]);
            if (reply === undefined) continue;
            next = conn.receive();
            assert.match(str(reply) ?? "", /^echo:m\d\.\d$/);
            answered = str(reply) === `echo:m${seed}.${i}`;
          }
          assert.ok(answered, `no echo for m${seed}.${i}`);
        }
        next.catch(() => {}); // rejects with CLOSED below
        assert.ok(proxy.stats.dropped > 0, JSON.stringify(proxy.stats));
      }
    } finally {
      finish();
    }
  },
  { timeout: 90_000 },
);

test(
  "loss: duplicated datagrams reach the application once (replay protection), in order",
  async () => {
    try {
      await using server = await listenDtls(serverOptions());
      const accepted = server.accept();
      await using proxy = await startLossyProxy({
        target: server.addr.port,
        seed: 9,
        drop: 0,
        duplicate: 0.5,
        reorder: 0,
      });
      await using conn = await connectDtls({
        hostname: "127.0.0.1",
        port: proxy.port,
        servername: "localhost",
        caCerts: [pki.rootCa.cert],
      });
      const peer = await accepted;
      for (let i = 0; i < 20; i++) conn.send(text(`d${i}`));
      const got: string[] = [];
      for (let i = 0; i < 20; i++) got.push(str(await peer.receive())!);
      assert.deepEqual(got, Array.from({ length: 20 }, (_, i) => `d${i}`));
      assert.ok(proxy.stats.duplicated >= 5, JSON.stringify(proxy.stats));
      // Nothing more arrives: every duplicate was dropped.
      const extra = await Promise.race([peer.receive(), delay(200).then(() => "none")]);
      assert.equal(extra, "none");
    } finally {
      finish();
    }
  },
  { timeout: 30_000 },
);

test("listenDtls: 200 concurrent clients on one server socket, each echoed", async () => {
  try {
    await using server = await listenDtls(serverOptions());
    echo(server);
    const clients = await Promise.all(
      Array.from({ length: 200 }, () =>
        connectDtls({
          hostname: "127.0.0.1",
          port: server.addr.port,
          servername: "localhost",
          caCerts: [pki.rootCa.cert],
          handshakeTimeout: 30_000,
        })),
    );
    assert.equal(server.connectionCount, 200);
    const replies = clients.map((c) => c.receive());
    clients.forEach((c, i) => c.send(text(`c${i}`)));
    const got = (await Promise.all(replies)).map(str);
    assert.deepEqual(got, clients.map((_, i) => `echo:c${i}`));
    await Promise.all(clients.map((c) => c.close()));
    for (let i = 0; i < 100 && server.connectionCount > 0; i++) await delay(20);
    assert.equal(server.connectionCount, 0);
  } finally {
    finish();
  }
}, { timeout: 60_000 });

test("listenDtls: an answer to a vanished client does not cost the next client a retransmission", async () => {
  try {
    const hello = await captureClientHello();
    await using server = await listenDtls(serverOptions());
    echo(server);
    for (let i = 0; i < 3; i++) {
      // A client that sends its ClientHello and is gone before the HelloVerifyRequest arrives:
      // the server's answer meets a closed port (ICMP port unreachable), which Bun reports as
      // the server socket's NEXT send failing with ECONNREFUSED.
      const gone = dgram.createSocket("udp4");
      await new Promise<void>((resolve) => gone.bind(0, "127.0.0.1", resolve));
      await new Promise<void>((resolve) =>
        gone.send(hello, server.addr.port, "127.0.0.1", () => gone.close(() => resolve()))
      );
      const started = Date.now(); // at once: Bun's error is found by the very next send
      await using conn = await connectDtls({
        hostname: "127.0.0.1",
        port: server.addr.port,
        servername: "localhost",
        caCerts: [pki.rootCa.cert],
      });
      // OpenSSL's first retransmission comes after 1 s: a lost datagram would show.
      assert.ok(Date.now() - started < 800, `handshake ${i} took ${Date.now() - started} ms`);
      conn.send(text(`next${i}`));
      assert.equal(str(await conn.receive()), `echo:next${i}`);
    }
  } finally {
    finish();
  }
});
