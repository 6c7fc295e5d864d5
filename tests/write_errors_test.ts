/**
 * What a write reports when the peer has gone: the peer's alert when it sent one before the
 * reset (read before the reset is reported), and a reset named as such, not as a truncation.
 * Against `openssl s_server`, on every runtime.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, type Connection, TlsError } from "../mod.ts";
import { test } from "./harness.ts";
import { sharedTestPki } from "./support/pki.ts";
import { startOpensslServer } from "./support/openssl_peer.ts";
import { clearCacheAndAssertNoLeaks as finish } from "./support/leaks.ts";

const pki = sharedTestPki();
const enc = new TextEncoder();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Writes until one fails (at most `tries`, `gap` ms apart), then reads; returns the first error. */
async function firstFailure(conn: Connection, tries: number, gap: number): Promise<unknown> {
  for (let i = 0; i < tries; i++) {
    await sleep(gap);
    try {
      await conn.write(enc.encode(`line ${i}\n`));
    } catch (error) {
      return error;
    }
  }
  try {
    await conn.read(new Uint8Array(64));
  } catch (error) {
    return error;
  }
  return null;
}

test("TLS 1.3 server refusing our certificate: the write (or the read after it) reports its alert 48", async () => {
  // TLS 1.3: our client finishes its handshake before s_server looks at our certificate; it then
  // sends alert 48 (unknown CA) and closes, and our next write meets a reset. Whichever operation
  // fails first must report the server's alert, on every runtime, however the reset races it.
  await using server = await startOpensslServer({
    cert: pki.server.certPath,
    key: pki.server.keyPath,
    chain: pki.intermediateCa.certPath,
    caFile: pki.rootCaPath,
    verify: "require",
    tls: "1.3",
  });
  for (const gap of [0, 50, 200]) {
    const conn = await connect({
      hostname: "127.0.0.1",
      port: server.port,
      caCerts: [pki.rootCa.cert],
      servername: "localhost",
      cert: pki.otherRootClient.chainPem,
      key: pki.otherRootClient.key,
    });
    const error = await firstFailure(conn, 4, gap);
    assert.ok(error instanceof TlsError, `gap ${gap}: ${String(error)}`);
    assert.equal(error.code, "ALERT_RECEIVED", `gap ${gap}: ${error.message}`);
    assert.equal(error.alert?.code, 48, error.message);
    conn.close();
  }
  finish();
});

test("a server that vanished: the write reports the reset as a NETWORK_ERROR, not a truncation", async () => {
  await using server = await startOpensslServer({
    cert: pki.server.certPath,
    key: pki.server.keyPath,
    chain: pki.intermediateCa.certPath,
    tls: "1.3",
  });
  const conn = await connect({
    hostname: "127.0.0.1",
    port: server.port,
    caCerts: [pki.rootCa.cert],
    servername: "localhost",
  });
  // s_server dies without close_notify: its kernel sends a FIN, then resets our writes.
  server.kill("SIGKILL");
  await sleep(100);
  let error: unknown = null;
  for (let i = 0; i < 20 && error === null; i++) {
    await conn.write(enc.encode("x")).catch((e) => (error = e));
    await sleep(20);
  }
  assert.ok(error instanceof TlsError, String(error));
  assert.equal(error.code, "NETWORK_ERROR", error.message);
  assert.match(error.message, /reset the connection during a write/);
  assert.doesNotMatch(error.message, /truncation/);
  conn.close();
  finish();
});
