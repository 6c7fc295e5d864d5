/**
 * Client certificates and verification callbacks through `connect()` against real servers:
 * `onClientCertificate` (sync, async, null, throwing, encrypted keys, choosing among identities by
 * the server's acceptable issuers, many at once) and `onVerifyCertificate`, against
 * `openssl s_server` and `gnutls-serv` on loopback.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  Certificate,
  type CertificateRequest,
  clearContextCache,
  connect,
  type Connection,
  type ConnectOptions,
  type Identity,
  identityForAcceptableIssuers,
  liveNativeObjects,
  type PemOrDer,
  TlsError,
  type VerifyCertificateInfo,
} from "../mod.ts";
import { test } from "./harness.ts";
import { sharedTestPki } from "./support/pki.ts";
import {
  type OpensslServer,
  type OpensslServerOptions,
  startOpensslServer,
} from "./support/openssl_peer.ts";
import { startGnutlsServer } from "./support/gnutls_peer.ts";
import { clearCacheAndAssertNoLeaks as finish } from "./support/leaks.ts";

const pki = sharedTestPki();
const ca = [pki.rootCa.cert];
/** The root's subject, as OpenSSL prints it (RFC 2253) and as the server lists it. */
const ROOT_DN = "CN=libssl-ffi Test Root CA,O=libssl-ffi tests";
/** The good client identity: leaf + intermediate (servers trust only the root). */
const clientIdentity: Identity = { cert: pki.client.chainPem, key: pki.client.key };
const text = (s: string) => new TextEncoder().encode(s);
const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Where the servers listen (the peers: 127.0.0.1, never `localhost`) and the name sent as SNI. */
function target(port: number): Pick<ConnectOptions, "hostname" | "port" | "servername"> {
  return { hostname: "127.0.0.1", port, servername: "localhost" };
}

/**
 * `openssl s_server -www` with the server chain and, unless `clientAuth` is false,
 * `-Verify 1 -verify_return_error -CAfile <root>` (a client certificate is required).
 */
function startServer(
  options: OpensslServerOptions & { clientAuth?: boolean } = {},
): Promise<OpensslServer> {
  const { clientAuth = true, ...rest } = options;
  return startOpensslServer({
    cert: pki.server.certPath,
    key: pki.server.keyPath,
    chain: pki.intermediateCa.certPath,
    ...(clientAuth ? { caFile: pki.rootCaPath, verify: "require" as const } : {}),
    www: true,
    ...rest,
  });
}

/** Native objects alive once the context cache is emptied. */
function liveTotal(): number {
  clearContextCache();
  return liveNativeObjects().total;
}

/** Reads until EOF (close_notify) and returns everything as text. */
async function readToEnd(conn: Connection): Promise<string> {
  let got = "";
  const decoder = new TextDecoder();
  const buf = new Uint8Array(16 * 1024);
  for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
    got += decoder.decode(buf.subarray(0, n), { stream: true });
  }
  return got + decoder.decode();
}

/** `GET /` on an `s_server -www` (or `gnutls-serv`) connection: the whole status page. */
async function getPage(conn: Connection): Promise<string> {
  await conn.write(text("GET / HTTP/1.0\r\n\r\n"));
  return await readToEnd(conn);
}

/** Asserts that s_server's `-www` page reports our client certificate. */
function assertClientCertificateShown(page: string): void {
  assert.match(page, /^HTTP\/1\.0 200 ok/);
  assert.match(page, /Client certificate/);
  assert.match(page, /CN *= *test-client/);
}

function isCallbackError(cause: unknown) {
  return (e: unknown) => {
    assert.ok(e instanceof TlsError, String(e));
    assert.equal(e.code, "CALLBACK_ERROR", e.message);
    assert.equal(e.cause, cause, "cause is exactly the user's error");
    return true;
  };
}

function isAlert(code: number) {
  return (e: unknown) => {
    assert.ok(e instanceof TlsError, String(e));
    assert.equal(e.code, "ALERT_RECEIVED", e.message);
    assert.equal(e.alert?.code, code, e.message);
    return true;
  };
}

