import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { TlsError } from "../mod.ts";
import { test } from "./harness.ts";
import { sharedTestPki } from "./support/pki.ts";
import { handshakePair, makePair, readAll, transfer } from "./support/memory_pair.ts";
import { assertNoLiveNativeObjects } from "./support/leaks.ts";

const pki = sharedTestPki();
const trustRoot = { caCerts: [pki.rootCa.cert] };
const server = { cert: pki.server.chainPem, key: pki.server.key };
const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array | null) => (b === null ? null : new TextDecoder().decode(b));

/** Sends `data` through `from` and returns what `to` decrypts. */
function roundTrip(
  from: Parameters<typeof transfer>[0],
  to: Parameters<typeof transfer>[0],
  data: Uint8Array,
) {
  assert.equal(from.write(data), data.length);
  transfer(from, to);
  return readAll(to);
}

for (const version of ["TLSv1.3", "TLSv1.2"] as const) {
  test(`${version} handshake in memory, verified chain, data both ways`, async () => {
    const p = makePair({ ...trustRoot, maxVersion: version }, server);
    try {
      await handshakePair(p.client, p.server);
      assert.equal(p.client.protocol, version);
      assert.equal(p.server.protocol, version);
      assert.equal(p.client.cipher, p.server.cipher);
      assert.match(
        p.client.cipher,
        version === "TLSv1.3" ? /^TLS_(AES|CHACHA20)/ : /^ECDHE-ECDSA-(AES|CHACHA20)/,
      );
      assert.equal(p.client.verifyResult, 0);
      assert.equal(p.client.sessionReused, false);
      assert.equal(p.client.peerCertificate?.subject, "CN=localhost,O=libssl-ffi tests");
      assert.deepEqual(
        p.client.peerCertificateChain.map((c) => c.subject.split(",")[0]),
        ["CN=localhost", "CN=libssl-ffi Test Intermediate CA", "CN=libssl-ffi Test Root CA"],
      );
      assert.equal(p.server.servername, "localhost", "the server saw the SNI");
      assert.equal(p.server.peerCertificate, null, "no client certificate was asked for");
      assert.equal(str(roundTrip(p.client, p.server, text("ping"))), "ping");
      assert.equal(str(roundTrip(p.server, p.client, text("pong"))), "pong");
      assert.equal(p.client.handshake().status, "done", "handshake() is idempotent");
    } finally {
      p.close();
    }
    assertNoLiveNativeObjects();
  });
}

test("16 MiB each way arrives byte-exact (SHA-256 compared)", async () => {
  const p = makePair(trustRoot, server);
  try {
    await handshakePair(p.client, p.server);
    for (const [from, to] of [[p.client, p.server], [p.server, p.client]] as const) {
      const data = randomBytes(16 * 1024 * 1024);
      const hash = createHash("sha256");
      let received = 0;
      // Write in 1 MiB pieces, as a transport would, so buffers stay bounded.
      for (let off = 0; off < data.length; off += 1 << 20) {
        from.write(data.subarray(off, off + (1 << 20)));
        transfer(from, to);
        const got = readAll(to);
        assert.ok(got !== null);
        hash.update(got);
        received += got.length;
      }
      assert.equal(received, data.length);
      assert.equal(hash.digest("hex"), createHash("sha256").update(data).digest("hex"));
    }
  } finally {
    p.close();
  }
  assertNoLiveNativeObjects();
}, { timeout: 60_000 });

test("close_notify is a clean end of stream; half-close still lets the other side write", async () => {
  const p = makePair(trustRoot, server);
  try {
    await handshakePair(p.client, p.server);
    p.client.write(text("last words"));
    p.client.closeWrite();
    p.client.closeWrite(); // idempotent
    transfer(p.client, p.server);
    assert.equal(str(readAll(p.server)), "last words");
    assert.equal(p.server.read(new Uint8Array(10)), null, "EOF after close_notify");
    assert.equal(p.server.read(new Uint8Array(10)), null, "and it stays EOF");
    assert.equal(p.server.receivedCloseNotify, true);
    // The server may still answer after the client's close_notify (TLS 1.3 half-close).
    assert.equal(str(roundTrip(p.server, p.client, text("reply"))), "reply");
    assert.throws(
      () => p.client.write(text("more")),
      (e) => e instanceof TlsError && e.code === "CLOSED",
    );
    p.server.closeWrite();
    transfer(p.server, p.client);
    assert.equal(p.client.read(new Uint8Array(10)), null);
  } finally {
    p.close();
  }
  assertNoLiveNativeObjects();
});

