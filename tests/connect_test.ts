/**
 * `connect()` / `startTls()` / `Connection` against real peers on loopback: `openssl s_server`,
 * `gnutls-serv` and Node's `tls` (run by the real Node.js, in a child process).
 *
 * @module
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Duplex } from "node:stream";
import { connect, type Connection, startTls, TlsError } from "../mod.ts";
import { test } from "./harness.ts";
import { sharedTestPki } from "./support/pki.ts";
import { startOpensslServer } from "./support/openssl_peer.ts";
import { startGnutlsServer } from "./support/gnutls_peer.ts";
import { patternBytes, startNodeTlsServer } from "./support/node_peer.ts";
import { startTcpProxy } from "./support/raw_peers.ts";
import { clearCacheAndAssertNoLeaks as finish } from "./support/leaks.ts";
import { readToEnd } from "./support/read.ts";

const pki = sharedTestPki();
const ca = [pki.rootCa.cert];
const leafAndChain = { cert: pki.server.certPath, key: pki.server.keyPath };
const text = (s: string) => new TextEncoder().encode(s);

/** Reads until `pattern` appears in the decrypted text. */
async function readUntil(conn: Connection, pattern: RegExp): Promise<string> {
  let got = "";
  const buf = new Uint8Array(4096);
  while (!pattern.test(got)) {
    const n = await conn.read(buf);
    if (n === null) throw new Error(`EOF before ${pattern}; got ${JSON.stringify(got)}`);
    got += new TextDecoder().decode(buf.subarray(0, n));
  }
  return got;
}

for (const version of ["1.3", "1.2"] as const) {
  test(`TLS ${version} to openssl s_server through an intermediate: verified chain, data`, async () => {
    {
      await using server = await startOpensslServer({
        ...leafAndChain,
        chain: pki.intermediateCa.certPath,
        tls: version,
        www: true,
      });
      const conn = await connect({ hostname: "localhost", port: server.port, caCerts: ca });
      try {
        assert.equal(conn.protocol, `TLSv${version}`);
        assert.match(conn.cipher, version === "1.3" ? /^TLS_/ : /^ECDHE-ECDSA-/);
        assert.equal(conn.alpnProtocol, null);
        assert.equal(conn.sessionReused, false);
        assert.equal(conn.peerCertificate?.subject, "CN=localhost,O=libssl-ffi tests");
        assert.deepEqual(conn.peerCertificate?.subjectAltNames, [
          "DNS:localhost",
          "IP:127.0.0.1",
          "IP:::1",
        ]);
        assert.deepEqual(
          conn.peerCertificateChain.map((c) => c.subject.split(",")[0]),
          ["CN=localhost", "CN=libssl-ffi Test Intermediate CA", "CN=libssl-ffi Test Root CA"],
        );
        assert.equal(conn.remoteAddr?.port, server.port);
        assert.equal(conn.remoteAddr?.hostname, "127.0.0.1");
        assert.ok((conn.localAddr?.port ?? 0) > 0);
        assert.equal(await conn.write(text("GET / HTTP/1.0\r\n\r\n")), 18);
        const page = new TextDecoder().decode(await readToEnd(conn));
        assert.match(page, /^HTTP\/1\.0 200 ok/);
        assert.match(page, new RegExp(`Protocol +: TLSv${version.replace(".", "\\.")}`));
        assert.equal(await conn.read(new Uint8Array(10)), null, "EOF stays EOF");
        assert.deepEqual(await conn.handshake(), await conn.handshake(), "idempotent");
      } finally {
        conn.close();
        conn.close();
      }
    }
    finish();
  });
}

test("ALPN: the server's preference wins; a server without ALPN ignores it; no overlap is 120", async () => {
  {
    await using server = await startOpensslServer({
      ...leafAndChain,
      chain: pki.intermediateCa.certPath,
      alpn: ["h2", "http/1.1"],
      www: true,
    });
    for (
      const [offer, expected] of [[["http/1.1"], "http/1.1"], [["http/1.1", "h2"], "h2"]] as const
    ) {
      const conn = await connect({
        hostname: "localhost",
        port: server.port,
        caCerts: ca,
        alpnProtocols: offer,
      });
      assert.equal(conn.alpnProtocol, expected, `offered ${offer.join(",")}`);
      conn.close();
    }
    // No overlap: s_server (OpenSSL 3.0) refuses with a fatal no_application_protocol alert.
    await assert.rejects(
      connect({ hostname: "localhost", port: server.port, caCerts: ca, alpnProtocols: ["spdy/1"] }),
      (e) => e instanceof TlsError && e.code === "ALERT_RECEIVED" && e.alert?.code === 120,
    );
    await assert.rejects(
      connect({ hostname: "localhost", port: server.port, caCerts: ca, alpnProtocols: [""] }),
      RangeError,
    );
  }
  // A server without ALPN ignores the offer: no protocol, and no failure (RFC 7301).
  {
    await using plain = await startOpensslServer({
      ...leafAndChain,
      chain: pki.intermediateCa.certPath,
      www: true,
    });
    const conn = await connect({
      hostname: "localhost",
      port: plain.port,
      caCerts: ca,
      alpnProtocols: ["h2"],
    });
    assert.equal(conn.alpnProtocol, null);
    conn.close();
  }
  finish();
});