/** The DER `Name` found verbatim inside the certificate's DER (a root holds its own twice). */
function assertNameInCertificate(nameDer: Uint8Array, certPem: string): void {
  assert.ok(nameDer instanceof Uint8Array);
  assert.equal(nameDer[0], 0x30, "DER SEQUENCE");
  const certDer = Buffer.from(Certificate.fromPem(certPem).der);
  assert.ok(certDer.indexOf(Buffer.from(nameDer)) > 0, "the name's DER is the certificate's");
}

// ---- 1. the server's request, and the chain sent back ---------------------------------------

for (const version of ["1.3", "1.2"] as const) {
  test(`TLS ${version}: s_server -Verify 1 asks once, lists the root, accepts the chain`, async () => {
    const server = await startServer({ tls: version });
    const requests: CertificateRequest[] = [];
    try {
      const conn = await connect({
        ...target(server.port),
        caCerts: ca,
        onClientCertificate: (request) => {
          requests.push(request);
          return { cert: pki.client.chainPem, key: pki.client.key };
        },
      });
      try {
        assert.equal(conn.protocol, `TLSv${version}`);
        assert.equal(requests.length, 1, "called exactly once");
        const request = requests[0]!;
        assert.equal(request.serverName, "localhost");
        const names = request.acceptableIssuers.map((i) => i.name);
        assert.deepEqual(names, [ROOT_DN]);
        assertNameInCertificate(request.acceptableIssuers[0]!.der, pki.rootCa.cert);
        const page = await getPage(conn);
        assertClientCertificateShown(page);
        assert.match(page, new RegExp(`Protocol +: TLSv${version.replace(".", "\\.")}`));
        assert.equal(requests.length, 1, "still once after the data");
      } finally {
        conn.close();
      }
    } finally {
      await server.stop();
    }
    finish();
  });
}

// ---- 2. choosing among identities by the acceptable issuers ---------------------------------

test("two identities: the callback picks the one whose chain ends at an acceptable issuer", async () => {
  // The decoy is a valid certificate/key pair issued by an unrelated root; it comes first, so a
  // callback that just took the first identity would be refused.
  const candidates = [
    {
      label: "other root",
      identity: { cert: pki.otherRootServer.chainPem, key: pki.otherRootServer.key },
    },
    { label: "our root", identity: clientIdentity },
  ];
  /** The issuer of the last certificate of an identity's chain: where the chain hangs. */
  const topIssuer = (pem: PemOrDer) => Certificate.parseAll(pem).at(-1)!.issuer;
  assert.equal(topIssuer(pki.client.chainPem), Certificate.fromPem(pki.rootCa.cert).subject);
  assert.equal(topIssuer(pki.client.chainPem), ROOT_DN);
  assert.equal(Certificate.parseAll(pki.client.chainPem).length, 2, "leaf + intermediate");
  assert.equal(
    topIssuer(pki.otherRootServer.chainPem),
    Certificate.fromPem(pki.otherRootCa.cert).subject,
  );
  assert.notEqual(topIssuer(pki.otherRootServer.chainPem), ROOT_DN);

  const server = await startServer();
  const picked: string[] = [];
  try {
    const conn = await connect({
      ...target(server.port),
      caCerts: ca,
      onClientCertificate: ({ acceptableIssuers }) => {
        const acceptable = new Set(acceptableIssuers.map((i) => i.name));
        const match = candidates.find((c) => acceptable.has(topIssuer(c.identity.cert)));
        picked.push(match?.label ?? "none");
        return match?.identity ?? null;
      },
    });
    try {
      assert.deepEqual(picked, ["our root"]);
      assertClientCertificateShown(await getPage(conn));
    } finally {
      conn.close();
    }
  } finally {
    await server.stop();
  }
  finish();
});

// ---- 3. async selection ---------------------------------------------------------------------

for (const version of ["1.3", "1.2"] as const) {
  test(`TLS ${version}: an async onClientCertificate (50 ms) suspends and completes`, async () => {
    const server = await startServer({ tls: version });
    let called = 0;
    let settledAt = 0;
    try {
      const startedAt = performance.now();
      const conn = await connect({
        ...target(server.port),
        caCerts: ca,
        onClientCertificate: async () => {
          called++;
          await delay(50);
          settledAt = performance.now();
          return clientIdentity;
        },
      });
      try {
        assert.equal(called, 1);
        assert.ok(settledAt - startedAt >= 45, `waited ${settledAt - startedAt} ms`);
        assert.equal(conn.protocol, `TLSv${version}`);
        assertClientCertificateShown(await getPage(conn));
      } finally {
        conn.close();
      }
    } finally {
      await server.stop();
    }
    finish();
  });
}