test("EOF without close_notify after data is UNEXPECTED_EOF, never a clean end", async () => {
  const p = makePair(trustRoot, server);
  try {
    await handshakePair(p.client, p.server);
    p.server.write(text("partial"));
    transfer(p.server, p.client);
    p.client.receiveEof();
    const buf = new Uint8Array(100);
    const n = p.client.read(buf);
    assert.equal(str(buf.subarray(0, n ?? 0)), "partial", "data before the truncation is kept");
    assert.throws(() => p.client.read(buf), (e: unknown) => {
      assert.ok(e instanceof TlsError);
      assert.equal(e.code, "UNEXPECTED_EOF");
      assert.ok(e.openssl.some((x) => x.reasonText === "unexpected eof while reading"));
      return true;
    });
    // The failure is sticky.
    assert.throws(
      () => p.client.read(buf),
      (e) => e instanceof TlsError && e.code === "UNEXPECTED_EOF",
    );
  } finally {
    p.close();
  }
  assertNoLiveNativeObjects();
});

test("EOF in the middle of the handshake is UNEXPECTED_EOF", () => {
  const p = makePair(trustRoot, server);
  try {
    assert.equal(p.client.handshake().status, "want-read");
    transfer(p.client, p.server);
    assert.equal(p.server.handshake().status, "want-read");
    const flight = p.server.outgoing()!;
    p.client.receive(flight.subarray(0, 20)); // a cut ServerHello
    p.client.receiveEof();
    assert.throws(
      () => p.client.handshake(),
      (e) => e instanceof TlsError && e.code === "UNEXPECTED_EOF",
    );
  } finally {
    p.close();
  }
  assertNoLiveNativeObjects();
});

test("a flipped bit in a record fails cleanly with PROTOCOL_ERROR (bad record mac)", async () => {
  const p = makePair(trustRoot, server);
  try {
    await handshakePair(p.client, p.server);
    readAll(p.client); // TLS 1.3 tickets
    p.server.write(text("integrity matters"));
    const record = p.server.outgoing()!;
    record[record.length - 3]! ^= 0x01;
    p.client.receive(record);
    assert.throws(() => p.client.read(new Uint8Array(100)), (e: unknown) => {
      assert.ok(e instanceof TlsError);
      assert.equal(e.code, "PROTOCOL_ERROR");
      assert.match(e.message, /bad record mac|decryption failed/);
      return true;
    });
    // The client's alert reaches the server, which reports it.
    transfer(p.client, p.server);
    assert.throws(() => p.server.read(new Uint8Array(10)), (e: unknown) => {
      assert.ok(e instanceof TlsError);
      assert.equal(e.code, "ALERT_RECEIVED");
      assert.equal(e.alert?.code, 20); // bad_record_mac
      return true;
    });
  } finally {
    p.close();
  }
  assertNoLiveNativeObjects();
});

test("garbage instead of a ServerHello is HANDSHAKE_FAILED, not a hang", () => {
  const p = makePair(trustRoot, server);
  try {
    p.client.handshake();
    p.client.outgoing();
    p.client.receive(text("HTTP/1.1 400 Bad Request\r\n\r\n"));
    assert.throws(() => p.client.handshake(), (e: unknown) => {
      assert.ok(e instanceof TlsError);
      assert.equal(e.code, "HANDSHAKE_FAILED");
      assert.ok(e.openssl.length > 0, "the OpenSSL error queue is attached");
      assert.match(e.openssl[0]!.text, /^error:[0-9A-F]{8}:/);
      return true;
    });
  } finally {
    p.close();
  }
  assertNoLiveNativeObjects();
});

test("no shared protocol version: the alert is surfaced on both sides", async () => {
  const p = makePair({ ...trustRoot, minVersion: "TLSv1.3" }, { ...server, maxVersion: "TLSv1.2" });
  try {
    await assert.rejects(handshakePair(p.client, p.server), (e: unknown) => {
      assert.ok(e instanceof TlsError);
      assert.equal(e.code, "HANDSHAKE_FAILED"); // the server fails first
      return true;
    });
    transfer(p.server, p.client);
    assert.throws(() => p.client.handshake(), (e: unknown) => {
      assert.ok(e instanceof TlsError);
      assert.equal(e.code, "ALERT_RECEIVED");
      assert.equal(e.alert?.code, 70); // protocol_version
      assert.equal(e.alert?.description, "protocol version");
      return true;
    });
  } finally {
    p.close();
  }
  assertNoLiveNativeObjects();
});

