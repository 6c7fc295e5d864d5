/**
 * Keying material and channel binding: `conn.exportKeyingMaterial`, `conn.finished` /
 * `conn.peerFinished` and `conn.channelBinding`, checked against what `openssl s_server` and
 * `s_client` export for the same connection (`-keymatexport`), between our own client and server
 * (both sides agree; TLS 1.2's "no context" differs from an empty one), against the Finished
 * messages (tls-unique on a full and a resumed handshake), and with clear errors where a
 * binding is not defined or the connection is not ready.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  connect,
  type Connection,
  listen,
  type NetAddr,
  TlsContext,
  TlsEngine,
  type TlsVersion,
} from "../mod.ts";
import { test } from "./harness.ts";
import { sharedTestPki } from "./support/pki.ts";
import { startOpensslServer } from "./support/openssl_peer.ts";
import { startGnutlsServer } from "./support/gnutls_peer.ts";
import { opensslClient } from "./support/clients.ts";
import { localClientOptions, localServerOptions } from "./support/listener.ts";
import { clearCacheAndAssertNoLeaks as finish } from "./support/leaks.ts";
import { runScript } from "./support/subprocess.ts";
import { handshakePair, makePair } from "./support/memory_pair.ts";

const pki = sharedTestPki();
const LABEL = "EXPORTER-libssl-ffi-test";
const VERSIONS: readonly TlsVersion[] = ["TLSv1.3", "TLSv1.2"];

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("").toUpperCase();
}

/** The "Keying material: HEX" that s_server / s_client print after `-keymatexport`. */
function keyingMaterialIn(output: string): string {
  const m = /Keying material: ([0-9A-F]+)/.exec(output);
  assert.ok(m !== null, `no keying material in:\n${output}`);
  return m[1]!;
}

test("exportKeyingMaterial equals what s_server -keymatexport prints, TLS 1.3 and 1.2", async () => {
  for (const maxVersion of VERSIONS) {
    for (const length of [20, 64]) {
      await using server = await startOpensslServer({
        cert: pki.server.certPath,
        key: pki.server.keyPath,
        chain: pki.intermediateCa.certPath,
        extraArgs: ["-keymatexport", LABEL, "-keymatexportlen", String(length)],
      });
      await using conn = await connect({
        hostname: "localhost",
        port: server.port,
        caCerts: [pki.rootCa.cert],
        maxVersion,
      });
      assert.equal(conn.protocol, maxVersion);
      const [, printed] = await server.waitFor(/Keying material: ([0-9A-F]+)/);
      const ours = conn.exportKeyingMaterial(length, LABEL);
      assert.equal(ours.length, length);
      assert.equal(hex(ours), printed, `${maxVersion}, ${length} bytes`);
      // Another label gives other bytes.
      assert.notEqual(hex(conn.exportKeyingMaterial(length, `${LABEL}-2`)), printed);
    }
  }
  finish();
});

test("exportKeyingMaterial on our server equals what s_client -keymatexport prints", async () => {
  for (const tls of ["1.3", "1.2"] as const) {
    await using server = listen(localServerOptions());
    const accepted = server.accept();
    const client = opensslClient({
      port: server.addr.port,
      caFile: pki.rootCaPath,
      tls,
      extraArgs: ["-keymatexport", LABEL, "-keymatexportlen", "48"],
    });
    try {
      const conn = await accepted;
      await conn.handshake();
      const ours = hex(conn.exportKeyingMaterial(48, LABEL));
      conn.close();
      const result = await client.result;
      assert.equal(keyingMaterialIn(result.stdout), ours, `TLS ${tls}`);
    } finally {
      await client.stop();
    }
  }
  finish();
});

/** Our client and our server, connected; both sides' connections. */
async function ourPair(
  maxVersion: TlsVersion,
  extra: { session?: Uint8Array } = {},
): Promise<{ client: Connection<NetAddr>; server: Connection<NetAddr>; close(): Promise<void> }> {
  const listener = listen(localServerOptions({ maxVersion }));
  const accepted = listener.accept();
  const client = await connect(localClientOptions(listener.addr.port, { maxVersion, ...extra }));
  const server = await accepted;
  await server.handshake();
  return {
    client,
    server,
    close: async () => {
      await client[Symbol.asyncDispose]();
      await server[Symbol.asyncDispose]();
      listener.close();
    },
  };
}

