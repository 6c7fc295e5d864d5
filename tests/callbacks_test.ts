import assert from "node:assert/strict";
import {
  type CertificateRequest,
  type HandshakeStep,
  TlsContext,
  TlsEngine,
  TlsError,
  type VerifyCertificateInfo,
} from "../mod.ts";
import { test } from "./harness.ts";
import { sharedTestPki } from "./support/pki.ts";
import { handshakePair, makePair, transfer } from "./support/memory_pair.ts";
import { assertNoLiveNativeObjects } from "./support/leaks.ts";

const pki = sharedTestPki();
const server = { cert: pki.server.chainPem, key: pki.server.key };
const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));
const clientAuthServer = {
  ...server,
  caCerts: [pki.rootCa.cert],
  requestClientCert: "require" as const,
};

function isCallbackError(cause: unknown) {
  return (e: unknown) => {
    assert.ok(e instanceof TlsError, String(e));
    assert.equal(e.code, "CALLBACK_ERROR", e.message);
    assert.equal(e.cause, cause);
    return true;
  };
}

// ---- onVerifyCertificate ------------------------------------------------------------------

test("onVerifyCertificate sees every depth of the chain, leaf last", async () => {
  const seen: VerifyCertificateInfo[] = [];
  const p = makePair({
    caCerts: [pki.rootCa.cert],
    onVerifyCertificate: (info) => {
      seen.push(info);
      return info.preverified;
    },
  }, server);
  try {
    await handshakePair(p.client, p.server);
    assert.deepEqual(seen.map((i) => i.depth), [2, 1, 0]);
    assert.ok(seen.every((i) => i.preverified && i.error === 0 && i.errorMessage === "ok"));
    assert.deepEqual(
      seen.map((i) => i.certificate.subject.split(",")[0]),
      ["CN=libssl-ffi Test Root CA", "CN=libssl-ffi Test Intermediate CA", "CN=localhost"],
    );
  } finally {
    p.close();
  }
  assertNoLiveNativeObjects();
});

test("onVerifyCertificate can pin a self-signed server by its DER", async () => {
  const pinned = pki.selfSignedServer;
  const pinnedDer = (await import("../mod.ts")).Certificate.fromPem(pinned.cert).der;
  const p = makePair({
    caCerts: [pki.rootCa.cert],
    onVerifyCertificate: (info) =>
      info.preverified ||
      (info.depth === 0 && Buffer.from(info.certificate.der).equals(Buffer.from(pinnedDer))),
  }, { cert: pinned.cert, key: pinned.key });
  try {
    await handshakePair(p.client, p.server);
    assert.equal(p.client.verifyResult, 0, "accepting clears OpenSSL's verdict");
  } finally {
    p.close();
  }
  assertNoLiveNativeObjects();
});

test("onVerifyCertificate can reject a good server (verify error 50)", async () => {
  const p = makePair({
    caCerts: [pki.rootCa.cert],
    onVerifyCertificate: (info) => info.depth !== 0,
  }, server);
  try {
    await assert.rejects(handshakePair(p.client, p.server), (e: unknown) => {
      assert.ok(e instanceof TlsError);
      assert.equal(e.code, "CERT_VERIFY_FAILED");
      assert.equal(e.verifyCode, 50); // X509_V_ERR_APPLICATION_VERIFICATION
      return true;
    });
  } finally {
    p.close();
  }
  assertNoLiveNativeObjects();
});

test("a throwing callback fails the handshake with CALLBACK_ERROR and the error as cause", async () => {
  const boom = new Error("boom from the verify callback");
  const p = makePair({
    caCerts: [pki.rootCa.cert],
    onVerifyCertificate: () => {
      throw boom;
    },
  }, server);
  try {
    await assert.rejects(handshakePair(p.client, p.server), isCallbackError(boom));
    // The failure is sticky and the peer is told (an alert).
    assert.throws(() => p.client.handshake(), isCallbackError(boom));
    transfer(p.client, p.server);
    assert.throws(
      () => p.server.handshake(),
      (e) => e instanceof TlsError && e.code === "ALERT_RECEIVED",
    );
  } finally {
    p.close();
  }
  assertNoLiveNativeObjects();
});

