/**
 * OCSP stapling on clients (issue #7): `connect({ ocsp })` against `openssl s_server
 * -status_file` (every response fixture, every mode, must-staple, `onResponse`, `leewaySeconds`)
 * and against `gnutls-serv --ocsp-response` (garbage and truncated bytes that s_server refuses to
 * staple; from OpenSSL 3.6 also tryLater and other certificates' responses, which s_server no
 * longer staples), on TLS 1.3 and TLS 1.2; and `parseOcspResponse` on its own. Servers that staple
 * (`listen({ ocspStaple })`) and the leak run live in ocsp_server_test.ts.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  Certificate,
  connect,
  type Connection,
  type ConnectOptions,
  DEFAULT_OCSP_LEEWAY_SECONDS,
  liveNativeObjects,
  type OcspMode,
  type OcspOptions,
  type OcspResponse,
  parseOcspResponse,
  TlsContext,
  TlsError,
  type TlsErrorCode,
} from "../mod.ts";
import { localClientOptions as clientOptions, rejectsWithTlsError } from "./support/listener.ts";
import { test } from "./harness.ts";
import { sharedTestPki } from "./support/pki.ts";
import { ocspFixtures, type OcspResponseFile } from "./support/ocsp.ts";
import { type OpensslServer, startOpensslServer } from "./support/openssl_peer.ts";
import { startGnutlsServer } from "./support/gnutls_peer.ts";
import { cliAtLeast } from "./support/cli_output.ts";
import { clearCacheAndAssertNoLeaks as finish } from "./support/leaks.ts";

const pki = sharedTestPki();
const fx = ocspFixtures(pki); // synchronous openssl runs: before any server is started
const responses = fx.responses;
const INTERMEDIATE_DN = Certificate.fromPem(pki.intermediateCa.cert).subject;
const RESPONDER_DN = Certificate.fromPem(fx.responder.cert).subject;
const DAY_S = 24 * 60 * 60;
const VERSIONS = ["TLSv1.3", "TLSv1.2"] as const;

/** A server leaf: its certificate file (leaf only) and key; the intermediate is sent after it. */
interface ServerLeaf {
  certPath: string;
  keyPath: string;
  /** Leaf + intermediate in one file (for gnutls-serv). */
  chainPath: string;
}

/**
 * Whether `s_server -status_file` staples a response that does not cover its leaf (tryLater,
 * another certificate's): up to OpenSSL 3.5 it sends the file as it is; from 3.6 (the TLS 1.3
 * multi-stapling rewrite, openssl PR 20945) libssl drops it and sends no staple at all. Those
 * staples then come from gnutls-serv (`--ignore-ocsp-response-errors`), which sends any bytes.
 */
const S_SERVER_STAPLES_FOREIGN = !cliAtLeast(3, 6);

/** A server stapling a fixed response, and how to see that our client's alert reached it. */
interface StaplingServer {
  port: number;
  /** Waits (from output offset `since`) until the server logged our fatal alert 113. */
  sawAlert113(since: number, version: (typeof VERSIONS)[number]): Promise<unknown>;
  output(): string;
}

/**
 * `openssl s_server` (default mode: one connection at a time, back to accept after each) serving
 * `leaf` + the intermediate, stapling `statusFile` when given (with `-status_verbose`, so that
 * every status request shows as `cert_status: callback called`).
 */
async function withOpenssl(
  leaf: ServerLeaf,
  statusFile: string | null,
  body: (server: OpensslServer) => Promise<void>,
): Promise<void> {
  const server = await startOpensslServer({
    cert: leaf.certPath,
    key: leaf.keyPath,
    chain: pki.intermediateCa.certPath,
    ...(statusFile === null ? {} : { statusFile, extraArgs: ["-status_verbose"] }),
  });
  try {
    await body(server);
  } finally {
    await server.stop();
  }
}

/**
 * Serves `leaf` stapling `file`: through `s_server` (as {@link withOpenssl}) unless `viaGnutls`,
 * then through `gnutls-serv`. s_server logs every alert it receives (`SSL alert number 113`).
 * gnutls-serv logs `Received alert '113'` for TLS 1.2. In TLS 1.3 OpenSSL's client switches its
 * write side to handshake keys only after the server's Finished, so an alert about the server's
 * Certificate goes out unprotected; gnutls-serv (reading with the client's handshake keys by
 * then) discards it ("Discarded message ... due to invalid decryption"), and the alert is seen
 * only as a failed handshake.
 */
