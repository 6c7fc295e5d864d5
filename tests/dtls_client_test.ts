/**
 * DTLS clients (`connectDtls`) against real peers over UDP: `openssl s_server -dtls1_2` with
 * certificates (verified; data both ways; a bad certificate fails with CERT_VERIFY_FAILED) and
 * with PSK (`-nocert -psk`, the hint reaching the `psk` function), and `gnutls-serv --udp`
 * (certificates, echo). Plus the option checks: `mtu`, oversize datagrams, TLS-only options.
 */
import assert from "node:assert/strict";
import { connectDtls, type DtlsConnectOptions, TlsError } from "../mod.ts";
import { test } from "./harness.ts";
import { serverChainArgs, startDtlsServer } from "./support/dtls_peers.ts";
import { clearCacheAndAssertNoLeaks as finish } from "./support/leaks.ts";
import { sharedTestPki } from "./support/pki.ts";

const pki = sharedTestPki();
const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array | null) => (b === null ? null : new TextDecoder().decode(b));
const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const KEY = Uint8Array.from({ length: 32 }, (_, i) => i + 1);

function client(port: number, extra: Partial<DtlsConnectOptions> = {}): DtlsConnectOptions {
  return {
    hostname: "127.0.0.1",
    port,
    servername: "localhost",
    caCerts: [pki.rootCa.cert],
    handshakeTimeout: 10_000,
    ...extra,
  };
}

async function rejectsWith(p: Promise<unknown>, code: string, message?: RegExp): Promise<TlsError> {
  try {
    await p;
  } catch (error) {
    assert.ok(error instanceof TlsError, `not a TlsError: ${error}`);
    assert.equal(error.code, code, error.message);
    if (message !== undefined) assert.match(error.message, message);
    return error;
  }
  assert.fail(`expected ${code}`);
}

test("connectDtls: the peer's certificates read for the first time after close() are still there", async () => {
  try {
    await using peer = await startDtlsServer("openssl", serverChainArgs(pki));
    const conn = await connectDtls(client(peer.port));
    conn.close(); // frees the SSL: the certificates were copied out before
    assert.equal(conn.closed, true);
    assert.match(conn.peerCertificate?.subject ?? "", /CN=localhost/);
    assert.equal(conn.peerCertificateChain.length, 3);
    assert.equal(conn.peerCertificateChain[0], conn.peerCertificate); // one copy, not two
  } finally {
    finish();
  }
});

test("connectDtls: s_server -dtls1_2 with a certificate chain; verified; data both ways", async () => {
  try {
    await using peer = await startDtlsServer("openssl", serverChainArgs(pki));
    await using conn = await connectDtls(client(peer.port));
    assert.equal(conn.protocol, "DTLSv1.2");
    assert.match(conn.cipher, /^ECDHE-/);
    assert.match(conn.peerCertificate?.subject ?? "", /CN=localhost/);
    assert.equal(conn.peerCertificateChain.length, 3);
    assert.equal(conn.role, "client");
    assert.equal(conn.remoteAddr.port, peer.port);
    assert.ok(
      conn.maxDatagramSize > 1000 && conn.maxDatagramSize < 1200,
      `${conn.maxDatagramSize}`,
    );
    conn.send(text("hello over dtls\n"));
    await peer.waitFor(/hello over dtls/);
    peer.send("hello from s_server\n");
    assert.equal(str(await conn.receive()), "hello from s_server\n");
    // Too large for one record within the MTU: refused before anything is sent.
    assert.throws(() => conn.send(new Uint8Array(conn.maxDatagramSize + 1)), RangeError);
    conn.send(new Uint8Array(conn.maxDatagramSize).fill(0x61)); // the largest fits
    conn.close();
    assert.equal(conn.closed, true);
    await assert.rejects(conn.receive(), (e: TlsError) => e.code === "CLOSED");
  } finally {
    finish();
  }
});

test("connectDtls: a server certificate for another name fails with CERT_VERIFY_FAILED", async () => {
  try {
    await using peer = await startDtlsServer("openssl", [
      "-cert",
      pki.wrongHostServer.certPath,
      "-key",
      pki.wrongHostServer.keyPath,
      "-cert_chain",
      pki.intermediateCa.certPath,
    ]);
    await rejectsWith(connectDtls(client(peer.port)), "CERT_VERIFY_FAILED", /hostname|mismatch/i);
    // An untrusted root too.
    await rejectsWith(
      connectDtls(client(peer.port, { caCerts: [pki.otherRootCa.cert] })),
      "CERT_VERIFY_FAILED",
    );
  } finally {
    finish();
  }
});

