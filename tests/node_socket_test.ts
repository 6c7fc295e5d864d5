/**
 * `toNodeSocket()`: a Connection as a Node-style `tls.TLSSocket` Duplex. Over a client
 * connection to `openssl s_server`, over our own listener's server connections with Node's `tls`
 * client (each runtime's own `node:tls`) as the peer: properties, event order, clean end versus
 * truncation, destroy(error), and backpressure (a slow reader never makes the socket read ahead
 * of it by more than a bounded amount).
 *
 * @module
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import net from "node:net";
import tls from "node:tls";
import {
  connect,
  type Connection,
  listen,
  NODE_SOCKET_READ_SIZE,
  type NodePeerCertificate,
  type NodeTlsSocket,
  TlsError,
  toNodeSocket,
} from "../mod.ts";
import { test } from "./harness.ts";
import { sharedTestPki } from "./support/pki.ts";
import { startOpensslServer } from "./support/openssl_peer.ts";
import { localServerOptions, until } from "./support/listener.ts";
import { clearCacheAndAssertNoLeaks as finish } from "./support/leaks.ts";

const pki = sharedTestPki();
const caCerts = [pki.rootCa.cert];

/** Records every event of interest on `socket`, in order. */
function recordEvents(socket: NodeTlsSocket): { events: string[]; errors: unknown[] } {
  const events: string[] = [];
  const errors: unknown[] = [];
  void closed(socket);
  for (const name of ["connect", "secureConnect", "end", "finish", "close", "timeout"]) {
    socket.on(name, () => events.push(name));
  }
  socket.on("error", (error) => {
    events.push("error");
    errors.push(error);
  });
  return { events, errors };
}

const closings = new WeakMap<NodeTlsSocket, Promise<void>>();

/** Resolves once `socket` emitted 'close' (call it, or recordEvents, before it can happen). */
function closed(socket: NodeTlsSocket): Promise<void> {
  let closing = closings.get(socket);
  if (closing === undefined) {
    closing = new Promise((resolve) => socket.once("close", () => resolve()));
    closings.set(socket, closing);
  }
  return closing;
}

test("toNodeSocket over a client connection to s_server: TLSSocket properties and data", async () => {
  await using server = await startOpensslServer({
    cert: pki.server.certPath,
    key: pki.server.keyPath,
    chain: pki.intermediateCa.certPath,
    alpn: ["http/1.1"],
    tls: "1.3",
  });
  const conn = await connect({
    hostname: "127.0.0.1",
    servername: "localhost",
    port: server.port,
    caCerts,
    alpnProtocols: ["http/1.1"],
  });
  const socket = toNodeSocket(conn);
  const { events } = recordEvents(socket);
  assert.equal(socket.encrypted, true);
  await new Promise((resolve) => socket.once("secureConnect", resolve));
  assert.deepEqual(events, ["connect", "secureConnect"]);
  assert.equal(socket.connecting, false);
  assert.equal(socket.pending, false);
  assert.equal(socket.readyState, "open");
  assert.equal(socket.authorized, true);
  assert.equal(socket.authorizationError, null);
  assert.equal(socket.alpnProtocol, "http/1.1");
  assert.equal(socket.servername, "localhost");
  assert.equal(socket.getProtocol(), "TLSv1.3");
  assert.deepEqual(socket.getCipher(), {
    name: conn.cipher,
    standardName: conn.cipher,
    version: "TLSv1.3",
  });
  assert.equal(socket.remoteAddress, "127.0.0.1");
  assert.equal(socket.remotePort, server.port);
  assert.equal(socket.remoteFamily, "IPv4");
  assert.equal(socket.localAddress, "127.0.0.1");
  assert.equal(typeof socket.localPort, "number");
  assert.equal(socket.setNoDelay(true), socket);
  assert.equal(socket.setKeepAlive(true, 1000), socket);
  assert.equal(socket.unref(), socket);
  assert.equal(socket.ref(), socket);

  // The certificate in Node's shape, checked against node:crypto's own reading of it.
  const peer = socket.getPeerCertificate() as NodePeerCertificate;
  assert.deepEqual(peer.subject, { CN: "localhost", O: "libssl-ffi tests" });
  assert.equal(typeof peer.issuer.CN, "string");
  assert.match(peer.valid_from, /^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4} GMT$/);
  assert.match(peer.subjectaltname!, /DNS:localhost/);
  assert.match(peer.subjectaltname!, /IP Address:127\.0\.0\.1/);
  assert.ok(peer.raw.equals(Buffer.from(conn.peerCertificate!.der)));
  const sha256 = createHash("sha256").update(peer.raw).digest("hex").toUpperCase();
  assert.equal(peer.fingerprint256.replaceAll(":", ""), sha256);
  const detailed = socket.getPeerCertificate(true) as NodePeerCertificate;
  const intermediate = detailed.issuerCertificate!;
  assert.equal(intermediate.subject.CN, peer.issuer.CN);
  const root = intermediate.issuerCertificate!;
  assert.equal(root.issuerCertificate, root, "a self-signed root is its own issuer");

  // Data both ways.
  socket.write("hello from the socket\n");
  await server.waitFor(/hello from the socket/);
  const received = new Promise<string>((resolve) =>
    socket.once("data", (chunk: Buffer) => resolve(chunk.toString()))
  );
  server.send("hello from s_server\n");
  assert.equal(await received, "hello from s_server\n");
  assert.ok(socket.bytesRead >= 20);
  assert.equal(socket.bytesWritten, 22);

  // s_server dies without close_notify: a truncation is an 'error', never an 'end'.
  server.kill("SIGKILL");
  await closed(socket);
  assert.deepEqual(events, ["connect", "secureConnect", "error", "close"]);
  assert.equal(socket.readyState, "closed");
  finish();
});