async function withStapler(
  leaf: ServerLeaf,
  file: OcspResponseFile,
  viaGnutls: boolean,
  body: (server: StaplingServer) => Promise<void>,
): Promise<void> {
  if (!viaGnutls) {
    await withOpenssl(leaf, file.path, (server) =>
      body({
        port: server.port,
        output: () => server.output(),
        sawAlert113: (since) => server.waitFor(/SSL alert number 113/, 3_000, since),
      }));
    return;
  }
  const server = await startGnutlsServer({
    cert: leaf.chainPath,
    key: leaf.keyPath,
    ocspResponse: file.path,
    ignoreOcspResponseErrors: true,
  });
  try {
    await body({
      port: server.port,
      output: () => server.output(),
      sawAlert113: (since, version) =>
        server.waitFor(
          version === "TLSv1.2" ? /^\* Received alert '113'/m : /^Error in handshake: /m,
          3_000,
          since,
        ),
    });
  } finally {
    await server.stop();
  }
}

/** Connects and returns the connection (the caller closes it). */
function open(server: { port: number }, extra: Partial<ConnectOptions>): Promise<Connection> {
  return connect(clientOptions(server.port, extra));
}

/** Expects `promise` to reject with a TlsError of `code` (and `message`); closes a success. */
function rejectsWith(
  promise: Promise<Connection>,
  code: TlsErrorCode,
  message?: RegExp,
): Promise<TlsError> {
  return rejectsWithTlsError(
    promise,
    code,
    message,
    (conn) => `${conn.protocol}, ocspResponse ${conn.ocspResponse?.status ?? null}`,
  );
}

/** Milliseconds between two dates, as a number for messages. */
function near(actual: Date | null | undefined, expected: Date | null, slackMs: number): void {
  assert.ok(actual instanceof Date, `not a Date: ${String(actual)}`);
  assert.ok(expected instanceof Date);
  assert.ok(
    Math.abs(actual.getTime() - expected.getTime()) <= slackMs,
    `${actual.toISOString()} is not within ${slackMs} ms of ${expected.toISOString()}`,
  );
}

/** The fields of a verified good response, against its fixture. */
function assertGood(response: OcspResponse | null, file: OcspResponseFile, responder: string) {
  assert.ok(response !== null, "no ocspResponse");
  assert.equal(response.status, "good");
  assert.equal(response.responseStatus, "successful");
  near(response.thisUpdate, file.thisUpdate, 1_000);
  near(response.nextUpdate, file.nextUpdate, 1_000);
  near(response.producedAt, file.thisUpdate, 5_000);
  assert.equal(response.responderId, responder);
  assert.deepEqual(response.der, file.der);
  assert.equal(response.revocationTime, undefined);
  assert.equal(response.revocationReason, undefined);
  assert.ok(Object.isFrozen(response));
}

// ---------------------------------------------------------------------------------------------
// Our client against openssl s_server -status_file
// ---------------------------------------------------------------------------------------------

test("s_server staples a good issuer-signed response: success, ocspResponse filled in", async () => {
  await withOpenssl(pki.server, responses.good.path, async (server) => {
    for (const maxVersion of VERSIONS) {
      for (const ocsp of ["request", "require", undefined] as const) {
        const since = server.output().length;
        const conn = await open(server, { maxVersion, ...(ocsp === undefined ? {} : { ocsp }) });
        try {
          assert.equal(conn.protocol, maxVersion);
          assertGood(conn.ocspResponse, responses.good, INTERMEDIATE_DN);
          // The staple is a copy: changing it changes nothing the library holds.
          conn.ocspResponse!.der.fill(0);
          assert.deepEqual(conn.ocspResponse!.der.length, responses.good.der.length);
        } finally {
          conn.close();
        }
        await server.waitFor(/cert_status: callback called/, 2_000, since);
      }
    }
  });
  finish();
});

test("a good response signed by a delegated responder (OCSPSigning): success", async () => {
  await withOpenssl(pki.server, responses.goodByResponder.path, async (server) => {
    for (const maxVersion of VERSIONS) {
      await using conn = await open(server, { maxVersion, ocsp: "require" });
      assert.equal(conn.protocol, maxVersion);
      assertGood(conn.ocspResponse, responses.goodByResponder, RESPONDER_DN);
    }
  });
  finish();
});

