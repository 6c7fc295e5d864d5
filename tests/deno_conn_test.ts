/**
 * `Connection` as a drop-in `Deno.Conn` / `Deno.TlsConn` (issue #15): the compile-time check that
 * it is assignable (type-checked by `deno check` in CI; the annotations are erased on Bun and
 * Node.js, where the same code runs), `using` / `await using`, `ref()` / `unref()` (a child
 * process that must exit on its own), `setNoDelay()` / `setKeepAlive()` (the keep-alive timer
 * read from /proc/net/tcp), the transports without those controls, and `localCertificate` on
 * both sides.
 *
 * @module
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import net from "node:net";
import { Duplex } from "node:stream";
import {
  connect,
  type Connection,
  listen,
  type NetAddr,
  startTls,
  TlsError,
  type TlsListener,
} from "../mod.ts";
import { test } from "./harness.ts";
import { sharedTestPki } from "./support/pki.ts";
import { startOpensslServer } from "./support/openssl_peer.ts";
import { localClientOptions, localServerOptions, until } from "./support/listener.ts";
import { clearCacheAndAssertNoLeaks as finish } from "./support/leaks.ts";
import { runScript } from "./support/subprocess.ts";

const pki = sharedTestPki();
const text = (s: string) => new TextEncoder().encode(s);

// ---- compile time: assignable to Deno's types ------------------------------------------------

/** `deno check` fails here if a TCP `Connection` stops being a `Deno.TlsConn`. */
function asDenoTlsConn(conn: Connection<NetAddr>): Deno.TlsConn {
  return conn;
}

/** ... and a `Deno.Conn` (what `Deno.serveHttp`-style code and std's helpers take). */
function asDenoConn(conn: Connection<NetAddr>): Deno.Conn {
  return conn;
}

/** A `startTls` connection may have no address: the compiler must say so. */
function startTlsIsNotADenoConn(conn: Connection<NetAddr | null>): unknown {
  // @ts-expect-error: localAddr may be null over Web streams, so it is not a Deno.Conn
  const c: Deno.Conn = conn;
  return c;
}

/** A listener hands out TCP connections, so they are `Deno.TlsConn`s too. */
async function acceptAsDenoTlsConn(listener: TlsListener): Promise<Deno.TlsConn> {
  return await listener.accept();
}

/** Reads everything until the end of stream; returns the text and how the stream ended. */
async function drain(conn: Connection): Promise<{ text: string; end: string }> {
  let got = "";
  const buf = new Uint8Array(4096);
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) return { text: got, end: "clean" };
      got += new TextDecoder().decode(buf.subarray(0, n));
    }
  } catch (e) {
    return { text: got, end: e instanceof TlsError ? e.code : String(e) };
  }
}

test("a TCP Connection is a Deno.TlsConn: the same members, working", async () => {
  await using listener = listen(localServerOptions({ alpnProtocols: ["h2"] }));
  const client = await connect(localClientOptions(listener.addr.port, { alpnProtocols: ["h2"] }));
  const server = await acceptAsDenoTlsConn(listener);
  const conn: Deno.TlsConn = asDenoTlsConn(client);
  assert.equal(asDenoConn(client), client);
  assert.equal(typeof startTlsIsNotADenoConn, "function");
  // Deno.TlsConn.handshake() resolves to { alpnProtocol }.
  assert.equal((await conn.handshake()).alpnProtocol, "h2");
  assert.equal((await server.handshake()).alpnProtocol, "h2");
  // Deno.Addr-shaped addresses, never null on TCP.
  assert.equal(conn.localAddr.transport, "tcp");
  assert.equal(conn.remoteAddr.port, listener.addr.port);
  assert.equal(server.remoteAddr.transport, "tcp");
  assert.equal((server.remoteAddr as Deno.NetAddr).port, (conn.localAddr as Deno.NetAddr).port);
  // read / write / readable / writable / closeWrite, as a Deno.Conn's.
  assert.equal(await conn.write(text("ping")), 4);
  const buf = new Uint8Array(16);
  assert.equal(await server.read(buf), 4);
  const writer = server.writable.getWriter();
  await writer.write(text("pong"));
  writer.releaseLock();
  const reader = conn.readable.getReader();
  const chunk = await reader.read();
  assert.equal(new TextDecoder().decode(chunk.value), "pong");
  reader.releaseLock();
  await conn.closeWrite();
  assert.equal(await server.read(buf), null, "closeWrite: a clean end for the peer");
  conn.close();
  server.close();
  await listener[Symbol.asyncDispose]();
  finish();
});

// ---- using / await using -----------------------------------------------------------------------

