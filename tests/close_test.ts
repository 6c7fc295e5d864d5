/**
 * Ending a connection: `close()` sends close_notify after everything written before it, so the
 * peer reads a clean end of stream; `abort()` does not, so the peer sees a truncation. Against
 * `openssl s_server`, `gnutls-serv`, Node's `tls`, and our own client and server both ways; plus
 * `conn.readable`, which must not read ahead of `conn.read()`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Duplex } from "node:stream";
import net from "node:net";
import { connect, type Connection, listen, startTls, TlsError } from "../mod.ts";
import { test } from "./harness.ts";
import { sharedTestPki } from "./support/pki.ts";
import { startOpensslServer } from "./support/openssl_peer.ts";
import { startGnutlsServer } from "./support/gnutls_peer.ts";
import { startNodeTlsServer } from "./support/node_peer.ts";
import { localClientOptions, localServerOptions, until } from "./support/listener.ts";
import { clearCacheAndAssertNoLeaks as finish } from "./support/leaks.ts";
import { readToEnd } from "./support/read.ts";

const pki = sharedTestPki();
const caCerts = [pki.rootCa.cert];
const enc = new TextEncoder();
const dec = new TextDecoder();

function clientOf(port: number) {
  return connect({ hostname: "localhost", port, caCerts });
}

/** A listener whose first accepted connection is handed to `serve`. */
async function withServer(
  serve: (conn: Connection) => Promise<void>,
  body: (port: number) => Promise<void>,
): Promise<void> {
  await using server = listen(localServerOptions());
  const served = (async () => {
    const conn = await server.accept();
    try {
      await serve(conn);
    } finally {
      await conn[Symbol.asyncDispose](); // closes what serve() left open; waits for its close
    }
  })();
  try {
    await body(server.addr.port);
  } finally {
    await served;
  }
}

test("close() against s_server: it reads close_notify (DONE), abort() it logs a truncation", async () => {
  for (const how of ["close", "abort"] as const) {
    await using server = await startOpensslServer({
      cert: pki.server.certPath,
      key: pki.server.keyPath,
      chain: pki.intermediateCa.certPath,
    });
    const conn = await clientOf(server.port);
    await conn.write(enc.encode("hi\n"));
    await server.waitFor(/hi\n/);
    const since = server.output().length;
    if (how === "close") conn.close();
    else conn.abort();
    await server.waitFor(/CONNECTION CLOSED/, 5_000, since);
    const log = server.output().slice(since);
    if (how === "close") {
      assert.match(log, /^DONE$/m, log);
      assert.doesNotMatch(log, /ERROR|unexpected eof/i, log);
    } else {
      // The control: the same server does see a missing close_notify (its error detail follows
      // the CONNECTION CLOSED line).
      await server.waitFor(/unexpected eof while reading/, 5_000, since);
    }
  }
  finish();
});

test("close() against gnutls-serv: no 'non-properly terminated'; abort() gets one", async () => {
  for (const how of ["close", "abort"] as const) {
    await using server = await startGnutlsServer({
      cert: pki.serverChainPath,
      key: pki.server.keyPath,
      echo: true,
    });
    const conn = await clientOf(server.port);
    await conn.write(enc.encode("hi\n"));
    const buf = new Uint8Array(100);
    assert.equal(dec.decode(buf.subarray(0, (await conn.read(buf))!)), "hi\n");
    const since = server.output().length;
    if (how === "close") conn.close();
    else conn.abort();
    // gnutls-serv prints nothing on a clean end: a second round trip on a new connection proves
    // it has handled the first one's end by then (it reports errors as they happen).
    const probe = await clientOf(server.port);
    await probe.write(enc.encode("probe\n"));
    assert.equal(dec.decode(buf.subarray(0, (await probe.read(buf))!)), "probe\n");
    await probe[Symbol.asyncDispose]();
    if (how === "close") {
      assert.doesNotMatch(server.output().slice(since), /non-properly terminated/);
    } else {
      await server.waitFor(/The TLS connection was non-properly terminated/, 5_000, since);
    }
  }
  finish();
});