test("a callback returning the wrong type is a CALLBACK_ERROR with a TypeError cause", async () => {
  const p = makePair({
    caCerts: [pki.rootCa.cert],
    // deno-lint-ignore no-explicit-any
    onVerifyCertificate: (() => "yes") as any,
  }, server);
  try {
    await assert.rejects(handshakePair(p.client, p.server), (e: unknown) => {
      assert.ok(e instanceof TlsError && e.code === "CALLBACK_ERROR");
      assert.ok(e.cause instanceof TypeError);
      return true;
    });
  } finally {
    p.close();
  }
  assertNoLiveNativeObjects();
});

test("an async onVerifyCertificate suspends the handshake (WANT_RETRY_VERIFY) and resumes it", async () => {
  const calls: number[] = [];
  const p = makePair({
    caCerts: [pki.rootCa.cert],
    onVerifyCertificate: async (info) => {
      calls.push(info.depth);
      await delay(10);
      return info.preverified;
    },
  }, server);
  try {
    const steps: HandshakeStep["status"][] = [];
    for (let i = 0; i < 50; i++) {
      const c = p.client.handshake();
      steps.push(c.status);
      transfer(p.client, p.server);
      const s = p.server.handshake();
      transfer(p.server, p.client);
      if (c.status === "done" && s.status === "done") break;
      if (c.status === "suspended") await c.until;
    }
    assert.ok(steps.includes("suspended"), `steps: ${steps.join(",")}`);
    assert.equal(steps[steps.length - 1], "done");
    // Once per (depth, error) per handshake, although OpenSSL re-ran verification on resume.
    assert.deepEqual(calls, [2, 1, 0]);
    assert.equal(p.client.verifyResult, 0);
  } finally {
    p.close();
  }
  assertNoLiveNativeObjects();
});

test("an async onVerifyCertificate that resolves false rejects; one that rejects is the cause", async () => {
  const no = makePair({
    caCerts: [pki.rootCa.cert],
    onVerifyCertificate: async (info) => {
      await delay(1);
      return info.depth !== 0;
    },
  }, server);
  try {
    await assert.rejects(
      handshakePair(no.client, no.server),
      (e) => e instanceof TlsError && e.code === "CERT_VERIFY_FAILED" && e.verifyCode === 50,
    );
  } finally {
    no.close();
  }
  const reason = new Error("remote policy service unavailable");
  const rejecting = makePair({
    caCerts: [pki.rootCa.cert],
    onVerifyCertificate: () => delay(1).then(() => Promise.reject(reason)),
  }, server);
  try {
    await assert.rejects(
      handshakePair(rejecting.client, rejecting.server),
      isCallbackError(reason),
    );
  } finally {
    rejecting.close();
  }
  assertNoLiveNativeObjects();
});

test("a server's onVerifyCertificate cannot be async: CALLBACK_ERROR with a TypeError", async () => {
  const p = makePair(
    { caCerts: [pki.rootCa.cert], cert: pki.client.chainPem, key: pki.client.key },
    { ...clientAuthServer, onVerifyCertificate: () => Promise.resolve(true) },
  );
  try {
    await assert.rejects(handshakePair(p.client, p.server), (e: unknown) => {
      assert.ok(e instanceof TlsError && e.code === "CALLBACK_ERROR");
      assert.ok(e.cause instanceof TypeError);
      assert.match((e.cause as Error).message, /only on clients/);
      return true;
    });
  } finally {
    p.close();
  }
  assertNoLiveNativeObjects();
});

// ---- onClientCertificate --------------------------------------------------------------------

