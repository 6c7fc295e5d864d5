/**
 * The ecosystem examples, run as a user runs them (no arguments: each makes its own peers):
 * `examples/fetch_mtls.ts` (undici's fetch through `tlsConnector` to two `openssl s_server`
 * that each accept another client CA) and `examples/mqtt_psk.ts` (MQTT.js through
 * `nodeConnect` to a mosquitto PSK listener).
 *
 * @module
 */

import assert from "node:assert/strict";
import { test } from "./harness.ts";
import { freePort } from "./support/peer_process.ts";
import { runScript } from "./support/subprocess.ts";

test("examples/fetch_mtls.ts: each server gets the identity it accepts", () => {
  const r = runScript("examples/fetch_mtls.ts", [], { timeout: 60_000 });
  assert.equal(r.signal, null, `killed (hung?): ${r.stderr}`);
  assert.equal(r.status, 0, r.stderr);
  assert.match(
    r.stdout,
    /server accepts CN=Corp Client CA,O=fetch_mtls demo -> sending CN=corp-laptop,O=fetch_mtls demo\nhttps:\/\/127\.0\.0\.1:\d+\/ -> 200/,
  );
  assert.match(
    r.stdout,
    /server accepts CN=Lab Client CA,O=fetch_mtls demo -> sending CN=lab-bench,O=fetch_mtls demo\nhttps:\/\/127\.0\.0\.1:\d+\/ -> 200/,
  );
}, { timeout: 90_000 });

test("examples/fetch_mtls.ts: bad usage exits 2, a refused connection exits 1 with the code", async () => {
  const usage = runScript("examples/fetch_mtls.ts", ["--ocsp", "maybe"]);
  assert.equal(usage.status, 2, usage.stderr);
  assert.match(usage.stderr, /--ocsp request\|require\|off\nusage: fetch_mtls\.ts/);
  // Nothing listens there: a typed network error, not a stack trace. (Not port 1: fetch
  // refuses "bad ports" itself, before any connection.)
  const port = await freePort();
  const refused = runScript("examples/fetch_mtls.ts", [`https://127.0.0.1:${port}/`]);
  assert.equal(refused.status, 1, refused.stderr);
  assert.match(refused.stderr, /^TLS error [A-Z_]+: /m);
});

test("examples/mqtt_psk.ts: subscribe, publish and receive over a PSK listener", () => {
  const r = runScript("examples/mqtt_psk.ts", [], { timeout: 60_000 });
  assert.equal(r.signal, null, `killed (hung?): ${r.stderr}`);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /connected to 127\.0\.0\.1:\d+ as PSK identity demo-device/);
  assert.match(r.stdout, /^received devices\/demo\/status: hello from libssl-ffi$/m);
}, { timeout: 90_000 });
