/**
 * Key exchange groups: `groups` on both sides and `conn.group`, against `openssl s_server` and
 * `s_client` and between our own client and server. OpenSSL 3.5+ prefers the post-quantum hybrid
 * `X25519MLKEM768` by default; 3.0 knows no hybrid and says so.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, type ConnectOptions, listen, opensslVersion, TlsContext } from "../mod.ts";
import { test } from "./harness.ts";
import { sharedTestPki } from "./support/pki.ts";
import { startOpensslServer } from "./support/openssl_peer.ts";
import { opensslClient } from "./support/clients.ts";
import { localClientOptions, localServerOptions } from "./support/listener.ts";
import { clearCacheAndAssertNoLeaks as finish } from "./support/leaks.ts";

const pki = sharedTestPki();
/** OpenSSL 3.5 and later offer and prefer X25519MLKEM768 by default. */
const HYBRID_BY_DEFAULT = opensslVersion().number >= 0x30500000;

/** Our client to `s_server` on `port`, with `extra` options. */
function clientTo(port: number, extra: Partial<ConnectOptions> = {}) {
  return connect({ hostname: "localhost", port, caCerts: [pki.rootCa.cert], ...extra });
}

function opensslServer() {
  return startOpensslServer({
    cert: pki.server.certPath,
    key: pki.server.keyPath,
    chain: pki.intermediateCa.certPath,
  });
}

test("conn.group: OpenSSL's default against s_server (x25519 on 3.0, X25519MLKEM768 on 3.5+)", async () => {
  for (const maxVersion of ["TLSv1.3", "TLSv1.2"] as const) {
    await using server = await opensslServer();
    await using conn = await clientTo(server.port, { maxVersion });
    // TLS 1.2 has no hybrid: ECDHE over x25519.
    const expected = HYBRID_BY_DEFAULT && maxVersion === "TLSv1.3" ? "X25519MLKEM768" : "x25519";
    assert.equal(conn.group, expected, `${maxVersion}, ${opensslVersion().text}`);
  }
  finish();
});

test("groups on a client: s_server uses the one offered (TLS 1.3 and 1.2)", async () => {
  // TLS 1.2 also limits the server's ECDSA certificate to the groups offered: the test PKI's P-256
  // leaf needs P-256 in the list there.
  const cases = [
    ["TLSv1.3", ["P-384"], "secp384r1"],
    ["TLSv1.3", ["P-256", "X25519"], "secp256r1"],
    ["TLSv1.2", ["P-256", "X25519"], "secp256r1"],
    ["TLSv1.2", ["X25519", "P-256"], "x25519"],
  ] as const;
  for (const [maxVersion, groups, name] of cases) {
    await using server = await opensslServer();
    await using conn = await clientTo(server.port, { maxVersion, groups });
    assert.equal(conn.group, name, `${maxVersion} ${groups}`);
  }
  finish();
});

test("groups on our server: s_client gets the server's choice, and both sides report it", async () => {
  {
    await using server = listen(localServerOptions({ groups: ["P-384"] }));
    const accepted = server.accept();
    const client = opensslClient({ port: server.addr.port, caFile: pki.rootCaPath, tls: "1.3" });
    try {
      const conn = await accepted;
      assert.equal(conn.group, "secp384r1");
      conn.close();
      const result = await client.result;
      // 3.0 prints "Server Temp Key: ECDH, secp384r1, 384 bits"; 3.5+ names the group alike.
      assert.match(result.stdout, /secp384r1/);
    } finally {
      await client.stop();
    }
  }
  finish();
});

test("our client and our server: a server that accepts only P-384 makes the client retry with it", async () => {
  {
    await using server = listen(localServerOptions({ groups: ["P-384"] }));
    const accepted = server.accept();
    // The client offers its default list, with a key share for its first group only: the server
    // answers with a HelloRetryRequest for P-384.
    await using conn = await connect(localClientOptions(server.addr.port));
    const serverSide = await accepted;
    assert.equal(conn.group, "secp384r1");
    assert.equal(serverSide.group, "secp384r1");
    serverSide.close();
    // No group in common: the handshake fails, with the server's alert.
    await using strict = listen(localServerOptions({ groups: ["P-521"], onError: () => {} }));
    await assert.rejects(
      connect(localClientOptions(strict.addr.port, { groups: ["P-256"] })),
      { name: "TlsError", code: "ALERT_RECEIVED" },
    );
  }
  finish();
});

test("a group this OpenSSL does not know is a TypeError naming it and the version", async () => {
  assert.throws(
    () => new TlsContext("client", { groups: ["X25519", "NO-SUCH-GROUP"] }),
    (e: unknown) => {
      assert.ok(e instanceof TypeError);
      assert.match(e.message, /"NO-SUCH-GROUP" is not a key exchange group OpenSSL \d/);
      assert.ok(e.message.includes(opensslVersion().text), e.message);
      return true;
    },
  );
  if (!HYBRID_BY_DEFAULT) {
    await assert.rejects(
      connect({ hostname: "localhost", port: 9, groups: ["X25519MLKEM768"] }),
      { name: "TypeError", message: /X25519MLKEM768.*need OpenSSL 3\.5/ },
    );
  } else {
    // Known here: a context with it is made.
    new TlsContext("client", { groups: ["X25519MLKEM768"] }).close();
  }
  for (const bad of [[], "X25519", [""], ["a:b"], [42]]) {
    assert.throws(() => new TlsContext("client", { groups: bad as never }), TypeError);
  }
  finish();
});
