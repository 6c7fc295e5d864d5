/**
 * `listen()` and `TlsListener` in-process, against our own client and raw TCP sockets: the
 * listener's contract (addr, accept, iteration, close, signal, options), SNI and ALPN choices,
 * timeouts and misbehaving clients that must not disturb good ones, the pending-connection
 * limit, `startTls` as a server, and leaks. Interop with other implementations lives in
 * server_interop_test.ts and server_client_auth_test.ts.
 *
 * @module
 */
import assert from "node:assert/strict";
import net from "node:net";
import { Duplex } from "node:stream";
import {
  clearContextCache,
  connect,
  type Connection,
  type ConnectOptions,
  listen,
  type ListenOptions,
  liveNativeObjects,
  registeredConnections,
  startTls,
  TlsContext,
  TlsError,
  type TlsListener,
} from "../mod.ts";
import {
  localClientOptions as clientOptions,
  localServerOptions as serverOptions,
} from "./support/listener.ts";
import { runtime, test } from "./harness.ts";
import { sharedTestPki } from "./support/pki.ts";
import { clearCacheAndAssertNoLeaks as finish } from "./support/leaks.ts";
import { collectGarbage } from "./support/gc.ts";

const pki = sharedTestPki();
const text = (s: string) => new TextEncoder().encode(s);
const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Echoes what the client sends until it closes, then closes. */
async function echo(conn: Connection): Promise<void> {
  const buf = new Uint8Array(16 * 1024);
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      await conn.write(buf.slice(0, n));
    }
    await conn.closeWrite();
  } finally {
    conn.close();
  }
}

/** Serves every connection with {@link echo} until the listener closes. */
function serveEcho(listener: TlsListener): Promise<void> {
  return (async () => {
    for await (const conn of listener) echo(conn).catch(() => {});
  })();
}

/** Connects, sends `message`, reads the echo to the end, and returns it with the connection. */
async function roundTrip(
  port: number,
  message: string,
  extra: Partial<ConnectOptions> = {},
): Promise<{ reply: string; conn: Connection }> {
  const conn = await connect(clientOptions(port, extra));
  await conn.write(text(message));
  await conn.closeWrite();
  const buf = new Uint8Array(4096);
  let reply = "";
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) break;
    reply += new TextDecoder().decode(buf.subarray(0, n));
  }
  conn.close();
  return { reply, conn };
}

/** A raw TCP client that connects and then does what `then` says. */
function rawClient(port: number, then: (socket: net.Socket) => void): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1", () => then(socket));
    socket.on("error", () => {});
    socket.on("close", () => resolve());
    socket.resume();
  });
}

test("listen: port 0 binds a real port; a client handshakes, echoes, and both sides agree", async () => {
  const seen: Connection[] = [];
  const server = listen(serverOptions({ alpnProtocols: ["h2", "http/1.1"] }));
  try {
    assert.ok(server.addr.port > 0);
    assert.equal(server.addr.hostname, "127.0.0.1");
    const loop = (async () => {
      for await (const conn of server) {
        seen.push(conn);
        echo(conn).catch(() => {});
      }
    })();
    const { reply, conn } = await roundTrip(server.addr.port, "hello", {
      alpnProtocols: ["http/1.1"],
    });
    assert.equal(reply, "hello");
    assert.equal(conn.alpnProtocol, "http/1.1");
    assert.equal(seen.length, 1);
    const s = seen[0]!;
    assert.equal(s.role, "server");
    assert.equal(conn.role, "client");
    assert.equal(s.servername, "localhost");
    assert.equal(s.alpnProtocol, "http/1.1");
    assert.equal(s.protocol, "TLSv1.3");
    assert.equal(s.cipher, conn.cipher);
    assert.equal(s.peerCertificate, null); // no client certificate asked for
    assert.equal(s.remoteAddr?.port, conn.localAddr?.port);
    server.close();
    await loop; // iteration ends when the listener closes
    await assert.rejects(server.accept(), (e) => e instanceof TlsError && e.code === "CLOSED");
    server.close(); // idempotent
  } finally {
    server.close();
  }
  finish();
});

