/**
 * The DTLS datagram splitter (`src/dtls/records.ts`) on made-up bytes: DTLS 1.2 records are cut
 * at their headers and packed up to the MTU; a DTLS 1.3 record (unified header, RFC 9147 4) is
 * refused with `NOT_SUPPORTED` instead of being cut wrong; the ClientHello random a listener
 * uses to tell a restarted client from a retransmission. And DTLS 1.3 detection: the capability
 * agrees with the `openssl` binary of the same build, and the version options say so.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { connectDtls, listenDtls, opensslVersion, TlsError } from "../mod.ts";
import { newClientHelloRandom, packRecords } from "../src/dtls/records.ts";
import { test } from "./harness.ts";

/** A DTLS 1.2 record: type, version FEFD, epoch, sequence 6, length 2, body. */
function record(type: number, epoch: number, body: Uint8Array): Uint8Array {
  const r = new Uint8Array(13 + body.length);
  r[0] = type;
  r[1] = 0xfe;
  r[2] = 0xfd;
  r[3] = epoch >> 8;
  r[4] = epoch & 0xff;
  r[11] = body.length >> 8;
  r[12] = body.length & 0xff;
  r.set(body, 13);
  return r;
}

const concat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) (out.set(p, at), at += p.length);
  return out;
};

test("dtls records: DTLS 1.2 records are packed into datagrams of at most mtu bytes", () => {
  const a = record(22, 0, new Uint8Array(100).fill(1));
  const b = record(22, 0, new Uint8Array(100).fill(2));
  const c = record(23, 1, new Uint8Array(300).fill(3));
  const datagrams = packRecords(concat(a, b, c), 256);
  assert.deepEqual(datagrams.map((d) => d.length), [a.length + b.length, c.length]);
  assert.deepEqual(datagrams[0], concat(a, b));
  assert.deepEqual(datagrams[1], c); // longer than the MTU: alone
});

test("dtls records: a DTLS 1.3 unified header is refused with NOT_SUPPORTED, not cut", () => {
  const unified = Uint8Array.from([0x2c, 0x00, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]); // 001CSLEE
  for (const bytes of [unified, concat(record(22, 0, new Uint8Array(20)), unified)]) {
    assert.throws(
      () => packRecords(bytes, 1200),
      (e: unknown) =>
        e instanceof TlsError && e.code === "NOT_SUPPORTED" && /DTLS 1\.3/.test(e.message),
    );
  }
});

test("dtls records: the random of an epoch-0 ClientHello, and null for anything else", () => {
  const body = new Uint8Array(12 + 2 + 32 + 10);
  body[0] = 1; // client_hello; fragment offset 0
  body[12] = 0xfe;
  body[13] = 0xfd;
  for (let i = 0; i < 32; i++) body[14 + i] = i;
  const hello = record(22, 0, body);
  const expected = Array.from({ length: 32 }, (_, i) => i.toString(16).padStart(2, "0")).join("");
  assert.equal(newClientHelloRandom(hello), expected);
  assert.equal(newClientHelloRandom(record(22, 1, body)), null); // epoch 1: encrypted
  assert.equal(newClientHelloRandom(record(23, 0, body)), null); // not a handshake record
  const serverHello = body.slice();
  serverHello[0] = 2;
  assert.equal(newClientHelloRandom(record(22, 0, serverHello)), null);
  const later = body.slice();
  later[8] = 1; // fragment offset > 0: no random in it
  assert.equal(newClientHelloRandom(record(22, 0, later)), null);
  assert.equal(newClientHelloRandom(hello.subarray(0, 40)), null);
});

test("dtls13 capability: agrees with the openssl binary; DTLS stays pinned to 1.2", async () => {
  const dtls13 = opensslVersion().capabilities.dtls13;
  assert.equal(typeof dtls13, "boolean");
  const help = spawnSync("openssl", ["s_client", "-help"], { encoding: "utf8" });
  assert.equal(help.status === 0 || help.status === 1, true, help.error?.message);
  assert.equal(dtls13, /-dtls1_3\b/.test(help.stdout + help.stderr));
  const refusal = dtls13 ? /does not speak it yet/ : /this OpenSSL does not have it either/;
  await assert.rejects(
    connectDtls({ hostname: "127.0.0.1", port: 9, maxVersion: "TLSv1.3" } as never),
    (e: unknown) => e instanceof TypeError && refusal.test(e.message),
  );
  await assert.rejects(
    listenDtls({ hostname: "127.0.0.1", minVersion: "TLSv1.2" } as never),
    (e: unknown) => e instanceof TypeError && refusal.test(e.message),
  );
});