for (const kind of ["using", "await using"] as const) {
  test(`${kind} conn = await connect(...) closes it cleanly at the end of the scope`, async () => {
    await using listener = listen(localServerOptions());
    const accepted = listener.accept();
    let kept: Connection<NetAddr>;
    if (kind === "using") {
      using conn = await connect(localClientOptions(listener.addr.port));
      kept = conn;
      await conn.write(text("bye"));
      assert.equal(conn.closed, false);
    } else {
      await using conn = await connect(localClientOptions(listener.addr.port));
      kept = conn;
      await conn.write(text("bye"));
    }
    assert.equal(kept.closed, true, "disposed at the end of the block");
    const server = await accepted;
    // The peer gets what was written, then close_notify: a clean end, not a truncation.
    assert.deepEqual(await drain(server), { text: "bye", end: "clean" });
    server.close();
    await listener[Symbol.asyncDispose]();
    finish();
  });
}

test("using: the disposal is a clean close, an abort() is not (control)", async () => {
  await using listener = listen(localServerOptions());
  const accepted = listener.accept();
  const conn = await connect(localClientOptions(listener.addr.port));
  await conn.write(text("x"));
  conn.abort();
  const server = await accepted;
  assert.deepEqual(await drain(server), { text: "x", end: "UNEXPECTED_EOF" });
  server.close();
  await listener[Symbol.asyncDispose]();
  finish();
});

// ---- ref / unref -------------------------------------------------------------------------------

test("unref(): a connection with a pending read no longer keeps the process alive; ref() does again", async () => {
  await using server = await startOpensslServer({
    cert: pki.server.certPath,
    key: pki.server.keyPath,
    chain: pki.intermediateCa.certPath,
    quiet: true,
  });
  const args = [String(server.port), pki.rootCaPath];
  const unref = runScript("tests/fixtures/unref_child.ts", [...args, "unref"], { timeout: 15_000 });
  assert.match(unref.stdout, /connected/, `stderr: ${unref.stderr}`);
  assert.doesNotMatch(unref.stdout, /still alive/, "unref(): the process must end on its own");
  assert.equal(unref.status, 0, `stdout: ${unref.stdout} stderr: ${unref.stderr}`);
  // The control: ref() again, and the open connection holds the process until the watchdog.
  const ref = runScript("tests/fixtures/unref_child.ts", [...args, "ref"], { timeout: 15_000 });
  assert.match(ref.stdout, /connected/, `stderr: ${ref.stderr}`);
  assert.match(ref.stdout, /still alive/, "ref(): the connection keeps the process alive");
  assert.equal(ref.status, 3);
});

// ---- setNoDelay / setKeepAlive -----------------------------------------------------------------

/**
 * The `tr` (timer active) column of the IPv4 socket bound to 127.0.0.1:`port` in
 * /proc/net/tcp: 2 when its keep-alive timer is pending, 0 when no timer is.
 */
function timerOf(port: number): number {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode; st 01 = ESTABLISHED
    if (fields[1] === local && fields[3] === "01") return Number(fields[5]!.split(":")[0]);
  }
  throw new Error(`no established socket on 127.0.0.1:${port} in /proc/net/tcp`);
}

test("setKeepAlive() turns TCP keep-alive on and off (seen in /proc/net/tcp); setNoDelay() is accepted", async () => {
  await using listener = listen(localServerOptions());
  const accepted = listener.accept();
  const conn = await connect(localClientOptions(listener.addr.port));
  const server = await accepted;
  const port = conn.localAddr.port;
  assert.equal(timerOf(port), 0, "off by default");
  assert.equal(conn.setKeepAlive(), undefined);
  assert.equal(timerOf(port), 2, "setKeepAlive(): the keep-alive timer runs");
  conn.setKeepAlive(false);
  assert.equal(timerOf(port), 0, "setKeepAlive(false): no timer");
  server.setKeepAlive(true);
  // (The server's socket may still show its retransmit timer (1) for the session tickets it
  // just sent; the keep-alive timer (2) shows once they are acknowledged.)
  await until("the server's keep-alive timer", () => timerOf(listener.addr.port) === 2, 2_000);
  // TCP_NODELAY is on from the start; both calls go through to the socket without error.
  assert.equal(conn.setNoDelay(false), undefined);
  assert.equal(conn.setNoDelay(), undefined);
  await conn.write(text("still works"));
  assert.equal(await server.read(new Uint8Array(64)), 11);
  conn.close();
  assert.throws(() => conn.setNoDelay(), (e) => e instanceof TlsError && e.code === "CLOSED");
  assert.throws(() => conn.setKeepAlive(), (e) => e instanceof TlsError && e.code === "CLOSED");
  conn.unref(); // nothing left to unref: no error
  server.close();
  await listener[Symbol.asyncDispose]();
  finish();
});