test("listen: accept() resolves in arrival order; asyncDispose waits for the accept loop", async () => {
  await using server = listen(serverOptions());
  const port = server.addr.port;
  const first = server.accept();
  const second = server.accept();
  const c1 = await connect(clientOptions(port));
  const s1 = await first;
  const c2 = await connect(clientOptions(port));
  const s2 = await second;
  assert.equal(s1.remoteAddr?.port, c1.localAddr?.port);
  assert.equal(s2.remoteAddr?.port, c2.localAddr?.port);
  for (const c of [c1, c2, s1, s2]) c.close();
  await server[Symbol.asyncDispose]();
  assert.equal(server.closed, true);
  finish();
});

test("listen: bad options are TypeErrors/RangeErrors before any socket exists", () => {
  const before = liveNativeObjects().total;
  assert.throws(() => listen({ port: 0 } as ListenOptions), TypeError); // no cert/key
  assert.throws(() => listen(serverOptions({ port: -1 })), RangeError);
  assert.throws(() => listen(serverOptions({ port: 70000 })), RangeError);
  assert.throws(() => listen(serverOptions({ hostname: "" })), TypeError);
  assert.throws(
    () => listen(serverOptions({ requestClientCert: "yes" as unknown as "optional" })),
    TypeError,
  );
  assert.throws(() => listen(serverOptions({ handshakeTimeout: 0 })), RangeError);
  assert.throws(() => listen(serverOptions({ maxPendingConnections: 0 })), RangeError);
  assert.throws(() => listen(serverOptions({ alpnProtocols: [] })), TypeError);
  {
    using client = new TlsContext("client", { caCerts: [pki.rootCa.cert] });
    assert.throws(
      () => listen({ hostname: "127.0.0.1", port: 0, context: client }),
      /server TlsContext/,
    );
    using serverCtx = new TlsContext("server", { cert: pki.server.chainPem, key: pki.server.key });
    assert.throws(() => listen(serverOptions({ context: serverCtx })), /with context/);
  }
  assert.throws(
    () => new TlsContext("client", { alpnProtocols: () => null }),
    /for servers only/,
  );
  assert.throws(() => new TlsContext("client", { requestClientCert: "require" }), TypeError);
  // Options of the other side are refused, not silently ignored (plain JavaScript callers).
  assert.throws(() => listen(serverOptions({ ocsp: "require" } as never)), /client option/);
  assert.throws(() => listen(serverOptions({ servername: "x" } as never)), /client option/);
  const aborted = AbortSignal.abort();
  assert.throws(
    () => listen(serverOptions({ signal: aborted })),
    (e) => e instanceof TlsError && e.code === "ABORTED",
  );
  assert.equal(liveNativeObjects().total, before);
  finish();
});

test("listen: a port already in use is a NETWORK_ERROR thrown by listen() itself, on every runtime", () => {
  const first = listen(serverOptions());
  try {
    let error: unknown = null;
    try {
      listen(serverOptions({ port: first.addr.port })).close();
    } catch (e) {
      error = e;
    }
    assert.ok(error instanceof TlsError, String(error));
    assert.equal(error.code, "NETWORK_ERROR");
    assert.match(error.message, /bind|listen/);
    assert.match(error.message, /in use/i);
  } finally {
    first.close();
  }
  finish();
});

test("listen: a silent client times out (onError TIMEOUT) while a good client is served", async () => {
  const errors: { code: string; port: number | undefined }[] = [];
  const server = listen(serverOptions({
    handshakeTimeout: 400,
    onError: (e, info) => errors.push({ code: e.code, port: info.remoteAddr?.port }),
  }));
  const loop = serveEcho(server);
  try {
    let silentPort: number | undefined;
    const silent = rawClient(server.addr.port, (s) => (silentPort = s.localPort));
    await delay(50);
    const started = Date.now();
    const { reply } = await roundTrip(server.addr.port, "still served");
    assert.equal(reply, "still served");
    assert.ok(Date.now() - started < 400, "the good client waited for the silent one");
    await silent; // closed by the server after the timeout
    assert.deepEqual(errors, [{ code: "TIMEOUT", port: silentPort }]);
    assert.equal(server.handshaking, 0);
  } finally {
    server.close();
    await loop;
  }
  finish();
});