test("a failure leaves no stale OpenSSL errors: a good handshake right after works", async () => {
  const bad = makePair({ caCerts: [pki.otherRootCa.cert] }, server);
  await assert.rejects(handshakePair(bad.client, bad.server));
  bad.close();
  const good = makePair(trustRoot, server);
  try {
    await handshakePair(good.client, good.server);
    assert.equal(str(roundTrip(good.client, good.server, text("ok"))), "ok");
  } finally {
    good.close();
  }
  assertNoLiveNativeObjects();
});

test("bad arguments throw TypeError before any work", async () => {
  const p = makePair(trustRoot, server);
  try {
    // deno-lint-ignore no-explicit-any
    const anyClient = p.client as any;
    assert.throws(() => anyClient.receive("text"), TypeError);
    assert.throws(() => anyClient.read([1, 2]), TypeError);
    assert.throws(() => p.client.read(new Uint8Array(1)), TypeError, "read before handshake");
    assert.throws(() => p.client.write(new Uint8Array(1)), TypeError, "write before handshake");
    await handshakePair(p.client, p.server);
    assert.throws(() => anyClient.write("text"), TypeError);
    assert.equal(p.client.write(new Uint8Array(0)), 0, "an empty write is a no-op");
    assert.equal(p.client.read(new Uint8Array(0)), 0, "an empty read is a no-op");
  } finally {
    p.close();
  }
  assertNoLiveNativeObjects();
});

test("close() is idempotent; use after close is CLOSED", async () => {
  const p = makePair(trustRoot, server);
  await handshakePair(p.client, p.server);
  p.close();
  p.close();
  assert.equal(p.client.closed, true);
  assert.throws(() => p.client.handshake(), (e) => e instanceof TlsError && e.code === "CLOSED");
  assert.throws(
    () => p.client.read(new Uint8Array(1)),
    (e) => e instanceof TlsError && e.code === "CLOSED",
  );
  assert.throws(
    () => p.client.write(text("x")),
    (e) => e instanceof TlsError && e.code === "CLOSED",
  );
  assert.equal(p.client.outgoing(), null);
  assertNoLiveNativeObjects();
});

test("the alert of a failed handshake is still delivered after the failure", async () => {
  const p = makePair({ caCerts: [pki.otherRootCa.cert] }, server);
  try {
    await assert.rejects(
      handshakePair(p.client, p.server),
      (e) => e instanceof TlsError && e.code === "CERT_VERIFY_FAILED",
    );
    assert.ok(p.client.pendingOutgoing > 0, "the alert waits to be sent");
    transfer(p.client, p.server);
    assert.throws(() => p.server.handshake(), (e: unknown) => {
      assert.ok(e instanceof TlsError);
      assert.equal(e.code, "ALERT_RECEIVED");
      assert.equal(e.alert?.code, 48); // unknown_ca
      return true;
    });
  } finally {
    p.close();
  }
  assertNoLiveNativeObjects();
});

test("lent input (receiveLent): read in place, mixed with copies, EOF still a truncation", async () => {
  const p = makePair(trustRoot, server);
  try {
    await handshakePair(p.client, p.server);
    const data = randomBytes(100_000);
    p.server.write(data);
    const wire = p.server.outgoing()!;
    const half = wire.length >> 1;
    // Lent bytes over a scratch buffer, as the Deno transport does with its socket buffer.
    const scratch = new Uint8Array(wire.length);
    scratch.set(wire.subarray(0, half));
    p.client.receiveLent(scratch.subarray(0, half));
    const got = new Uint8Array(data.length);
    let n = p.client.read(got.subarray(0, 1000))!; // leaves most of the lent bytes unread
    // Lent again while input is unread: copied instead, appended after the unread tail.
    p.client.receiveLent(wire.subarray(half, half + 10));
    // An ordinary receive() takes over what is still unread of the lent bytes, then appends.
    p.client.receive(wire.subarray(half + 10));
    scratch.fill(0); // the engine holds no lent bytes any more: changing them is harmless
    for (;;) {
      const m = p.client.read(got.subarray(n));
      if (m === null || m === 0) break;
      n += m;
    }
    assert.equal(n, data.length);
    assert.ok(got.every((b, i) => b === data[i]), "byte-exact");
    // Lent input, then EOF without close_notify: still a truncation, never a clean end.
    p.server.write(text("tail"));
    p.client.receiveLent(p.server.outgoing()!);
    assert.equal(str(readAll(p.client)), "tail");
    p.client.receiveEof();
    assert.throws(
      () => p.client.read(new Uint8Array(16)),
      (e) => e instanceof TlsError && e.code === "UNEXPECTED_EOF",
    );
  } finally {
    p.close();
  }
  assertNoLiveNativeObjects();
});
