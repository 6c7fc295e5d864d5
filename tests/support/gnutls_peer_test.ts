/**
 * Checks the `gnutls-serv` peer (`gnutls_peer.ts`) with independent clients (`probes.ts`).
 *
 * @module
 */

import assert from "node:assert/strict";
import { test } from "../harness.ts";
import { startGnutlsServer } from "./gnutls_peer.ts";
import {
  assertStopped,
  clientCertArgs,
  pki,
  receive,
  runOpenssl,
  sClient,
  secureConnected,
  tlsClient,
} from "./probes.ts";

test("peers: gnutls-serv answers TLS 1.3 on 127.0.0.1 and echoes", async () => {
  const server = await startGnutlsServer({
    cert: pki.serverChainPath,
    key: pki.server.keyPath,
    tls: "1.3",
    echo: true,
  });
  try {
    const client = await runOpenssl(sClient(server.port));
    assert.match(client.output, /Protocol version: TLSv1\.3/);
    assert.match(client.output, /Verification: OK/);
    await server.waitFor(/Version: TLS1\.3/);
    // Refuses TLS 1.2 as asked.
    const old = await runOpenssl(sClient(server.port, "-tls1_2"));
    assert.doesNotMatch(old.output, /Protocol version/);
    // Echo, and concurrent connections (unlike s_server).
    const one = tlsClient(server.port);
    const two = tlsClient(server.port);
    try {
      await Promise.all([secureConnected(one), secureConnected(two)]);
      two.write("second\n");
      one.write("first\n");
      await Promise.all([receive(one, "first\n"), receive(two, "second\n")]);
    } finally {
      one.destroy();
      two.destroy();
    }
  } finally {
    await assertStopped(server);
  }
});

test("peers: gnutls-serv ALPN and required client certificate", async () => {
  const server = await startGnutlsServer({
    cert: pki.serverChainPath,
    key: pki.server.keyPath,
    caFile: pki.rootCaPath,
    clientCert: "require",
    alpn: ["h2", "http/1.1"],
    echo: true,
  });
  try {
    const without = await runOpenssl(sClient(server.port, "-alpn", "http/1.1", "-ign_eof"));
    assert.notEqual(without.status, 0);
    assert.match(without.output, /alert certificate required/);
    await server.waitFor(/Error in handshake: Certificate is required/);
    const mark = server.output().length;
    const withChain = await runOpenssl([
      ...sClient(server.port, "-alpn", "http/1.1", ...clientCertArgs).filter((arg) =>
        arg !== "-brief"
      ), // -brief does not print the ALPN result
    ]);
    assert.equal(withChain.status, 0, withChain.output);
    assert.match(withChain.output, /ALPN protocol: http\/1\.1/);
    assert.match(withChain.output, /Verify return code: 0 \(ok\)/);
    await server.waitFor(/Subject: CN=test-client/, 5_000, mark);
    await server.waitFor(/Application protocol: http\/1\.1/, 5_000, mark);
  } finally {
    await assertStopped(server);
  }
});