test("listen: garbage, an HTTP request and a reset are reported, never delivered", async () => {
  const errors: string[] = [];
  const server = listen(serverOptions({ onError: (e) => errors.push(e.code) }));
  const delivered: Connection[] = [];
  const loop = (async () => {
    for await (const conn of server) {
      delivered.push(conn);
      echo(conn).catch(() => {});
    }
  })();
  try {
    const port = server.addr.port;
    await Promise.all([
      rawClient(port, (s) => s.write(new Uint8Array(300).fill(0x41))),
      rawClient(port, (s) => s.write("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")),
      rawClient(port, (s) => s.resetAndDestroy()),
      roundTrip(port, "good").then(({ reply }) => assert.equal(reply, "good")),
    ]);
    for (let i = 0; i < 50 && errors.length < 3; i++) await delay(20);
    assert.equal(delivered.length, 1);
    assert.equal(errors.length, 3, JSON.stringify(errors));
    assert.equal(errors.filter((c) => c === "HANDSHAKE_FAILED").length, 2);
    // A reset before any byte: the handshake sees end of stream or a reset.
    assert.ok(
      errors.some((c) => c === "UNEXPECTED_EOF" || c === "NETWORK_ERROR"),
      JSON.stringify(errors),
    );
  } finally {
    server.close();
    await loop;
  }
  finish();
});

test("listen: maxPendingConnections holds new clients until a slot frees", async () => {
  const errors: string[] = [];
  const server = listen(serverOptions({
    maxPendingConnections: 1,
    handshakeTimeout: 500,
    onError: (e) => errors.push(e.code),
  }));
  const loop = serveEcho(server);
  try {
    const silent = rawClient(server.addr.port, () => {});
    await delay(100);
    const started = Date.now();
    const { reply } = await roundTrip(server.addr.port, "after the slot frees");
    assert.equal(reply, "after the slot frees");
    // Served only once the silent client's handshake timed out.
    assert.ok(Date.now() - started >= 300, `served after ${Date.now() - started} ms`);
    await silent;
    assert.deepEqual(errors, ["TIMEOUT"]);
  } finally {
    server.close();
    await loop;
  }
  finish();
});

test("listen: close() ends handshakes in progress without reporting them; signal closes too", async () => {
  const errors: string[] = [];
  const controller = new AbortController();
  const server = listen(serverOptions({
    signal: controller.signal,
    onError: (e) => errors.push(e.code),
  }));
  const pending = server.accept();
  const silent = rawClient(server.addr.port, () => {});
  for (let i = 0; i < 50 && server.handshaking === 0; i++) await delay(10);
  assert.equal(server.handshaking, 1);
  controller.abort();
  assert.equal(server.closed, true);
  await assert.rejects(pending, (e) => e instanceof TlsError && e.code === "CLOSED");
  await silent; // the server side was closed
  assert.equal(server.handshaking, 0);
  assert.deepEqual(errors, []);
  finish();
});