test("our client and server agree on keying material; TLS 1.2 tells no context from an empty one", async () => {
  for (const maxVersion of VERSIONS) {
    const pair = await ourPair(maxVersion);
    try {
      const { client, server } = pair;
      const context = new TextEncoder().encode("context");
      for (const ctx of [undefined, new Uint8Array(0), context]) {
        assert.deepEqual(
          client.exportKeyingMaterial(32, LABEL, ctx),
          server.exportKeyingMaterial(32, LABEL, ctx),
          `${maxVersion}, context ${ctx?.length}`,
        );
      }
      const none = hex(client.exportKeyingMaterial(32, LABEL));
      const empty = hex(client.exportKeyingMaterial(32, LABEL, new Uint8Array(0)));
      // RFC 8446 7.5: in TLS 1.3 no context is an empty one; RFC 5705: in TLS 1.2 it is not.
      if (maxVersion === "TLSv1.3") assert.equal(none, empty);
      else assert.notEqual(none, empty);
      assert.notEqual(hex(client.exportKeyingMaterial(32, LABEL, context)), none);
      // TLS 1.2 reserves the labels of its own PRF uses (RFC 5705 4); TLS 1.3 has none.
      if (maxVersion === "TLSv1.2") {
        assert.throws(() => client.exportKeyingMaterial(16, "master secret"), {
          name: "TypeError",
          message: /OpenSSL refused.*"master secret"/,
        });
      } else {
        assert.equal(client.exportKeyingMaterial(16, "master secret").length, 16);
      }
      // tls-exporter: the same on both sides, and exactly the RFC 9266 export.
      const binding = client.channelBinding("tls-exporter");
      assert.equal(binding.length, 32);
      assert.deepEqual(server.channelBinding("tls-exporter"), binding);
      assert.deepEqual(client.exportKeyingMaterial(32, "EXPORTER-Channel-Binding"), binding);
      // Finished: what one side sent is what the other received.
      assert.deepEqual(client.finished, server.peerFinished);
      assert.deepEqual(server.finished, client.peerFinished);
      // TLS 1.2: 12 bytes; TLS 1.3: the suite's hash length (SHA-384 for OpenSSL's first).
      const hashLength = client.cipher.endsWith("SHA384") ? 48 : 32;
      assert.equal(client.finished?.length, maxVersion === "TLSv1.2" ? 12 : hashLength);
      assert.notDeepEqual(client.finished, server.finished);
    } finally {
      await pair.close();
    }
  }
  finish();
});

test("tls-unique is the client's Finished on a full TLS 1.2 handshake, the server's on a resumed one", async () => {
  const listener = listen(localServerOptions({ maxVersion: "TLSv1.2" }));
  try {
    let session: Uint8Array;
    {
      const accepted = listener.accept();
      await using client = await connect(
        localClientOptions(listener.addr.port, { maxVersion: "TLSv1.2" }),
      );
      await using server = await accepted;
      await server.handshake();
      assert.equal(client.sessionReused, false);
      const unique = client.channelBinding("tls-unique");
      assert.equal(unique.length, 12);
      assert.deepEqual(unique, client.finished);
      assert.deepEqual(server.channelBinding("tls-unique"), unique);
      session = client.session!;
      assert.ok(session !== null);
    }
    {
      const accepted = listener.accept();
      await using client = await connect(
        localClientOptions(listener.addr.port, { maxVersion: "TLSv1.2", session }),
      );
      await using server = await accepted;
      await server.handshake();
      assert.equal(client.sessionReused, true);
      const unique = client.channelBinding("tls-unique");
      // Resumed: the server's Finished comes first.
      assert.deepEqual(unique, client.peerFinished);
      assert.deepEqual(unique, server.finished);
      assert.deepEqual(server.channelBinding("tls-unique"), unique);
      assert.notDeepEqual(unique, client.finished);
    }
  } finally {
    listener.close();
  }
  finish();
});

test("tls-unique on TLS 1.3 and tls-exporter on TLS 1.2 without extended master secret are RangeErrors", async () => {
  {
    await using server = await startOpensslServer({
      cert: pki.server.certPath,
      key: pki.server.keyPath,
      chain: pki.intermediateCa.certPath,
      quiet: true,
    });
    await using conn = await connect({
      hostname: "localhost",
      port: server.port,
      caCerts: [pki.rootCa.cert],
    });
    assert.equal(conn.protocol, "TLSv1.3");
    assert.throws(() => conn.channelBinding("tls-unique"), {
      name: "RangeError",
      message: /not defined for TLS 1\.3.*tls-exporter/,
    });
    assert.throws(() => conn.channelBinding("nope" as never), TypeError);
  }
  {
    // GnuTLS without the extended master secret (RFC 7627) extension.
    await using server = await startGnutlsServer({
      cert: pki.server.chainPath,
      key: pki.server.keyPath,
      priority: "NORMAL:-VERS-ALL:+VERS-TLS1.2:%NO_SESSION_HASH",
      echo: true,
    });
    await using conn = await connect({
      hostname: "localhost",
      port: server.port,
      caCerts: [pki.rootCa.cert],
    });
    assert.equal(conn.protocol, "TLSv1.2");
    assert.throws(() => conn.channelBinding("tls-exporter"), {
      name: "RangeError",
      message: /extended master secret/,
    });
    // tls-unique is still there, and RFC 5705 exporters too.
    assert.deepEqual(conn.channelBinding("tls-unique"), conn.finished);
    assert.equal(conn.exportKeyingMaterial(16, LABEL).length, 16);
  }
  finish();
});