/** A Web-stream pair over a node:net socket, with or without a Deno.TcpConn's controls. */
function spyTransport(socket: net.Socket, calls: string[] | null) {
  const { readable, writable } = Duplex.toWeb(socket);
  const base = {
    readable: readable as ReadableStream<Uint8Array>,
    writable: writable as WritableStream<Uint8Array>,
  };
  if (calls === null) return base;
  return {
    ...base,
    ref: () => void calls.push("ref"),
    unref: () => void calls.push("unref"),
    setNoDelay: (on?: boolean) => void calls.push(`setNoDelay(${on})`),
    setKeepAlive: (on?: boolean) => void calls.push(`setKeepAlive(${on})`),
  };
}

async function tcpTo(port: number): Promise<net.Socket> {
  const socket = net.connect({ host: "127.0.0.1", port });
  await new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  return socket;
}

test("startTls: the controls go to the transport's own, and a transport without them is a TypeError", async () => {
  await using server = await startOpensslServer({
    cert: pki.server.certPath,
    key: pki.server.keyPath,
    chain: pki.intermediateCa.certPath,
    quiet: true,
  });
  const ca = [pki.rootCa.cert];
  // A transport with the controls (as a Deno.TcpConn has): each call is forwarded.
  const calls: string[] = [];
  const withControls = await startTls(spyTransport(await tcpTo(server.port), calls), {
    hostname: "localhost",
    caCerts: ca,
  });
  withControls.unref();
  withControls.ref();
  withControls.setNoDelay();
  withControls.setNoDelay(false);
  withControls.setKeepAlive();
  assert.deepEqual(calls, [
    "unref",
    "ref",
    "setNoDelay(true)",
    "setNoDelay(false)",
    "setKeepAlive(true)",
  ]);
  assert.equal(withControls.localAddr, null, "no TCP address given: null, as typed");
  withControls.close();
  // Plain Web streams: no such controls, and a TypeError that says where to go instead.
  const plain = await startTls(spyTransport(await tcpTo(server.port), null), {
    hostname: "localhost",
    caCerts: ca,
  });
  for (const call of [() => plain.ref(), () => plain.unref(), () => plain.setNoDelay()]) {
    assert.throws(call, (e: unknown) => {
      assert.ok(e instanceof TypeError);
      assert.match(e.message, /transport has no (ref|unref|setNoDelay)/);
      assert.match(e.message, /call it on the socket under the streams/);
      return true;
    });
  }
  assert.throws(() => plain.setKeepAlive(true), /transport has no setKeepAlive/);
  plain.close();
  finish();
});

// ---- localCertificate --------------------------------------------------------------------------

test("localCertificate: a client's own certificate (sent to s_server), null without one", async () => {
  await using server = await startOpensslServer({
    cert: pki.server.certPath,
    key: pki.server.keyPath,
    chain: pki.intermediateCa.certPath,
    caFile: pki.rootCaPath,
    verify: "request",
    quiet: true,
  });
  const options = {
    hostname: "127.0.0.1",
    servername: "localhost",
    port: server.port,
    caCerts: [pki.rootCa.cert],
  };
  const withCert = await connect({ ...options, cert: pki.clientChainPem, key: pki.client.key });
  assert.equal(withCert.localCertificate?.subject, "CN=test-client,O=libssl-ffi tests");
  assert.equal(withCert.localCertificate, withCert.localCertificate, "read once, then kept");
  assert.notEqual(withCert.localCertificate?.der, withCert.peerCertificate?.der);
  withCert.close();
  const without = await connect(options);
  assert.equal(without.localCertificate, null);
  without.close();
  finish();
});

test("localCertificate: a server's own; also readable after close() when not read before", async () => {
  await using listener = listen(
    localServerOptions({ caCerts: [pki.rootCa.cert], requestClientCert: "require" }),
  );
  const accepted = listener.accept();
  const client = await connect(
    localClientOptions(listener.addr.port, { cert: pki.client.chainPem, key: pki.client.key }),
  );
  const server = await accepted;
  // Each side's localCertificate is the other side's peerCertificate.
  assert.equal(server.localCertificate?.fingerprint256, client.peerCertificate?.fingerprint256);
  assert.equal(server.localCertificate?.subject, "CN=localhost,O=libssl-ffi tests");
  client.close(); // frees the SSL: the certificate is taken before it goes
  assert.equal(client.localCertificate?.fingerprint256, server.peerCertificate?.fingerprint256);
  server.close();
  await listener[Symbol.asyncDispose]();
  finish();
});