// ---- 4. returning null ----------------------------------------------------------------------

test("null sends no certificate: TLS 1.3 fails on the first read (116), TLS 1.2 in connect (40)", async () => {
  let called = 0;
  const onClientCertificate = () => {
    called++;
    return null;
  };
  {
    await using tls13 = await startServer({ tls: "1.3" });
    // TLS 1.3: the client's handshake is done before the server has looked at its (empty)
    // Certificate message; the server's certificate_required alert arrives on the first read.
    const conn = await connect({ ...target(tls13.port), caCerts: ca, onClientCertificate });
    try {
      assert.equal(called, 1);
      await assert.rejects(conn.read(new Uint8Array(16)), isAlert(116));
    } finally {
      conn.close();
    }
  }
  {
    await using tls12 = await startServer({ tls: "1.2" });
    // TLS 1.2: the server answers the client's flight with handshake_failure (OpenSSL maps
    // certificate_required to handshake_failure before TLS 1.3) before its Finished.
    await assert.rejects(
      connect({ ...target(tls12.port), caCerts: ca, onClientCertificate }),
      isAlert(40),
    );
    assert.equal(called, 2);
  }
  finish();
});

// ---- 5. throwing and rejecting --------------------------------------------------------------

test("a throwing or rejecting onClientCertificate: CALLBACK_ERROR with that cause, then a good one", async () => {
  {
    await using server = await startServer();
    const thrown = new Error("no smart card inserted");
    await assert.rejects(
      connect({
        ...target(server.port),
        caCerts: ca,
        onClientCertificate: () => {
          throw thrown;
        },
      }),
      isCallbackError(thrown),
    );
    assert.equal(liveTotal(), 0, "nothing left after a synchronous throw");

    const rejected = new RangeError("the user cancelled the PIN prompt");
    await assert.rejects(
      connect({
        ...target(server.port),
        caCerts: ca,
        onClientCertificate: async () => {
          await delay(10);
          throw rejected;
        },
      }),
      isCallbackError(rejected),
    );
    assert.equal(liveTotal(), 0, "nothing left after a rejection");

    // A rejected non-Error value is the cause as it is.
    const reason = { why: "not an Error" };
    await assert.rejects(
      connect({
        ...target(server.port),
        caCerts: ca,
        onClientCertificate: () => Promise.reject(reason),
      }),
      isCallbackError(reason),
    );

    const conn = await connect({
      ...target(server.port),
      caCerts: ca,
      onClientCertificate: () => clientIdentity,
    });
    try {
      assertClientCertificateShown(await getPage(conn));
    } finally {
      conn.close();
    }
  }
  finish();
});

// ---- 6. encrypted key -----------------------------------------------------------------------

test("an encrypted client key with its passphrase is accepted; a wrong or missing one is BAD_PASSPHRASE", async () => {
  {
    await using server = await startServer();
    const conn = await connect({
      ...target(server.port),
      caCerts: ca,
      onClientCertificate: () => ({
        cert: pki.client.chainPem,
        key: pki.clientEncryptedKey.pem,
        passphrase: pki.clientEncryptedKey.passphrase,
      }),
    });
    try {
      assertClientCertificateShown(await getPage(conn));
    } finally {
      conn.close();
    }
    for (const passphrase of ["not it", text("not it either"), undefined]) {
      await assert.rejects(
        connect({
          ...target(server.port),
          caCerts: ca,
          onClientCertificate: () => ({
            cert: pki.client.chainPem,
            key: pki.clientEncryptedKey.pem,
            ...(passphrase === undefined ? {} : { passphrase }),
          }),
        }),
        (e: unknown) => {
          // The same code as a bad `key`/`passphrase` option gets, not CALLBACK_ERROR.
          assert.ok(e instanceof TlsError, String(e));
          assert.equal(e.code, "BAD_PASSPHRASE", e.message);
          assert.match(
            e.message,
            passphrase === undefined ? /no passphrase was given/ : /does not decrypt/,
          );
          return true;
        },
      );
    }
  }
  finish();
});