test("a good response without embedded certificates (-resp_no_certs): the chain has the issuer", async () => {
  await withOpenssl(pki.server, responses.noCerts.path, async (server) => {
    for (const maxVersion of VERSIONS) {
      await using conn = await open(server, { maxVersion });
      assertGood(conn.ocspResponse, responses.noCerts, INTERMEDIATE_DN);
    }
  });
  finish();
});

test("revoked: CERT_REVOKED with error.ocsp (time, keyCompromise); s_server gets alert 113", async () => {
  await withOpenssl(fx.revokedServer, responses.revoked.path, async (server) => {
    for (const maxVersion of VERSIONS) {
      for (const ocsp of ["request", "require"] as const) {
        const since = server.output().length;
        const error = await rejectsWith(
          open(server, { maxVersion, ocsp }),
          "CERT_REVOKED",
          /revoked at .*keyCompromise/,
        );
        assert.ok(error.ocsp !== undefined, "error.ocsp missing");
        assert.equal(error.ocsp.status, "revoked");
        assert.equal(error.ocsp.responseStatus, "successful");
        near(error.ocsp.revocationTime, fx.revokedAt, 1_000);
        assert.equal(error.ocsp.revocationReason, fx.revocationReason);
        assert.equal(error.ocsp.responderId, INTERMEDIATE_DN);
        assert.deepEqual(error.ocsp.der, responses.revoked.der);
        // The client told the server why: bad_certificate_status_response.
        await server.waitFor(/SSL alert number 113/, 3_000, since);
      }
    }
  });
  finish();
});

/**
 * Each invalid staple: the response file, the leaf the server presents, the message expected,
 * and whether the response covers that leaf (if not, s_server 3.6+ does not staple it).
 */
const INVALID_STAPLES: {
  name: string;
  file: OcspResponseFile;
  leaf: ServerLeaf;
  why: RegExp;
  foreign?: boolean;
}[] = [
  {
    name: "delegated responder without OCSPSigning",
    file: responses.goodByResponderWithoutEku,
    leaf: pki.server,
    // OpenSSL's last word here is "root ca not trusted" (the chain's root is not trusted for
    // OCSP signing), not "missing ocspsigning usage".
    why: /signature or signer is not trusted/,
  },
  {
    name: "unknown",
    file: responses.unknown,
    leaf: fx.unknownServer,
    why: /does not know/,
  },
  {
    name: "stale",
    file: responses.stale,
    leaf: pki.server,
    why: /validity window/,
  },
  {
    name: "future-dated",
    file: responses.futureDated,
    leaf: pki.server,
    why: /validity window/,
  },
  {
    name: "unrelated signer",
    file: responses.unrelatedSigner,
    leaf: pki.server,
    why: /signature or signer is not trusted/,
  },
  {
    name: "for another certificate (wrongCert)",
    file: responses.wrongCert,
    leaf: pki.server,
    why: /no entry for this certificate/,
    foreign: true,
  },
  {
    name: "tryLater",
    file: responses.tryLater,
    leaf: pki.server,
    why: /tryLater/,
    foreign: true,
  },
];

for (const { name, file, leaf, why, foreign } of INVALID_STAPLES) {
  const viaGnutls = foreign === true && !S_SERVER_STAPLES_FOREIGN;
  test(`invalid staple, ${name}: OCSP_INVALID (${why.source}); the server gets alert 113`, async () => {
    let called = 0;
    await withStapler(leaf, file, viaGnutls, async (server) => {
      for (const maxVersion of VERSIONS) {
        const since = server.output().length;
        const error = await rejectsWith(
          open(server, {
            maxVersion,
            ocsp: { mode: "request", onResponse: () => void called++ },
          }),
          "OCSP_INVALID",
          why,
        );
        if (file === responses.goodByResponderWithoutEku) {
          // The real reason is in the error queue kept on the error.
          assert.ok(
            error.openssl.some((e) => /missing ocspsigning usage/.test(e.text)),
            JSON.stringify(error.openssl.map((e) => e.text)),
          );
        }
        if (name === "unknown") {
          // A valid answer that says "unknown": the response is attached.
          assert.equal(error.ocsp?.status, "unknown");
        }
        await server.sawAlert113(since, maxVersion);
      }
    });
    assert.equal(called, 0, "onResponse is for good staples only");
    finish();
  });
}

