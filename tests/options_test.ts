/**
 * The one option schema (`src/tls/options.ts`): every option belongs to a side, and each entry
 * point refuses the other side's options with one message naming where they belong, before any
 * I/O. Driven by the schema itself, so an option added to a feature is covered here at once.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, listen, startTls, TlsContext, TlsEngine, TlsError } from "../mod.ts";
import { readFileSync } from "node:fs";
import { Duplex } from "node:stream";
import net from "node:net";
import { FEATURE_OPTIONS, knownOptionKeys, optionKeys } from "../src/tls/options.ts";
import {
  ALIASES,
  editDistance,
  FIXED_NAMES,
  nearest,
  REFUSED_NAMES,
} from "../src/tls/option_names.ts";
import { startOpensslServer } from "./support/openssl_peer.ts";
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
  // Unknown keys are an error, with the nearest known key suggested.
  assert.throws(
    () => new TlsEngine(client, { servername: "localhost", servrname: "x" } as never),
    { name: "TypeError", message: 'TlsEngine has no option "servrname": did you mean servername?' },
  );
  const engine = new TlsEngine(client, { servername: "localhost", nonsense: undefined } as never);
  assert.equal(engine.role, "client", "an undefined value is an absent key");
  engine.close();
  client.close();
  server.close();
  finish();
});

// ---- unknown keys: a TypeError suggesting the nearest known key (issue #15) -------------------

test("the edit distance counts insertions, deletions, substitutions and adjacent swaps", () => {
  assert.equal(editDistance("caCert", "caCerts"), 1);
  assert.equal(editDistance("alnpProtocols", "alpnProtocols"), 1);
  assert.equal(editDistance("servrname", "servername"), 1);
  assert.equal(editDistance("kitten", "sitting"), 3);
  assert.equal(editDistance("", "abc"), 3);
  assert.equal(nearest("caCert", ["caCerts", "cert"]), "caCerts");
  assert.equal(nearest("ALPNprotocols", ["alpnProtocols"]), "alpnProtocols", "case-insensitive");
  assert.equal(nearest("zzzzzz", ["caCerts", "cert"]), undefined, "nothing near: no guess");
  assert.equal(nearest("kez", ["key"]), "key");
  assert.equal(nearest("ab", ["key"]), undefined, "short keys: one edit at most");
});

test("every entry point refuses an unknown key before any I/O, suggesting the nearest", async () => {
  const client = new TlsContext("client", { caCerts: [pki.rootCa.cert] });
  const typo = (entry: string, key: string, guess: string) =>
    new RegExp(
      `^${entry.replace(/[()]/g, "\\$&")} has no option "${key}": did you mean ${guess}\\?$`,
    );
  await assert.rejects(
    connect({ hostname: "127.0.0.1", port: 9, caCert: [pki.rootCa.cert] } as never),
    { name: "TypeError", message: typo("connect()", "caCert", "caCerts") },
  );
  assert.throws(
    () => listen({ port: 0, ...serverIdentity, requestClientCerts: "require" } as never),
    { name: "TypeError", message: typo("listen()", "requestClientCerts", "requestClientCert") },
  );
  await assert.rejects(
    startTls(idleTransport(), { hostname: "x", alpnProtocol: ["h2"] } as never),
    { name: "TypeError", message: typo("startTls()", "alpnProtocol", "alpnProtocols") },
  );
  await assert.rejects(
    startTls(idleTransport(), { role: "server", ...serverIdentity, ocspStapel: 1 } as never),
    {
      name: "TypeError",
      message:
        /^startTls\(\) with role "server" has no option "ocspStapel": did you mean ocspStaple\?$/,
    },
  );
  assert.throws(
    () => new TlsContext("client", { minVerison: "TLSv1.3" } as never),
    { name: "TypeError", message: typo("TlsContext", "minVerison", "minVersion") },
  );
  assert.throws(
    () => new TlsEngine(client, { alpnprotocols: ["h2"] } as never),
    { name: "TypeError", message: typo("TlsEngine", "alpnprotocols", "alpnProtocols") },
  );
  // A near alias is suggested as the option it stands for.
  await assert.rejects(
    connect({ hostname: "127.0.0.1", port: 9, certChian: "x" } as never),
    { message: /did you mean cert \(or certChain, Deno 1\.x's name for it\)\?/ },
  );
  // Nothing near: the list of what the entry point takes.
  await assert.rejects(
    connect({ hostname: "127.0.0.1", port: 9, zzzzzzzz: 1 } as never),
    (e: unknown) => {
      assert.ok(e instanceof TypeError);
      assert.match(e.message, /^connect\(\) has no option "zzzzzzzz"; its options are /);
      for (const key of knownOptionKeys("connect", "client")) assert.ok(e.message.includes(key));
      return true;
    },
  );
  client.close();
  finish();
});

test("every key an entry point knows is accepted by its check; a one-letter typo of each is not", () => {
  // The schema-driven guarantee: no known key is refused, and no typo slips through silently.
  const entries = [
    ["connect", "client"],
    ["startTls", "client"],
    ["startTlsServer", "server"],
    ["listen", "server"],
    ["TlsContext", "client"],
    ["TlsContext", "server"],
    ["TlsEngine", "client"],
  ] as const;
  for (const [entry, role] of entries) {
    const known = knownOptionKeys(entry, role);
    assert.ok(known.size > 0);
    for (const key of known) {
      const typo = `${key}x`;
      assert.ok(!known.has(typo));
      assert.equal(nearest(typo, known), key, `${entry}: ${typo} suggests ${key}`);
    }
  }
  // What each entry point takes besides the schema (its call options) is in the set.
  assert.ok(knownOptionKeys("listen", "server").has("maxPendingConnections"));
  assert.ok(knownOptionKeys("connect", "client").has("handshakeTimeout"));
  assert.ok(!knownOptionKeys("TlsContext", "client").has("servername"));
  assert.ok(knownOptionKeys("TlsContext", "client").has("alpnProtocols"), "a context default");
});

test("a TlsContext refuses per-connection options, saying where they go", () => {
  for (const key of ["servername", "session", "onSession"]) {
    assert.throws(() => new TlsContext("client", { [key]: "x" } as never), {
      name: "TypeError",
      message: new RegExp(`^${key} is a per-connection option: give it to connect\\(\\)`),
    });
  }
  finish();
});

// ---- Deno's and Node's names: aliases and refusals ----------------------------------------------

test("Deno's and Node's names are aliases where they mean the same: a real handshake with them", async () => {
  await using listener = listen({
    host: "127.0.0.1", // Node.js: hostname
    transport: "tcp", // Deno.listenTls
    port: 0,
    certChain: pki.server.chainPem, // Deno 1.x: cert
    privateKey: pki.server.key, // Deno 1.x: key
    ca: pki.rootCa.cert, // Node.js: caCerts, one certificate
    requestClientCert: "require",
    ALPNProtocols: ["h2"], // Node.js: alpnProtocols
    rejectUnauthorized: true, // Node.js: what is always done
  } as never);
  const accepted = listener.accept();
  const conn = await connect({
    host: "127.0.0.1",
    port: listener.addr.port,
    servername: "localhost",
    ca: [pki.rootCa.cert],
    certChain: pki.client.chainPem,
    privateKey: pki.client.key,
    ALPNProtocols: ["h2", "http/1.1"],
    rejectUnauthorized: true,
  } as never);
  const server = await accepted;
  assert.equal(conn.alpnProtocol, "h2");
  assert.equal(server.peerCertificate?.subject, "CN=test-client,O=libssl-ffi tests");
  assert.equal(conn.localCertificate?.subject, "CN=test-client,O=libssl-ffi tests");
  assert.equal(conn.peerCertificate?.subject, "CN=localhost,O=libssl-ffi tests");
  conn.close();
  server.close();
  await listener[Symbol.asyncDispose]();
  // The aliases verify as the options they stand for: ca is caCerts (a wrong CA fails).
  await using other = listen({ ...serverIdentity, hostname: "127.0.0.1", port: 0 });
  await assert.rejects(
    connect({
      host: "127.0.0.1",
      port: other.addr.port,
      servername: "localhost",
      ca: pki.otherRootCa.cert,
      handshakeTimeout: 5_000,
    } as never),
    (e: unknown) => e instanceof TlsError && e.code === "CERT_VERIFY_FAILED",
  );
  await other[Symbol.asyncDispose]();
  // TlsContext and TlsEngine rename them too.
  using context = new TlsContext("client", { ca: pki.rootCa.cert, ALPNProtocols: ["h2"] });
  assert.deepEqual(context.options.caCerts, [pki.rootCa.cert]);
  assert.deepEqual(context.options.alpnProtocols, ["h2"]);
  assert.equal("ca" in context.options, false);
  using engine = new TlsEngine(
    context,
    { servername: "localhost", ALPNProtocols: ["h2"] } as never,
  );
  assert.equal(engine.role, "client");
  engine.close();
  context.close();
  finish();
});

test("startTls takes the aliases too (host names the server to verify)", async () => {
  await using server = await startOpensslServer({
    cert: pki.server.certPath,
    key: pki.server.keyPath,
    chain: pki.intermediateCa.certPath,
    quiet: true,
  });
  const socket = net.connect({ host: "127.0.0.1", port: server.port });
  await new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  const conn = await startTls(
    Duplex.toWeb(socket) as never,
    { host: "localhost", ca: pki.rootCa.cert } as never,
  );
  assert.equal(conn.servername, "localhost");
  assert.equal(conn.peerCertificate?.subject, "CN=localhost,O=libssl-ffi tests");
  conn.close();
  finish();
});

test("an alias together with the option it stands for is a TypeError", async () => {
  await assert.rejects(
    connect({ hostname: "127.0.0.1", port: 9, caCerts: [], ca: "x" } as never),
    { name: "TypeError", message: "give caCerts or ca (Node.js's name for it), not both" },
  );
  assert.throws(
    () => listen({ port: 0, ...serverIdentity, privateKey: serverIdentity.key } as never),
    { name: "TypeError", message: /^give key or privateKey \(Deno 1\.x's name for it\)/ },
  );
  assert.throws(
    () => new TlsContext("client", { alpnProtocols: ["h2"], ALPNProtocols: ["h2"] } as never),
    /give alpnProtocols or ALPNProtocols/,
  );
  finish();
});

test("Deno's and Node's names that mean something else are refused, naming this library's option", async () => {
  const client = { hostname: "127.0.0.1", port: 9 };
  const expectations: Record<string, RegExp> = {
    checkServerIdentity: /use onVerifyCertificate/,
    requestCert: /use requestClientCert: "require"/,
    SNICallback: /use onServerName/,
    ALPNCallback: /alpnProtocols: \(offered\) =>/,
    secureContext: /use context/,
    secureProtocol: /minVersion \/ maxVersion/,
    ecdhCurve: /use groups/,
    pskCallback: /use psk/,
    requestOCSP: /use ocsp/,
    enableTrace: /onHandshakeEvent/,
    socket: /startTls\(transport, options\)/,
    timeout: /handshakeTimeout/,
    noDelay: /setNoDelay/,
    keepAlive: /setKeepAlive/,
    certFile: /cert .* or caCerts/,
    keyFile: /pass it as key/,
    caFile: /caCerts/,
    unsafelyIgnoreCertificateErrors: /unsafelyDisableVerification/,
    reusePort: /not supported/,
    sessionTimeout: /not configurable/,
    honorCipherOrder: /not configurable/,
  };
  assert.deepEqual(Object.keys(expectations).sort(), Object.keys(REFUSED_NAMES).sort());
  for (const [key, instead] of Object.entries(expectations)) {
    const origin = REFUSED_NAMES[key]!.origin;
    const message = new RegExp(`^${key} is ${origin.replace(".", "\\.")}'s option, not one of`);
    await assert.rejects(connect({ ...client, [key]: 1 } as never), (e: unknown) => {
      assert.ok(e instanceof TypeError, `${key}: ${e}`);
      assert.match(e.message, message);
      assert.match(e.message, instead, key);
      return true;
    });
    assert.throws(() => listen({ port: 0, ...serverIdentity, [key]: 1 } as never), { message });
    assert.throws(() => new TlsContext("client", { [key]: 1 } as never), { message });
  }
  // rejectUnauthorized: true is what always happens; false is refused, naming the ways to relax.
  await assert.rejects(connect({ ...client, rejectUnauthorized: false } as never), (e: unknown) => {
    assert.ok(e instanceof TypeError);
    assert.match(e.message, /^rejectUnauthorized: false \(Node\.js's option\) is not supported/);
    assert.match(e.message, /onVerifyCertificate/);
    assert.match(e.message, /unsafelyDisableVerification: true/);
    return true;
  });
  assert.throws(
    () => listen({ port: 0, ...serverIdentity, rejectUnauthorized: false } as never),
    /rejectUnauthorized: false/,
  );
  assert.throws(
    () => listen({ port: 0, ...serverIdentity, transport: "udp" } as never),
    /^TypeError: transport: "udp" \(Deno's option\) is not supported: only "tcp"/,
  );
  // Not where the name means nothing: TlsEngine knows no rejectUnauthorized.
  const context = new TlsContext("client", {});
  assert.throws(
    () => new TlsEngine(context, { rejectUnauthorized: true } as never),
    /TlsEngine has no option "rejectUnauthorized"/,
  );
  context.close();
  finish();
});

test("the README's table lists every foreign name", () => {
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
  const start = readme.indexOf("### Option names from Deno and Node.js");
  assert.ok(start > 0, "the README has the section");
  const section = readme.slice(start, readme.indexOf("\n## ", start));
  const names = [
    ...Object.keys(ALIASES),
    ...Object.keys(FIXED_NAMES),
    ...Object.keys(REFUSED_NAMES),
  ];
  for (const name of names) assert.ok(section.includes(`\`${name}\``), `${name} in the table`);
});