test("connectDtls with PSK: s_server -dtls1_2 -nocert -psk; the hint reaches the psk function", async () => {
  try {
    await using peer = await startDtlsServer("openssl", [
      "-nocert",
      "-psk",
      hex(KEY),
      "-psk_identity",
      "device-1",
      "-psk_hint",
      "hint-1",
    ]);
    const hints: (string | null)[] = [];
    await using conn = await connectDtls({
      hostname: "127.0.0.1",
      port: peer.port,
      handshakeTimeout: 10_000,
      psk: (hint) => {
        hints.push(hint);
        return { identity: "device-1", key: KEY };
      },
    });
    assert.equal(conn.protocol, "DTLSv1.2");
    assert.match(conn.cipher, /PSK/);
    assert.equal(conn.pskIdentity, "device-1");
    assert.equal(conn.peerCertificate, null);
    assert.deepEqual(hints, ["hint-1"]);
    conn.send(text("psk datagram\n"));
    await peer.waitFor(/psk datagram/);
    peer.send("psk reply\n");
    assert.equal(str(await conn.receive()), "psk reply\n");
  } finally {
    finish();
  }
});

test("connectDtls with a wrong PSK: DTLS drops what fails to decrypt, so the handshake times out", async () => {
  try {
    await using peer = await startDtlsServer("openssl", [
      "-nocert",
      "-psk",
      hex(KEY),
      "-psk_identity",
      "device-1",
    ]);
    // The server cannot decrypt the client's Finished: DTLS discards such records silently
    // (RFC 6347 4.1.2.7) instead of alerting, so the client's handshakeTimeout ends it.
    await rejectsWith(
      connectDtls({
        hostname: "127.0.0.1",
        port: peer.port,
        handshakeTimeout: 2_500,
        psk: { identity: "device-1", key: new Uint8Array(32).fill(9) },
      }),
      "TIMEOUT",
      /DTLS handshake took over 2500 ms/,
    );
  } finally {
    finish();
  }
});

test("connectDtls: gnutls-serv --udp --echo with certificates", async () => {
  try {
    await using peer = await startDtlsServer("gnutls", [
      "--echo",
      "--x509certfile",
      pki.serverChainPath,
      "--x509keyfile",
      pki.server.keyPath,
    ]);
    await using conn = await connectDtls(client(peer.port));
    assert.equal(conn.protocol, "DTLSv1.2");
    for (const word of ["one", "two", "three"]) {
      conn.send(text(word));
      assert.equal(str(await conn.receive()), word);
    }
  } finally {
    finish();
  }
});

test("connectDtls: a server that never answers times out; nothing is left behind", async () => {
  try {
    // A bound UDP port that never answers: our own listener-less socket.
    const dgram = await import("node:dgram");
    const silent = dgram.createSocket("udp4");
    await new Promise<void>((resolve) => silent.bind(0, "127.0.0.1", resolve));
    try {
      const start = Date.now();
      await rejectsWith(
        connectDtls(client(silent.address().port, { handshakeTimeout: 1_500 })),
        "TIMEOUT",
      );
      assert.ok(Date.now() - start < 5_000);
    } finally {
      silent.close();
    }
  } finally {
    finish();
  }
});

test("connectDtls: option checks (mtu, versions, unknown keys) before any I/O", async () => {
  await assert.rejects(connectDtls(client(1, { mtu: 100 })), RangeError);
  await assert.rejects(connectDtls(client(1, { mtu: 1.5 })), RangeError);
  await assert.rejects(
    connectDtls({ ...client(1), minVersion: "TLSv1.3" } as unknown as DtlsConnectOptions),
    /DTLS connections are DTLS 1.2/,
  );
  await assert.rejects(
    connectDtls({ ...client(1), mtuu: 1 } as unknown as DtlsConnectOptions),
    /connectDtls\(\) has no option "mtuu": did you mean mtu\?/,
  );
  await assert.rejects(connectDtls(client(0)), RangeError);
  finish();
});
