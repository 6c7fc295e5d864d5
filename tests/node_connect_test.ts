/**
 * `nodeConnect()`: a socket at once, connected in the background, as `tls.connect` does. Writes
 * made before the handshake wait for it; failures are 'error' events; destroying the socket
 * while it connects cancels the connect. And the `ws` package's `WebSocket` client through it
 * (`createConnection`) to a `wss://` server: `ws`'s `WebSocketServer` on `node:http`, served over
 * our own listener with `serveHttp()`.
 *
 * @module
 */
import assert from "node:assert/strict";
import http from "node:http";
import WebSocket, { WebSocketServer } from "ws";
import {
  listen,
  nodeConnect,
  type NodeTlsSocket,
  serveHttp,
  TlsError,
  toNodeSocket,
} from "../mod.ts";
import { test } from "./harness.ts";
import { sharedTestPki } from "./support/pki.ts";
import { freePort } from "./support/peer_process.ts";
import { localServerOptions, until } from "./support/listener.ts";
import { clearCacheAndAssertNoLeaks as finish } from "./support/leaks.ts";

const pki = sharedTestPki();
const caCerts = [pki.rootCa.cert];

function recordEvents(
  socket: NodeTlsSocket,
): { events: string[]; errors: unknown[]; closed: Promise<void> } {
  const events: string[] = [];
  const errors: unknown[] = [];
  for (const name of ["connect", "secureConnect", "end", "close"]) {
    socket.on(name, () => events.push(name));
  }
  socket.on("error", (error) => {
    events.push("error");
    errors.push(error);
  });
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  return { events, errors, closed };
}

test("nodeConnect returns a connecting socket; writes before the handshake go out after it", async () => {
  await using listener = listen(localServerOptions({ alpnProtocols: ["echo"] }));
  const served = (async () => {
    const server = toNodeSocket(await listener.accept());
    server.pipe(server); // echo until the client's clean end
    await new Promise((resolve) => server.once("close", resolve));
  })();
  let called = 0;
  const socket = nodeConnect(
    {
      hostname: "127.0.0.1",
      servername: "localhost",
      port: listener.addr.port,
      caCerts,
      alpnProtocols: ["echo"],
    },
    () => called++,
  );
  const { events, errors, closed } = recordEvents(socket);
  assert.equal(socket.connecting, true);
  assert.equal(socket.pending, true);
  assert.equal(socket.readyState, "opening");
  assert.equal(socket.servername, "localhost");
  assert.equal(socket.alpnProtocol, null);
  assert.equal(socket.getProtocol(), null);
  assert.deepEqual(socket.getPeerCertificate(), {});
  assert.equal(socket.connection, null);
  socket.setNoDelay(true).setKeepAlive(true, 5_000); // remembered until the connection exists
  socket.write("early 1\n");
  socket.write("early 2\n");
  let echoed = "";
  socket.setEncoding("utf8");
  socket.on("data", (chunk: string) => (echoed += chunk));
  await new Promise((resolve) => socket.once("secureConnect", resolve));
  assert.equal(called, 1);
  assert.equal(socket.connecting, false);
  assert.equal(socket.readyState, "open");
  assert.equal(socket.alpnProtocol, "echo");
  assert.equal(socket.authorized, true);
  assert.ok(socket.connection !== null);
  await until("the echo", () => echoed === "early 1\nearly 2\n");
  socket.end();
  await closed;
  await served;
  assert.deepEqual(events, ["connect", "secureConnect", "end", "close"]);
  assert.deepEqual(errors, []);
  await listener[Symbol.asyncDispose]();
  finish();
});

test("nodeConnect: a certificate the client does not trust is an 'error' (CERT_VERIFY_FAILED)", async () => {
  await using listener = listen(localServerOptions({ onError: () => {} }));
  const socket = nodeConnect({
    hostname: "127.0.0.1",
    servername: "localhost",
    port: listener.addr.port,
    caCerts: [pki.otherRootCa.cert],
  });
  const { events, errors, closed } = recordEvents(socket);
  await closed;
  assert.deepEqual(events, ["error", "close"]);
  assert.ok(errors[0] instanceof TlsError, String(errors[0]));
  assert.equal((errors[0] as TlsError).code, "CERT_VERIFY_FAILED");
  await listener[Symbol.asyncDispose]();
  finish();
});

test("nodeConnect: a refused connection is an 'error' (NETWORK_ERROR); bad TLS options too", async () => {
  const port = await freePort();
  const refused = nodeConnect({ hostname: "127.0.0.1", port, caCerts });
  const r = recordEvents(refused);
  await r.closed;
  assert.deepEqual(r.events, ["error", "close"]);
  assert.equal((r.errors[0] as TlsError).code, "NETWORK_ERROR");

  // TLS options are checked by connect(): their TypeError arrives as the 'error' event.
  const bad = nodeConnect({ hostname: "127.0.0.1", port, caCerts, alpnProtocols: [] });
  const b = recordEvents(bad);
  await b.closed;
  assert.deepEqual(b.events, ["error", "close"]);
  assert.ok(b.errors[0] instanceof TypeError, String(b.errors[0]));
  finish();
});