test("listen: SNI picks an Identity, a server TlsContext, an async answer, or the default", async () => {
  const other = new TlsContext("server", {
    cert: pki.wrongHostServer.chainPem,
    key: pki.wrongHostServer.key,
  });
  const asked: string[] = [];
  const server = listen(serverOptions({
    onServerName: async (name) => {
      asked.push(name);
      if (name === "wrong.example") return other;
      if (name === "identity.example") {
        await delay(20);
        return { cert: pki.wrongHostServer.chainPem, key: pki.wrongHostServer.key };
      }
      return null;
    },
  }));
  const loop = serveEcho(server);
  try {
    const port = server.addr.port;
    // The wrong.example certificate verifies for wrong.example only.
    const a = await roundTrip(port, "a", { servername: "wrong.example" });
    assert.equal(a.reply, "a");
    assert.match(a.conn.peerCertificate!.subject, /wrong\.example/);
    // An Identity: still wrong.example's certificate; verified against that name.
    const b = await roundTrip(port, "b", {
      servername: "identity.example",
      onVerifyCertificate: (info) => info.error === 0 || info.error === 62, // accept the name
    });
    assert.match(b.conn.peerCertificate!.subject, /wrong\.example/);
    // null: the listener's own certificate.
    const c = await roundTrip(port, "c");
    assert.match(c.conn.peerCertificate!.subject, /localhost/);
    assert.deepEqual(asked, ["wrong.example", "identity.example", "localhost"]);
    // No SNI at all (an IP target): no call, the default certificate.
    const d = await roundTrip(port, "d", { servername: "127.0.0.1" });
    assert.equal(d.reply, "d");
    assert.equal(asked.length, 3);
  } finally {
    server.close();
    await loop;
    other.close();
  }
  finish();
});

test("listen: an ALPN selection function sees the offers; null refuses with alert 120", async () => {
  const offers: string[][] = [];
  const errors: TlsError[] = [];
  const server = listen(serverOptions({
    alpnProtocols: (offered) => {
      offers.push([...offered]);
      if (offered.includes("bogus")) return "not-offered";
      return offered.includes("h2") ? "h2" : null;
    },
    onError: (e) => errors.push(e),
  }));
  const loop = serveEcho(server);
  try {
    const port = server.addr.port;
    const ok = await roundTrip(port, "x", { alpnProtocols: ["http/1.1", "h2"] });
    assert.equal(ok.conn.alpnProtocol, "h2");
    await assert.rejects(
      roundTrip(port, "x", { alpnProtocols: ["http/1.1"] }),
      (e) => e instanceof TlsError && e.code === "ALERT_RECEIVED" && e.alert?.code === 120,
    );
    await assert.rejects(roundTrip(port, "x", { alpnProtocols: ["bogus"] }), TlsError);
    // No ALPN offered: the function is not called, the connection goes ahead without ALPN.
    const none = await roundTrip(port, "y");
    assert.equal(none.conn.alpnProtocol, null);
    assert.deepEqual(offers, [["http/1.1", "h2"], ["http/1.1"], ["bogus"]]);
    for (let i = 0; i < 50 && errors.length < 2; i++) await delay(20);
    assert.equal(errors.length, 2);
    assert.equal(errors[0]!.code, "HANDSHAKE_FAILED");
    assert.equal(errors[1]!.code, "CALLBACK_ERROR");
    assert.match(String((errors[1]!.cause as Error).message), /did not offer/);
  } finally {
    server.close();
    await loop;
  }
  finish();
});

test("listen: a shared server context serves two listeners; closing one keeps the other", async () => {
  const shared = new TlsContext("server", { cert: pki.server.chainPem, key: pki.server.key });
  const one = listen({ hostname: "127.0.0.1", port: 0, context: shared });
  const two = listen({ hostname: "127.0.0.1", port: 0, context: shared });
  const loops = [serveEcho(one), serveEcho(two)];
  try {
    assert.equal((await roundTrip(one.addr.port, "1")).reply, "1");
    one.close();
    assert.equal(shared.closed, false); // not owned by the listener
    assert.equal((await roundTrip(two.addr.port, "2")).reply, "2");
  } finally {
    one.close();
    two.close();
    await Promise.all(loops);
    shared.close();
  }
  finish();
});