test("an async onClientCertificate suspends (WANT_X509_LOOKUP), resumes, and sends the chain", async () => {
  const requests: CertificateRequest[] = [];
  const p = makePair({
    caCerts: [pki.rootCa.cert],
    onClientCertificate: async (request) => {
      requests.push(request);
      await delay(20);
      // leaf + intermediate: the server trusts only the root.
      return { cert: pki.client.chainPem, key: pki.client.key };
    },
  }, clientAuthServer);
  try {
    let suspended = 0;
    for (let i = 0; i < 50; i++) {
      const c = p.client.handshake();
      transfer(p.client, p.server);
      const s = p.server.handshake();
      transfer(p.server, p.client);
      if (c.status === "done" && s.status === "done") break;
      if (c.status === "suspended") {
        suspended++;
        await c.until;
      }
    }
    assert.ok(p.client.handshakeDone && p.server.handshakeDone);
    assert.equal(suspended, 1);
    assert.equal(requests.length, 1, "called once per handshake");
    assert.equal(requests[0]!.serverName, "localhost");
    assert.deepEqual(
      requests[0]!.acceptableIssuers.map((i) => i.name),
      ["CN=libssl-ffi Test Root CA,O=libssl-ffi tests"],
    );
    assert.equal(requests[0]!.acceptableIssuers[0]!.der[0], 0x30, "DER SEQUENCE");
    assert.equal(p.server.peerCertificate?.subject.split(",")[0], "CN=test-client");
    assert.deepEqual(
      p.server.peerCertificateChain.map((c) => c.subject.split(",")[0]),
      ["CN=test-client", "CN=libssl-ffi Test Intermediate CA", "CN=libssl-ffi Test Root CA"],
    );
  } finally {
    p.close();
  }
  assertNoLiveNativeObjects();
});

test("a synchronous onClientCertificate works; an encrypted key needs its passphrase", async () => {
  const ok = makePair({
    caCerts: [pki.rootCa.cert],
    onClientCertificate: () => ({
      cert: pki.client.chainPem,
      key: pki.clientEncryptedKey.pem,
      passphrase: pki.clientEncryptedKey.passphrase,
    }),
  }, clientAuthServer);
  try {
    await handshakePair(ok.client, ok.server);
    assert.equal(ok.server.peerCertificate?.subject.split(",")[0], "CN=test-client");
  } finally {
    ok.close();
  }
  const wrong = makePair({
    caCerts: [pki.rootCa.cert],
    onClientCertificate: () => ({
      cert: pki.client.chainPem,
      key: pki.clientEncryptedKey.pem,
      passphrase: "not it",
    }),
  }, clientAuthServer);
  try {
    // The identity does not load: the library's own finding, the same code as through
    // `cert`/`key` (not CALLBACK_ERROR: the callback did nothing wrong).
    await assert.rejects(handshakePair(wrong.client, wrong.server), (e: unknown) => {
      assert.ok(e instanceof TlsError && e.code === "BAD_PASSPHRASE", String(e));
      assert.match(e.message, /^onClientCertificate: key: the passphrase does not decrypt/);
      return true;
    });
  } finally {
    wrong.close();
  }
  assertNoLiveNativeObjects();
});

test("onClientCertificate returning null sends no certificate: the server refuses", async () => {
  let called = 0;
  const p = makePair({
    caCerts: [pki.rootCa.cert],
    onClientCertificate: () => {
      called++;
      return null;
    },
  }, clientAuthServer);
  try {
    await assert.rejects(
      handshakePair(p.client, p.server),
      (e) => e instanceof TlsError && e.code === "HANDSHAKE_FAILED",
    );
    assert.equal(called, 1);
  } finally {
    p.close();
  }
  assertNoLiveNativeObjects();
});

test("onClientCertificate throwing or rejecting fails with the user's error as cause", async () => {
  for (
    const make of [
      (e: Error) => () => {
        throw e;
      },
      (e: Error) => () => delay(5).then(() => Promise.reject(e)),
    ]
  ) {
    const error = new Error("no smart card inserted");
    const p = makePair(
      { caCerts: [pki.rootCa.cert], onClientCertificate: make(error) },
      clientAuthServer,
    );
    try {
      await assert.rejects(handshakePair(p.client, p.server), isCallbackError(error));
    } finally {
      p.close();
    }
  }
  assertNoLiveNativeObjects();
});

test("onClientCertificate is not called when the server does not ask", async () => {
  let called = 0;
  const p = makePair({
    caCerts: [pki.rootCa.cert],
    onClientCertificate: () => {
      called++;
      return null;
    },
  }, server);
  try {
    await handshakePair(p.client, p.server);
    assert.equal(called, 0);
  } finally {
    p.close();
  }
  assertNoLiveNativeObjects();
});