test("toNodeSocket: the truncation error is the library's TlsError UNEXPECTED_EOF", async () => {
  await using server = await startOpensslServer({
    cert: pki.server.certPath,
    key: pki.server.keyPath,
    chain: pki.intermediateCa.certPath,
  });
  const conn = await connect({ hostname: "localhost", port: server.port, caCerts });
  const socket = toNodeSocket(conn);
  const { events, errors } = recordEvents(socket);
  socket.resume();
  await new Promise((resolve) => socket.once("secureConnect", resolve));
  server.kill("SIGKILL");
  await closed(socket);
  assert.deepEqual(events, ["connect", "secureConnect", "error", "close"]);
  assert.ok(errors[0] instanceof TlsError, String(errors[0]));
  assert.equal((errors[0] as TlsError).code, "UNEXPECTED_EOF");
  assert.equal(socket.destroyed, true);
  finish();
});

/** A listener whose connections go through toNodeSocket to `serve`; `body` gets the port. */
async function withSocketServer(
  serve: (conn: Connection) => void | Promise<void>,
  body: (port: number) => Promise<void>,
  extra: Parameters<typeof localServerOptions>[0] = {},
): Promise<void> {
  await using listener = listen(localServerOptions(extra));
  const served = (async () => {
    const conn = await listener.accept();
    await serve(conn);
  })();
  try {
    await body(listener.addr.port);
  } finally {
    await served;
  }
}

/** Node's `tls` client (this runtime's node:tls) to our listener. */
function nodeTlsClient(port: number, options: tls.ConnectionOptions = {}): tls.TLSSocket {
  return tls.connect({ host: "127.0.0.1", port, servername: "localhost", ca: caCerts, ...options });
}

test("toNodeSocket over a server connection with node:tls as the client: data, clean end", async () => {
  let serverEvents: string[] = [];
  let serverSide: NodeTlsSocket | null = null;
  await withSocketServer(
    async (conn) => {
      const socket = toNodeSocket(conn);
      serverSide = socket;
      serverEvents = recordEvents(socket).events;
      assert.equal(socket.servername, "localhost");
      assert.equal(socket.alpnProtocol, "echo");
      assert.equal(socket.authorized, false, "no client certificate was asked for");
      assert.equal(socket.authorizationError, "NO_PEER_CERTIFICATE");
      assert.deepEqual(socket.getPeerCertificate(), {});
      // Echo until the client's clean end, then end our side too (allowHalfOpen: false).
      socket.pipe(socket);
      await closed(socket);
    },
    async (port) => {
      const client = nodeTlsClient(port, { ALPNProtocols: ["echo"] });
      await new Promise((resolve, reject) => {
        client.once("secureConnect", resolve);
        client.once("error", reject);
      });
      let echoed = "";
      client.setEncoding("utf8");
      client.on("data", (chunk: string) => (echoed += chunk));
      const ended = new Promise((resolve) => client.once("end", resolve));
      const clientClosed = new Promise((resolve) => client.once("close", resolve));
      client.write("ping 1\n");
      client.end("ping 2\n");
      await ended; // our close_notify: Node reads a clean end
      assert.equal(echoed, "ping 1\nping 2\n");
      await clientClosed;
    },
    { alpnProtocols: ["echo"] },
  );
  // The server side saw the client's close_notify as 'end', finished, and closed; no error.
  assert.deepEqual(serverEvents, ["connect", "secureConnect", "end", "finish", "close"]);
  assert.equal(serverSide!.readyState, "closed");
  finish();
});

