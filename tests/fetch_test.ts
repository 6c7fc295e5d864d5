/**
 * undici's `fetch` through `tlsConnector()` to nginx (Debian `nginx`, configured here): mutual TLS
 * with the identity chosen from nginx's acceptable-CA list, HTTP/1.1 and HTTP/2, a wrong pin and
 * a required OCSP staple refused with our error codes, and 200 concurrent requests through one
 * Agent with every byte right and nothing native left afterwards.
 *
 * undici's own `fetch` (the npm package) is used on every runtime: Deno's and Bun's global
 * `fetch` ignore undici's `dispatcher` option.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
// "undici/index.js", not "undici": Bun answers a bare `undici` import with a built-in stand-in
// whose Agent does nothing (its fetch is Bun's own); the file path gets the real package.
import { Agent, fetch } from "undici/index.js";
import { identityForAcceptableIssuers, tlsConnector, type TlsError } from "../mod.ts";
import { test } from "./harness.ts";
import { clearCacheAndAssertNoLeaks } from "./support/leaks.ts";
import { startNginx } from "./support/nginx_peer.ts";
import { sharedTestPki } from "./support/pki.ts";

const pki = sharedTestPki();

/** Both client identities: one under the test root (via the intermediate), one under the other. */
const bothIdentities = identityForAcceptableIssuers([
  { cert: pki.client.chainPem, key: pki.client.key },
  { cert: pki.otherRootClient.chainPem, key: pki.otherRootClient.key },
]);

/** The connector every test starts from: trust the test root, SNI localhost, both identities. */
function connector(extra: Parameters<typeof tlsConnector>[0] = {}) {
  return tlsConnector({
    caCerts: [pki.rootCa.cert],
    servername: "localhost",
    onClientCertificate: bothIdentities,
    handshakeTimeout: 5_000,
    ...extra,
  });
}

/** The TlsError at the end of `error`'s cause chain (undici wraps connect errors in "fetch failed"). */
function tlsErrorIn(error: unknown): TlsError | undefined {
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    if (e.name === "TlsError") return e as TlsError;
  }
  return undefined;
}

for (const http2 of [false, true]) {
  const version = http2 ? "HTTP/2.0" : "HTTP/1.1";
  test(`fetch (${version}) through tlsConnector: nginx's acceptable CAs choose the identity`, async () => {
    // Two servers, each accepting client certificates from one CA only.
    await using nginxA = await startNginx({
      cert: pki.server.chainPath,
      key: pki.server.keyPath,
      clientCas: [pki.rootCaPath],
      http2,
    });
    await using nginxB = await startNginx({
      cert: pki.server.chainPath,
      key: pki.server.keyPath,
      clientCas: [pki.otherRootCa.certPath],
      http2,
    });
    const agent = new Agent({ allowH2: http2, connect: connector() });
    try {
      for (const [nginx, cn] of [[nginxA, "test-client"], [nginxB, "other-root-client"]] as const) {
        const response = await fetch(`https://127.0.0.1:${nginx.port}/`, { dispatcher: agent });
        assert.equal(response.status, 200);
        const body = await response.text();
        assert.match(body, new RegExp(`client=CN=${cn},`), body);
        assert.match(body, / verify=SUCCESS /);
        assert.match(body, new RegExp(` proto=${version.replace(".", "\\.")} sni=localhost`));
      }
    } finally {
      await agent.close();
    }
    clearCacheAndAssertNoLeaks();
  });
}

test("fetch through tlsConnector: a wrong pin fails with CERT_VERIFY_FAILED", async () => {
  await using nginx = await startNginx({ cert: pki.server.chainPath, key: pki.server.keyPath });
  const agent = new Agent({
    connect: connector({
      // A pin that never matches: the chain verifies, the pin does not.
      onVerifyCertificate: () => false,
    }),
  });
  try {
    await assert.rejects(fetch(`https://127.0.0.1:${nginx.port}/`, { dispatcher: agent }), (e) => {
      assert.equal(tlsErrorIn(e)?.code, "CERT_VERIFY_FAILED", String(e));
      return true;
    });
  } finally {
    await agent.close();
  }
  clearCacheAndAssertNoLeaks();
});

test('fetch through tlsConnector: ocsp "require" against nginx without stapling: OCSP_INVALID', async () => {
  await using nginx = await startNginx({ cert: pki.server.chainPath, key: pki.server.keyPath });
  const agent = new Agent({ connect: connector({ ocsp: "require" }) });
  try {
    await assert.rejects(fetch(`https://127.0.0.1:${nginx.port}/`, { dispatcher: agent }), (e) => {
      assert.equal(tlsErrorIn(e)?.code, "OCSP_INVALID", String(e));
      return true;
    });
  } finally {
    await agent.close();
  }
  clearCacheAndAssertNoLeaks();
});

test("fetch through tlsConnector: 200 concurrent requests, every byte right, nothing left", async () => {
  const dir = mkdtempSync(join(tmpdir(), "libssl-ffi-fetch-"));
  const body = randomBytes(48 * 1024);
  const digest = createHash("sha256").update(body).digest("hex");
  writeFileSync(join(dir, "body"), body);
  try {
    await using nginx = await startNginx({
      cert: pki.server.chainPath,
      key: pki.server.keyPath,
      clientCas: [pki.rootCaPath],
      body: join(dir, "body"),
    });
    const agent = new Agent({ connect: connector() });
    try {
      const results = await Promise.all(
        Array.from({ length: 200 }, async () => {
          const response = await fetch(`https://127.0.0.1:${nginx.port}/bytes`, {
            dispatcher: agent,
          });
          assert.equal(response.status, 200);
          const bytes = new Uint8Array(await response.arrayBuffer());
          return createHash("sha256").update(bytes).digest("hex");
        }),
      );
      assert.deepEqual(new Set(results), new Set([digest]));
    } finally {
      await agent.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  clearCacheAndAssertNoLeaks();
});
