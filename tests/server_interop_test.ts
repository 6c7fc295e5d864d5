/**
 * Our server (`listen()`) against real TLS clients, the interoperability matrix of issue #6:
 * `openssl s_client` (TLS 1.2 / 1.3, SNI, ALPN), `gnutls-cli`, Node's `tls.connect`, Bun's
 * `node:tls`, `Deno.connectTls`, and this library's own client on the other runtime (and the
 * reverse: our client here against our server on the other runtime). Plus misbehaving clients
 * next to a good one, and 200 concurrent clients.
 *
 * Every server runs in this process on 127.0.0.1, port 0, with `pki.server` (leaf +
 * intermediate); clients send SNI `localhost` and trust only the root. The echo convention: the
 * client sends one line, the server answers `echo:<line>`, then close_notify and close.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, type Connection, type ListenOptions } from "../mod.ts";
import { runtime, test } from "./harness.ts";
import { sharedTestPki } from "./support/pki.ts";
import { startGnutlsServer } from "./support/gnutls_peer.ts";
import {
  denoConnectTlsClient,
  gnutlsClient,
  libraryClient,
  opensslClient,
  otherRuntime,
  parseOpensslClient,
  parseScriptClient,
  scriptClient,
  startLibraryServer,
} from "./support/clients.ts";
import { type RawClient, type RawClientBehaviour, startRawClient } from "./support/raw_peers.ts";
import { clearCacheAndAssertNoLeaks } from "./support/leaks.ts";
import { type EchoServer, until, withEchoServer } from "./support/listener.ts";

const pki = sharedTestPki();
const text = (s: string) => new TextEncoder().encode(s);
const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** What our server records of one accepted client (plus the line it received). */
const describe = (conn: Connection) => ({
  protocol: conn.protocol,
  cipher: conn.cipher,
  alpn: conn.alpnProtocol,
  servername: conn.servername,
  peerSubject: conn.peerCertificate?.subject ?? null,
});

/**
 * Runs `body` against an echo server listening on 127.0.0.1:0 with `pki.server`; closes the
 * listener, waits for every echo task, kills every client child, and checks for leaks.
 */
function withServer(
  options: Partial<ListenOptions>,
  body: (server: EchoServer<ReturnType<typeof describe>>) => Promise<void>,
): Promise<void> {
  return withEchoServer(options, describe, body);
}

// ---- 1. openssl s_client: versions, SNI, ALPN ----------------------------------------------

for (const version of ["1.3", "1.2"] as const) {
  test(
    `s_client -tls${version}: handshake, echo, both sides agree on version and cipher`,
    async () => {
      await withServer({}, async (server) => {
        const client = opensslClient({
          port: server.port,
          caFile: pki.rootCaPath,
          tls: version,
          input: `ping s_client ${version}\n`,
        });
        const result = await client.result;
        const report = parseOpensslClient(result);
        assert.equal(report.code, 0, result.stderr);
        assert.equal(report.protocol, `TLSv${version}`);
        assert.equal(report.verifyCode, 0, "s_client verified our chain against the root");
        assert.match(
          result.stdout,
          new RegExp(`echo:ping s_client ${version.replace(".", "\\.")}`),
        );
        await server.waitForSeen(1);
        const [seen] = server.seen;
        assert.equal(seen!.protocol, `TLSv${version}`);
        assert.equal(seen!.cipher, report.cipher);
        assert.equal(seen!.servername, "localhost");
        assert.equal(seen!.peerSubject, null, "no client certificate was asked for");
        assert.equal(seen!.received, `ping s_client ${version}\n`);
        assert.deepEqual(server.errors, []);
      });
    },
    { timeout: 20_000 },
  );
}

test("s_client -servername other.example: conn.servername is the client's SNI", async () => {
  await withServer({}, async (server) => {
    const client = opensslClient({
      port: server.port,
      caFile: pki.rootCaPath,
      servername: "other.example",
      input: "ping sni\n",
    });
    const result = await client.result;
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /echo:ping sni/);
    await server.waitForSeen(1);
    assert.equal(server.seen[0]!.servername, "other.example");
  });
});

