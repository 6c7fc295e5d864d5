/**
 * TLS 1.3 post-handshake client authentication, against real peers:
 *
 * - our server (`conn.requestClientCertificate()`) against `openssl s_client -enable_pha`, with
 *   and without a certificate, with `require` on and off, without `-enable_pha`, on TLS 1.2;
 * - our client (`postHandshakeAuth: true`) against `openssl s_server`, where the test types `c`
 *   on its stdin (a post-handshake CertificateRequest) and s_server's verify trace must show the
 *   client's certificate: a static `cert`/`key`, an async `onClientCertificate`, none;
 * - our client against our server: two requests in a row, data the client sent while a request
 *   was in flight kept in order, a user read pending during the request, a request the client
 *   does not answer in time (and answers late), a refusal, an untrusted certificate, close.
 *
 * Data flows both ways after every successful request. Every test ends leak-checked.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  connect,
  type Connection,
  type ConnectOptions,
  listen,
  type ListenOptions,
  type NetAddr,
  TlsError,
  type TlsErrorCode,
  type TlsListener,
} from "../mod.ts";
import { test } from "./harness.ts";
import { type ClientProcess, spawnClient, stopAllClients } from "./support/clients.ts";
import { clearCacheAndAssertNoLeaks } from "./support/leaks.ts";
import { localClientOptions, localServerOptions, until } from "./support/listener.ts";
import { handshakePair, makePair, readAll, transfer } from "./support/memory_pair.ts";
import { startOpensslServer } from "./support/openssl_peer.ts";
import { sharedTestPki } from "./support/pki.ts";

const pki = sharedTestPki();
const CLIENT_SUBJECT = "CN=test-client,O=libssl-ffi tests";
const text = (s: string) => new TextEncoder().encode(s);
const decoder = new TextDecoder();

/** Our server trusting the test root for client certificates (none asked in the handshake). */
async function withServer(
  body: (server: TlsListener) => Promise<void>,
  extra: Partial<ListenOptions> = {},
): Promise<void> {
  const server = listen(localServerOptions({ caCerts: [pki.rootCa.cert], ...extra }));
  try {
    await body(server);
  } finally {
    await server[Symbol.asyncDispose]();
    await stopAllClients();
  }
  clearCacheAndAssertNoLeaks();
}

/** Reads until `expected` bytes of text arrived (or the end). */
async function readText(conn: Connection, until: string): Promise<string> {
  const buf = new Uint8Array(4096);
  let got = "";
  while (!got.includes(until)) {
    const n = await conn.read(buf);
    if (n === null) break;
    got += decoder.decode(buf.subarray(0, n), { stream: true });
  }
  return got;
}

function isTlsError(code: TlsErrorCode, message?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof TlsError, String(e));
    assert.equal(e.code, code, e.message);
    if (message !== undefined) assert.match(e.message, message);
    return true;
  };
}

/**
 * `openssl s_client` (TLS 1.3 unless told), sending `ping` at once, its stdin kept open: after a
 * post-handshake request OpenSSL 3.0's s_client shows what arrives only once its stdin had
 * something to send again (tests type a line first), as it does against `s_server` too.
 */
function sClient(port: number, args: string[], opts: { cert?: boolean; tls?: "1.2" | "1.3" } = {}) {
  return spawnClient("openssl", [
    "s_client",
    "-connect",
    `127.0.0.1:${port}`,
    "-servername",
    "localhost",
    "-CAfile",
    pki.rootCaPath,
    "-verify_return_error",
    "-ign_eof",
    "-nocommands",
    opts.tls === "1.2" ? "-tls1_2" : "-tls1_3",
    ...(opts.cert === true ? ["-cert", pki.client.certPath, "-key", pki.client.keyPath] : []),
    ...(opts.cert === true ? ["-cert_chain", pki.intermediateCa.certPath] : []),
    ...args,
  ], { input: "ping\n", endInput: false });
}

/** After a request: s_client types `after`, our server reads both lines and answers. */
async function bothWays(conn: Connection, client: ClientProcess): Promise<void> {
  assert.equal(await readText(conn, "ping\n"), "ping\n"); // sent before or during the request
  client.write("after\n");
  assert.equal(await readText(conn, "after\n"), "after\n");
  await conn.write(text("echo:after\n"));
  await client.waitFor(/echo:after/);
}