// ---- 7. a server that does not ask ----------------------------------------------------------

test("a server that asks for no certificate never calls onClientCertificate", async () => {
  for (const version of ["1.3", "1.2"] as const) {
    const server = await startServer({ clientAuth: false, tls: version });
    let called = 0;
    try {
      const conn = await connect({
        ...target(server.port),
        caCerts: ca,
        onClientCertificate: () => {
          called++;
          return clientIdentity;
        },
      });
      try {
        const page = await getPage(conn);
        assert.match(page, /^HTTP\/1\.0 200 ok/);
        assert.doesNotMatch(page, /test-client/);
        assert.equal(called, 0, `TLS ${version}`);
      } finally {
        conn.close();
      }
    } finally {
      await server.stop();
    }
  }
  finish();
});

// ---- 8. many at once ------------------------------------------------------------------------

/** The target; measured at 1-2 s on both runtimes (no timing is asserted here). */
const CONCURRENT = 50;

test(
  `gnutls-serv -r: ${CONCURRENT} concurrent connects, each with its own async callback`,
  async () => {
    const server = await startGnutlsServer({
      cert: pki.serverChainPath,
      key: pki.server.keyPath,
      caFile: pki.rootCaPath,
      clientCert: "require",
    });
    const calls = new Array<number>(CONCURRENT).fill(0);
    const conns: Connection[] = [];
    try {
      const results = await Promise.allSettled(
        calls.map((_, i) =>
          connect({
            ...target(server.port),
            caCerts: ca,
            onClientCertificate: async (request) => {
              calls[i]!++;
              assert.deepEqual(request.acceptableIssuers.map((x) => x.name), [ROOT_DN]);
              await delay(Math.random() * 30);
              return clientIdentity;
            },
          }).then((conn) => (conns.push(conn), conn))
        ),
      );
      const failed = results.flatMap((r, i) =>
        r.status === "rejected" ? [`#${i}: ${String(r.reason)}`] : []
      );
      assert.deepEqual(failed, [], "every connect succeeds");
      assert.deepEqual(calls, new Array(CONCURRENT).fill(1), "each callback called exactly once");
      // The server really accepted each one (TLS 1.3 would refuse only after the handshake).
      const pages = await Promise.all(conns.map((conn) => getPage(conn)));
      for (const page of pages) {
        assert.match(page, /^HTTP\/1\.[01] 200/);
        assert.match(page, /test-client/);
      }
    } finally {
      for (const conn of conns) conn.close();
      await server.stop();
    }
    finish();
  },
  { timeout: 60_000 },
);

// ---- 9. onVerifyCertificate against s_server ------------------------------------------------

test("onVerifyCertificate sees depths 2, 1, 0 of s_server's chain, all preverified", async () => {
  const server = await startServer({ clientAuth: false });
  const seen: VerifyCertificateInfo[] = [];
  try {
    const conn = await connect({
      ...target(server.port),
      caCerts: ca,
      onVerifyCertificate: (info) => {
        seen.push(info);
        return info.preverified;
      },
    });
    try {
      assert.deepEqual(seen.map((i) => i.depth), [2, 1, 0]);
      assert.ok(seen.every((i) => i.preverified && i.error === 0), JSON.stringify(seen));
      assert.deepEqual(
        seen.map((i) => i.certificate.subject.split(",")[0]),
        ["CN=libssl-ffi Test Root CA", "CN=libssl-ffi Test Intermediate CA", "CN=localhost"],
      );
      assert.equal(
        seen[0]!.certificate.fingerprint256,
        Certificate.fromPem(pki.rootCa.cert).fingerprint256,
      );
      assert.match(await getPage(conn), /^HTTP\/1\.0 200 ok/);
    } finally {
      conn.close();
    }
  } finally {
    await server.stop();
  }
  finish();
});