test("s_client -noservername: conn.servername is null", async () => {
  await withServer({}, async (server) => {
    const client = opensslClient({
      port: server.port,
      caFile: pki.rootCaPath,
      input: "ping nosni\n",
      noServername: true,
    });
    const result = await client.result;
    assert.equal(result.code, 0, result.stderr);
    await server.waitForSeen(1);
    assert.equal(server.seen[0]!.servername, null);
  });
});

test("s_client ALPN: the server's preference wins (http/1.1 over h2)", async () => {
  await withServer({ alpnProtocols: ["http/1.1", "h2"] }, async (server) => {
    for (const version of ["1.3", "1.2"] as const) {
      const client = opensslClient({
        port: server.port,
        caFile: pki.rootCaPath,
        tls: version,
        alpn: ["h2", "http/1.1"],
        input: "ping alpn\n",
      });
      const result = await client.result;
      const report = parseOpensslClient(result);
      assert.equal(report.code, 0, result.stderr);
      assert.equal(report.alpn, "http/1.1");
      assert.match(result.stdout, /echo:ping alpn/);
    }
    // A client offering no ALPN at all is accepted without one.
    const plain = opensslClient({ port: server.port, caFile: pki.rootCaPath, input: "ping\n" });
    const plainResult = await plain.result;
    assert.equal(plainResult.code, 0, plainResult.stderr);
    assert.match(plainResult.stdout, /No ALPN negotiated/);
    await server.waitForSeen(3);
    assert.deepEqual(server.seen.map((s) => s.alpn), ["http/1.1", "http/1.1", null]);
  });
});

test("s_client ALPN with no overlap: alert 120 to the client, TlsError to onError", async () => {
  await withServer({ alpnProtocols: ["http/1.1", "h2"] }, async (server) => {
    for (const version of ["1.3", "1.2"] as const) {
      const before = server.errors.length;
      const client = opensslClient({
        port: server.port,
        caFile: pki.rootCaPath,
        tls: version,
        alpn: ["h3", "spdy/3"],
        input: "ping\n",
      });
      const result = await client.result;
      const report = parseOpensslClient(result);
      assert.notEqual(report.code, 0);
      assert.deepEqual(report.alerts.map((a) => a.number), [120], result.stderr);
      assert.match(report.alerts[0]!.text, /no application protocol/);
      await server.waitForErrors(before + 1);
      const error = server.errors[before]!;
      assert.equal(error.code, "HANDSHAKE_FAILED", error.message);
      assert.match(error.message, /no application protocol|alpn/i);
    }
    assert.equal(server.seen.length, 0);
  });
});

test("s_client ALPN with a server selection function: called with the client's offers", async () => {
  const offers: string[][] = [];
  await withServer({
    alpnProtocols: (offered) => {
      offers.push([...offered]);
      return offered.includes("h2") ? "h2" : null;
    },
  }, async (server) => {
    const client = opensslClient({
      port: server.port,
      caFile: pki.rootCaPath,
      alpn: ["http/1.1", "h2"],
      input: "ping fn\n",
    });
    const result = await client.result;
    assert.equal(parseOpensslClient(result).alpn, "h2", result.stderr);
    await server.waitForSeen(1);
    assert.equal(server.seen[0]!.alpn, "h2");
    assert.deepEqual(offers, [["http/1.1", "h2"]]);
  });
});

// ---- 2. gnutls-cli ----------------------------------------------------------------------------

