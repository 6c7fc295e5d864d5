/**
 * Checks the nginx peer (`nginx_peer.ts`) with an independent client, `curl`: it serves the
 * PKI's chain, asks for a client certificate from the configured CAs only, speaks HTTP/2 when
 * asked to, and stops cleanly.
 *
 * @module
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { test } from "../harness.ts";
import { startNginx } from "./nginx_peer.ts";
import { assertStopped, pki } from "./probes.ts";

/** Runs curl against the peer (SNI localhost, resolved to 127.0.0.1); its stdout or its error. */
function curl(port: number, ...extra: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    execFile(
      "curl",
      [
        "--silent",
        "--show-error",
        "--max-time",
        "8",
        "--cacert",
        pki.rootCaPath,
        "--resolve",
        `localhost:${port}:127.0.0.1`,
        ...extra,
        `https://localhost:${port}/`,
      ],
      (error, stdout, stderr) => {
        const code = error === null ? 0 : Number((error as { code?: number }).code ?? 1);
        resolve({ code, stdout: stdout + stderr });
      },
    );
  });
}

test("peers: nginx requires a client certificate from its CAs and names it", async () => {
  const nginx = await startNginx({
    cert: pki.server.chainPath,
    key: pki.server.keyPath,
    clientCas: [pki.rootCaPath],
  });
  try {
    const withCert = await curl(
      nginx.port,
      "--cert",
      pki.client.chainPath,
      "--key",
      pki.client.keyPath,
      "--http1.1",
    );
    assert.equal(withCert.code, 0, withCert.stdout);
    assert.match(
      withCert.stdout,
      /client=CN=test-client,.* verify=SUCCESS proto=HTTP\/1\.1 sni=localhost/,
    );
    // A certificate from a CA nginx does not list: its verification fails (400 from nginx).
    const foreign = await curl(
      nginx.port,
      "--cert",
      pki.otherRootClient.certPath,
      "--key",
      pki.otherRootClient.keyPath,
    );
    assert.doesNotMatch(foreign.stdout, /verify=SUCCESS/);
  } finally {
    await nginx.stop();
  }
  await assertStopped(nginx);
});

test("peers: nginx speaks HTTP/2 through ALPN when asked to", async () => {
  await using nginx = await startNginx({
    cert: pki.server.chainPath,
    key: pki.server.keyPath,
    http2: true,
  });
  const h2 = await curl(nginx.port, "--http2");
  assert.equal(h2.code, 0, h2.stdout);
  assert.match(h2.stdout, /client= verify=NONE proto=HTTP\/2\.0 sni=localhost/);
});
