/**
 * `node:http` and `node:http2` servers over our own `listen()` (`serveHttp()`), with client
 * certificates required, answering real clients: `curl` (OpenSSL, HTTP/1.1 and HTTP/2), and
 * undici's `fetch` through `tlsConnector()` (HTTP/1.1 and HTTP/2, the client certificate picked
 * by `onClientCertificate`).
 *
 * @module
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import http from "node:http";
import http2 from "node:http2";
import { Agent, fetch } from "undici/index.js";
import {
  type Connection,
  listen,
  type ListenOptions,
  type NodeTlsSocket,
  serveHttp,
  tlsConnector,
  TlsError,
} from "../mod.ts";
import { test } from "./harness.ts";
import { sharedTestPki } from "./support/pki.ts";
import { localServerOptions, until } from "./support/listener.ts";
import { clearCacheAndAssertNoLeaks } from "./support/leaks.ts";

const pki = sharedTestPki();
const caCerts = [pki.rootCa.cert];

/** Who the server says the client is: the protocol and the client certificate's CN. */
function whoAmI(socket: NodeTlsSocket, httpVersion: string, path: string): string {
  const cert = socket.getPeerCertificate();
  const cn = cert !== null && "subject" in cert ? cert.subject.CN : "nobody";
  return `HTTP/${httpVersion} ${path} ${socket.alpnProtocol} ${cn} authorized=${socket.authorized}`;
}

/**
 * The NodeTlsSocket under an HTTP/2 session. Node.js runs HTTP/2 over a socket without a native
 * handle through its internal JSStreamSocket wrapper, so `session.socket` is that wrapper and
 * ours is its `stream`; Deno and Bun hand out ours directly.
 */
function h2Socket(session: http2.Http2Session): NodeTlsSocket {
  const socket = session.socket as unknown as { stream?: unknown };
  return (socket.stream ?? socket) as NodeTlsSocket;
}

/** An HTTP/1.1 server and an HTTP/2 server behind one listener, picked by ALPN. */
async function withHttpServers(
  options: Partial<ListenOptions>,
  body: (port: number, errors: TlsError[]) => Promise<void>,
): Promise<void> {
  const h1 = http.createServer((req, res) => {
    res.end(whoAmI(req.socket as unknown as NodeTlsSocket, req.httpVersion, req.url ?? ""));
  });
  const h2 = http2.createServer();
  h2.on("stream", (stream, headers) => {
    stream.on("error", () => {}); // a client that goes away mid-stream is not this test's business
    stream.resume(); // the request body, if any
    stream.respond({ ":status": 200 });
    stream.end(whoAmI(h2Socket(stream.session!), "2.0", headers[":path"] ?? ""));
  });
  const errors: TlsError[] = [];
  const listener = listen(localServerOptions({
    alpnProtocols: ["h2", "http/1.1"],
    onError: (error) => errors.push(error),
    ...options,
  }));
  const serving = serveHttp(listener, (conn: Connection) => conn.alpnProtocol === "h2" ? h2 : h1);
  try {
    await body(listener.addr.port, errors);
  } finally {
    listener.close();
    h1.closeAllConnections();
    await new Promise((resolve) => h1.close(resolve));
    await new Promise((resolve) => h2.close(resolve));
    await serving;
  }
  // Sockets the servers destroyed close their connections a moment later.
  await until("no live native objects", () => {
    try {
      clearCacheAndAssertNoLeaks();
      return true;
    } catch {
      return false;
    }
  });
}