test("close() against Node's tls: the server's 'end' comes, after the data, with no error", async () => {
  // Node ignores a missing close_notify (SSL_OP_IGNORE_UNEXPECTED_EOF), so it cannot tell
  // close() from abort(); the truncation controls are the s_server and gnutls-serv tests.
  await using server = await startNodeTlsServer({
    cert: pki.serverChainPath,
    key: pki.server.keyPath,
  });
  const conn = await clientOf(server.port);
  await conn.write(enc.encode("hello node\n"));
  const buf = new Uint8Array(100);
  assert.equal(dec.decode(buf.subarray(0, (await conn.read(buf))!)), "hello node\n");
  conn.close();
  await server.waitFor(/^END$/m);
  await server.waitFor(/^CLOSE$/m);
  assert.doesNotMatch(server.output(), /SOCKETERROR|TLSCLIENTERROR/);
  finish();
});

test("our client and our server, both ways: close() gives the peer's read() null", async () => {
  // The client closes: the server reads everything, then null.
  let serverSaw: Uint8Array | undefined;
  await withServer(async (conn) => {
    serverSaw = await readToEnd(conn);
    conn.close();
  }, async (port) => {
    const conn = await connect(localClientOptions(port));
    await conn.write(enc.encode("from the client"));
    conn.close();
  });
  assert.equal(dec.decode(serverSaw), "from the client");
  // The server closes: the client reads everything, then null.
  let clientSaw: Uint8Array | undefined;
  await withServer(async (conn) => {
    await conn.write(enc.encode("from the server"));
    conn.close();
  }, async (port) => {
    const conn = await connect(localClientOptions(port));
    clientSaw = await readToEnd(conn);
    conn.close();
  });
  assert.equal(dec.decode(clientSaw), "from the server");
  finish();
});

test("close() right after a large write() it did not wait for delivers every byte first", async () => {
  const size = 16 * 1024 * 1024 + 12_345;
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) data[i] = (i * 7 + 3) % 251;
  let received: Uint8Array | undefined;
  await withServer(async (conn) => {
    received = await readToEnd(conn); // ends with null: the close_notify came after the data
  }, async (port) => {
    const conn = await connect(localClientOptions(port));
    const written = conn.write(data); // not awaited
    conn.close();
    assert.equal(await written, size);
    await conn[Symbol.asyncDispose]();
  });
  assert.equal(received?.length, size);
  assert.ok(received!.every((b, i) => b === data[i]), "byte-exact");
  finish();
});

test("abort() gives the peer UNEXPECTED_EOF; pending operations reject with CLOSED", async () => {
  let serverError: unknown;
  await withServer(async (conn) => {
    serverError = await readToEnd(conn).then(() => null, (e) => e);
  }, async (port) => {
    const conn = await connect(localClientOptions(port));
    await conn.write(enc.encode("partial"));
    const pending = conn.read(new Uint8Array(10));
    const reason = new Error("the application gave up");
    conn.abort(reason);
    await assert.rejects(pending, (e: unknown) => {
      assert.ok(e instanceof TlsError);
      assert.equal(e.code, "CLOSED");
      assert.equal(e.cause, reason);
      return true;
    });
    await assert.rejects(conn.write(enc.encode("x")), { name: "TlsError", code: "CLOSED" });
    conn.abort(); // idempotent
    conn.close(); // and close() after abort() is a no-op
  });
  assert.ok(serverError instanceof TlsError, String(serverError));
  assert.equal(serverError.code, "UNEXPECTED_EOF");
  finish();
});

test("close() is synchronous, idempotent, and frees the native objects at once when idle", async () => {
  await withServer(async (conn) => {
    await readToEnd(conn);
  }, async (port) => {
    const conn = await connect(localClientOptions(port));
    conn.close();
    conn.close();
    assert.equal(conn.closed, true);
    await assert.rejects(conn.read(new Uint8Array(1)), { name: "TlsError", code: "CLOSED" });
  });
  finish(); // nothing native left: the close_notify was encrypted before the SSL was freed
});