test("startTls as a server over node:net + Web streams, with a client certificate", async () => {
  const tcp = net.createServer();
  await new Promise<void>((r) => tcp.listen(0, "127.0.0.1", r));
  const port = (tcp.address() as net.AddressInfo).port;
  const accepted = new Promise<net.Socket>((r) => tcp.once("connection", r));
  try {
    const clientSide = connect(clientOptions(port, {
      cert: pki.client.chainPem,
      key: pki.client.key,
    }));
    const socket = await accepted;
    const serverConn = await startTls(Duplex.toWeb(socket), {
      role: "server",
      cert: pki.server.chainPem,
      key: pki.server.key,
      caCerts: [pki.rootCa.cert],
      requestClientCert: "require",
    });
    const client = await clientSide;
    assert.match(serverConn.peerCertificate!.subject, /test-client/);
    assert.equal(serverConn.peerCertificateChain.length, 3); // leaf, intermediate, root
    assert.equal(serverConn.servername, "localhost");
    await client.write(text("over STARTTLS"));
    const buf = new Uint8Array(100);
    const n = await serverConn.read(buf);
    assert.equal(new TextDecoder().decode(buf.subarray(0, n ?? 0)), "over STARTTLS");
    client.close();
    serverConn.close();
    await assert.rejects(
      startTls(Duplex.toWeb(new net.Socket()), { role: "server" } as never),
      /cert and key/,
    );
  } finally {
    tcp.close();
  }
  finish();
});

test("listen: 300 handshakes through one listener leave no native object behind", async () => {
  const baseline = liveNativeObjects().total;
  const server = listen(serverOptions());
  const loop = serveEcho(server);
  try {
    for (let i = 0; i < 30; i++) {
      await Promise.all(
        Array.from(
          { length: 10 },
          () => roundTrip(server.addr.port, "x").then(({ reply }) => assert.equal(reply, "x")),
        ),
      );
    }
  } finally {
    server.close();
    await loop;
  }
  await collectGarbage();
  await delay(50);
  clearContextCache();
  assert.equal(liveNativeObjects().total, baseline);
  assert.equal(registeredConnections(), 0);
  finish();
}, { timeout: 60_000 });

test(`listen on ${runtime}: the listener's addr matches the bound IPv6 address`, async () => {
  const server = listen(serverOptions({ hostname: "::1" }));
  const loop = serveEcho(server);
  try {
    assert.equal(server.addr.hostname, "::1");
    const { reply } = await roundTrip(server.addr.port, "v6", { hostname: "::1" });
    assert.equal(reply, "v6");
  } finally {
    server.close();
    await loop;
  }
  finish();
});

test("listen: 64 MiB sent by the server in large writes arrive byte-exact (SHA-256)", async () => {
  const { createHash } = await import("node:crypto");
  const total = 64 * 1024 * 1024;
  const chunk = 256 * 1024;
  const sent = createHash("sha256");
  const server = listen(serverOptions());
  const serving = (async () => {
    const conn = await server.accept();
    try {
      // A new pattern per write: a buffer reused too early would show up as a wrong hash.
      for (let off = 0, i = 0; off < total; off += chunk, i++) {
        const data = new Uint8Array(chunk);
        for (let k = 0; k < chunk; k += 4096) data.fill((i * 7 + k / 4096) & 0xff, k, k + 4096);
        sent.update(data);
        await conn.write(data);
      }
      await conn.closeWrite();
    } finally {
      conn.close();
    }
  })();
  try {
    const conn = await connect(clientOptions(server.addr.port));
    // Read late and slowly at first: the server's writes back up in the socket and the runtime's
    // own write queue, where a buffer reused too early would be overwritten.
    await delay(300);
    const received = createHash("sha256");
    const buf = new Uint8Array(200 * 1024);
    let n: number | null;
    let count = 0;
    while ((n = await conn.read(buf)) !== null) {
      received.update(buf.subarray(0, n));
      count += n;
      if (count < 4 * 1024 * 1024) await delay(1);
    }
    conn.close();
    await serving;
    assert.equal(count, total);
    assert.equal(received.digest("hex"), sent.digest("hex"));
  } finally {
    server.close();
  }
  finish();
}, { timeout: 60_000 });