// ---- our server, openssl s_client ---------------------------------------------------------------

test("server: s_client -enable_pha with a certificate: resolves to it, data both ways", async () => {
  await withServer(async (server) => {
    const client = sClient(server.addr.port, ["-enable_pha"], { cert: true });
    const conn = await server.accept();
    try {
      const cert = await conn.requestClientCertificate();
      assert.equal(cert?.subject, CLIENT_SUBJECT);
      assert.equal(cert?.issuer, "CN=libssl-ffi Test Intermediate CA,O=libssl-ffi tests");
      // The handshake's, first read only now (the connection copies it out of OpenSSL on first
      // use): none was asked for in the handshake; the request's is what it resolved to.
      assert.equal(conn.peerCertificate, null);
      assert.deepEqual(conn.peerCertificateChain, []);
      // The line s_client sent at once (before or while it answered) is kept, in order.
      await bothWays(conn, client);
    } finally {
      conn.close();
    }
  });
});

test("server: s_client -enable_pha without a certificate: HANDSHAKE_FAILED, the client gets 116", async () => {
  await withServer(async (server) => {
    const client = sClient(server.addr.port, ["-enable_pha"]);
    const conn = await server.accept();
    try {
      await assert.rejects(
        conn.requestClientCertificate(),
        isTlsError("HANDSHAKE_FAILED", /without a certificate.*certificate_required \(116\)/),
      );
      assert.equal(conn.closed, true); // the connection is over
      await assert.rejects(conn.read(new Uint8Array(10)), isTlsError("CLOSED"));
      await client.waitFor(/alert certificate required[^\n]*SSL alert number 116/);
    } finally {
      conn.close();
    }
  });
});

test("server: require: false accepts a client without a certificate (null), data both ways", async () => {
  await withServer(async (server) => {
    const client = sClient(server.addr.port, ["-enable_pha"]);
    const conn = await server.accept();
    try {
      assert.equal(await conn.requestClientCertificate({ require: false }), null);
      await bothWays(conn, client);
    } finally {
      conn.close();
    }
  });
});

test("server: a client without -enable_pha, and TLS 1.2: NOT_SUPPORTED, the connection goes on", async () => {
  await withServer(async (server) => {
    for (
      const [args, tls, message] of [
        [[], "1.3", /did not offer post-handshake authentication/],
        [["-enable_pha"], "1.2", /needs TLS 1\.3/],
      ] as const
    ) {
      const client = sClient(server.addr.port, [...args], { cert: true, tls });
      const conn = await server.accept();
      try {
        assert.equal(conn.protocol, tls === "1.3" ? "TLSv1.3" : "TLSv1.2");
        await assert.rejects(conn.requestClientCertificate(), isTlsError("NOT_SUPPORTED", message));
        await bothWays(conn, client);
      } finally {
        conn.close();
      }
      await client.stop();
    }
  });
});

// ---- our client, openssl s_server ---------------------------------------------------------------

