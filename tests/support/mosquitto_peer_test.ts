/**
 * Checks the Mosquitto peer (`mosquitto_peer.ts`): a certificate listener that requires a client
 * certificate, and a TLS-PSK listener, each answering an MQTT 3.1.1 CONNECT with a CONNACK
 * (written by hand here, so that the check needs no MQTT client).
 *
 * @module
 */

import assert from "node:assert/strict";
import { connect } from "../../mod.ts";
import { test } from "../harness.ts";
import { localClientOptions } from "./listener.ts";
import { startMosquitto } from "./mosquitto_peer.ts";
import { assertStopped, pki } from "./probes.ts";

/** MQTT 3.1.1 CONNECT, clean session, keep-alive 60 s, client id "t". */
const CONNECT = new Uint8Array([
  0x10,
  13,
  0x00,
  0x04,
  0x4d,
  0x51,
  0x54,
  0x54,
  0x04,
  0x02,
  0x00,
  0x3c,
  0x00,
  0x01,
  0x74,
]);
/** CONNACK, session not present, return code 0 (accepted). */
const CONNACK = [0x20, 0x02, 0x00, 0x00];

test("peers: mosquitto, certificate listener: CONNACK for a client with a certificate", async () => {
  const broker = await startMosquitto({
    tls: { cert: pki.server.chainPath, key: pki.server.keyPath, ca: pki.rootCaPath },
  });
  try {
    const conn = await connect(localClientOptions(broker.port, {
      cert: pki.client.chainPem,
      key: pki.client.key,
    }));
    await conn.write(CONNECT);
    const buf = new Uint8Array(4);
    assert.equal(await conn.read(buf), 4);
    assert.deepEqual([...buf], CONNACK);
    conn.close();
  } finally {
    await broker.stop();
  }
  await assertStopped(broker);
});

test("peers: mosquitto, PSK listener: CONNACK for a client with the key", async () => {
  const key = "5e7c3a9b1d2f4e6a8c0b1d3f5a7c9e2b";
  await using broker = await startMosquitto({
    psk: { hint: "test-broker", identity: "device-7", key },
  });
  const conn = await connect({
    hostname: "127.0.0.1",
    port: broker.port,
    psk: { identity: "device-7", key: Uint8Array.from(key.match(/../g)!, (h) => parseInt(h, 16)) },
    handshakeTimeout: 5_000,
  });
  assert.equal(conn.pskIdentity, "device-7");
  await conn.write(CONNECT);
  const buf = new Uint8Array(4);
  assert.equal(await conn.read(buf), 4);
  assert.deepEqual([...buf], CONNACK);
  conn.close();
});
