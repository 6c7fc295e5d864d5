import assert from "node:assert/strict";
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
