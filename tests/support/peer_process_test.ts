/**
 * Checks `peer_process.ts`: free ports, and that `stop()` leaves nothing behind.
 *
 * @module
 */

import assert from "node:assert/strict";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { test } from "../harness.ts";
import { startGnutlsServer } from "./gnutls_peer.ts";
import { startNodeTlsServer } from "./node_peer.ts";
import { canConnect, freePort } from "./peer_process.ts";
import { assertStopped, isAlive, pki } from "./probes.ts";

/** Preloaded into the Node peer (`--require`) to make it ignore SIGTERM. */
const IGNORE_SIGTERM = fileURLToPath(new URL("../fixtures/ignore_sigterm.cjs", import.meta.url));

test("peers: freePort returns a port that can be bound on 127.0.0.1", async () => {
  const port = await freePort();
  assert.ok(port > 1024 && port < 65536, String(port));
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", resolve);
  });
  assert.equal(await canConnect(port), true);
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

test("peers: stop() leaves no process behind, even for a server that ignores SIGTERM", async () => {
  const stubborn = await startNodeTlsServer({
    cert: pki.serverChainPath,
    key: pki.server.keyPath,
    env: { NODE_OPTIONS: `--require ${IGNORE_SIGTERM}` },
  });
  const gnutls = await startGnutlsServer({ cert: pki.serverChainPath, key: pki.server.keyPath });
  try {
    assert.equal(isAlive(stubborn.pid), true);
    assert.equal(isAlive(gnutls.pid), true);
    // kill() + exited, for "the server dies mid-test" cases.
    gnutls.kill("SIGKILL");
    assert.equal((await gnutls.exited).signal, "SIGKILL");
    const started = Date.now();
    await assertStopped(stubborn);
    const took = Date.now() - started;
    assert.match(stubborn.output(), /IGNORED SIGTERM/);
    assert.equal((await stubborn.exited).signal, "SIGKILL");
    assert.ok(took >= 1_900 && took < 4_000, `stop() took ${took} ms`);
  } finally {
    await assertStopped(stubborn);
    await assertStopped(gnutls);
  }
});
