import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { test } from "./harness.ts";
import { runScript } from "./support/subprocess.ts";

test("examples/engine_demo.ts runs to the end and reports the session", () => {
  const r = runScript("examples/engine_demo.ts", [], {
    denoFlags: ["--allow-ffi", "--allow-env", "--allow-read", "--allow-write", "--allow-run"],
    timeout: 30_000,
  });
  assert.equal(r.signal, null, `killed (hung?): ${r.stderr}`);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^OpenSSL 3\.\d+\.\d+/m);
  assert.match(r.stdout, /verify depth 1: CN=Demo CA -> ok/);
  assert.match(r.stdout, /verify depth 0: CN=localhost -> ok/);
  assert.match(r.stdout, /TLSv1\.3 TLS_\w+, server saw SNI "localhost"/);
  assert.match(r.stdout, /server read: hello from the client/);
  assert.match(r.stdout, /client read: hello from the server/);
  assert.match(r.stdout, /client read after close_notify: null/);
}, { timeout: 60_000 });

test("examples/client.ts with no arguments: the embedded demo against openssl s_server", () => {
  const r = runScript("examples/client.ts", [], {
    denoFlags: [
      "--allow-ffi",
      "--allow-env",
      "--allow-read",
      "--allow-write",
      "--allow-run",
      "--allow-net",
    ],
    timeout: 60_000,
  });
  assert.equal(r.signal, null, `killed (hung?): ${r.stderr}`);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /protocol {6}TLSv1\.3/);
  assert.match(r.stdout, /ALPN {10}http\/1\.1/);
  assert.match(r.stdout, /0\. CN=localhost,O=libssl-ffi demo/);
  assert.match(r.stdout, /2\. CN=Demo Root CA,O=libssl-ffi demo/);
  assert.match(r.stdout, /names DNS:localhost, IP:127\.0\.0\.1/);
  assert.match(r.stdout, /acceptable issuers: CN=Lab Client CA,O=libssl-ffi demo/);
  assert.match(r.stdout, /not "corp": its chain reaches none of them/);
  assert.match(r.stdout, /chose "lab" \(CN=alice@lab,O=libssl-ffi demo\)/);
  assert.match(r.stdout, /HTTP\/1\.0 200 ok/);
  assert.match(r.stdout, /Client certificate/);
  assert.match(r.stdout, /end of stream \(close_notify received\)/);
  // The demo cleans up after itself: its temp dir is gone.
  const dir = /certificates in (\S+)\)/.exec(r.stdout)?.[1];
  assert.ok(dir !== undefined);
  assert.equal(existsSync(dir), false, `${dir} was left behind`);
}, { timeout: 90_000 });

test("examples/client.ts reports a connection failure as a typed error, exit code 1", () => {
  // Nothing listens on port 1.
  const r = runScript("examples/client.ts", ["127.0.0.1:1"], { timeout: 30_000 });
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stderr, /TLS error NETWORK_ERROR: cannot connect to 127\.0\.0\.1:1/);
}, { timeout: 60_000 });

test(
  "examples/client.ts --pin accepts a pinned self-signed server; --trace and --keylog work",
  async () => {
    const { sharedTestPki } = await import("./support/pki.ts");
    const { startOpensslServer } = await import("./support/peers.ts");
    const { Certificate } = await import("../mod.ts");
    const { mkdtempSync, readFileSync, rmSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const pki = sharedTestPki();
    const dir = mkdtempSync(join(tmpdir(), "libssl-ffi-example-"));
    const server = await startOpensslServer({
      cert: pki.selfSignedServer.certPath,
      key: pki.selfSignedServer.keyPath,
      www: true,
    });
    try {
      const pin = Certificate.fromPem(pki.selfSignedServer.cert).fingerprint256;
      const keylog = join(dir, "keys.txt");
      const target = `localhost:${server.port}`;
      const ok = runScript(
        "examples/client.ts",
        [
          target,
          "--pin",
          pin,
          "--trace",
          "--keylog",
          keylog,
          "--request",
          "GET / HTTP/1.0\\r\\n\\r\\n",
        ],
        { timeout: 30_000 },
      );
      assert.equal(ok.status, 0, ok.stdout + ok.stderr);
      assert.match(ok.stdout, /pinned leaf accepted despite: self-signed certificate/);
      assert.match(ok.stdout, /\[trace\] start/);
      assert.match(ok.stdout, /\[trace\] loop {2}SSLv3\/TLS write client hello/);
      assert.match(ok.stdout, /\[trace\] done/);
      assert.match(ok.stdout, /HTTP\/1\.0 200 ok/);
      assert.equal(
        readFileSync(keylog, "utf8").trim().split("\n").length,
        5,
        "TLS 1.3: five secrets",
      );
      // Another pin: refused, with the verification error.
      const wrong = runScript("examples/client.ts", [target, "--pin", "00".repeat(32)], {
        timeout: 30_000,
      });
      assert.equal(wrong.status, 1);
      assert.match(wrong.stderr, /TLS error CERT_VERIFY_FAILED/);
    } finally {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  },
  { timeout: 90_000 },
);
