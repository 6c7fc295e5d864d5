/**
 * Regression tests for the review of the session, OCSP and PSK code: a session is resumed only
 * by a context that verifies the way the one that made it did (a resumed handshake verifies
 * nothing), a closed client context does not break its connections' OCSP checks, a fixed staple
 * is not sent for a certificate `onServerName` put in, and a resumed ticket is not reported as
 * the PSK the client also offered. In memory (engine pairs), TLS 1.3 and 1.2.
 *
 * @module
 */
import assert from "node:assert/strict";
import { TlsContext, type TlsContextOptions, TlsEngine, TlsError } from "../mod.ts";
import { test } from "./harness.ts";
import { handshakePair, readAll, transfer } from "./support/memory_pair.ts";
import { sharedTestPki } from "./support/pki.ts";
import { ocspFixtures } from "./support/ocsp.ts";
import { assertNoLiveNativeObjects } from "./support/leaks.ts";

const pki = sharedTestPki();
const VERSIONS = ["TLSv1.3", "TLSv1.2"] as const;

/** Contexts and engines made by a test, closed at its end. */
class Scope {
  #closers: { close(): void }[] = [];
  context(role: "client" | "server", options: TlsContextOptions): TlsContext {
    const c = new TlsContext(role, options);
    this.#closers.push(c);
    return c;
  }
  engine(context: TlsContext, options: ConstructorParameters<typeof TlsEngine>[1] = {}) {
    const e = new TlsEngine(context, options);
    this.#closers.push(e);
    return e;
  }
  close(): void {
    for (const c of this.#closers.reverse()) c.close();
    assertNoLiveNativeObjects();
  }
}

/** A full handshake with `client`, then the server's tickets read: the client's session. */
async function sessionFrom(s: Scope, client: TlsContext, server: TlsContext): Promise<Uint8Array> {
  const c = s.engine(client, { servername: "localhost" });
  const srv = s.engine(server);
  await handshakePair(c, srv);
  srv.write(new Uint8Array([1])); // TLS 1.3 tickets travel with the first data
  transfer(srv, c);
  readAll(c);
  assert.ok(c.session !== null, "the server issued a session");
  return c.session;
}

/** A handshake offering `session`: whether it was resumed, or the error. */
async function resume(
  s: Scope,
  client: TlsContext,
  server: TlsContext,
  session: Uint8Array,
): Promise<boolean | TlsError> {
  const c = s.engine(client, { servername: "localhost", session });
  try {
    await handshakePair(c, s.engine(server));
    return c.sessionReused;
  } catch (error) {
    if (error instanceof TlsError) return error;
    throw error;
  }
}

for (const maxVersion of VERSIONS) {
  test(`${maxVersion}: a session from a lenient verifier is not resumed by a strict context`, async () => {
    const s = new Scope();
    try {
      // Signed by the other root: only the lenient client (its callback says yes) accepts it.
      const server = s.context("server", {
        cert: pki.otherRootServer.chainPem,
        key: pki.otherRootServer.key,
        maxVersion,
      });
      const lenient = s.context("client", {
        caCerts: [pki.rootCa.cert],
        onVerifyCertificate: () => true,
      });
      const session = await sessionFrom(s, lenient, server);
      assert.equal(await resume(s, lenient, server, session), true); // its own context: fine
      const strict = s.context("client", { caCerts: [pki.rootCa.cert] });
      const result = await resume(s, strict, server, session);
      assert.ok(result instanceof TlsError, `resumed: ${result}`);
      assert.equal(result.code, "CERT_VERIFY_FAILED"); // a full, verified handshake
    } finally {
      s.close();
    }
  });

  test(`${maxVersion}: sessions follow the trust settings, not the context object`, async () => {
    const s = new Scope();
    try {
      const server = s.context("server", {
        cert: pki.server.chainPem,
        key: pki.server.key,
        maxVersion,
      });
      const first = s.context("client", { caCerts: [pki.rootCa.cert], ocsp: "off" });
      const session = await sessionFrom(s, first, server);
      // Same settings in another context (another process, after a restart): resumed.
      const same = s.context("client", { caCerts: [pki.rootCa.cert], ocsp: "off" });
      assert.equal(await resume(s, same, server, session), true);
      // Other trust anchors, or OCSP required where the session was made without: not offered.
      const moreTrust = s.context("client", {
        caCerts: [pki.rootCa.cert, pki.otherRootCa.cert],
        ocsp: "off",
      });
      assert.equal(await resume(s, moreTrust, server, session), false);
      const requireOcsp = s.context("client", { caCerts: [pki.rootCa.cert], ocsp: "require" });
      const result = await resume(s, requireOcsp, server, session);
      assert.ok(result instanceof TlsError && result.code === "OCSP_INVALID", `${result}`);
    } finally {
      s.close();
    }
  });
}

test("a closed client context still verifies its connections' staples", async () => {
  const s = new Scope();
  try {
    const good = ocspFixtures(pki).responses.good.der;
    const client = s.context("client", { caCerts: [pki.rootCa.cert], ocsp: "require" });
    const server = s.context("server", {
      cert: pki.server.chainPem,
      key: pki.server.key,
      ocspStaple: good,
    });
    const c = s.engine(client, { servername: "localhost" });
    client.close(); // connections already made keep working
    await handshakePair(c, s.engine(server));
    assert.equal(c.ocspResponse?.status, "good");
  } finally {
    s.close();
  }
});

test("fixed ocspStaple bytes are not sent for a certificate onServerName put in", async () => {
  const s = new Scope();
  try {
    const good = ocspFixtures(pki).responses.good.der; // about pki.server only
    const other = s.context("server", {
      cert: pki.wrongHostServer.chainPem,
      key: pki.wrongHostServer.key,
    });
    const server = s.context("server", {
      cert: pki.server.chainPem,
      key: pki.server.key,
      ocspStaple: good,
      onServerName: (name) => name === "wrong.example" ? other : null,
    });
    const client = s.context("client", { caCerts: [pki.rootCa.cert] }); // ocsp: "request"
    const swapped = s.engine(client, { servername: "wrong.example" });
    await handshakePair(swapped, s.engine(server)); // no foreign staple: no OCSP_INVALID
    assert.equal(swapped.ocspResponse, null);
    const own = s.engine(client, { servername: "localhost" });
    await handshakePair(own, s.engine(server));
    assert.equal(own.ocspResponse?.status, "good");
  } finally {
    s.close();
  }
});

test("TLS 1.3: a resumed ticket is not reported as the PSK the client also offered", async () => {
  const s = new Scope();
  try {
    const server = s.context("server", {
      cert: pki.server.chainPem,
      key: pki.server.key,
      psk: () => null, // knows no identity: certificates only
    });
    const client = s.context("client", {
      caCerts: [pki.rootCa.cert],
      psk: { identity: "nobody", key: new Uint8Array(32).fill(9) },
    });
    const session = await sessionFrom(s, client, server);
    const c = s.engine(client, { servername: "localhost", session });
    const srv = s.engine(server);
    await handshakePair(c, srv);
    assert.equal(c.sessionReused, true);
    assert.equal(c.pskIdentity, null);
    assert.equal(srv.pskIdentity, null);
  } finally {
    s.close();
  }
});