for (const version of ["1.3", "1.2"] as const) {
  test(`gnutls-cli TLS ${version}: handshake and echo`, async () => {
    await withServer({ alpnProtocols: ["http/1.1", "h2"] }, async (server) => {
      const client = gnutlsClient({
        port: server.port,
        caFile: pki.rootCaPath,
        tls: version,
        alpn: ["h2"],
      });
      await client.waitFor(/Handshake was completed/);
      client.write(`ping gnutls ${version}\n`);
      await client.waitFor(new RegExp(`echo:ping gnutls ${version.replace(".", "\\.")}`));
      client.end();
      await client.result;
      assert.match(client.output(), new RegExp(`\\(TLS${version.replace(".", "\\.")}`));
      assert.match(client.output(), /Application protocol: h2/);
      await server.waitForSeen(1);
      assert.equal(server.seen[0]!.protocol, `TLSv${version}`);
      assert.equal(server.seen[0]!.servername, "localhost");
      assert.equal(server.seen[0]!.alpn, "h2");
      assert.equal(server.seen[0]!.received, `ping gnutls ${version}\n`);
    });
  });
}

// ---- 3. Node tls, Bun node:tls, Deno.connectTls ---------------------------------------------

for (const which of ["node", "bun"] as const) {
  test(`${which} node:tls client: handshake, echo, ALPN, both TLS versions`, async () => {
    await withServer({ alpnProtocols: ["http/1.1", "h2"] }, async (server) => {
      for (const maxVersion of ["TLSv1.3", "TLSv1.2"] as const) {
        const client = scriptClient(which, {
          port: server.port,
          caFile: pki.rootCaPath,
          alpn: ["h2", "http/1.1"],
          input: `ping ${which} ${maxVersion}\n`,
          maxVersion,
        });
        const report = parseScriptClient(await client.result);
        assert.equal(report.ok, true, JSON.stringify(report));
        assert.equal(report.protocol, maxVersion);
        assert.equal(report.alpn, "http/1.1");
        assert.equal(report.authorized, true);
        assert.equal(report.received, `echo:ping ${which} ${maxVersion}\n`);
      }
      await server.waitForSeen(2);
      assert.deepEqual(server.seen.map((s) => s.protocol), ["TLSv1.3", "TLSv1.2"]);
      assert.deepEqual(server.seen.map((s) => s.servername), ["localhost", "localhost"]);
      assert.deepEqual(server.seen.map((s) => s.alpn), ["http/1.1", "http/1.1"]);
    });
  }, { timeout: 30_000 });
}

test("Deno.connectTls client (a Deno child process): handshake, echo, ALPN", async () => {
  await withServer({ alpnProtocols: ["http/1.1", "h2"] }, async (server) => {
    const client = denoConnectTlsClient({
      port: server.port,
      caFile: pki.rootCaPath,
      alpn: ["h2", "http/1.1"],
      input: "ping deno\n",
    });
    const report = parseScriptClient(await client.result);
    assert.equal(report.ok, true, JSON.stringify(report));
    assert.equal(report.alpn, "http/1.1");
    assert.equal(report.received, "echo:ping deno\n");
    await server.waitForSeen(1);
    assert.equal(server.seen[0]!.protocol, "TLSv1.3");
    assert.equal(server.seen[0]!.servername, "localhost");
    assert.equal(server.seen[0]!.alpn, "http/1.1");
  });
}, { timeout: 30_000 });

// ---- 4. our client and our server across runtimes ---------------------------------------------

test(`our client on ${otherRuntime()} against our server on ${runtime}`, async () => {
  await withServer({ alpnProtocols: ["http/1.1", "h2"] }, async (server) => {
    const ciphers: string[] = [];
    for (const maxVersion of ["TLSv1.3", "TLSv1.2"] as const) {
      const client = libraryClient(otherRuntime(), {
        port: server.port,
        caFile: pki.rootCaPath,
        alpn: ["h2", "http/1.1"],
        input: `ping ${otherRuntime()} ${maxVersion}\n`,
        maxVersion,
      });
      const report = parseScriptClient(await client.result);
      assert.equal(report.ok, true, JSON.stringify(report));
      assert.equal(report.runtime, otherRuntime());
      assert.equal(report.protocol, maxVersion);
      assert.equal(report.alpn, "http/1.1");
      assert.equal(report.peerSubject, "CN=localhost,O=libssl-ffi tests");
      assert.equal(report.received, `echo:ping ${otherRuntime()} ${maxVersion}\n`);
      ciphers.push(String(report.cipher));
    }
    await server.waitForSeen(2);
    assert.deepEqual(server.seen.map((s) => s.protocol), ["TLSv1.3", "TLSv1.2"]);
    assert.deepEqual(server.seen.map((s) => s.cipher), ciphers);
    assert.deepEqual(server.seen.map((s) => s.alpn), ["http/1.1", "http/1.1"]);
  });
}, { timeout: 40_000 });