test("a static client certificate is accepted by s_server -Verify 1 -verify_return_error", async () => {
  {
    await using server = await startOpensslServer({
      ...leafAndChain,
      chain: pki.intermediateCa.certPath,
      caFile: pki.rootCaPath,
      verify: "require",
      www: true,
    });
    const conn = await connect({
      hostname: "localhost",
      port: server.port,
      caCerts: ca,
      cert: pki.client.chainPem,
      key: pki.client.key,
    });
    await conn.write(text("GET / HTTP/1.0\r\n\r\n"));
    const page = new TextDecoder().decode(await readToEnd(conn));
    assert.match(page, /Client certificate/);
    assert.match(page, /CN *= *test-client/);
    conn.close();
    // Without one, TLS 1.3's client handshake completes; the refusal is on the first read.
    const without = await connect({ hostname: "localhost", port: server.port, caCerts: ca });
    try {
      await assert.rejects(without.read(new Uint8Array(10)), (e: unknown) => {
        assert.ok(e instanceof TlsError, String(e));
        assert.equal(e.code, "ALERT_RECEIVED", e.message);
        assert.equal(e.alert?.code, 116); // certificate_required
        assert.equal(e.alert?.description, "certificate required"); // named although 3.0 cannot
        return true;
      });
    } finally {
      without.close();
    }
  }
  finish();
});

test("64 MiB from s_server arrive byte-exact (SHA-256 compared)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "libssl-ffi-www-"));
  const data = randomBytes(64 * 1024 * 1024);
  writeFileSync(join(dir, "big.bin"), data);
  const server = await startOpensslServer({
    ...leafAndChain,
    chain: pki.intermediateCa.certPath,
    wwwRoot: dir,
  });
  try {
    const conn = await connect({ hostname: "localhost", port: server.port, caCerts: ca });
    try {
      await conn.write(text("GET /big.bin HTTP/1.0\r\n\r\n"));
      const hash = createHash("sha256");
      let head = new Uint8Array(0);
      let body = 0;
      const buf = new Uint8Array(256 * 1024);
      for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
        let chunk = buf.subarray(0, n);
        if (head !== null && body === 0) {
          // Strip the HTTP head (s_server -WWW sends no Content-Length: the body ends at EOF).
          const joined = new Uint8Array(head.length + chunk.length);
          joined.set(head);
          joined.set(chunk, head.length);
          const end = Buffer.from(joined).indexOf("\r\n\r\n");
          if (end < 0) {
            head = joined;
            continue;
          }
          chunk = joined.subarray(end + 4);
          head = new Uint8Array(0);
          body = -1; // past the head
        }
        hash.update(chunk);
        body = body < 0 ? chunk.length : body + chunk.length;
      }
      assert.equal(body, data.length);
      assert.equal(hash.digest("hex"), createHash("sha256").update(data).digest("hex"));
    } finally {
      conn.close();
    }
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  finish();
}, { timeout: 120_000 });

test("TLS 1.3 KeyUpdate from s_server (K): data keeps flowing both ways", async () => {
  {
    await using server = await startOpensslServer({
      ...leafAndChain,
      chain: pki.intermediateCa.certPath,
      tls: "1.3",
    });
    const conn = await connect({ hostname: "localhost", port: server.port, caCerts: ca });
    try {
      await conn.write(text("before\n"));
      await server.waitFor(/before/);
      const since = server.output().length;
      server.send("K\n"); // KeyUpdate with update_requested: we must answer with our own
      await server.waitFor(/SSL_do_handshake -> 1/, 5000, since); // s_server sent it
      server.send("after-update\n");
      assert.match(await readUntil(conn, /after-update/), /after-update/);
      await conn.write(text("from-client-after-update\n"));
      await server.waitFor(/from-client-after-update/);
    } finally {
      conn.close();
    }
  }
  finish();
});

