/**
 * The TLS features configure a DTLS context unchanged: our client against our server over UDP
 * with client certificates chosen by an async `onClientCertificate` (the handshake suspends and
 * resumes inside DTLS), a required client certificate that is missing, ALPN, `onKeylog`,
 * `onHandshakeEvent`, `onVerifyCertificate`; and the server's idle timeout.
 */
import assert from "node:assert/strict";
import {
  connectDtls,
  type DtlsConnectOptions,
  type DtlsListenOptions,
  listenDtls,
  TlsError,
} from "../mod.ts";
import { test } from "./harness.ts";
import { clearCacheAndAssertNoLeaks as finish } from "./support/leaks.ts";
import { sharedTestPki } from "./support/pki.ts";

const pki = sharedTestPki();
const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array | null) => (b === null ? null : new TextDecoder().decode(b));

const serverBase: DtlsListenOptions = {
  hostname: "127.0.0.1",
  cert: pki.serverChainPem,
  key: pki.server.key,
};

function clientTo(port: number, extra: Partial<DtlsConnectOptions> = {}): DtlsConnectOptions {
  return {
    hostname: "127.0.0.1",
    port,
    servername: "localhost",
    caCerts: [pki.rootCa.cert],
    handshakeTimeout: 10_000,
    ...extra,
  };
}

test("DTLS: async onClientCertificate, required client certificate, ALPN, keylog, events", async () => {
  try {
    const serverEvents: string[] = [];
    await using server = await listenDtls({
      ...serverBase,
      caCerts: [pki.rootCa.cert],
      requestClientCert: "require",
      alpnProtocols: ["coap", "h2"],
      onHandshakeEvent: (e) => serverEvents.push(e.type),
    });
    const accepted = server.accept();
    const keylog: string[] = [];
    const issuers: string[] = [];
    let verified = 0;
    await using conn = await connectDtls(clientTo(server.addr.port, {
      alpnProtocols: ["coap"],
      onKeylog: (line) => keylog.push(line),
      onVerifyCertificate: (_info) => {
        verified++;
        return true;
      },
      onClientCertificate: async (request) => {
        issuers.push(...request.acceptableIssuers.map((n) => n.toString()));
        await new Promise((resolve) => setTimeout(resolve, 20)); // the handshake waits
        return { cert: pki.clientChainPem, key: pki.client.key };
      },
    }));
    const peer = await accepted;
    assert.equal(conn.alpnProtocol, "coap");
    assert.equal(peer.alpnProtocol, "coap");
    assert.match(peer.peerCertificate?.subject ?? "", /CN=test-client/);
    assert.ok(issuers.length >= 1, "the server's acceptable CAs reached the callback");
    assert.ok(verified >= 1);
    assert.ok(keylog.some((l) => l.startsWith("CLIENT_RANDOM ")), keylog.join("\n"));
    assert.ok(serverEvents.includes("start") && serverEvents.includes("done"), `${serverEvents}`);
    conn.send(text("with a client certificate"));
    assert.equal(str(await peer.receive()), "with a client certificate");
    peer.send(text("and back"));
    assert.equal(str(await conn.receive()), "and back");

    // Without a client certificate the server refuses the handshake (with an alert).
    const errors: TlsError[] = [];
    await using strict = await listenDtls({
      ...serverBase,
      caCerts: [pki.rootCa.cert],
      requestClientCert: "require",
      onError: (e) => errors.push(e),
    });
    await assert.rejects(
      connectDtls(clientTo(strict.addr.port, { onClientCertificate: () => null })),
      (e: TlsError) => e instanceof TlsError && e.code === "ALERT_RECEIVED",
    );
    for (let i = 0; i < 50 && errors.length === 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(errors.length, 1);
    assert.equal(strict.connectionCount, 0);
  } finally {
    finish();
  }
});

test("DTLS: a server session that stays silent is closed by idleTimeout (TIMEOUT)", async () => {
  try {
    await using server = await listenDtls({ ...serverBase, idleTimeout: 300 });
    const accepted = server.accept();
    await using conn = await connectDtls(clientTo(server.addr.port));
    const peer = await accepted;
    const started = Date.now();
    await assert.rejects(peer.receive(), (e: TlsError) => e.code === "TIMEOUT");
    assert.ok(Date.now() - started < 2_000);
    assert.equal(peer.closed, true);
    assert.equal(server.connectionCount, 0);
    // It said goodbye: the client reads a clean end (close_notify).
    assert.equal(await conn.receive(), null);
  } finally {
    finish();
  }
});

test("DTLS: closing the listener from inside its own handshake callback is safe", async () => {
  try {
    let events = 0;
    const server = await listenDtls({
      ...serverBase,
      onHandshakeEvent: () => {
        if (events++ === 0) void server.close(); // inside an OpenSSL call on the server
      },
    });
    await assert.rejects(
      connectDtls(clientTo(server.addr.port, { handshakeTimeout: 1_500 })),
      (e: TlsError) => e.code === "TIMEOUT",
    );
    assert.ok(events >= 1);
    assert.equal(server.closed, true);
  } finally {
    finish();
  }
});