/** Runs curl against localhost:port (resolved to 127.0.0.1); resolves with its status and output. */
function curl(
  port: number,
  path: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      "curl",
      [
        "-sS",
        "--max-time",
        "10",
        "--cacert",
        pki.rootCaPath,
        "--resolve",
        `localhost:${port}:127.0.0.1`,
        ...args,
        `https://localhost:${port}${path}`,
      ],
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

const requireClientCert: Partial<ListenOptions> = { requestClientCert: "require", caCerts };
const clientCertArgs = ["--cert", pki.clientChainPath, "--key", pki.client.keyPath];

test("https over listen(): curl with a client certificate, HTTP/1.1 and HTTP/2", async () => {
  await withHttpServers(requireClientCert, async (port) => {
    const h1 = await curl(port, "/one", ["--http1.1", ...clientCertArgs]);
    assert.equal(h1.code, 0, h1.stderr);
    assert.equal(h1.stdout, "HTTP/1.1 /one http/1.1 test-client authorized=true");
    const h2 = await curl(port, "/two", ["--http2", ...clientCertArgs]);
    assert.equal(h2.code, 0, h2.stderr);
    assert.equal(h2.stdout, "HTTP/2.0 /two h2 test-client authorized=true");
  });
});

test("https over listen(): curl without a client certificate is refused in the handshake", async () => {
  await withHttpServers(requireClientCert, async (port, errors) => {
    const result = await curl(port, "/", ["--http1.1"]);
    assert.notEqual(result.code, 0, result.stdout);
    await until("the listener's onError", () => errors.length === 1);
    assert.equal(errors[0]!.code, "HANDSHAKE_FAILED", errors[0]!.message);
  });
});

test("undici fetch through tlsConnector: HTTP/1.1 and HTTP/2 with onClientCertificate", async () => {
  await withHttpServers(requireClientCert, async (port) => {
    const asked: string[][] = [];
    const connect = tlsConnector({
      caCerts,
      onClientCertificate: (request) => {
        asked.push(request.acceptableIssuers.map((name) => name.name));
        return { cert: pki.clientChainPem, key: pki.client.key };
      },
    });
    const h1 = new Agent({ allowH2: false, connect });
    const h2 = new Agent({ allowH2: true, connect });
    try {
      const one = await fetch(`https://localhost:${port}/one`, { dispatcher: h1 });
      assert.equal(await one.text(), "HTTP/1.1 /one http/1.1 test-client authorized=true");
      const two = await fetch(`https://localhost:${port}/two`, { dispatcher: h2 });
      assert.equal(await two.text(), "HTTP/2.0 /two h2 test-client authorized=true");
      // A POST with a body over the same HTTP/2 session.
      const three = await fetch(`https://localhost:${port}/three`, {
        dispatcher: h2,
        method: "POST",
        body: "x".repeat(100_000),
      });
      assert.equal(three.status, 200);
      await three.text();
      assert.equal(asked.length, 2, "one handshake per agent, each asked for a certificate");
    } finally {
      await h1.close();
      await h2.close();
    }
  });
});

test("undici fetch through tlsConnector: an untrusted server fails with CERT_VERIFY_FAILED", async () => {
  await withHttpServers({}, async (port) => {
    const agent = new Agent({ connect: tlsConnector({ caCerts: [pki.otherRootCa.cert] }) });
    try {
      await assert.rejects(fetch(`https://localhost:${port}/`, { dispatcher: agent }), (error) => {
        const cause = (error as { cause?: unknown }).cause;
        assert.ok(cause instanceof TlsError, String(cause));
        assert.equal(cause.code, "CERT_VERIFY_FAILED");
        return true;
      });
    } finally {
      await agent.close();
    }
  });
});

test("tlsConnector refuses http: origins, proxies' httpSocket, and hostname/port options", async () => {
  assert.throws(() => tlsConnector({ hostname: "x" } as never), TypeError);
  assert.throws(() => tlsConnector({ port: 1 } as never), TypeError);
  assert.throws(() => tlsConnector({ readableHighWaterMark: -1 }), RangeError);
  const connect = tlsConnector({ caCerts });
  const refused = (options: Parameters<typeof connect>[0]) =>
    new Promise<Error | null>((resolve) => connect(options, (error, _socket) => resolve(error)));
  const plain = await refused({ hostname: "localhost", protocol: "http:", port: "80" });
  assert.ok(plain instanceof TypeError && /https: origins only/.test(plain.message));
  const tunnel = await refused({
    hostname: "localhost",
    protocol: "https:",
    port: "",
    httpSocket: {},
  });
  assert.ok(tunnel instanceof TypeError && /httpSocket/.test(tunnel.message));
});

test("serveHttp refuses what is not a listener or a server", () => {
  const server = http.createServer();
  assert.throws(() => serveHttp(null as never, server), TypeError);
  assert.throws(() => serveHttp([] as never, server), TypeError);
  const listener = (async function* () {})();
  assert.throws(() => serveHttp(listener, {} as never), TypeError);
  assert.throws(() => serveHttp(listener, server, { onError: 1 as never }), TypeError);
});