test(
  "client: s_server's `c` gets our certificate (static cert, async onClientCertificate, none)",
  async () => {
    for (const mode of ["static", "callback", "none"] as const) {
      const server = await startOpensslServer({
        cert: pki.server.certPath,
        key: pki.server.keyPath,
        chain: pki.intermediateCa.certPath,
        caFile: pki.rootCaPath,
        tls: "1.3",
      });
      const issuersSeen: string[][] = [];
      const options: ConnectOptions = {
        ...localClientOptions(server.port),
        postHandshakeAuth: true,
        ...(mode === "static" ? { cert: pki.client.chainPem, key: pki.client.key } : {}),
        ...(mode === "callback"
          ? {
            onClientCertificate: async (request) => {
              issuersSeen.push(request.acceptableIssuers.map((i) => i.name));
              await new Promise((r) => setTimeout(r, 50));
              return { cert: pki.client.chainPem, key: pki.client.key };
            },
          }
          : {}),
      };
      const conn = await connect(options);
      try {
        await server.waitFor(/CIPHER is/);
        assert.doesNotMatch(server.output(), /test-client/); // nothing asked in the handshake
        const buf = new Uint8Array(256);
        const reading = conn.read(buf); // the request is answered inside this read
        server.send("c\n");
        await server.waitFor(/SSL_do_handshake -> 1/);
        if (mode === "none") {
          await new Promise((r) => setTimeout(r, 300));
        } else {
          // s_server's verify callback prints each certificate of what the client sent.
          await server.waitFor(/depth=0 [^\n]*CN ?= ?test-client/); // 3.5+ prints "CN=x"
        }
        server.send("from s_server\n");
        const n = await reading;
        assert.equal(decoder.decode(buf.subarray(0, n ?? 0)), "from s_server\n");
        await conn.write(text("from our client\n"));
        await server.waitFor(/from our client/);
        if (mode === "none") assert.doesNotMatch(server.output(), /test-client/);
        if (mode === "callback") {
          assert.deepEqual(issuersSeen, [["CN=libssl-ffi Test Root CA,O=libssl-ffi tests"]]);
        }
      } finally {
        conn.close();
        await server.stop();
      }
    }
    clearCacheAndAssertNoLeaks();
  },
  { timeout: 40_000 },
);

test("client: postHandshakeAuth is a client option, a boolean", async () => {
  assert.throws(
    () => listen(localServerOptions({ postHandshakeAuth: true } as Partial<ListenOptions>)),
    /postHandshakeAuth is for clients only/,
  );
  await assert.rejects(
    connect({ ...localClientOptions(1), postHandshakeAuth: "yes" as unknown as boolean }),
    /postHandshakeAuth must be a boolean/,
  );
});

// ---- our client, our server ---------------------------------------------------------------------

/** Our client (postHandshakeAuth) connected to our server; both sides of the connection. */
async function pair(
  server: TlsListener,
  extra: Partial<ConnectOptions> = {},
): Promise<{ client: Connection<NetAddr>; conn: Connection<NetAddr> }> {
  const accepted = server.accept();
  const client = await connect({
    ...localClientOptions(server.addr.port),
    postHandshakeAuth: true,
    ...extra,
  });
  return { client, conn: await accepted };
}

test("ours: two requests in a row, onClientCertificate asked each time, data kept in order", async () => {
  await withServer(async (server) => {
    let asked = 0;
    const { client, conn } = await pair(server, {
      onClientCertificate: () => {
        asked++;
        return { cert: pki.client.chainPem, key: pki.client.key };
      },
    });
    try {
      // The client sends before it sees the request; the server reads only after its answer.
      await client.write(text("one,"));
      await client.write(text("two,"));
      const clientReads = readText(client, "done");
      const first = await conn.requestClientCertificate();
      assert.equal(first?.subject, CLIENT_SUBJECT);
      assert.equal(asked, 1);
      await client.write(text("three,"));
      const second = await conn.requestClientCertificate({ require: true });
      assert.equal(second?.subject, CLIENT_SUBJECT);
      assert.equal(asked, 2);
      assert.equal(await readText(conn, "three,"), "one,two,three,");
      await conn.write(text("done"));
      assert.equal(await clientReads, "done");
    } finally {
      client.close();
      conn.close();
    }
  });
});

test("ours: a server read pending during the request gets the data; the request still settles", async () => {
  await withServer(async (server) => {
    const { client, conn } = await pair(server, {
      cert: pki.client.chainPem,
      key: pki.client.key,
    });
    try {
      const serverRead = readText(conn, "hello");
      const request = conn.requestClientCertificate();
      const clientReads = readText(client, "bye"); // answers the request
      await client.write(text("hello"));
      assert.equal(await serverRead, "hello");
      assert.equal((await request)?.subject, CLIENT_SUBJECT);
      await conn.write(text("bye"));
      assert.equal(await clientReads, "bye");
    } finally {
      client.close();
      conn.close();
    }
  });
});

