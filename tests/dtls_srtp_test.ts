/**
 * DTLS-SRTP (RFC 5764): the profile and the SRTP keying material equal what OpenSSL's own tools
 * print (`-use_srtp ... -keymatexport EXTRACTOR-dtls_srtp`), our server against `s_client` and
 * our client against `s_server`; our client and server agree with each other; no common
 * profile means no SRTP (the handshake still completes); bad profile names are refused.
 */
import assert from "node:assert/strict";
import { connectDtls, listenDtls, type SrtpProfile } from "../mod.ts";
import { test } from "./harness.ts";
import { serverChainArgs, startDtlsClient, startDtlsServer } from "./support/dtls_peers.ts";
import { clearCacheAndAssertNoLeaks as finish } from "./support/leaks.ts";
import { sharedTestPki } from "./support/pki.ts";

const pki = sharedTestPki();
const hex = (b: Uint8Array) =>
  Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("").toUpperCase();

test("DTLS-SRTP, our server: s_client -use_srtp -keymatexport sees the same profile and keys", async () => {
  try {
    await using server = await listenDtls({
      hostname: "127.0.0.1",
      cert: pki.serverChainPem,
      key: pki.server.key,
      srtpProfiles: ["SRTP_AEAD_AES_128_GCM", "SRTP_AES128_CM_SHA1_80"],
    });
    const accepted = server.accept();
    await using client = startDtlsClient("openssl", server.addr.port, [
      "-CAfile",
      pki.rootCaPath,
      "-use_srtp",
      "SRTP_AES128_CM_SHA1_80",
      "-keymatexport",
      "EXTRACTOR-dtls_srtp",
      "-keymatexportlen",
      "60",
    ]);
    const conn = await accepted;
    const [, printed] = await client.waitFor(/Keying material: ([0-9A-F]+)/);
    assert.match(client.output(), /SRTP Extension negotiated, profile=SRTP_AES128_CM_SHA1_80/);
    assert.equal(conn.srtpProfile, "SRTP_AES128_CM_SHA1_80");
    assert.equal(conn.srtpKeyingMaterial?.length, 60);
    assert.equal(hex(conn.srtpKeyingMaterial!), printed);
    // The general exporter gives the same bytes for the same label.
    assert.equal(hex(conn.exportKeyingMaterial(60, "EXTRACTOR-dtls_srtp")), printed);
  } finally {
    finish();
  }
});

test("DTLS-SRTP, our client: s_server -use_srtp -keymatexport sees the same profile and keys", async () => {
  try {
    await using peer = await startDtlsServer("openssl", [
      ...serverChainArgs(pki),
      "-use_srtp",
      "SRTP_AEAD_AES_256_GCM:SRTP_AES128_CM_SHA1_32",
      "-keymatexport",
      "EXTRACTOR-dtls_srtp",
      "-keymatexportlen",
      "88",
    ]);
    await using conn = await connectDtls({
      hostname: "127.0.0.1",
      port: peer.port,
      servername: "localhost",
      caCerts: [pki.rootCa.cert],
      srtpProfiles: ["SRTP_AEAD_AES_256_GCM"],
    });
    const [, printed] = await peer.waitFor(/Keying material: ([0-9A-F]+)/);
    assert.equal(conn.srtpProfile, "SRTP_AEAD_AES_256_GCM");
    assert.equal(conn.srtpKeyingMaterial?.length, 88);
    assert.equal(hex(conn.srtpKeyingMaterial!), printed);
  } finally {
    finish();
  }
});

test("DTLS-SRTP between our client and server; no common profile; bad names", async () => {
  try {
    const profiles: SrtpProfile[] = ["SRTP_AES128_CM_SHA1_32"];
    await using server = await listenDtls({
      hostname: "127.0.0.1",
      cert: pki.serverChainPem,
      key: pki.server.key,
      srtpProfiles: profiles,
    });
    const options = {
      hostname: "127.0.0.1",
      port: server.addr.port,
      servername: "localhost",
      caCerts: [pki.rootCa.cert],
    };
    const accepted = server.accept();
    await using conn = await connectDtls({ ...options, srtpProfiles: profiles });
    const peer = await accepted;
    assert.equal(conn.srtpProfile, "SRTP_AES128_CM_SHA1_32");
    assert.equal(peer.srtpProfile, "SRTP_AES128_CM_SHA1_32");
    assert.deepEqual(conn.srtpKeyingMaterial, peer.srtpKeyingMaterial);
    // No profile in common: the handshake completes without SRTP (RFC 5764 4.1.1).
    await using plain = await connectDtls({ ...options, srtpProfiles: ["SRTP_AEAD_AES_128_GCM"] });
    assert.equal(plain.srtpProfile, null);
    assert.equal(plain.srtpKeyingMaterial, null);
    // Bad names, before any I/O.
    await assert.rejects(
      connectDtls({ ...options, srtpProfiles: ["SRTP_NULL_HMAC_SHA1_80" as SrtpProfile] }),
      /unknown SRTP profile "SRTP_NULL_HMAC_SHA1_80"/,
    );
    await assert.rejects(connectDtls({ ...options, srtpProfiles: [] }), TypeError);
  } finally {
    finish();
  }
});