test("TLS 1.2 renegotiation from s_server (R) is refused: a clean, typed failure", async () => {
  // We never renegotiate (SSL_OP_NO_RENEGOTIATION): a HelloRequest gets a no_renegotiation
  // warning. s_server treats that as fatal and answers handshake_failure, which we surface.
  {
    await using server = await startOpensslServer({
      ...leafAndChain,
      chain: pki.intermediateCa.certPath,
      tls: "1.2",
    });
    const conn = await connect({ hostname: "localhost", port: server.port, caCerts: ca });
    try {
      await conn.write(text("hello\n"));
      await server.waitFor(/hello/);
      server.send("R\n");
      await assert.rejects(readUntil(conn, /never/), (e: unknown) => {
        assert.ok(e instanceof TlsError, String(e));
        assert.equal(e.code, "ALERT_RECEIVED");
        assert.equal(e.alert?.code, 40);
        return true;
      });
    } finally {
      conn.close();
    }
    // The next connection is unaffected.
    const again = await connect({ hostname: "localhost", port: server.port, caCerts: ca });
    await again.write(text("again\n"));
    await server.waitFor(/again/);
    again.close();
  }
  finish();
});

test("interop: gnutls-serv (TLS 1.3 and 1.2, line echo)", async () => {
  for (const tls of ["1.3", "1.2"] as const) {
    await using server = await startGnutlsServer({
      cert: pki.serverChainPath,
      key: pki.server.keyPath,
      tls,
      echo: true,
    });
    const conn = await connect({ hostname: "localhost", port: server.port, caCerts: ca });
    try {
      assert.equal(conn.protocol, `TLSv${tls}`);
      // gnutls-serv --echo answers line by line.
      const lines = Array.from({ length: 2000 }, (_, i) => `line ${i} ${"x".repeat(i % 80)}\n`);
      const message = text(lines.join(""));
      await conn.write(message);
      const got = new Uint8Array(message.length);
      let off = 0;
      while (off < got.length) {
        const n = await conn.read(got.subarray(off));
        assert.ok(n !== null, "EOF before the echo was complete");
        off += n;
      }
      assert.deepEqual(got, message);
    } finally {
      conn.close();
    }
  }
  finish();
});

test("interop: Node's tls server sends 8 MiB byte-exact, then close_notify", async () => {
  const size = 8 * 1024 * 1024;
  {
    await using server = await startNodeTlsServer({
      cert: pki.serverChainPath,
      key: pki.server.keyPath,
      mode: "send",
      sendBytes: size,
      alpn: ["http/1.1"],
    });
    const conn = await connect({
      hostname: "localhost",
      port: server.port,
      caCerts: ca,
      alpnProtocols: ["http/1.1"],
    });
    try {
      assert.equal(conn.alpnProtocol, "http/1.1");
      const got = await readToEnd(conn);
      assert.equal(got.length, size);
      assert.deepEqual(got, patternBytes(size));
    } finally {
      conn.close();
    }
  }
  finish();
});

test("readable and writable Web streams carry the data (Node echo server)", async () => {
  {
    await using server = await startNodeTlsServer({
      cert: pki.serverChainPath,
      key: pki.server.keyPath,
      mode: "echo",
    });
    const conn = await connect({ hostname: "localhost", port: server.port, caCerts: ca });
    try {
      const writer = conn.writable.getWriter();
      const reader = conn.readable.getReader();
      await writer.write(text("one "));
      await writer.write(text("two"));
      let got = "";
      while (got.length < 7) {
        const r = await reader.read();
        assert.equal(r.done, false);
        got += new TextDecoder().decode(r.value);
      }
      assert.equal(got, "one two");
      await writer.close(); // close_notify; the echo server then ends too
      const end = await reader.read();
      assert.equal(end.done, true, "clean end of stream after the server's close_notify");
    } finally {
      conn.close();
    }
  }
  finish();
});