test("no staple: request -> success (ocspResponse null); require -> OCSP_INVALID", async () => {
  await withOpenssl(pki.server, null, async (server) => {
    for (const maxVersion of VERSIONS) {
      const modes: (OcspMode | OcspOptions | undefined)[] = ["request", undefined, {
        mode: "request",
      }];
      for (const ocsp of modes) {
        await using conn = await open(server, {
          maxVersion,
          ...(ocsp === undefined ? {} : { ocsp }),
        });
        assert.equal(conn.protocol, maxVersion);
        assert.equal(conn.ocspResponse, null);
      }
      await rejectsWith(open(server, { maxVersion, ocsp: "require" }), "OCSP_INVALID", /require/);
      await rejectsWith(
        open(server, { maxVersion, ocsp: { mode: "require" } }),
        "OCSP_INVALID",
        /no OCSP staple/,
      );
    }
  });
  finish();
});

test('ocsp "off": no status_request sent (s_server not asked), a revoked staple goes unseen', async () => {
  await withOpenssl(fx.revokedServer, responses.revoked.path, async (server) => {
    for (const maxVersion of VERSIONS) {
      const modes: (OcspMode | OcspOptions)[] = ["off", { mode: "off", onResponse: () => false }];
      for (const ocsp of modes) {
        const since = server.output().length;
        const conn = await open(server, { maxVersion, ocsp });
        try {
          assert.equal(conn.protocol, maxVersion);
          assert.equal(conn.ocspResponse, null);
          // A round trip makes sure s_server has processed (and logged) the whole handshake.
          await conn.write(new TextEncoder().encode("ping\n"));
          await server.waitFor(/ping/, 3_000, since);
        } finally {
          conn.close();
        }
        assert.doesNotMatch(server.output().slice(since), /cert_status/);
      }
    }
  });
  finish();
});

test("must-staple leaf: no staple fails even in request mode; its good staple succeeds", async () => {
  await withOpenssl(fx.mustStapleServer, null, async (server) => {
    for (const maxVersion of VERSIONS) {
      await rejectsWith(
        open(server, { maxVersion }),
        "OCSP_INVALID",
        /must-staple/,
      );
      await rejectsWith(
        open(server, { maxVersion, ocsp: "request" }),
        "OCSP_INVALID",
        /must-staple/,
      );
    }
  });
  await withOpenssl(fx.mustStapleServer, responses.mustStapleGood.path, async (server) => {
    for (const maxVersion of VERSIONS) {
      await using conn = await open(server, { maxVersion });
      assertGood(conn.ocspResponse, responses.mustStapleGood, INTERMEDIATE_DN);
    }
  });
  // A must-staple leaf stapled with a response about another certificate is still refused
  // (served by gnutls-serv where s_server no longer staples a foreign response, 3.6+).
  await withStapler(
    fx.mustStapleServer,
    responses.good,
    !S_SERVER_STAPLES_FOREIGN,
    async (server) => {
      await rejectsWith(open(server, {}), "OCSP_INVALID", /no entry for this certificate/);
    },
  );
  finish();
});

test("onResponse: sees the good staple; false -> OCSP_INVALID; a throw -> CALLBACK_ERROR", async () => {
  await withOpenssl(pki.server, responses.good.path, async (server) => {
    for (const maxVersion of VERSIONS) {
      const seen: OcspResponse[] = [];
      // true and undefined accept.
      for (const answer of [true, undefined]) {
        await using conn = await open(server, {
          maxVersion,
          ocsp: {
            onResponse: (r) => {
              seen.push(r);
              return answer;
            },
          },
        });
        assert.equal(conn.ocspResponse, seen[seen.length - 1]);
      }
      assert.equal(seen.length, 2);
      assertGood(seen[0]!, responses.good, INTERMEDIATE_DN);

      const refused = await rejectsWith(
        open(server, { maxVersion, ocsp: { mode: "require", onResponse: () => false } }),
        "OCSP_INVALID",
        /refused by onResponse/,
      );
      assert.equal(refused.ocsp?.status, "good");

      const boom = new Error("too old for me");
      const thrown = await rejectsWith(
        open(server, {
          maxVersion,
          ocsp: {
            onResponse: () => {
              throw boom;
            },
          },
        }),
        "CALLBACK_ERROR",
        /too old for me/,
      );
      assert.equal(thrown.cause, boom);
    }
  });
  finish();
});