test("keying methods: clear errors for bad arguments, before the handshake and after close", async () => {
  const pair = await ourPair("TLSv1.3");
  const { client } = pair;
  for (const length of [0, -1, 1.5, 8161, Number.NaN]) {
    assert.throws(() => client.exportKeyingMaterial(length, LABEL), RangeError, String(length));
  }
  assert.throws(() => client.exportKeyingMaterial(16, ""), TypeError);
  assert.throws(() => client.exportKeyingMaterial(16, 42 as never), TypeError);
  assert.throws(() => client.exportKeyingMaterial(16, "x".repeat(250)), RangeError);
  assert.throws(() => client.exportKeyingMaterial(16, LABEL, "ctx" as never), TypeError);
  assert.equal(client.exportKeyingMaterial(8160, LABEL).length, 8160);
  await pair.close();
  assert.throws(() => client.exportKeyingMaterial(16, LABEL), { name: "TlsError", code: "CLOSED" });
  assert.throws(() => client.finished, { name: "TlsError", code: "CLOSED" });
  assert.throws(() => client.channelBinding("tls-exporter"), { name: "TlsError", code: "CLOSED" });

  {
    // The sans-I/O engine: before its handshake.
    using clientCtx = new TlsContext("client", { caCerts: [pki.rootCa.cert] });
    using engine = new TlsEngine(clientCtx, { servername: "localhost" });
    assert.throws(() => engine.exportKeyingMaterial(16, LABEL), {
      name: "TypeError",
      message: /before the handshake/,
    });
    assert.throws(() => engine.channelBinding("tls-exporter"), TypeError);
    assert.equal(engine.finished, null);
    assert.equal(engine.peerFinished, null);
    engine.close();
    assert.throws(() => engine.exportKeyingMaterial(16, LABEL), {
      name: "TlsError",
      code: "CLOSED",
    });
  }
  finish();
});

test("examples/channel_binding.ts: both sides agree, the keys update, the echo comes back", () => {
  const r = runScript("examples/channel_binding.ts", [], { timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /signed with ecdsa_secp256r1_sha256/);
  assert.match(r.stdout, /keying material: equal \([0-9a-f]{64}\)/);
  assert.match(r.stdout, /tls-exporter: equal \([0-9a-f]{64}\)/);
  assert.match(
    r.stdout,
    /client sent a KeyUpdate \(update requested\)\n {2}server read a KeyUpdate\n {2}server sent a KeyUpdate\n {2}client read a KeyUpdate/,
  );
  assert.match(r.stdout, /echo after the update: ping/);
});

test("the sans-I/O engines agree on keying material, bindings and Finished messages", async () => {
  for (const maxVersion of VERSIONS) {
    const pair = makePair({ caCerts: [pki.rootCa.cert], maxVersion }, {
      cert: pki.server.chainPem,
      key: pki.server.key,
    });
    try {
      const { client, server } = pair;
      await handshakePair(client, server);
      const context = new Uint8Array([1, 2, 3]);
      assert.deepEqual(
        client.exportKeyingMaterial(40, LABEL, context),
        server.exportKeyingMaterial(40, LABEL, context),
      );
      assert.deepEqual(
        client.channelBinding("tls-exporter"),
        server.channelBinding("tls-exporter"),
      );
      assert.deepEqual(client.finished, server.peerFinished);
      assert.deepEqual(client.peerFinished, server.finished);
      if (maxVersion === "TLSv1.2") {
        assert.deepEqual(client.channelBinding("tls-unique"), client.finished);
        assert.deepEqual(server.channelBinding("tls-unique"), client.finished);
      } else {
        assert.throws(() => server.channelBinding("tls-unique"), RangeError);
      }
      assert.equal(client.peerSignatureAlgorithm, "ecdsa_secp256r1_sha256");
      assert.equal(server.peerSignatureAlgorithm, null);
    } finally {
      pair.close();
    }
  }
  finish();
});