test("ours: a client that does not read: TIMEOUT, a second request refused, the late answer taken", async () => {
  await withServer(async (server) => {
    let answers = 0;
    const { client, conn } = await pair(server, {
      onClientCertificate: () => {
        answers++;
        return { cert: pki.client.chainPem, key: pki.client.key };
      },
    });
    try {
      const request = conn.requestClientCertificate({ timeout: 300 });
      await assert.rejects(conn.requestClientCertificate(), TypeError); // one at a time
      await assert.rejects(request, isTlsError("TIMEOUT", /within 300 ms/));
      assert.equal(answers, 0);
      await assert.rejects(conn.requestClientCertificate(), /has not answered/);
      // The client reads at last: it answers; then it sends a line, after the answer.
      const clientReads = readText(client, "bye");
      await until("the client's answer", () => answers === 1);
      await client.write(text("late"));
      // The server's read takes the late answer (verified, silently) and then the line.
      assert.equal(await readText(conn, "late"), "late");
      await conn.write(text("bye"));
      assert.equal(await clientReads, "bye");
      // Answered: a new request may go out, and is answered as the client keeps reading.
      const again = conn.requestClientCertificate();
      const clientReadsAgain = readText(client, "end");
      assert.equal((await again)?.subject, CLIENT_SUBJECT);
      assert.equal(answers, 2);
      await conn.write(text("end"));
      assert.equal(await clientReadsAgain, "end");
    } finally {
      client.close();
      conn.close();
    }
  });
});

test("ours: refusals and failures: no certificate, an untrusted one, close, misuse", async () => {
  await withServer(async (server) => {
    {
      // onClientCertificate answers null: no certificate; require fails the connection.
      const { client, conn } = await pair(server, { onClientCertificate: () => null });
      try {
        const request = conn.requestClientCertificate();
        const clientRead = client.read(new Uint8Array(16));
        await assert.rejects(request, isTlsError("HANDSHAKE_FAILED", /without a certificate/));
        await assert.rejects(clientRead, (e: unknown) => {
          assert.ok(e instanceof TlsError && e.code === "ALERT_RECEIVED", String(e));
          assert.equal(e.alert?.code, 116);
          return true;
        });
      } finally {
        client.close();
        conn.close();
      }
    }
    {
      // A certificate from another root: CERT_VERIFY_FAILED, as in the handshake.
      const { client, conn } = await pair(server, {
        cert: pki.otherRootClient.chainPem,
        key: pki.otherRootClient.key,
      });
      try {
        const request = conn.requestClientCertificate();
        const clientRead = client.read(new Uint8Array(16));
        await assert.rejects(request, isTlsError("CERT_VERIFY_FAILED"));
        await assert.rejects(clientRead, isTlsError("ALERT_RECEIVED"));
      } finally {
        client.close();
        conn.close();
      }
    }
    {
      // Closed while waiting: CLOSED. Misuse: TypeError / RangeError.
      const { client, conn } = await pair(server);
      try {
        await assert.rejects(client.requestClientCertificate(), /for servers/);
        await assert.rejects(conn.requestClientCertificate({ timeout: -1 }), RangeError);
        await assert.rejects(
          conn.requestClientCertificate({ requier: true } as unknown as { require: boolean }),
          /has no option "requier"/,
        );
        const request = conn.requestClientCertificate();
        conn.close();
        await assert.rejects(request, isTlsError("CLOSED"));
        await assert.rejects(conn.requestClientCertificate(), isTlsError("CLOSED"));
      } finally {
        client.close();
        conn.close();
      }
    }
  });
});

test("ours: the client writes while its async onClientCertificate is choosing: sent after it", async () => {
  await withServer(async (server) => {
    let choosing = false;
    const { client, conn } = await pair(server, {
      onClientCertificate: async () => {
        choosing = true;
        await new Promise((r) => setTimeout(r, 200));
        choosing = false;
        return { cert: pki.client.chainPem, key: pki.client.key };
      },
    });
    try {
      const request = conn.requestClientCertificate();
      const clientReads = readText(client, "bye"); // receives the request, asks the callback
      await until("the callback to run", () => choosing);
      // OpenSSL cannot write in the middle of the exchange (SSL_write: WANT_X509_LOOKUP): the
      // write waits for the callback, then goes out after the answer.
      await client.write(text("while choosing"));
      assert.equal(choosing, false);
      assert.equal((await request)?.subject, CLIENT_SUBJECT);
      assert.equal(await readText(conn, "while choosing"), "while choosing");
      await conn.write(text("bye"));
      assert.equal(await clientReads, "bye");
    } finally {
      client.close();
      conn.close();
    }
  });
});