test("concurrent writes are sent in order; concurrent reads are served in order", async () => {
  {
    await using server = await startNodeTlsServer({
      cert: pki.serverChainPath,
      key: pki.server.keyPath,
      mode: "echo",
    });
    const conn = await connect({ hostname: "localhost", port: server.port, caCerts: ca });
    try {
      const parts = Array.from({ length: 50 }, (_, i) => randomBytes(1000 + i * 997));
      const all = Buffer.concat(parts);
      const writes = parts.map((p) => conn.write(p));
      // After the last write, close_notify: the echo server ends too, so reads still in flight
      // when the data runs out see a clean EOF instead of waiting forever.
      const closed = Promise.all(writes).then(() => conn.closeWrite());
      const received: Uint8Array[] = [];
      for (let eof = false; !eof;) {
        // Three reads in flight at once, each into its own buffer: served in order.
        const bufs = [new Uint8Array(1500), new Uint8Array(700), new Uint8Array(3000)];
        const ns = await Promise.all(bufs.map((b) => conn.read(b)));
        ns.forEach((n, i) => {
          if (n === null) eof = true;
          else {
            assert.ok(!eof, "no data after EOF");
            received.push(bufs[i]!.subarray(0, n));
          }
        });
      }
      await closed;
      assert.deepEqual(await Promise.all(writes), parts.map((p) => p.length));
      assert.deepEqual(new Uint8Array(Buffer.concat(received)), new Uint8Array(all));
    } finally {
      conn.close();
    }
  }
  finish();
});

test("startTls over a plain TCP stream (node:net socket as Web streams)", async () => {
  const server = await startOpensslServer({
    ...leafAndChain,
    chain: pki.intermediateCa.certPath,
    www: true,
  });
  const socket = net.connect({ host: "127.0.0.1", port: server.port });
  try {
    await new Promise((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    // A STARTTLS protocol would talk in clear text first; then the stream becomes TLS.
    const conn = await startTls(Duplex.toWeb(socket), { hostname: "localhost", caCerts: ca });
    const info = await conn.handshake();
    try {
      assert.equal(conn.protocol, "TLSv1.3");
      assert.equal(conn.remoteAddr, null, "a Web-stream pair has no address");
      await conn.write(text("GET / HTTP/1.0\r\n\r\n"));
      assert.match(new TextDecoder().decode(await readToEnd(conn)), /^HTTP\/1\.0 200 ok/);
    } finally {
      conn.close();
    }
    // The peer's certificates, never read before close(), outlive it (close() copies them out of
    // OpenSSL before freeing it), on the connection and on its handshake info alike.
    assert.equal(conn.peerCertificate?.subject, "CN=localhost,O=libssl-ffi tests");
    assert.equal(info.peerCertificate?.subject, "CN=localhost,O=libssl-ffi tests");
    assert.deepEqual(
      info.peerCertificateChain.map((c) => c.subject.split(",")[0]),
      ["CN=localhost", "CN=libssl-ffi Test Intermediate CA", "CN=libssl-ffi Test Root CA"],
    );
    // Verification applies to startTls too.
    const socket2 = net.connect({ host: "127.0.0.1", port: server.port });
    await new Promise((resolve) => socket2.once("connect", resolve));
    await assert.rejects(
      startTls(Duplex.toWeb(socket2), { hostname: "wrong.example", caCerts: ca }),
      (e) => e instanceof TlsError && e.code === "CERT_VERIFY_FAILED" && e.verifyCode === 62,
    );
    socket2.destroy();
  } finally {
    socket.destroy();
    await server.stop();
  }
  finish();
});

test("a drip-feeding proxy (one byte at a time) still gives a working connection", async () => {
  {
    await using server = await startOpensslServer({
      ...leafAndChain,
      chain: pki.intermediateCa.certPath,
      www: true,
    });
    await using proxy = await startTcpProxy(server.port, "drip");
    const conn = await connect({ hostname: "localhost", port: proxy.port, caCerts: ca });
    try {
      await conn.write(text("GET / HTTP/1.0\r\n\r\n"));
      assert.match(new TextDecoder().decode(await readToEnd(conn)), /^HTTP\/1\.0 200 ok/);
    } finally {
      conn.close();
    }
  }
  finish();
}, { timeout: 60_000 });

test("await using: close_notify is sent on dispose (the peer sees a clean close)", async () => {
  {
    await using server = await startNodeTlsServer({
      cert: pki.serverChainPath,
      key: pki.server.keyPath,
      mode: "echo",
    });
    {
      await using conn = await connect({ hostname: "localhost", port: server.port, caCerts: ca });
      await conn.write(text("bye"));
      assert.equal(await readUntil(conn, /bye/), "bye");
    }
    // The Node echo server logs how each connection ended: a clean end, no socket error.
    await server.waitFor(/END/);
    await server.waitFor(/CLOSE/);
    assert.doesNotMatch(server.output(), /SOCKETERROR|TLSCLIENTERROR/);
  }
  finish();
});
