/**
 * `listener.setContext()`: replacing a listener's certificate, trust and options while clients
 * are connected, against `openssl s_client` and our own client: connections made before keep
 * working with the old certificate, new ones get the new one; bad options throw and change
 * nothing; a given `TlsContext` stays the caller's; the replaced context is released.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  connect,
  type Connection,
  listen,
  liveNativeObjects,
  type NetAddr,
  TlsContext,
  TlsError,
  type TlsListener,
} from "../mod.ts";
import { test } from "./harness.ts";
import { type ClientProcess, spawnClient, stopAllClients } from "./support/clients.ts";
import { clearCacheAndAssertNoLeaks } from "./support/leaks.ts";
import { localClientOptions, localServerOptions } from "./support/listener.ts";
import { sharedTestPki } from "./support/pki.ts";

const pki = sharedTestPki();
const text = (s: string) => new TextEncoder().encode(s);
const decoder = new TextDecoder();
/** Our clients trust both roots: the first certificate's and the replacement's. */
const BOTH_ROOTS = [pki.rootCa.cert, pki.otherRootCa.cert];
/** The replacement identity: also for localhost, issued by the other root. */
const NEW_IDENTITY = { cert: pki.otherRootServer.chainPem, key: pki.otherRootServer.key };
const OLD_ISSUER = /Test Intermediate CA/;
const NEW_ISSUER = /Other Root CA/;

/** A listener whose every connection echoes each chunk back as `echo:<chunk>` until it ends. */
async function withListener(body: (server: TlsListener) => Promise<void>): Promise<void> {
  const server = listen(localServerOptions());
  const tasks: Promise<void>[] = [];
  const loop = (async () => {
    for await (const conn of server) tasks.push(echo(conn));
  })();
  try {
    await body(server);
  } finally {
    await server[Symbol.asyncDispose]();
    await loop;
    await stopAllClients();
    await Promise.allSettled(tasks);
  }
}

async function echo(conn: Connection<NetAddr>): Promise<void> {
  const buf = new Uint8Array(4096);
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      await conn.write(text(`echo:${decoder.decode(buf.subarray(0, n))}`));
    }
  } catch {
    // A client that went away: the test's assertions say whether that was expected.
  } finally {
    conn.close();
  }
}

function client(port: number): Promise<Connection<NetAddr>> {
  return connect(localClientOptions(port, { caCerts: BOTH_ROOTS }));
}

/** One round trip through the echo. */
async function roundTrip(conn: Connection, line: string): Promise<void> {
  await conn.write(text(line));
  const buf = new Uint8Array(4096);
  let got = "";
  while (got.length < `echo:${line}`.length) {
    const n = await conn.read(buf);
    if (n === null) break;
    got += decoder.decode(buf.subarray(0, n));
  }
  assert.equal(got, `echo:${line}`);
}

/** s_client, stdin kept open, printing the chain it got (it verifies nothing: -CAfile is one). */
function sClient(port: number): ClientProcess {
  return spawnClient("openssl", [
    "s_client",
    "-connect",
    `127.0.0.1:${port}`,
    "-servername",
    "localhost",
    "-ign_eof",
    "-nocommands",
  ], { endInput: false });
}

/** The issuer line of the server certificate s_client printed. */
async function issuerSeen(c: ClientProcess): Promise<string> {
  return (await c.waitFor(/^ {3}i:(.*)$/m))[1]!;
}

test("setContext while clients are connected: old ones keep the old certificate, new ones get the new", async () => {
  await withListener(async (server) => {
    const port = server.addr.port;
    const before = await client(port);
    const sBefore = sClient(port);
    assert.match(await issuerSeen(sBefore), OLD_ISSUER);
    assert.match(before.peerCertificate!.issuer, OLD_ISSUER);
    await roundTrip(before, "one");

    const contexts = liveNativeObjects().byKind.SSL_CTX ?? 0;
    server.setContext(NEW_IDENTITY);
    // The listener made the old context: it released it (a new one was made, none is left over).
    assert.equal(liveNativeObjects().byKind.SSL_CTX ?? 0, contexts);

    const after = await client(port);
    const sAfter = sClient(port);
    try {
      assert.match(after.peerCertificate!.issuer, NEW_ISSUER);
      assert.match(await issuerSeen(sAfter), NEW_ISSUER);
      // Everyone works, the connections made before on the old context.
      await roundTrip(after, "two");
      await roundTrip(before, "three");
      assert.match(before.peerCertificate!.issuer, OLD_ISSUER);
      sBefore.write("from the old s_client\n");
      await sBefore.waitFor(/echo:from the old s_client/);
      sAfter.write("from the new s_client\n");
      await sAfter.waitFor(/echo:from the new s_client/);
    } finally {
      before.close();
      after.close();
    }
  });
  clearCacheAndAssertNoLeaks();
});