test("leewaySeconds: 20 days lets the stale response pass, 8 days does not; 3 days the future one", async () => {
  await withOpenssl(pki.server, responses.stale.path, async (server) => {
    for (const maxVersion of VERSIONS) {
      const conn = await open(server, {
        maxVersion,
        ocsp: { mode: "require", leewaySeconds: 20 * DAY_S },
      });
      try {
        assertGood(conn.ocspResponse, responses.stale, INTERMEDIATE_DN);
      } finally {
        conn.close(); // s_server serves one connection at a time
      }
      // nextUpdate is now - 9 days: 8 days of leeway are not enough.
      await rejectsWith(
        open(server, { maxVersion, ocsp: { leewaySeconds: 8 * DAY_S } }),
        "OCSP_INVALID",
        /validity window.*leeway 691200 s/,
      );
      await rejectsWith(
        open(server, { maxVersion, ocsp: { leewaySeconds: 0 } }),
        "OCSP_INVALID",
        /validity window/,
      );
    }
  });
  await withOpenssl(pki.server, responses.futureDated.path, async (server) => {
    const conn = await open(server, { ocsp: { leewaySeconds: 3 * DAY_S } });
    try {
      assertGood(conn.ocspResponse, responses.futureDated, INTERMEDIATE_DN);
    } finally {
      conn.close();
    }
    await rejectsWith(
      open(server, { ocsp: { leewaySeconds: DAY_S } }),
      "OCSP_INVALID",
      /validity window/,
    );
  });
  finish();
});

test("bad ocsp options are TypeError / RangeError before any I/O", async () => {
  const port = 9; // never reached
  const cases: [unknown, typeof TypeError | typeof RangeError][] = [
    ["sometimes", TypeError],
    [42, TypeError],
    [null, TypeError],
    [{ mode: "maybe" }, TypeError],
    [{ onResponse: "yes" }, TypeError],
    [{ leewaySeconds: -1 }, RangeError],
    [{ leewaySeconds: Number.NaN }, RangeError],
  ];
  for (const [ocsp, type] of cases) {
    await assert.rejects(
      connect(clientOptions(port, { ocsp: ocsp as OcspMode })),
      type,
      `ocsp: ${JSON.stringify(ocsp)}`,
    );
  }
  // The roles' options do not mix (connect() has no ocspStaple: TlsContext checks).
  assert.throws(
    () => new TlsContext("client", { ocspStaple: responses.good.der }),
    /ocspStaple is for servers/,
  );
  assert.throws(
    () => new TlsContext("server", { cert: pki.server.chainPem, key: pki.server.key, ocsp: "off" }),
    /ocsp is for clients/,
  );
  finish();
});

// ---------------------------------------------------------------------------------------------
// Garbage and truncated bytes, stapled by gnutls-serv
// ---------------------------------------------------------------------------------------------

for (const name of ["garbage", "truncated"] as const) {
  test(`gnutls-serv staples ${name} bytes: OCSP_INVALID, no crash, then a good connection`, async () => {
    const server = await startGnutlsServer({
      cert: pki.serverChainPath,
      key: pki.server.keyPath,
      ocspResponse: responses[name].path,
      ignoreOcspResponseErrors: true,
    });
    try {
      for (const maxVersion of VERSIONS) {
        await rejectsWith(
          open(server, { maxVersion }),
          "OCSP_INVALID",
          /not a DER OCSP response/,
        );
        // Off: not asked, nothing stapled, nothing to fail.
        await using conn = await open(server, { maxVersion, ocsp: "off" });
        assert.equal(conn.protocol, maxVersion);
        assert.equal(conn.ocspResponse, null);
      }
    } finally {
      await server.stop();
    }
    finish();
  });
}

// ---------------------------------------------------------------------------------------------
// parseOcspResponse on its own
// ---------------------------------------------------------------------------------------------

const issuer = pki.intermediateCa.cert;