test(
  `our client on ${runtime} against our server on ${otherRuntime()} (with a client certificate)`,
  async () => {
    const peer = await startLibraryServer(otherRuntime(), {
      cert: pki.server.chainPath,
      key: pki.server.keyPath,
      ca: pki.rootCaPath,
      requestClientCert: "require",
      alpn: ["http/1.1", "h2"],
    });
    try {
      for (const maxVersion of ["TLSv1.3", "TLSv1.2"] as const) {
        const conn = await connect({
          hostname: "127.0.0.1",
          port: peer.port,
          servername: "localhost",
          caCerts: [pki.rootCa.cert],
          alpnProtocols: ["h2", "http/1.1"],
          cert: pki.client.chainPem,
          key: pki.client.key,
          maxVersion,
        });
        try {
          assert.equal(conn.protocol, maxVersion);
          assert.equal(conn.alpnProtocol, "http/1.1");
          assert.equal(conn.peerCertificate?.subject, "CN=localhost,O=libssl-ffi tests");
          await conn.write(text(`ping ${runtime}\n`));
          let got = "";
          const buf = new Uint8Array(1024);
          for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
            got += new TextDecoder().decode(buf.subarray(0, n));
          }
          assert.equal(got, `echo:ping ${runtime}\n`);
        } finally {
          conn.close();
        }
      }
      // Its stdout pipe may lag behind the TLS data it sent: wait for both lines.
      const acceptedLines = () => [...peer.process.stdout().matchAll(/^ACCEPTED (\{.*\})$/gm)];
      await until("two ACCEPTED lines", () => acceptedLines().length >= 2, 5_000).catch(() => {});
      const accepted = acceptedLines().map((m) => JSON.parse(m[1]!) as Record<string, unknown>);
      assert.equal(accepted.length, 2, peer.process.output());
      for (const [i, a] of accepted.entries()) {
        assert.equal(a.runtime, otherRuntime());
        assert.equal(a.protocol, i === 0 ? "TLSv1.3" : "TLSv1.2");
        assert.equal(a.servername, "localhost");
        assert.equal(a.alpn, "http/1.1");
        assert.equal(a.peerSubject, "CN=test-client,O=libssl-ffi tests");
      }
      assert.doesNotMatch(peer.process.stdout(), /HANDSHAKEERROR|CONNERROR/);
    } finally {
      const result = await peer.stop();
      assert.equal(result.code, 0, result.stderr);
    }
    clearCacheAndAssertNoLeaks();
  },
  { timeout: 40_000 },
);

// ---- 5. our client against gnutls-serv: ALPN (versions/echo/client certs: connect_test.ts) ---

test("our client against gnutls-serv --alpn: the negotiated protocol is reported", async () => {
  const server = await startGnutlsServer({
    cert: pki.serverChainPath,
    key: pki.server.keyPath,
    alpn: ["http/1.1"],
    echo: true,
  });
  try {
    const conn = await connect({
      hostname: "127.0.0.1",
      port: server.port,
      servername: "localhost",
      caCerts: [pki.rootCa.cert],
      alpnProtocols: ["h2", "http/1.1"],
    });
    try {
      assert.equal(conn.alpnProtocol, "http/1.1");
      await conn.write(text("ping\n"));
      const buf = new Uint8Array(64);
      const n = await conn.read(buf);
      assert.equal(new TextDecoder().decode(buf.subarray(0, n ?? 0)), "ping\n");
    } finally {
      conn.close();
    }
  } finally {
    await server.stop();
  }
  clearCacheAndAssertNoLeaks();
});