test("setContext with bad options throws and leaves the old context in place", async () => {
  await withListener(async (server) => {
    const port = server.addr.port;
    assert.throws(() => server.setContext({ cert: "not a certificate", key: pki.server.key }), (
      e,
    ) => e instanceof TlsError && e.code === "INVALID_CERTIFICATE");
    assert.throws(
      () => server.setContext({ cert: pki.otherRootServer.chainPem, key: pki.server.key }),
      (e) => e instanceof TlsError && e.code === "INVALID_KEY",
    );
    for (
      const [options, message] of [
        [{ ...NEW_IDENTITY, port: 1 }, /port is an option of the listener/],
        [{ ...NEW_IDENTITY, handshakeTimeout: 5 }, /handshakeTimeout is an option of the listener/],
        [{ ...NEW_IDENTITY, onError: () => {} }, /onError is an option of the listener/],
        [{ ...NEW_IDENTITY, postHandshakeAuth: true }, /postHandshakeAuth is for clients only/],
        [{ ...NEW_IDENTITY, requestClientCert: "always" }, /requestClientCert must be/],
        [{ ...NEW_IDENTITY, certt: "x" }, /did you mean cert/],
        [{ key: pki.server.key }, /needs cert and key/],
        [{ context: "a context" }, /give the TlsContext itself/],
      ] as const
    ) {
      assert.throws(() => server.setContext(options as never), message);
    }
    using clientContext = new TlsContext("client", {});
    assert.throws(() => server.setContext(clientContext), /must be a server one/);
    const closed = new TlsContext("server", NEW_IDENTITY);
    closed.close();
    assert.throws(() => server.setContext(closed), /is closed/);
    assert.throws(() => server.setContext(null as never), TypeError);
    // Still the old certificate.
    const conn = await client(port);
    try {
      assert.match(conn.peerCertificate!.issuer, OLD_ISSUER);
      await roundTrip(conn, "still here");
    } finally {
      conn.close();
    }
    server.close();
    assert.throws(
      () => server.setContext(NEW_IDENTITY),
      (e) => e instanceof TlsError && e.code === "CLOSED",
    );
  });
  clearCacheAndAssertNoLeaks();
});

test("setContext with a TlsContext: used as it is (trust and options too), left to its owner", async () => {
  const shared = new TlsContext("server", {
    ...NEW_IDENTITY,
    caCerts: [pki.rootCa.cert],
    requestClientCert: "require",
  });
  try {
    await withListener(async (server) => {
      const port = server.addr.port;
      const before = await client(port); // no client certificate needed yet
      server.setContext(shared);
      // The new context requires a client certificate: one without is refused (TLS 1.3: on the
      // first read, alert 116), one with it gets in, and sees the new server certificate.
      const anonymous = await client(port);
      await assert.rejects(anonymous.read(new Uint8Array(16)), (e) => {
        assert.ok(e instanceof TlsError && e.alert?.code === 116, String(e));
        return true;
      });
      anonymous.close();
      const withCert = await connect(localClientOptions(port, {
        caCerts: BOTH_ROOTS,
        cert: pki.client.chainPem,
        key: pki.client.key,
      }));
      try {
        assert.match(withCert.peerCertificate!.issuer, NEW_ISSUER);
        await roundTrip(withCert, "with a certificate");
        await roundTrip(before, "from before, without one");
        // Replaced again by options: the given context is not closed by the listener.
        server.setContext({ cert: pki.server.chainPem, key: pki.server.key });
        assert.equal(shared.closed, false);
        const third = await client(port);
        assert.match(third.peerCertificate!.issuer, OLD_ISSUER);
        third.close();
        server.setContext(shared);
      } finally {
        withCert.close();
        before.close();
      }
    });
    assert.equal(shared.closed, false); // closing the listener left it alone
  } finally {
    shared.close();
  }
  clearCacheAndAssertNoLeaks();
});