test("parseOcspResponse: every fixture, default trust (the issuer alone)", () => {
  const good = parseOcspResponse(responses.good.der, { certificate: pki.server.cert, issuer });
  assertGood(good, responses.good, INTERMEDIATE_DN);
  assertGood(
    parseOcspResponse(responses.goodByResponder.der, { certificate: pki.server.cert, issuer }),
    responses.goodByResponder,
    RESPONDER_DN,
  );
  assertGood(
    parseOcspResponse(responses.noCerts.der, { certificate: pki.server.cert, issuer }),
    responses.noCerts,
    INTERMEDIATE_DN,
  );
  assertGood(
    parseOcspResponse(responses.mustStapleGood.der, {
      certificate: fx.mustStapleServer.cert,
      issuer,
    }),
    responses.mustStapleGood,
    INTERMEDIATE_DN,
  );
  // wrongCert is a valid response about the must-staple leaf.
  assertGood(
    parseOcspResponse(responses.wrongCert.der, { certificate: fx.mustStapleServer.cert, issuer }),
    responses.wrongCert,
    INTERMEDIATE_DN,
  );

  const revoked = parseOcspResponse(responses.revoked.der, {
    certificate: fx.revokedServer.cert,
    issuer,
  });
  assert.equal(revoked.status, "revoked");
  near(revoked.revocationTime, fx.revokedAt, 1_000);
  assert.equal(revoked.revocationReason, "keyCompromise");
  near(revoked.thisUpdate, responses.revoked.thisUpdate, 1_000);

  const unknown = parseOcspResponse(responses.unknown.der, {
    certificate: fx.unknownServer.cert,
    issuer,
  });
  assert.equal(unknown.status, "unknown");
  assert.equal(unknown.revocationTime, undefined);

  const invalid: [keyof typeof responses, string, RegExp][] = [
    ["goodByResponderWithoutEku", pki.server.cert, /signer is not trusted/],
    ["stale", pki.server.cert, /validity window/],
    ["futureDated", pki.server.cert, /validity window/],
    ["unrelatedSigner", pki.server.cert, /signer is not trusted/],
    ["wrongCert", pki.server.cert, /no entry for this certificate/],
    ["tryLater", pki.server.cert, /tryLater \(3\)/],
    ["garbage", pki.server.cert, /not a DER OCSP response/],
    ["truncated", pki.server.cert, /not a DER OCSP response/],
    ["revoked", pki.server.cert, /no entry for this certificate/],
  ];
  for (const [name, certificate, why] of invalid) {
    assert.throws(
      () => parseOcspResponse(responses[name].der, { certificate, issuer }),
      (e: unknown) => e instanceof TlsError && e.code === "OCSP_INVALID" && why.test(e.message),
      name,
    );
  }
  assert.throws(
    () => parseOcspResponse(new Uint8Array(0), { certificate: pki.server.cert, issuer }),
    (e: unknown) => e instanceof TlsError && e.code === "OCSP_INVALID" && /empty/.test(e.message),
  );
  assert.equal(liveNativeObjects().total, 0, JSON.stringify(liveNativeObjects().byKind));
  finish();
});

test("parseOcspResponse: explicit trust, leeway, input forms, mismatched issuer", () => {
  const certificate = pki.server.cert;
  const root = { trust: [pki.rootCa.cert] };
  assertGood(
    parseOcspResponse(responses.good.der, { certificate, issuer, ...root }),
    responses.good,
    INTERMEDIATE_DN,
  );
  assertGood(
    parseOcspResponse(responses.goodByResponder.der, { certificate, issuer, ...root }),
    responses.goodByResponder,
    RESPONDER_DN,
  );
  // Trusting another root: the responder's chain leads nowhere.
  assert.throws(
    () =>
      parseOcspResponse(responses.good.der, {
        certificate,
        issuer,
        trust: [pki.otherRootCa.cert],
      }),
    (e: unknown) => e instanceof TlsError && e.code === "OCSP_INVALID",
  );
  // Trusting the unrelated signer makes its signature trusted, but it is not the issuer nor
  // certified by it: still refused.
  assert.throws(
    () =>
      parseOcspResponse(responses.unrelatedSigner.der, {
        certificate,
        issuer,
        trust: [fx.unrelatedSigner.cert],
      }),
    (e: unknown) => e instanceof TlsError && e.code === "OCSP_INVALID",
  );
  // Leeway.
  assertGood(
    parseOcspResponse(responses.stale.der, { certificate, issuer, leewaySeconds: 20 * DAY_S }),
    responses.stale,
    INTERMEDIATE_DN,
  );
  assert.throws(
    () => parseOcspResponse(responses.stale.der, { certificate, issuer, leewaySeconds: 8 * DAY_S }),
    (e: unknown) => e instanceof TlsError && e.code === "OCSP_INVALID",
  );
  assertGood(
    parseOcspResponse(responses.futureDated.der, { certificate, issuer, leewaySeconds: 3 * DAY_S }),
    responses.futureDated,
    INTERMEDIATE_DN,
  );
  assert.equal(DEFAULT_OCSP_LEEWAY_SECONDS, 300);
  // DER certificates, Certificate objects, and the leaf + chain PEM (its first certificate).
  const der = Certificate.fromPem(certificate).der;
  const issuerCert = Certificate.fromPem(issuer);
  assertGood(
    parseOcspResponse(responses.good.der, { certificate: der, issuer: issuerCert.der }),
    responses.good,
    INTERMEDIATE_DN,
  );
  assertGood(
    parseOcspResponse(responses.good.der, {
      certificate: Certificate.fromPem(certificate),
      issuer: issuerCert,
    }),
    responses.good,
    INTERMEDIATE_DN,
  );
  assertGood(
    parseOcspResponse(responses.good.der, { certificate: pki.server.chainPem, issuer }),
    responses.good,
    INTERMEDIATE_DN,
  );
  // A subarray view of a bigger buffer is read from its offset.
  const padded = new Uint8Array(responses.good.der.length + 10);
  padded.set(responses.good.der, 5);
  assertGood(
    parseOcspResponse(padded.subarray(5, 5 + responses.good.der.length), { certificate, issuer }),
    responses.good,
    INTERMEDIATE_DN,
  );
  // The certificate and issuer do not belong together: the root did not issue the leaf.
  for (const wrong of [pki.rootCa.cert, pki.otherRootCa.cert]) {
    assert.throws(
      () => parseOcspResponse(responses.good.der, { certificate, issuer: wrong }),
      (e: unknown) => e instanceof TlsError && e.code === "OCSP_INVALID",
    );
  }
  // The right issuer, another leaf of it that the response is not about.
  assert.throws(
    () => parseOcspResponse(responses.good.der, { certificate: pki.client.cert, issuer }),
    (e: unknown) => e instanceof TlsError && /no entry for this certificate/.test(e.message),
  );
  finish();
});