test("nodeConnect: bad hostname, port, socket options or callback throw at once", () => {
  assert.throws(() => nodeConnect(null as never), TypeError);
  assert.throws(() => nodeConnect({ hostname: "", port: 443 }), TypeError);
  assert.throws(() => nodeConnect({ hostname: "localhost", port: 0 }), RangeError);
  assert.throws(() => nodeConnect({ hostname: "localhost", port: 70000 }), RangeError);
  assert.throws(
    () => nodeConnect({ hostname: "localhost", port: 443, readableHighWaterMark: -5 }),
    RangeError,
  );
  assert.throws(() => nodeConnect({ hostname: "localhost", port: 443 }, "cb" as never), TypeError);
  finish();
});

test("nodeConnect: destroy() while connecting cancels the connect; nothing is left behind", async () => {
  // A server that accepts TCP and never answers: the handshake would wait for its timeout.
  const net = await import("node:net");
  const sockets: import("node:net").Socket[] = [];
  const silent = net.createServer((s) => {
    sockets.push(s);
    s.on("error", () => {});
    s.resume();
  });
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  try {
    const port = (silent.address() as import("node:net").AddressInfo).port;
    const socket = nodeConnect({ hostname: "127.0.0.1", port, caCerts, handshakeTimeout: 30_000 });
    const { events, closed } = recordEvents(socket);
    await until("the TCP connection", () => sockets.length === 1);
    socket.destroy();
    await closed;
    assert.deepEqual(events, ["close"]);
    // The connect was aborted: its TCP connection closes, no native object stays.
    await until(
      "the server to see the close",
      () => sockets[0]!.destroyed || sockets[0]!.readableEnded,
    );
    await until("no live native objects", () => {
      try {
        finish();
        return true;
      } catch {
        return false;
      }
    });
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => silent.close(resolve));
  }
});

test("ws: WebSocket through nodeConnect to a wss:// server on node:http over listen()", async () => {
  const server = http.createServer();
  const wss = new WebSocketServer({ server });
  const serverReceived: string[] = [];
  const serverClosed = new Promise<[number, string]>((resolve) => {
    wss.on("connection", (ws, req) => {
      const socket = req.socket as unknown as NodeTlsSocket;
      ws.send(`welcome ${socket.servername} over ${socket.getProtocol()}`);
      ws.on("message", (data) => {
        serverReceived.push(String(data));
        ws.send(`echo ${data}`);
      });
      ws.on("close", (code, reason) => resolve([code, String(reason)]));
    });
  });
  await using listener = listen(localServerOptions({ alpnProtocols: ["http/1.1"] }));
  const serving = serveHttp(listener, server);
  const port = listener.addr.port;
  const sockets: NodeTlsSocket[] = [];
  try {
    const ws = new WebSocket(`wss://localhost:${port}/chat`, {
      // ws calls it with Node's option names; its types promise a net.Socket.
      createConnection:
        ((options: { host?: string; port?: number | string; servername?: string }) => {
          const socket = nodeConnect({
            hostname: "127.0.0.1",
            servername: String(options.servername ?? options.host),
            port: Number(options.port),
            caCerts,
            alpnProtocols: ["http/1.1"],
          });
          sockets.push(socket);
          return socket;
        }) as unknown as typeof import("node:net").createConnection,
    });
    const messages: string[] = [];
    const gotThree = new Promise<void>((resolve, reject) => {
      ws.on("message", (data) => {
        messages.push(String(data));
        if (messages.length === 3) resolve();
      });
      ws.on("error", reject);
    });
    await new Promise((resolve, reject) => {
      ws.once("open", resolve);
      ws.once("error", reject);
    });
    ws.send("one");
    ws.send(new Uint8Array(100_000).fill(0x61)); // a large binary frame
    await gotThree;
    assert.equal(messages[0], "welcome localhost over TLSv1.3");
    assert.equal(messages[1], "echo one");
    assert.equal(messages[2], `echo ${"a".repeat(100_000)}`);
    assert.deepEqual(serverReceived, ["one", "a".repeat(100_000)]);
    const clientClosed = new Promise<[number, string]>((resolve) =>
      ws.once("close", (code, reason) => resolve([code, String(reason)]))
    );
    ws.close(1000, "done");
    assert.deepEqual(await clientClosed, [1000, "done"]);
    assert.deepEqual(await serverClosed, [1000, "done"]);
    assert.equal(sockets.length, 1);
    await until("the client socket to close", () => sockets[0]!.destroyed);
    assert.equal(sockets[0]!.errored, null, "the TLS connection ended without an error");
  } finally {
    listener.close();
    wss.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await serving;
  }
  await until("no live native objects", () => {
    try {
      finish();
      return true;
    } catch {
      return false;
    }
  });
});
