/**
 * The listener under abuse (issue #17): what attackers can do cheaply must not keep real
 * clients out. Each case ends by serving a real client (our own `connect()`), within a loose
 * bound given as that client's handshake timeout, never as a timing assertion.
 *
 * @module
 */

import assert from "node:assert/strict";
import { connect, listen, type TlsError } from "../mod.ts";
import { test } from "./harness.ts";
import { clearCacheAndAssertNoLeaks } from "./support/leaks.ts";
import { localClientOptions, localServerOptions } from "./support/listener.ts";
import { opensslClient, parseOpensslClient } from "./support/clients.ts";
import { sharedTestPki } from "./support/pki.ts";
import { startRawClient } from "./support/raw_peers.ts";

test("listener: 200 clients that reset before accept() do not stall the next real client", async () => {
  const errors: TlsError[] = [];
  const server = listen(localServerOptions({
    // One slot and a short handshake limit: a silent client holds the slot for 1 s, and
    // meanwhile the resets wait in the kernel's accept queue (Deno accepts by pulling).
    maxPendingConnections: 1,
    handshakeTimeout: 1_000,
    onError: (error) => errors.push(error),
  }));
  try {
    const port = server.addr.port;
    const served = (async () => {
      for await (const conn of server) {
        await conn.write(new TextEncoder().encode("hello\n"));
        conn.close();
      }
    })();
    const silent = await startRawClient(port, "silent");
    for (let i = 0; i < 200; i++) await (await startRawClient(port, "reset")).closed;
    await silent.closed; // the listener timed it out: the accept loop meets the resets now
    // Before the fix the loop slept 100 ms per reset connection (20 s here): this client's
    // 6 s limit would then run out.
    const conn = await connect(localClientOptions(port, { handshakeTimeout: 6_000 }));
    const buf = new Uint8Array(16);
    assert.equal(new TextDecoder().decode(buf.subarray(0, (await conn.read(buf)) ?? 0)), "hello\n");
    conn.close();
    server.close();
    await served;
    // Whatever was reported is about single connections, each a TlsError.
    for (const error of errors) assert.equal(error.name, "TlsError");
  } finally {
    server.close();
  }
  clearCacheAndAssertNoLeaks();
});

test("listener: the default TLS 1.2 list's DHE suites are negotiable (RSA key, s_client)", async () => {
  // Servers use automatic FFDHE parameters: a client offering only DHE gets a handshake, not
  // alert 40 (the listed-but-never-chosen suites the audit found).
  const rsa = sharedTestPki({ keyType: "rsa" });
  const server = listen(localServerOptions({ cert: rsa.server.chainPem, key: rsa.server.key }));
  try {
    const served = (async () => {
      for await (const conn of server) conn.close();
    })();
    for (const cipher of ["DHE-RSA-AES128-GCM-SHA256", "DHE-RSA-CHACHA20-POLY1305"]) {
      const client = opensslClient({
        port: server.addr.port,
        caFile: rsa.rootCaPath,
        tls: "1.2",
        extraArgs: ["-cipher", cipher],
      });
      const result = await client.result;
      const report = parseOpensslClient(result);
      assert.equal(report.code, 0, result.stderr);
      assert.equal(report.protocol, "TLSv1.2");
      assert.equal(report.cipher, cipher);
    }
    server.close();
    await served;
  } finally {
    server.close();
  }
  clearCacheAndAssertNoLeaks();
});