test("engine: a server write with half the client's answer read waits for the rest", async () => {
  const p = makePair(
    {
      caCerts: [pki.rootCa.cert],
      postHandshakeAuth: true,
      cert: pki.client.chainPem,
      key: pki.client.key,
    },
    { cert: pki.server.chainPem, key: pki.server.key, caCerts: [pki.rootCa.cert] },
  );
  try {
    await handshakePair(p.client, p.server);
    transfer(p.server, p.client);
    readAll(p.client); // the tickets
    p.server.requestClientCertificate(true);
    transfer(p.server, p.client);
    assert.equal(readAll(p.client)!.length, 0); // the request, answered at once
    const answer = p.client.outgoing()!;
    // Certificate, CertificateVerify, Finished: one record each. Deliver the first and 3 bytes.
    const firstRecord = 5 + ((answer[3]! << 8) | answer[4]!);
    p.server.receive(answer.subarray(0, firstRecord + 3));
    assert.equal(p.server.read(new Uint8Array(64)), 0);
    assert.equal(p.server.clientCertificateAnswered(), false);
    // SSL_write would have to finish reading the answer first (WANT_READ): nothing written yet.
    const data = text("after the answer");
    assert.equal(p.server.write(data), 0);
    const until = p.server.takeWriteSuspension();
    assert.ok(until !== null);
    let resumed = false;
    void until.then(() => (resumed = true));
    p.server.receive(answer.subarray(firstRecord + 3));
    assert.equal(p.server.read(new Uint8Array(64)), 0);
    assert.equal(p.server.clientCertificateAnswered(), true);
    await until;
    assert.equal(resumed, true);
    assert.equal(p.server.write(data), data.length);
    transfer(p.server, p.client);
    assert.equal(decoder.decode(readAll(p.client)!), "after the answer");
  } finally {
    p.close();
  }
  clearCacheAndAssertNoLeaks();
});

test("engine: a write waiting for the rest of the answer is let go when the engine closes", async () => {
  const p = makePair(
    { caCerts: [pki.rootCa.cert], postHandshakeAuth: true },
    { cert: pki.server.chainPem, key: pki.server.key, caCerts: [pki.rootCa.cert] },
  );
  try {
    await handshakePair(p.client, p.server);
    transfer(p.server, p.client);
    readAll(p.client);
    p.server.requestClientCertificate(false);
    transfer(p.server, p.client);
    readAll(p.client);
    const answer = p.client.outgoing()!; // an empty Certificate, then Finished
    p.server.receive(answer.subarray(0, 5 + ((answer[3]! << 8) | answer[4]!) + 1));
    assert.equal(p.server.read(new Uint8Array(64)), 0);
    assert.equal(p.server.write(text("x")), 0);
    const until = p.server.takeWriteSuspension()!;
    p.server.close();
    await until; // settles: the caller's next step reports CLOSED
    assert.throws(() => p.server.write(text("x")), isTlsError("CLOSED"));
  } finally {
    p.close();
  }
  clearCacheAndAssertNoLeaks();
});

test("ours: a server read made while the request waits gets the data at once, before the answer", async () => {
  await withServer(async (server) => {
    const { client, conn } = await pair(server, {
      cert: pki.client.chainPem,
      key: pki.client.key,
    });
    try {
      const request = conn.requestClientCertificate();
      let settled = false;
      void request.then(() => (settled = true), () => (settled = true));
      // The request is reading by itself; this read queues behind it.
      const serverRead = readText(conn, "hello");
      await client.write(text("hello")); // the client does not read: no answer yet
      assert.equal(await serverRead, "hello"); // handed over at once, the request still waits
      assert.equal(settled, false);
      const clientReads = readText(client, "bye"); // now it answers
      assert.equal((await request)?.subject, CLIENT_SUBJECT);
      await conn.write(text("bye"));
      assert.equal(await clientReads, "bye");
    } finally {
      client.close();
      conn.close();
    }
  });
});
