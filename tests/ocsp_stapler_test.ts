/**
 * `OcspStapler` against a real `openssl ocsp -port` responder: the request is built from the
 * certificate's AIA URL, the answer verified and stapled by our listener; failures (no
 * responder, HTTP errors, garbage, unknown certificates) are typed errors and keep the last good
 * response.
 *
 * @module
 */
import assert from "node:assert/strict";
import http from "node:http";
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  buildOcspRequest,
  clearContextCache,
  connect,
  listen,
  OcspStapler,
  TlsError,
} from "../mod.ts";
import { test } from "./harness.ts";
import { sharedTestPki } from "./support/pki.ts";
import { freePort } from "./support/peer_process.ts";
import { leafWithOcspUrl, ocspFixtures, startOcspResponder } from "./support/ocsp.ts";
import { assertNoLiveNativeObjects } from "./support/leaks.ts";

const pki = sharedTestPki();

/** A plain HTTP server answering every request with `status` and `body`. */
async function httpServer(status: number, body: Uint8Array) {
  const server = http.createServer((_req, res) => {
    res.writeHead(status, { "content-type": "application/ocsp-response" });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, close: () => server.close() };
}

test(
  "OcspStapler: fetches from the AIA responder, verifies, and our listener staples it",
  async () => {
    const port = await freePort();
    const leaf = leafWithOcspUrl(port, pki);
    const responder = await startOcspResponder({ port, pki });
    const stapler = new OcspStapler({ certificate: leaf.chainPem });
    try {
      assert.equal(stapler.responderUrl, `http://127.0.0.1:${port}`);
      assert.equal(stapler.staple(), null); // nothing before the first response
      const first = await stapler.start();
      assert.equal(first.status, "good");
      assert.ok(first.nextUpdate !== null && first.nextUpdate > new Date());
      assert.deepEqual(stapler.response, first);
      const server = listen({
        hostname: "127.0.0.1",
        port: 0,
        cert: leaf.chainPem,
        key: leaf.key,
        ocspStaple: stapler.staple,
      });
      const loop = (async () => {
        for await (const c of server) c.close();
      })();
      try {
        for (const maxVersion of ["TLSv1.2", "TLSv1.3"] as const) {
          const conn = await connect({
            hostname: "127.0.0.1",
            servername: "localhost",
            port: server.addr.port,
            caCerts: [pki.rootCa.cert],
            maxVersion,
            ocsp: "require",
          });
          assert.equal(conn.ocspResponse?.status, "good");
          assert.deepEqual(conn.ocspResponse?.der, first.der);
          conn.close();
        }
      } finally {
        server.close();
        await loop;
      }
      // A second refresh replaces the response.
      const second = await stapler.refresh();
      assert.equal(second.status, "good");
    } finally {
      stapler.close();
      await responder.stop();
    }
    clearContextCache();
    assertNoLiveNativeObjects();
  },
  { timeout: 30_000 },
);

test("OcspStapler: the request is a DER OCSP request openssl reads back", () => {
  const ocsp = ocspFixtures(pki);
  const der = buildOcspRequest(pki.server.cert, pki.intermediateCa.cert);
  const file = join(ocsp.dir, "stapler-req.der");
  writeFileSync(file, der);
  const text = execFileSync("openssl", ["ocsp", "-reqin", file, "-req_text"], { encoding: "utf8" });
  assert.match(text, /OCSP Request Data/);
  assert.match(text, /Hash Algorithm: sha1/);
  const serial = execFileSync(
    "openssl",
    ["x509", "-in", pki.server.certPath, "-noout", "-serial"],
    {
      encoding: "utf8",
    },
  ).trim().split("=")[1]!;
  assert.match(text.replace(/\s/g, ""), new RegExp(`SerialNumber:${serial}`, "i"));
  assertNoLiveNativeObjects();
});

test(
  "OcspStapler: bad setups are TypeErrors; failures are typed and keep the last response",
  async () => {
    // No AIA URL and no responderUrl; no issuer in the PEM.
    assert.throws(() => new OcspStapler({ certificate: pki.server.chainPem }), /names no OCSP/);
    assert.throws(
      () => new OcspStapler({ certificate: pki.server.cert, responderUrl: "http://x" }),
      /no issuer/,
    );
    assert.throws(
      () => new OcspStapler({ certificate: pki.server.chainPem, responderUrl: "ftp://x" }),
      /http/,
    );
    // Nobody listening.
    const closedPort = await freePort();
    const down = new OcspStapler({
      certificate: pki.server.chainPem,
      responderUrl: `http://127.0.0.1:${closedPort}`,
      timeoutMs: 2_000,
    });
    await assert.rejects(
      down.refresh(),
      (e) => e instanceof TlsError && e.code === "NETWORK_ERROR",
    );
    // HTTP 500, garbage, and a tryLater answer.
    const ocsp = ocspFixtures(pki);
    for (
      const [status, body, code] of [
        [500, new Uint8Array(0), "NETWORK_ERROR"],
        [200, new TextEncoder().encode("not ocsp"), "OCSP_INVALID"],
        [200, ocsp.responses.tryLater.der, "OCSP_INVALID"],
        [200, ocsp.responses.revoked.der, "OCSP_INVALID"], // about another certificate
      ] as const
    ) {
      const server = await httpServer(status, body);
      try {
        const stapler = new OcspStapler({
          certificate: pki.server.chainPem,
          responderUrl: server.url,
        });
        await assert.rejects(
          stapler.refresh(),
          (e) => e instanceof TlsError && e.code === code,
          `${status} ${body.length}`,
        );
        assert.equal(stapler.staple(), null);
      } finally {
        server.close();
      }
    }
    // A good answer, then a failing refresh: the good one stays.
    const good = await httpServer(200, ocsp.responses.good.der);
    const stapler = new OcspStapler({ certificate: pki.server.chainPem, responderUrl: good.url });
    try {
      assert.equal((await stapler.refresh()).status, "good");
    } finally {
      good.close();
    }
    await assert.rejects(stapler.refresh(), TlsError);
    assert.deepEqual(stapler.staple(), ocsp.responses.good.der);
    stapler.close();
    assertNoLiveNativeObjects();
  },
  { timeout: 30_000 },
);