test("toNodeSocket: a client that resets is an 'error' (truncation), not an 'end'", async () => {
  let serverEvents: string[] = [];
  let serverErrors: unknown[] = [];
  await withSocketServer(
    async (conn) => {
      const socket = toNodeSocket(conn);
      ({ events: serverEvents, errors: serverErrors } = recordEvents(socket));
      socket.resume();
      await closed(socket);
    },
    async (port) => {
      // TLS over a TCP socket the test owns, so that it can reset that socket (TLSSocket's own
      // resetAndDestroy is refused by Node.js).
      const raw = net.connect({ host: "127.0.0.1", port });
      const client = tls.connect({ socket: raw, servername: "localhost", ca: caCerts });
      await new Promise((resolve) => client.once("secureConnect", resolve));
      client.write("bye");
      await new Promise((resolve) => setTimeout(resolve, 50));
      client.on("error", () => {});
      raw.on("error", () => {});
      if (typeof raw.resetAndDestroy === "function") raw.resetAndDestroy(); // RST
      else raw.destroy(); // FIN without close_notify: a truncation too
    },
  );
  await until("the server side to close", () => serverEvents.includes("close"));
  assert.deepEqual(serverEvents, ["connect", "secureConnect", "error", "close"]);
  assert.ok(serverErrors[0] instanceof TlsError, String(serverErrors[0]));
  assert.equal((serverErrors[0] as TlsError).code, "UNEXPECTED_EOF");
  finish();
});

test("toNodeSocket: destroy(error) emits 'error' then 'close', and the peer sees a truncation", async () => {
  let peerError: unknown = null;
  await withSocketServer(
    async (conn) => {
      // Our listener's side is read directly: a truncation, never a clean end of stream.
      await assert.rejects(
        async () => {
          const buf = new Uint8Array(1024);
          while ((await conn.read(buf)) !== null);
        },
        (error) => {
          peerError = error;
          return true;
        },
      );
      conn.close();
    },
    async (port) => {
      const conn = await connect({ hostname: "localhost", port, caCerts });
      const socket = toNodeSocket(conn);
      const { events, errors } = recordEvents(socket);
      await new Promise((resolve) => socket.once("secureConnect", resolve));
      const boom = new Error("boom");
      socket.destroy(boom);
      await closed(socket);
      assert.deepEqual(events, ["connect", "secureConnect", "error", "close"]);
      assert.equal(errors[0], boom);
      assert.equal(conn.closed, true);
    },
  );
  assert.ok(
    peerError instanceof TlsError && peerError.code === "UNEXPECTED_EOF",
    String(peerError),
  );
  finish();
});

test("toNodeSocket: end() sends close_notify after the data; the peer reads a clean end", async () => {
  let received = "";
  await withSocketServer(
    async (conn) => {
      // Read the raw connection: the data, then null (close_notify), not UNEXPECTED_EOF.
      const buf = new Uint8Array(64 * 1024);
      const dec = new TextDecoder();
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        received += dec.decode(buf.subarray(0, n), { stream: true });
      }
      await conn[Symbol.asyncDispose]();
    },
    async (port) => {
      const conn = await connect({ hostname: "localhost", port, caCerts });
      const socket = toNodeSocket(conn);
      const { events } = recordEvents(socket);
      socket.resume();
      socket.write("a".repeat(100_000));
      socket.end("END");
      await closed(socket);
      assert.deepEqual(events, ["connect", "secureConnect", "finish", "end", "close"]);
    },
  );
  assert.equal(received.length, 100_003);
  assert.ok(received.endsWith("aaaEND"));
  finish();
});

