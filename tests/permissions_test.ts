/**
 * Deno's permissions (issue #17): a program started without `--allow-net` gets
 * `PERMISSION_DENIED` naming the flag from `connect()` and `listen()`, not a bare network error.
 * The behaviour is Deno's, so every runtime runs this test by starting the pinned Deno binary.
 *
 * @module
 */

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "./harness.ts";
import { REPO_ROOT, RUNTIME_BINARIES } from "./support/clients.ts";
import { sharedTestPki } from "./support/pki.ts";

/** Runs a fixture with the pinned Deno: no prompts, FFI, read and env allowed, plus `flags`. */
function runDenoFixture(flags: string[], fixture: string, args: string[]) {
  return spawnSync(
    RUNTIME_BINARIES.deno,
    [
      "run",
      "--no-prompt",
      "--allow-ffi",
      "--allow-read",
      "--allow-env",
      ...flags,
      fixture,
      ...args,
    ],
    { cwd: REPO_ROOT, encoding: "utf8", timeout: 30_000 },
  );
}

test("Deno without --allow-net: connect and listen are PERMISSION_DENIED naming the flag", () => {
  const pki = sharedTestPki();
  const r = runDenoFixture([], "tests/fixtures/no_net_child.ts", [
    pki.server.chainPath,
    pki.server.keyPath,
  ]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(
    r.stdout,
    /^connect PERMISSION_DENIED: .*connect to 127\.0\.0\.1:9: run it with --allow-net/m,
  );
  assert.match(
    r.stdout,
    /^listen PERMISSION_DENIED: .*listen on 127\.0\.0\.1:0: run it with --allow-net/m,
  );
  // DTLS: the UDP socket's bind is refused the same way (Deno's node:dgram would have thrown it
  // from a later tick, uncaught, ending the process).
  assert.match(
    r.stdout,
    /^connectDtls PERMISSION_DENIED: .*bind a UDP socket to 0\.0\.0\.0:0: run it with --allow-net/m,
  );
  assert.match(
    r.stdout,
    /^listenDtls PERMISSION_DENIED: .*bind a UDP socket to 127\.0\.0\.1:0: run it with --allow-net/m,
  );
});

test("Deno with --allow-net=127.0.0.1: that address works, the name localhost is still refused", () => {
  // The socket transport (src/net/tcp_epoll.ts) does not go through Deno's net ops: it asks
  // Deno's permissions first and leaves anything not granted to Deno.connect, which refuses it.
  const pki = sharedTestPki();
  const r = runDenoFixture(["--allow-net=127.0.0.1"], "tests/fixtures/scoped_net_child.ts", [
    pki.server.chainPath,
    pki.server.keyPath,
    pki.rootCaPath,
  ]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^listen ok$/m, r.stdout);
  assert.match(r.stdout, /^connect 127\.0\.0\.1 ok$/m, r.stdout);
  assert.match(
    r.stdout,
    /^connect localhost PERMISSION_DENIED: .*connect to localhost:\d+: run it with --allow-net/m,
    r.stdout,
  );
});

test("Deno with --allow-net=127.0.0.1, UDP: that host works, a datagram to another is refused, and so is binding to it", () => {
  // The libc UDP sockets (src/net/udp_epoll.ts) do not go through Deno's net ops: each peer is
  // checked against Deno's permissions the first time a datagram goes to it, and a bind Deno
  // refuses is PERMISSION_DENIED rather than the uncaught NotCapable of Deno's node:dgram.
  const r = runDenoFixture(["--allow-net=127.0.0.1"], "tests/fixtures/scoped_udp_child.ts", []);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^bind 127\.0\.0\.1 ok$/m, r.stdout);
  assert.match(r.stdout, /^send 127\.0\.0\.1 ok$/m, r.stdout);
  assert.match(
    r.stdout,
    /^send 127\.0\.0\.2 PERMISSION_DENIED: .*send to 127\.0\.0\.2:\d+: run it with --allow-net/m,
    r.stdout,
  );
  assert.match(
    r.stdout,
    /^bind 127\.0\.0\.2 PERMISSION_DENIED: .*bind a UDP socket to 127\.0\.0\.2:0: run it with --allow-net/m,
    r.stdout,
  );
});