test("50 concurrent connections with async selection: each answer reaches its own connection", async () => {
  // Even connections answer with the client identity, odd ones with another certificate; random
  // delays make the Promises settle out of order. The server checks which one it got.
  const asked: string[] = [];
  const clientContext = new TlsContext("client", {
    unsafelyDisableVerification: true,
    onClientCertificate: async (request) => {
      asked.push(request.serverName ?? "?");
      await delay(Math.random() * 20);
      const i = Number(request.serverName?.split(".")[0]?.slice("host-".length));
      return i % 2 === 0
        ? { cert: pki.client.chainPem, key: pki.client.key }
        : { cert: pki.wrongHostServer.chainPem, key: pki.wrongHostServer.key };
    },
  });
  const serverContext = new TlsContext("server", {
    ...server,
    caCerts: [pki.rootCa.cert],
    requestClientCert: "require" as const,
    // The odd identity has a serverAuth-only EKU: accept it here, this test is about routing.
    onVerifyCertificate: () => true,
  });
  const pairs = Array.from({ length: 50 }, (_, i) => ({
    i,
    client: new TlsEngine(clientContext, { servername: `host-${i}.test` }),
    server: new TlsEngine(serverContext),
  }));
  try {
    await Promise.all(pairs.map((p) => handshakePair(p.client, p.server)));
    assert.equal(asked.length, 50);
    assert.equal(new Set(asked).size, 50, "each connection asked exactly once");
    for (const p of pairs) {
      assert.equal(p.server.servername, `host-${p.i}.test`);
      const cn = p.server.peerCertificate?.subject.split(",")[0];
      assert.equal(cn, p.i % 2 === 0 ? "CN=test-client" : "CN=wrong.example", `pair ${p.i}`);
    }
  } finally {
    for (const p of pairs) {
      p.client.close();
      p.server.close();
    }
    clientContext.close();
    serverContext.close();
  }
  assertNoLiveNativeObjects();
});

test("close() called from inside a callback is deferred until OpenSSL returns", async () => {
  const holder: { engine?: TlsEngine } = {};
  const p = makePair({
    caCerts: [pki.rootCa.cert],
    onVerifyCertificate: (info) => {
      holder.engine?.close(); // must not free the SSL under OpenSSL's feet
      return info.preverified;
    },
  }, server);
  holder.engine = p.client;
  try {
    await assert.rejects(
      handshakePair(p.client, p.server),
      (e) => e instanceof TlsError && e.code === "CLOSED",
    );
    assert.equal(p.client.closed, true);
  } finally {
    p.close();
  }
  assertNoLiveNativeObjects();
});

// ---- onServerName (client-hello callback) ---------------------------------------------------

const wrongHostIdentity = { cert: pki.wrongHostServer.chainPem, key: pki.wrongHostServer.key };

test("onServerName picks the certificate per SNI name; null keeps the default", async () => {
  const names: string[] = [];
  const serverOptions = {
    ...server,
    onServerName: (name: string) => {
      names.push(name);
      return name === "wrong.example" ? wrongHostIdentity : null;
    },
  };
  for (
    const [servername, cn] of [["wrong.example", "CN=wrong.example"], ["localhost", "CN=localhost"]]
  ) {
    const p = makePair({ caCerts: [pki.rootCa.cert] }, serverOptions, { servername: servername! });
    try {
      await handshakePair(p.client, p.server); // verified against the name asked for
      assert.equal(p.client.peerCertificate?.subject.split(",")[0], cn);
      assert.equal(p.server.servername, servername);
    } finally {
      p.close();
    }
  }
  assert.deepEqual(names, ["wrong.example", "localhost"]);
  assertNoLiveNativeObjects();
});