test("onVerifyCertificate pins a self-signed s_server by fingerprint256; another pin fails (18)", async () => {
  const server = await startOpensslServer({
    cert: pki.selfSignedServer.certPath,
    key: pki.selfSignedServer.keyPath,
    www: true,
  });
  const pinOf = (pem: string) => Certificate.fromPem(pem).fingerprint256;
  const pinning = (pin: string) => (info: VerifyCertificateInfo) =>
    info.preverified || (info.depth === 0 && info.certificate.fingerprint256 === pin);
  try {
    // Without a pin: self-signed (18).
    await assert.rejects(connect({ ...target(server.port), caCerts: ca }), (e: unknown) => {
      assert.ok(e instanceof TlsError && e.code === "CERT_VERIFY_FAILED", String(e));
      assert.equal(e.verifyCode, 18);
      return true;
    });
    const seen: VerifyCertificateInfo[] = [];
    const conn = await connect({
      ...target(server.port),
      caCerts: ca,
      onVerifyCertificate: (info) => {
        seen.push(info);
        return pinning(pinOf(pki.selfSignedServer.cert))(info);
      },
    });
    try {
      assert.ok(seen.length > 0 && seen.every((i) => i.depth === 0));
      assert.ok(seen.some((i) => !i.preverified && i.error === 18), JSON.stringify(seen));
      assert.equal(conn.peerCertificate?.fingerprint256, pinOf(pki.selfSignedServer.cert));
      assert.match(await getPage(conn), /^HTTP\/1\.0 200 ok/);
    } finally {
      conn.close();
    }
    // The pin of another certificate does not let it through.
    await assert.rejects(
      connect({
        ...target(server.port),
        caCerts: ca,
        onVerifyCertificate: pinning(pinOf(pki.server.cert)),
      }),
      (e: unknown) => {
        assert.ok(e instanceof TlsError && e.code === "CERT_VERIFY_FAILED", String(e));
        assert.equal(e.verifyCode, 18);
        return true;
      },
    );
  } finally {
    await server.stop();
  }
  finish();
});

test("onVerifyCertificate can reject a good s_server: CERT_VERIFY_FAILED, verify error 50", async () => {
  {
    await using server = await startServer({ clientAuth: false });
    await assert.rejects(
      connect({
        ...target(server.port),
        caCerts: ca,
        onVerifyCertificate: (info) => info.depth !== 0,
      }),
      (e: unknown) => {
        assert.ok(e instanceof TlsError, String(e));
        assert.equal(e.code, "CERT_VERIFY_FAILED", e.message);
        assert.equal(e.verifyCode, 50); // X509_V_ERR_APPLICATION_VERIFICATION
        return true;
      },
    );
    // The server is fine for a client that accepts it.
    const conn = await connect({ ...target(server.port), caCerts: ca });
    conn.close();
  }
  finish();
});

// ---- 10. a static identity wins -------------------------------------------------------------

test("a static cert/key in the options takes precedence: onClientCertificate is not called", async () => {
  const server = await startServer();
  let called = 0;
  try {
    const conn = await connect({
      ...target(server.port),
      caCerts: ca,
      cert: pki.client.chainPem,
      key: pki.client.key,
      onClientCertificate: () => {
        called++;
        return null;
      },
    });
    try {
      assertClientCertificateShown(await getPage(conn));
      assert.equal(called, 0);
    } finally {
      conn.close();
    }
  } finally {
    await server.stop();
  }
  finish();
});

test("identityForAcceptableIssuers: a server that names no CA gets the first identity, or none", async () => {
  // s_server asking for a certificate (-verify 1: asked, not required) without -CAfile names
  // no acceptable CA, as Mosquitto 2.0 does; whenNoIssuersNamed decides what goes out.
  const server = await startServer({ clientAuth: false, verify: "request" });
  try {
    for (const [mode, sent] of [["first", true], ["none", false]] as const) {
      const seen: CertificateRequest[] = [];
      const choose = identityForAcceptableIssuers([clientIdentity], { whenNoIssuersNamed: mode });
      const conn = await connect({
        ...target(server.port),
        caCerts: ca,
        onClientCertificate: (request) => (seen.push(request), choose(request)),
      });
      const page = await getPage(conn);
      conn.close();
      assert.deepEqual(seen.map((r) => r.acceptableIssuers.length), [0], mode);
      if (sent) assertClientCertificateShown(page);
      else assert.match(page, /no client certificate available/, mode);
    }
  } finally {
    await server.stop();
  }
  finish();
});