test("close() from inside a callback (onSession, during a read) still ends cleanly", async () => {
  let serverEnd: unknown;
  await withServer(async (conn) => {
    await conn.write(enc.encode("ticket first, then this"));
    serverEnd = await readToEnd(conn).then((bytes) => bytes.length, (e) => e);
  }, async (port) => {
    let calls = 0;
    const conn: Connection = await connect(localClientOptions(port, {
      maxVersion: "TLSv1.3", // tickets arrive after the handshake, on the first read
      onSession: () => {
        calls++;
        conn?.close(); // inside SSL_read: deferred until OpenSSL returns
      },
    }));
    const buf = new Uint8Array(100);
    await conn.read(buf).catch(() => null); // the read that processes the ticket
    await until("onSession", () => calls > 0);
    assert.equal(conn.closed, true);
    await conn[Symbol.asyncDispose]();
  });
  assert.equal(serverEnd, 0, `the server read a clean end, got ${String(serverEnd)}`);
  finish();
});

test("startTls over Web streams: close() sends close_notify before closing the stream", async () => {
  let serverSaw: Uint8Array | undefined;
  await withServer(async (conn) => {
    serverSaw = await readToEnd(conn);
  }, async (port) => {
    const socket = net.connect(port, "127.0.0.1");
    await new Promise((resolve, reject) => socket.once("connect", resolve).once("error", reject));
    const conn = await startTls(Duplex.toWeb(socket), { hostname: "localhost", caCerts });
    await conn.write(enc.encode("over web streams"));
    conn.close();
    await conn[Symbol.asyncDispose]();
  });
  assert.equal(dec.decode(serverSaw), "over web streams");
  finish();
});

test("conn.readable reads nothing until read: mixing it with read() loses no data", async () => {
  await withServer(async (conn) => {
    await conn.write(enc.encode("first"));
    await readToEnd(conn); // waits for the client's "go"
    conn.close();
  }, async (port) => {
    const conn = await connect(localClientOptions(port));
    const readable = conn.readable; // touching it must not start a read
    const buf = new Uint8Array(100);
    // "first" must still go to read(), not into the stream's queue (where it would be if the
    // stream had started a read: then this read() would wait forever for the server, which
    // waits for us).
    let n = 0;
    while (n < 5) n += (await conn.read(buf.subarray(n)))!;
    assert.equal(dec.decode(buf.subarray(0, n)), "first");
    await conn.closeWrite(); // "go": the server answers with close_notify
    const reader = readable.getReader();
    const { done } = await reader.read();
    assert.equal(done, true, "the stream ends at the server's close_notify");
    conn.close();
  });
  finish();
});

test("conn.readable is a byte stream: a BYOB reader reads into the caller's buffer", async () => {
  await withServer(async (conn) => {
    await conn.write(enc.encode("byob bytes"));
    conn.close();
  }, async (port) => {
    const conn = await connect(localClientOptions(port));
    const reader = conn.readable.getReader({ mode: "byob" });
    let got = "";
    for (;;) {
      const { value, done } = await reader.read(new Uint8Array(4));
      if (done) break;
      assert.ok(value.length <= 4);
      got += dec.decode(value);
    }
    assert.equal(got, "byob bytes");
    conn.close();
  });
  finish();
});

test("a read that fails for good releases the connection at once (no close() needed)", async () => {
  // TLS 1.3: our client finishes its handshake before s_server has looked at our certificate;
  // the server then refuses it (unknown CA) with an alert, which arrives on the first read.
  await using server = await startOpensslServer({
    cert: pki.server.certPath,
    key: pki.server.keyPath,
    chain: pki.intermediateCa.certPath,
    caFile: pki.rootCaPath,
    verify: "require",
    tls: "1.3",
  });
  const conn = await connect(localClientOptions(server.port, {
    cert: pki.otherRootClient.chainPem,
    key: pki.otherRootClient.key,
  }));
  await assert.rejects(conn.read(new Uint8Array(64)), (e: unknown) => {
    assert.ok(e instanceof TlsError, String(e));
    assert.equal(e.code, "ALERT_RECEIVED", e.message);
    return true;
  });
  // Closed and freed by itself: no close() call before the leak check.
  assert.equal(conn.closed, true);
  await assert.rejects(conn.read(new Uint8Array(64)), (e: unknown) => {
    assert.ok(e instanceof TlsError && e.code === "CLOSED", String(e));
    assert.ok(e.cause instanceof TlsError && e.cause.code === "ALERT_RECEIVED");
    return true;
  });
  await assert.rejects(conn.write(enc.encode("x")), (e: unknown) => {
    assert.ok(e instanceof TlsError && e.code === "CLOSED", String(e));
    return true;
  });
  finish();
  conn.close(); // still idempotent
});