// ---- 7. misbehaving clients next to a good one ------------------------------------------------

/** Our own client, in process: handshake + one echo. */
async function goodClient(port: number, label: string): Promise<void> {
  const conn = await connect({
    hostname: "127.0.0.1",
    port,
    servername: "localhost",
    caCerts: [pki.rootCa.cert],
  });
  try {
    await conn.write(text(`ping ${label}\n`));
    let got = "";
    const buf = new Uint8Array(256);
    for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
      got += new TextDecoder().decode(buf.subarray(0, n));
    }
    assert.equal(got, `echo:ping ${label}\n`);
  } finally {
    conn.close();
  }
}

const MISBEHAVIOURS: {
  behaviour: RawClientBehaviour;
  /** The codes onError may give (what OpenSSL reports for it). */
  codes: string[];
  message?: RegExp;
}[] = [
  { behaviour: "silent", codes: ["TIMEOUT"], message: /500 ms/ },
  { behaviour: "garbage", codes: ["HANDSHAKE_FAILED"], message: /wrong version number/ },
  { behaviour: "http", codes: ["HANDSHAKE_FAILED"], message: /http request/ },
  { behaviour: "reset", codes: ["UNEXPECTED_EOF"], message: /reset/ },
];

for (const { behaviour, codes, message } of MISBEHAVIOURS) {
  test(
    `a client that ${
      behaviour === "silent"
        ? "sends nothing"
        : behaviour === "reset"
        ? "connects and resets"
        : `sends ${behaviour}`
    }: onError ${codes.join("/")}, a good client is served meanwhile`,
    async () => {
      await withServer({ handshakeTimeout: 500 }, async (server) => {
        let raw: RawClient | null = null;
        try {
          const startedAt = Date.now();
          raw = await startRawClient(server.port, behaviour);
          // A good client at the same time completes at once (not after the bad one's timeout).
          await goodClient(server.port, "meanwhile");
          if (behaviour === "silent") {
            assert.ok(Date.now() - startedAt < 450, "the good client did not wait for the timeout");
          }
          await server.waitForErrors(1);
          const error = server.errors[0]!;
          assert.ok(codes.includes(error.code), `${error.code}: ${error.message}`);
          if (message !== undefined) assert.match(error.message, message);
          if (behaviour === "silent") {
            assert.ok(Date.now() - startedAt >= 450, "timed out no earlier than handshakeTimeout");
          }
          if (behaviour !== "reset") {
            // The server drops the connection (after an alert where TLS allows one).
            await Promise.race([
              raw.closed,
              delay(3_000).then(() => assert.fail("the server never closed the bad connection")),
            ]);
            assert.ok(raw.closedByServer());
          }
          // And goes on serving.
          await goodClient(server.port, "after");
          assert.equal(server.seen.length, 2);
          assert.equal(server.errors.length, 1, server.errors.map((e) => e.message).join("; "));
        } finally {
          await raw?.stop();
        }
      });
    },
    { timeout: 15_000 },
  );
}

// ---- 200 concurrent clients -------------------------------------------------------------------

test("200 concurrent clients (our connect(), in process) all handshake and echo", async () => {
  const COUNT = 200;
  await withServer({}, async (server) => {
    const results = await Promise.allSettled(
      Array.from({ length: COUNT }, (_, i) => goodClient(server.port, `client ${i}`)),
    );
    const failed = results.flatMap((r, i) =>
      r.status === "rejected" ? [`${i}: ${String(r.reason)}`] : []
    );
    assert.deepEqual(failed.slice(0, 5), [], `${failed.length} clients failed`);
    await server.waitForSeen(COUNT);
    assert.equal(new Set(server.seen.map((s) => s.received)).size, COUNT);
    assert.deepEqual(server.errors, []);
  });
}, { timeout: 60_000 });