test(
  "toNodeSocket backpressure: a slow reader holds at most a bounded amount read ahead",
  async () => {
    const TOTAL = 8 * 1024 * 1024;
    const HWM = 16 * 1024;
    const payload = new Uint8Array(TOTAL);
    for (let i = 0; i < TOTAL; i++) payload[i] = (i * 7 + (i >> 13)) & 0xff;
    const expected = createHash("sha256").update(payload).digest("hex");
    await withSocketServer(
      async (conn) => {
        // Our server writes as fast as the client lets it, then closes cleanly.
        await conn.write(payload);
        await conn[Symbol.asyncDispose]();
      },
      async (port) => {
        const conn = await connect({ hostname: "localhost", port, caCerts });
        const socket = toNodeSocket(conn, { readableHighWaterMark: HWM });
        try {
          // A reader that asked for data once (read(0) starts the stream filling its buffer) and
          // then consumes nothing: whatever arrives waits in the socket's buffer.
          await new Promise((resolve) => socket.once("secureConnect", resolve));
          socket.read(0);
          let previous = -1;
          await until("the socket to stop reading", () => {
            const settled = socket.bytesRead === previous && socket.bytesRead > 0;
            previous = socket.bytesRead;
            return settled;
          });
          await new Promise((resolve) => setTimeout(resolve, 200));
          const readAhead = socket.bytesRead; // read from the connection, none consumed
          assert.equal(socket.readableLength, readAhead);
          assert.ok(
            readAhead <= HWM + NODE_SOCKET_READ_SIZE,
            `read ${readAhead} bytes ahead of a reader that consumed nothing`,
          );
          // Now a slow consumer: 64 KiB at a time, and the read-ahead stays bounded throughout.
          const hash = createHash("sha256");
          let consumed = 0;
          let maxAhead = readAhead;
          const ended = new Promise((resolve) => socket.once("end", resolve));
          while (consumed < TOTAL) {
            const chunk = socket.read(64 * 1024) ?? socket.read();
            if (chunk === null) {
              await new Promise((resolve) => socket.once("readable", resolve));
              continue;
            }
            hash.update(chunk);
            consumed += chunk.length;
            maxAhead = Math.max(maxAhead, socket.bytesRead - consumed);
            if ((consumed & 0xfffff) === 0) await new Promise((resolve) => setTimeout(resolve, 1));
          }
          assert.equal(socket.read(), null);
          await ended;
          assert.equal(consumed, TOTAL);
          assert.equal(hash.digest("hex"), expected);
          assert.ok(
            maxAhead <= HWM + NODE_SOCKET_READ_SIZE + 64 * 1024,
            `read ahead ${maxAhead} bytes`,
          );
          await closed(socket);
        } finally {
          socket.destroy(); // a failed assertion must not leave the server writing
        }
      },
    );
    finish();
  },
  { timeout: 60_000 },
);

test("toNodeSocket: setTimeout emits 'timeout' after idleness, and activity postpones it", async () => {
  await withSocketServer(
    async (conn) => {
      const socket = toNodeSocket(conn);
      socket.resume();
      await closed(socket);
    },
    async (port) => {
      const conn = await connect({ hostname: "localhost", port, caCerts });
      const socket = toNodeSocket(conn);
      const { events } = recordEvents(socket);
      socket.resume();
      await new Promise((resolve) => socket.once("secureConnect", resolve));
      const started = Date.now();
      let firedAt = 0;
      socket.setTimeout(300, () => (firedAt = Date.now()));
      assert.equal(socket.timeout, 300);
      // Writes every 100 ms for 600 ms keep it from firing.
      for (let i = 0; i < 6; i++) {
        socket.write("x");
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.equal(firedAt, 0, "activity postpones the timeout");
      await until("'timeout'", () => firedAt !== 0, 3_000);
      assert.ok(firedAt - started >= 800, `fired after ${firedAt - started} ms`);
      assert.equal(socket.destroyed, false, "'timeout' does not close the socket");
      assert.throws(() => socket.setTimeout(-1), RangeError);
      socket.setTimeout(0);
      assert.equal(socket.timeout, undefined);
      socket.end();
      await closed(socket);
      assert.deepEqual(events.filter((e) => e === "timeout"), ["timeout"]);
    },
  );
  finish();
});

test("toNodeSocket refuses what is not a Connection, and bad options", () => {
  assert.throws(() => toNodeSocket(null as never), TypeError);
  assert.throws(() => toNodeSocket({} as never), TypeError);
  const fake = { read() {}, handshake() {} } as unknown as Connection;
  assert.throws(() => toNodeSocket(fake, { readableHighWaterMark: -1 }), RangeError);
  assert.throws(() => toNodeSocket(fake, { allowHalfOpen: "yes" as never }), TypeError);
});
