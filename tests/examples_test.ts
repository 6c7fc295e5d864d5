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
  assert.match(r.stdout, /HTTP\/1\.0 200 ok/);
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