test("an async onServerName suspends the server (WANT_CLIENT_HELLO_CB) and resumes it", async () => {
  let calls = 0;
  const p = makePair({ caCerts: [pki.rootCa.cert] }, {
    ...server,
    onServerName: async () => {
      calls++;
      await delay(15);
      return wrongHostIdentity;
    },
  }, { servername: "wrong.example" });
  try {
    let suspended = 0;
    for (let i = 0; i < 50; i++) {
      const c = p.client.handshake();
      transfer(p.client, p.server);
      const s = p.server.handshake();
      transfer(p.server, p.client);
      if (c.status === "done" && s.status === "done") break;
      if (s.status === "suspended") {
        suspended++;
        await s.until;
      }
    }
    assert.ok(p.client.handshakeDone && p.server.handshakeDone);
    assert.equal(suspended, 1);
    assert.equal(calls, 1);
    assert.equal(p.client.peerCertificate?.subject.split(",")[0], "CN=wrong.example");
  } finally {
    p.close();
  }
  assertNoLiveNativeObjects();
});

test("onServerName throwing fails the server with cause; the client gets internal_error", async () => {
  const error = new Error("no certificate store");
  const p = makePair({ caCerts: [pki.rootCa.cert] }, {
    ...server,
    onServerName: () => {
      throw error;
    },
  });
  try {
    await assert.rejects(handshakePair(p.client, p.server), isCallbackError(error));
    transfer(p.server, p.client);
    assert.throws(() => p.client.handshake(), (e: unknown) => {
      assert.ok(e instanceof TlsError && e.code === "ALERT_RECEIVED");
      assert.equal(e.alert?.code, 80); // internal_error
      return true;
    });
  } finally {
    p.close();
  }
  assertNoLiveNativeObjects();
});

test("onServerName is not called when the client sends no SNI (IP target)", async () => {
  let calls = 0;
  const p = makePair({ caCerts: [pki.rootCa.cert] }, {
    ...server,
    onServerName: () => {
      calls++;
      return null;
    },
  }, { servername: "127.0.0.1" });
  try {
    await handshakePair(p.client, p.server);
    assert.equal(calls, 0);
  } finally {
    p.close();
  }
  assertNoLiveNativeObjects();
});

// ---- identityForAcceptableIssuers -----------------------------------------------------------

test("identityForAcceptableIssuers picks the identity whose chain reaches an acceptable CA", async () => {
  const { identityForAcceptableIssuers, matchesAcceptableIssuers } = await import("../mod.ts");
  const unrelated = { cert: pki.selfSignedServer.cert, key: pki.selfSignedServer.key };
  const leafOnly = { cert: pki.client.cert, key: pki.client.key }; // issuer: the intermediate
  const withChain = { cert: pki.client.chainPem, key: pki.client.key }; // reaches the root
  const request = {
    acceptableIssuers: [{
      name: "CN=libssl-ffi Test Root CA,O=libssl-ffi tests",
      der: new Uint8Array(),
    }],
    serverName: "localhost",
  };
  assert.equal(matchesAcceptableIssuers(unrelated, request), false);
  assert.equal(matchesAcceptableIssuers(leafOnly, request), false);
  assert.equal(matchesAcceptableIssuers(withChain, request), true);
  assert.equal(matchesAcceptableIssuers(unrelated, { ...request, acceptableIssuers: [] }), true);

  const chosen: unknown[] = [];
  const pick = identityForAcceptableIssuers([unrelated, leafOnly, withChain]);
  const p = makePair({
    caCerts: [pki.rootCa.cert],
    onClientCertificate: (r) => {
      const identity = pick(r);
      chosen.push(identity);
      return identity;
    },
  }, clientAuthServer);
  try {
    await handshakePair(p.client, p.server);
    assert.deepEqual(chosen, [withChain]);
    assert.equal(p.server.peerCertificate?.subject.split(",")[0], "CN=test-client");
  } finally {
    p.close();
  }
  // None matches: no certificate is sent, and this server refuses.
  const none = makePair({
    caCerts: [pki.rootCa.cert],
    onClientCertificate: identityForAcceptableIssuers([unrelated]),
  }, clientAuthServer);
  try {
    await assert.rejects(handshakePair(none.client, none.server), (e) => e instanceof TlsError);
  } finally {
    none.close();
  }
  assertNoLiveNativeObjects();
});
