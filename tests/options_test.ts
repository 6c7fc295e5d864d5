/**
 * The one option schema (`src/tls/options.ts`): every option belongs to a side, and each entry
 * point refuses the other side's options with one message naming where they belong, before any
 * I/O. Driven by the schema itself, so an option added to a feature is covered here at once.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, listen, startTls, TlsContext, TlsEngine } from "../mod.ts";
import { FEATURE_OPTIONS, optionKeys } from "../src/tls/options.ts";
import { test } from "./harness.ts";
import { sharedTestPki } from "./support/pki.ts";
import { clearCacheAndAssertNoLeaks as finish } from "./support/leaks.ts";

const pki = sharedTestPki();
const serverIdentity = { cert: pki.server.chainPem, key: pki.server.key };

function keysOnlyFor(role: "client" | "server"): string[] {
  return Object.entries(FEATURE_OPTIONS).filter(([, s]) => s.role === role).map(([k]) => k);
}

/** A stream nobody reads: startTls must fail before touching it. */
function idleTransport() {
  return { readable: new ReadableStream<Uint8Array>(), writable: new WritableStream<Uint8Array>() };
}

test("the schema knows both sides' options, and each has a scope", () => {
  const clientOnly = keysOnlyFor("client");
  const serverOnly = keysOnlyFor("server");
  for (const key of ["servername", "session", "onSession", "ocsp", "onClientCertificate"]) {
    assert.ok(clientOnly.includes(key), `${key} is a client option`);
  }
  for (const key of ["requestClientCert", "ocspStaple", "onServerName", "ticketKeys"]) {
    assert.ok(serverOnly.includes(key), `${key} is a server option`);
  }
  // Client ALPN is per connection (contexts are shared across offers); a server's is its context's.
  assert.ok(optionKeys("client", "connection").includes("alpnProtocols"));
  assert.ok(optionKeys("server", "context").includes("alpnProtocols"));
  assert.deepEqual(optionKeys("server", "connection"), []);
});

test("connect() and startTls() refuse every server option before any I/O", async () => {
  for (const key of keysOnlyFor("server")) {
    const options = { hostname: "127.0.0.1", port: 9, [key]: 1 } as never;
    await assert.rejects(connect(options), (e: unknown) => {
      assert.ok(e instanceof TypeError, `${key}: ${e}`);
      assert.match(e.message, new RegExp(`^${key} is for servers only: it is a server option`));
      return true;
    });
    await assert.rejects(startTls(idleTransport(), { hostname: "x", [key]: 1 } as never), {
      name: "TypeError",
      message: /is for servers only/,
    });
  }
  finish();
});

test("listen() and startTls({ role: 'server' }) refuse every client option before binding", async () => {
  for (const key of keysOnlyFor("client")) {
    assert.throws(() => listen({ port: 0, ...serverIdentity, [key]: 1 } as never), (e: unknown) => {
      assert.ok(e instanceof TypeError, `${key}: ${e}`);
      assert.match(e.message, new RegExp(`^${key} is for clients only: it is a client option`));
      return true;
    });
    await assert.rejects(
      startTls(idleTransport(), { role: "server", ...serverIdentity, [key]: 1 } as never),
      { name: "TypeError", message: /is for clients only/ },
    );
  }
  finish();
});

test("a TlsContext refuses the other side's options, naming the other side's option", () => {
  for (const key of keysOnlyFor("server")) {
    assert.throws(() => new TlsContext("client", { [key]: 1 } as never), TypeError, key);
  }
  for (const key of keysOnlyFor("client")) {
    assert.throws(
      () => new TlsContext("server", { ...serverIdentity, [key]: 1 } as never),
      TypeError,
      key,
    );
  }
  assert.throws(
    () => new TlsContext("server", { ...serverIdentity, ocsp: "off" }),
    /ocsp is for clients only: .*; the other side's is ocspStaple/,
  );
  finish();
});

test("with context, the context's options are refused and named", async () => {
  const context = new TlsContext("client", { caCerts: [pki.rootCa.cert] });
  await assert.rejects(
    connect({ hostname: "127.0.0.1", port: 9, context, caCerts: [pki.rootCa.cert] }),
    (e: unknown) => {
      assert.ok(e instanceof TypeError);
      assert.match(e.message, /^with context, do not also give .*caCerts/);
      for (const key of optionKeys("client", "context")) assert.ok(e.message.includes(key), key);
      return true;
    },
  );
  context.close();
  finish();
});

test("an engine takes only per-connection options of its role", () => {
  const client = new TlsContext("client", { caCerts: [pki.rootCa.cert] });
  const server = new TlsContext("server", serverIdentity);
  assert.throws(
    () => new TlsEngine(client, { servername: "localhost", caCerts: [] } as never),
    /caCerts is a TlsContext option on clients/,
  );
  assert.throws(() => new TlsEngine(server, { servername: "localhost" }), /for clients only/);
  assert.throws(
    () => new TlsEngine(server, { alpnProtocols: ["h2"] }),
    /alpnProtocols is a TlsContext option on servers/,
  );
  // Unknown keys are ignored, as before the schema (issue #15 makes them an error).
  const engine = new TlsEngine(client, { servername: "localhost", nonsense: 1 } as never);
  assert.equal(engine.role, "client");
  engine.close();
  client.close();
  server.close();
  finish();
});