test("parseOcspResponse: bad arguments are TypeError / RangeError / INVALID_CERTIFICATE", () => {
  const certificate = pki.server.cert;
  const der = responses.good.der;
  const call = (d: unknown, o: unknown) =>
    parseOcspResponse(d as Uint8Array, o as Parameters<typeof parseOcspResponse>[1]);
  assert.throws(() => call(undefined, { certificate, issuer }), TypeError);
  assert.throws(() => call("bytes", { certificate, issuer }), TypeError);
  assert.throws(() => call([...der], { certificate, issuer }), TypeError);
  assert.throws(() => call(der.buffer, { certificate, issuer }), TypeError);
  assert.throws(() => call(der, undefined), TypeError);
  assert.throws(() => call(der, null), TypeError);
  assert.throws(() => call(der, "options"), TypeError);
  assert.throws(() => call(der, { certificate, issuer, leewaySeconds: -1 }), RangeError);
  assert.throws(() => call(der, { certificate, issuer, leewaySeconds: Infinity }), RangeError);
  assert.throws(() => call(der, { certificate, issuer, leewaySeconds: Number.NaN }), RangeError);
  for (const bad of [{ certificate: "not a cert", issuer }, { certificate, issuer: "nope" }]) {
    assert.throws(
      () => call(der, bad),
      (e: unknown) =>
        e instanceof TypeError || (e instanceof TlsError && e.code === "INVALID_CERTIFICATE"),
    );
  }
  assert.throws(
    () => call(der, { certificate, issuer, trust: ["garbage"] }),
    (e: unknown) =>
      e instanceof TypeError || (e instanceof TlsError && e.code === "INVALID_CERTIFICATE"),
  );
  // Missing certificate / issuer: an error, never a crash.
  assert.throws(() => call(der, { issuer }));
  assert.throws(() => call(der, { certificate }));
  assert.equal(liveNativeObjects().total, 0, JSON.stringify(liveNativeObjects().byKind));
  finish();
});

test("parseOcspResponse: 3,000 calls (valid and invalid) leave no native object behind", () => {
  const certificate = pki.server.cert;
  for (let i = 0; i < 1_000; i++) {
    parseOcspResponse(responses.good.der, { certificate, issuer });
    assert.throws(() => parseOcspResponse(responses.unrelatedSigner.der, { certificate, issuer }));
    assert.throws(() => parseOcspResponse(responses.truncated.der, { certificate, issuer }));
  }
  assert.equal(liveNativeObjects().total, 0, JSON.stringify(liveNativeObjects().byKind));
  finish();
});
