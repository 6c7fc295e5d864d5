/**
 * Checks the test peers from `peers.ts` with independent clients: the `openssl s_client` CLI, and
 * `node:tls` / `node:net` in this process (fine for checking a peer; both runtimes ship them).
 *
 * @module
 */

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import tls from "node:tls";
import { test } from "../harness.ts";
import {
  canConnect,
  freePort,
  patternBytes,
  type PeerProcess,
  type RawBehaviour,
  startGnutlsServer,
  startNodeTlsServer,
  startOpensslServer,
  startRawServer,
  startTcpProxy,
} from "./peers.ts";
import { sharedTestPki } from "./pki.ts";

const pki = sharedTestPki();
const rootCa = readFileSync(pki.rootCaPath, "utf8");

interface RunResult {
  status: number | null;
  output: string;
}

/** Runs `openssl args` asynchronously (in-process peers must keep running), stdin from `input`. */
function runOpenssl(args: string[], input?: string, timeoutMs = 8_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn("openssl", args, { stdio: ["pipe", "pipe", "pipe"] });
    let output = "";
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => (output += chunk));
    child.stderr.on("data", (chunk: string) => (output += chunk));
    child.stdin.on("error", () => {});
    child.stdin.end(input ?? "");
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`openssl ${args.join(" ")} timed out; output:\n${output}`));
    }, timeoutMs);
    child.once("close", (status) => {
      clearTimeout(timer);
      resolve({ status, output });
    });
  });
}

/** `s_client` arguments for 127.0.0.1:port with SNI and host-name check `localhost`. */
function sClient(port: number, ...extra: string[]): string[] {
  return [
    "s_client",
    "-connect",
    `127.0.0.1:${port}`,
    "-CAfile",
    pki.rootCaPath,
    "-servername",
    "localhost",
    "-verify_hostname",
    "localhost",
    "-brief",
    ...extra,
  ];
}

interface Collected {
  data: Uint8Array;
  chunks: number;
  error: (Error & { code?: string }) | null;
  ended: boolean;
}

/**
 * Collects everything `socket` delivers until it closes (or `settleMs` passes without close, then
 * destroys it). Resolves, never rejects: the error is part of the result.
 */
function collect(socket: net.Socket, settleMs = 5_000): Promise<Collected> {
  return new Promise((resolve) => {
    const chunks: Uint8Array[] = [];
    let error: Collected["error"] = null;
    let ended = false;
    let gaveUp = false;
    const timer = setTimeout(() => {
      gaveUp = true;
      socket.destroy();
    }, settleMs);
    socket.on("data", (chunk: Uint8Array) => chunks.push(new Uint8Array(chunk)));
    // Bun emits 'end' when WE destroy a socket that never received a FIN: ignore that one.
    socket.on("end", () => (ended ||= !gaveUp));
    socket.on("error", (e: Error) => (error ??= e));
    socket.on("close", () => {
      clearTimeout(timer);
      const data = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
      let offset = 0;
      for (const c of chunks) {
        data.set(c, offset);
        offset += c.length;
      }
      resolve({ data, chunks: chunks.length, error, ended });
    });
  });
}

/** A `node:tls` client to 127.0.0.1:port, SNI localhost, trusting only the test root. */
function tlsClient(port: number, options: tls.ConnectionOptions = {}): tls.TLSSocket {
  return tls.connect({ host: "127.0.0.1", port, servername: "localhost", ca: rootCa, ...options });
}

function secureConnected(socket: tls.TLSSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.once("secureConnect", () => resolve());
    socket.once("error", reject);
  });
}

/** Resolves once `socket` has received `text` (as latin1), with everything received so far. */
function receive(socket: net.Socket, text: string, timeoutMs = 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(() => {
      socket.removeListener("data", onData);
      reject(new Error(`did not receive ${JSON.stringify(text)}; got ${JSON.stringify(seen)}`));
    }, timeoutMs);
    const onData = (chunk: Uint8Array): void => {
      seen += Buffer.from(chunk).toString("latin1");
      if (seen.includes(text)) {
        clearTimeout(timer);
        socket.removeListener("data", onData);
        resolve(seen);
      }
    };
    socket.on("data", onData);
  });
}

const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString("latin1");

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** After stop(): the port refuses connections and the child is gone. */
async function assertStopped(peer: PeerProcess): Promise<void> {
  await peer.stop();
  assert.equal(isAlive(peer.pid), false, `pid ${peer.pid} still alive`);
  assert.equal(await canConnect(peer.port), false, `port ${peer.port} still accepts`);
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), "libssl-ffi-peers-"));
}

// -------------------------------------------------------------------------------------------

test("peers: freePort returns a port that can be bound on 127.0.0.1", async () => {
  const port = await freePort();
  assert.ok(port > 1024 && port < 65536, String(port));
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", resolve);
  });
  assert.equal(await canConnect(port), true);
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

