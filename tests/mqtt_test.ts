/**
 * MQTT.js through `nodeConnect()` to Mosquitto (Debian `mosquitto`, configured here): on a
 * listener that requires a client certificate and on a TLS-PSK listener, CONNECT, SUBSCRIBE,
 * PUBLISH and receive our own message back, then a clean DISCONNECT with nothing native left.
 *
 * @module
 */

import assert from "node:assert/strict";
import { MqttClient } from "mqtt";
import { type ConnectOptions, nodeConnect } from "../mod.ts";
import { test } from "./harness.ts";
import { clearCacheAndAssertNoLeaks } from "./support/leaks.ts";
import { startMosquitto } from "./support/mosquitto_peer.ts";
import { sharedTestPki } from "./support/pki.ts";

const pki = sharedTestPki();

/** Connects MQTT.js over `nodeConnect(options)`, round-trips one message and disconnects. */
async function roundTrip(options: ConnectOptions, topic: string): Promise<string> {
  // MQTT.js calls the stream builder for every (re)connection; no reconnects here.
  const client = new MqttClient(() => nodeConnect(options), {
    protocolVersion: 5,
    clientId: `libssl-ffi-${topic.replaceAll("/", "-")}`,
    reconnectPeriod: 0,
    connectTimeout: 5_000,
  });
  try {
    await new Promise<void>((resolve, reject) => {
      client.once("connect", () => resolve());
      client.once("error", reject);
      client.once("close", () => reject(new Error("closed before CONNACK")));
    });
    const received = new Promise<string>((resolve) =>
      client.once("message", (t, payload) => resolve(`${t}: ${payload.toString()}`))
    );
    const [grant] = await client.subscribeAsync(topic, { qos: 1 });
    assert.equal(grant?.qos, 1);
    await client.publishAsync(topic, "hello over libssl-ffi", { qos: 1 });
    return await received;
  } finally {
    await client.endAsync();
  }
}

test("MQTT.js through nodeConnect: Mosquitto with require_certificate", async () => {
  await using broker = await startMosquitto({
    tls: { cert: pki.server.chainPath, key: pki.server.keyPath, ca: pki.rootCaPath },
  });
  const message = await roundTrip({
    hostname: "127.0.0.1",
    servername: "localhost",
    port: broker.port,
    caCerts: [pki.rootCa.cert],
    cert: pki.client.chainPem,
    key: pki.client.key,
  }, "sensors/cert");
  assert.equal(message, "sensors/cert: hello over libssl-ffi");
  await broker.waitFor(/New client connected .* as libssl-ffi-sensors-cert/);
  clearCacheAndAssertNoLeaks();
});

test("MQTT.js through nodeConnect: Mosquitto TLS-PSK listener", async () => {
  const key = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
  await using broker = await startMosquitto({
    psk: { hint: "broker-hint", identity: "device-7", key },
  });
  const message = await roundTrip({
    hostname: "127.0.0.1",
    port: broker.port,
    psk: { identity: "device-7", key: Uint8Array.from(key.match(/../g)!, (h) => parseInt(h, 16)) },
  }, "sensors/psk");
  assert.equal(message, "sensors/psk: hello over libssl-ffi");
  clearCacheAndAssertNoLeaks();
});