test("peers: s_server serves the PKI chain and s_client verifies it (no probe noise)", async () => {
  const server = await startOpensslServer({
    cert: pki.server.certPath,
    key: pki.server.keyPath,
    chain: pki.intermediateCa.certPath,
  });
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
    cert: pki.server.certPath,
    chain: pki.intermediateCa.certPath,
    key: pki.server.keyPath,
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
    await server.waitFor(/unable to get local issuer certificate/, 5_000, mark);
    const mark2 = server.output().length;
    // ...with the chain it does.
    const withChain = await runOpenssl(
      sClient(
        server.port,
        "-cert",
        pki.client.certPath,
        "-cert_chain",
        pki.intermediateCa.certPath,
        "-key",
        pki.client.keyPath,
      ),
    );
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
    cert: pki.server.certPath,
    chain: pki.intermediateCa.certPath,
    key: pki.server.keyPath,
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
    cert: pki.server.certPath,
    chain: pki.intermediateCa.certPath,
    key: pki.server.keyPath,
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
    cert: pki.server.certPath,
    chain: pki.intermediateCa.certPath,
    key: pki.server.keyPath,
    www: true,
  });
  const files = await startOpensslServer({
    cert: pki.server.certPath,
    chain: pki.intermediateCa.certPath,
    key: pki.server.keyPath,
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

test("peers: gnutls-serv answers TLS 1.3 on 127.0.0.1 and echoes", async () => {
  const server = await startGnutlsServer({
    cert: pki.serverChainPath,
    key: pki.server.keyPath,
    tls: "1.3",
    echo: true,
  });
  try {
    const client = await runOpenssl(sClient(server.port));
    assert.match(client.output, /Protocol version: TLSv1\.3/);
    assert.match(client.output, /Verification: OK/);
    await server.waitFor(/Version: TLS1\.3/);
    // Refuses TLS 1.2 as asked.
    const old = await runOpenssl(sClient(server.port, "-tls1_2"));
    assert.doesNotMatch(old.output, /Protocol version/);
    // Echo, and concurrent connections (unlike s_server).
    const one = tlsClient(server.port);
    const two = tlsClient(server.port);
    try {
      await Promise.all([secureConnected(one), secureConnected(two)]);
      two.write("second\n");
      one.write("first\n");
      await Promise.all([receive(one, "first\n"), receive(two, "second\n")]);
    } finally {
      one.destroy();
      two.destroy();
    }
  } finally {
    await assertStopped(server);
  }
});

test("peers: gnutls-serv ALPN and required client certificate", async () => {
  const server = await startGnutlsServer({
    cert: pki.serverChainPath,
    key: pki.server.keyPath,
    caFile: pki.rootCaPath,
    clientCert: "require",
    alpn: ["h2", "http/1.1"],
    echo: true,
  });
  try {
    const without = await runOpenssl(sClient(server.port, "-alpn", "http/1.1", "-ign_eof"));
    assert.notEqual(without.status, 0);
    assert.match(without.output, /alert certificate required/);
    await server.waitFor(/Error in handshake: Certificate is required/);
    const mark = server.output().length;
    const withChain = await runOpenssl([
      ...sClient(
        server.port,
        "-alpn",
        "http/1.1",
        "-cert",
        pki.client.certPath,
        "-cert_chain",
        pki.intermediateCa.certPath,
        "-key",
        pki.client.keyPath,
      ).filter((arg) => arg !== "-brief"), // -brief does not print the ALPN result
    ]);
    assert.equal(withChain.status, 0, withChain.output);
    assert.match(withChain.output, /ALPN protocol: http\/1\.1/);
    assert.match(withChain.output, /Verify return code: 0 \(ok\)/);
    await server.waitFor(/Subject: CN=test-client/, 5_000, mark);
    await server.waitFor(/Application protocol: http\/1\.1/, 5_000, mark);
  } finally {
    await assertStopped(server);
  }
});

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
  const server = await startOpensslServer({
    cert: pki.server.certPath,
    chain: pki.intermediateCa.certPath,
    key: pki.server.keyPath,
  });
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

test("peers: stop() leaves no process behind, even for a server that ignores SIGTERM", async () => {
  const dir = tempDir();
  const ignoreTerm = join(dir, "ignore-term.cjs");
  writeFileSync(ignoreTerm, 'process.on("SIGTERM", () => console.log("IGNORED SIGTERM"));\n');
  const stubborn = await startNodeTlsServer({
    cert: pki.serverChainPath,
    key: pki.server.keyPath,
    env: { NODE_OPTIONS: `--require ${ignoreTerm}` },
  });
  const gnutls = await startGnutlsServer({ cert: pki.serverChainPath, key: pki.server.keyPath });
  try {
    assert.equal(isAlive(stubborn.pid), true);
    assert.equal(isAlive(gnutls.pid), true);
    // kill() + exited, for "the server dies mid-test" cases.
    gnutls.kill("SIGKILL");
    assert.equal((await gnutls.exited).signal, "SIGKILL");
    const started = Date.now();
    await assertStopped(stubborn);
    const took = Date.now() - started;
    assert.match(stubborn.output(), /IGNORED SIGTERM/);
    assert.equal((await stubborn.exited).signal, "SIGKILL");
    assert.ok(took >= 1_900 && took < 4_000, `stop() took ${took} ms`);
  } finally {
    await assertStopped(stubborn);
    await assertStopped(gnutls);
    rmSync(dir, { recursive: true, force: true });
  }
});
