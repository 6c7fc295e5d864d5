/**
 * The backend conformance test: every operation of the `Backend` contract (`ffi/types.ts`),
 * exercised against the real libcrypto, with the same assertions on Deno, on Bun and on Node.js
 * (over `node:ffi` on Node.js 26, over koffi on 22 and 24).
 *
 * Runtime differences this test pins down (observed with Deno 2.9.5, Bun 1.4.5, Node.js 24.22 with
 * koffi 3.3.4 and Node.js 26.12):
 * - Pointer identity: on Deno two reads of the same C pointer are different `PointerObject`s
 *   (`===` is false); on Bun they are equal numbers, on Node.js equal bigints. Only
 *   `backend.address()` is comparable.
 * - 64-bit results: Deno's `i64`/`u64` give `number | bigint`; Bun's `_fast` results and koffi's
 *   give a bigint above 2^53; `node:ffi` always gives a bigint. Every backend normalises to a
 *   number.
 * - NULL results: `null` on Deno, Bun and koffi, `0n` from `node:ffi` (normalised to `null`).
 * - A callback that throws: C gets 0 on Deno, Bun and koffi; `node:ffi` aborts the process. Every
 *   backend catches before C sees it.
 * - The node binary exports its own, statically linked OpenSSL (unversioned symbols): the system
 *   libcrypto's internal calls bind to it unless the library is loaded `RTLD_DEEPBIND`, and then
 *   crash (see "the library's internal calls stay inside it").
 * - Empty `Uint8Array` as a `buf` argument: neither runtime throws. Deno passes NULL for an array
 *   with no backing store (`new Uint8Array(0)`, `new BigUint64Array(0)`) and a real address for an
 *   empty view into a non-empty buffer (`big.subarray(4, 4)`); Bun passes a non-NULL address in
 *   all three cases. So C sees NULL on one runtime and a pointer on the other: the contract
 *   therefore says never to pass one, and only what it promises is tested here.
 *
 * @module
 */
import assert from "node:assert/strict";
import { backend, COMPARE_CB, cString, nativeHeapInUse, type Pointer } from "../ffi/mod.ts";
import { openssl } from "../src/core/native.ts";
import { opensslVersion } from "../mod.ts";
import { runtime, test } from "./harness.ts";
import { Buffer } from "node:buffer";

const o = openssl();
const b = backend;
/**
 * The libcrypto the library loaded (a soname such as `libcrypto.so.3` / `libcrypto.so.4`, or
 * the LIBCRYPTO_PATH file): tests that open it again must get the same one, never a fixed
 * `libcrypto.so.3` that may be another release next to it (Debian experimental has 3.6 and 4.0).
 */
const LIBCRYPTO = opensslVersion().libcrypto;

/** `BIO_CTRL_INFO`: for a memory BIO, `BIO_get_mem_data(bio, &p)` (bio.h). */
const BIO_CTRL_INFO = 3;

/** `OPENSSL_malloc(n)` that fails the test instead of returning NULL. */
function malloc(n: number): Pointer {
  const p = o.OPENSSL_malloc(n);
  assert.ok(p !== null, `OPENSSL_malloc(${n}) returned NULL`);
  return p;
}

/** A new memory BIO. */
function memBio(): Pointer {
  const bio = o.BIO_new(o.BIO_s_mem());
  assert.ok(bio !== null, "BIO_new(BIO_s_mem()) returned NULL");
  return bio;
}

/** Bytes `start, start + 1, ...` (mod 256). */
function pattern(length: number, start = 0): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (start + i) & 0xff;
  return out;
}

/** The little-endian 8-byte encoding of an address. */
function le64(address: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(address), true);
  return out;
}

// --- pointers ------------------------------------------------------------------------------

test("pointers: address/fromAddress round trip, NULL is null, equality via address", () => {
  assert.equal(b.address(null), 0);
  assert.equal(b.fromAddress(0), null);
  assert.equal(b.fromAddress(0n), null);

  const p = malloc(32);
  try {
    const address = b.address(p);
    assert.equal(typeof address, "number");
    assert.ok(address > 0 && Number.isSafeInteger(address), `address ${address}`);
    const back = b.fromAddress(address);
    assert.ok(back !== null);
    assert.equal(b.address(back), address);
    const fromBig = b.fromAddress(BigInt(address));
    assert.ok(fromBig !== null);
    assert.equal(b.address(fromBig), address);
    // The round-tripped pointer is usable: write through one, read through the other.
    b.writeI32(back, 4, 0x1234567);
    assert.equal(b.readI32(p, 4), 0x1234567);
  } finally {
    o.OPENSSL_free(p);
  }

  // Two reads of the same C pointer: equal addresses (identity differs on Deno, see the header).
  const m1 = o.BIO_s_mem();
  const m2 = o.BIO_s_mem();
  assert.ok(m1 !== null && m2 !== null);
  assert.equal(b.address(m1), b.address(m2));
  const other = malloc(8);
  try {
    assert.notEqual(b.address(other), b.address(m1));
  } finally {
    o.OPENSSL_free(other);
  }
});

test("pointers: a NULL result from C comes back as null", () => {
  const empty = o.OPENSSL_sk_new_null();
  assert.ok(empty !== null);
  try {
    assert.equal(o.OPENSSL_sk_num(empty), 0);
    assert.equal(o.OPENSSL_sk_value(empty, 0), null);
    assert.equal(o.OPENSSL_sk_value(empty, -1), null);
  } finally {
    o.OPENSSL_sk_free(empty);
  }

  const bio = memBio();
  try {
    assert.equal(o.PEM_read_bio_X509(bio, null, null, null), null);
  } finally {
    o.BIO_free(bio);
    o.ERR_clear_error(); // PEM_read_bio_X509 queued "no start line"
  }
});

test("the library's internal calls stay inside it (no other OpenSSL in the process interposes)", () => {
  // PEM_read_bio_X509 on an empty BIO allocates, queues an error and frees inside libcrypto.
  // Without RTLD_DEEPBIND on Node.js, those internal calls went to the OpenSSL the node binary
  // exports and the BIO_free below aborted the process ("free(): invalid pointer").
  for (let i = 0; i < 3; i++) {
    const bio = memBio();
    assert.equal(o.PEM_read_bio_X509(bio, null, null, null), null);
    assert.ok(o.ERR_get_error() !== 0, "the error is in the queue of the library we loaded");
    assert.equal(o.BIO_free(bio), 1);
    o.ERR_clear_error();
  }
  // The version the library reports is the one of the file we loaded (the openssl CLI's).
  assert.equal(o.OpenSSL_version_num(), o.versionNumber);
});

// --- reading and writing C memory ----------------------------------------------------------

test("memory: writeBytes/readBytes at offsets", () => {
  const p = malloc(64);
  try {
    b.writeBytes(p, 0, new Uint8Array(64)); // C memory starts out undefined
    const bytes = pattern(20, 100);
    b.writeBytes(p, 7, bytes);
    assert.deepEqual(b.readBytes(p, 7, 20), bytes);
    assert.deepEqual(b.readBytes(p, 0, 7), new Uint8Array(7), "bytes before the offset untouched");
    assert.deepEqual(b.readBytes(p, 27, 37), new Uint8Array(37), "bytes after it untouched");
    assert.deepEqual(b.readBytes(p, 10, 3), bytes.subarray(3, 6));

    // A subarray source: only its own bytes are written.
    const big = pattern(50);
    b.writeBytes(p, 40, big.subarray(10, 14));
    assert.deepEqual(b.readBytes(p, 39, 6), Uint8Array.of(0, 10, 11, 12, 13, 0));

    // readBytes copies: later writes to C memory do not change an earlier result.
    const copy = b.readBytes(p, 7, 4);
    b.writeBytes(p, 7, Uint8Array.of(1, 1, 1, 1));
    assert.deepEqual(copy, bytes.subarray(0, 4));
    assert.equal(
      copy.byteLength,
      copy.buffer.byteLength,
      "a fresh array, not a view into C memory",
    );

    // Zero-length reads and writes never touch C memory.
    assert.deepEqual(b.readBytes(p, 0, 0), new Uint8Array(0));
    b.writeBytes(p, 0, new Uint8Array(0));
    assert.deepEqual(b.readBytes(p, 7, 4), Uint8Array.of(1, 1, 1, 1));
  } finally {
    o.OPENSSL_free(p);
  }
});

test("memory: writeI32/readI32, negative values and byte order", () => {
  const p = malloc(32);
  try {
    b.writeBytes(p, 0, new Uint8Array(32));
    const values = [0, 1, -1, 42, -42, 0x7fffffff, -0x80000000, 0x12345678];
    values.forEach((v, i) => b.writeI32(p, i * 4, v));
    values.forEach((v, i) => assert.equal(b.readI32(p, i * 4), v, `slot ${i}`));
    assert.equal(b.readI32(p), 0, "offset defaults to 0");
    // Little-endian, exactly 4 bytes.
    assert.deepEqual(b.readBytes(p, 28, 4), Uint8Array.of(0x78, 0x56, 0x34, 0x12));
    assert.deepEqual(b.readBytes(p, 8, 4), Uint8Array.of(0xff, 0xff, 0xff, 0xff));
    // Unaligned access works too.
    b.writeI32(p, 1, -2);
    assert.equal(b.readI32(p, 1), -2);
    assert.equal(b.readBytes(p, 0, 1)[0], 0, "the byte before an unaligned write is untouched");
  } finally {
    o.OPENSSL_free(p);
  }
});

test("memory: writePointer/readPointer, NULL included", () => {
  const p = malloc(24);
  const target = malloc(8);
  try {
    b.writeBytes(p, 0, new Uint8Array(24).fill(0xaa));
    b.writePointer(p, 0, target);
    b.writePointer(p, 8, null);
    const read = b.readPointer(p, 0);
    assert.ok(read !== null);
    assert.equal(b.address(read), b.address(target));
    assert.equal(b.address(b.readPointer(p)), b.address(target), "offset defaults to 0");
    assert.equal(b.readPointer(p, 8), null, "a stored NULL reads back as null");
    // 8 bytes each, little-endian; the bytes after them are untouched.
    assert.deepEqual(b.readBytes(p, 0, 8), le64(b.address(target)));
    assert.deepEqual(b.readBytes(p, 8, 8), new Uint8Array(8));
    assert.deepEqual(b.readBytes(p, 16, 8), new Uint8Array(8).fill(0xaa));
    // A pointer read from memory is usable.
    b.writeI32(read, 0, -7);
    assert.equal(b.readI32(target, 0), -7);
  } finally {
    o.OPENSSL_free(target);
    o.OPENSSL_free(p);
  }
});

test("memory: readCString, from OpenSSL and from writeBytes", () => {
  const version = o.OpenSSL_version(0);
  assert.ok(version !== null);
  const text = b.readCString(version);
  assert.match(text, /^OpenSSL \d+\.\d+\.\d+/);
  assert.equal(text, o.versionText);
  assert.equal(b.readCString(version, 8), text.slice(8), "with an offset");

  const p = malloc(64);
  try {
    b.writeBytes(p, 0, new Uint8Array(64).fill(0x41));
    const s = "héllo, wörld €";
    b.writeBytes(p, 5, cString(s));
    assert.equal(b.readCString(p, 5), s, "UTF-8, up to the NUL only");
    b.writeBytes(p, 0, Uint8Array.of(0));
    assert.equal(b.readCString(p), "", "an empty string");
  } finally {
    o.OPENSSL_free(p);
  }
});

// --- out-parameters and aliases ------------------------------------------------------------

test("out-parameters: BIO_get_mem_data through the BIO_ctrl_buf alias", () => {
  assert.equal(typeof o.BIO_ctrl_buf, "function");
  const bio = memBio();
  try {
    const data = pattern(300, 7);
    assert.equal(o.BIO_write(bio, data, data.length), data.length);
    const cell = new BigUint64Array(1);
    const length = o.BIO_ctrl_buf(bio, BIO_CTRL_INFO, 0, cell);
    assert.equal(typeof length, "number");
    assert.equal(length, data.length);
    assert.notEqual(cell[0], 0n, "C wrote the data pointer into the cell");
    const p = b.fromAddress(cell[0] ?? 0n);
    assert.ok(p !== null);
    assert.deepEqual(b.readBytes(p, 0, length), data);
    // The original declaration (parg as ptr) still works beside the alias: NULL parg is allowed.
    assert.equal(o.BIO_ctrl(bio, BIO_CTRL_INFO, 0, null), data.length);
    assert.equal(o.BIO_pending(bio), data.length);
  } finally {
    o.BIO_free(bio);
  }
});

// --- buffers -------------------------------------------------------------------------------

test("buffers: subarrays with a non-zero byteOffset pass exactly their own bytes", () => {
  const bio = memBio();
  try {
    const big = pattern(20, 1); // 1..20
    const src = big.subarray(3, 10); // 4..10
    assert.equal(src.byteOffset, 3);
    assert.equal(o.BIO_write(bio, src, src.length), 7);
    assert.equal(o.BIO_pending(bio), 7);

    const other = new Uint8Array(20).fill(0xee);
    const dst = other.subarray(5, 12);
    assert.equal(o.BIO_read(bio, dst, dst.length), 7);
    assert.deepEqual(dst, Uint8Array.of(4, 5, 6, 7, 8, 9, 10));
    assert.deepEqual(other.subarray(0, 5), new Uint8Array(5).fill(0xee), "before: untouched");
    assert.deepEqual(other.subarray(12), new Uint8Array(8).fill(0xee), "after: untouched");

    // A view into the middle of a larger ArrayBuffer (not created by subarray).
    const shared = new ArrayBuffer(32);
    const view = new Uint8Array(shared, 16, 4);
    view.set([9, 8, 7, 6]);
    assert.equal(o.BIO_write(bio, view, 4), 4);
    const out = new Uint8Array(4);
    assert.equal(o.BIO_read(bio, out, 4), 4);
    assert.deepEqual(out, Uint8Array.of(9, 8, 7, 6));
  } finally {
    o.BIO_free(bio);
  }
});

test("buffers: a 4 MiB buffer round-trips through a memory BIO", () => {
  const size = 4 * 1024 * 1024;
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) data[i] = (i * 31 + (i >>> 11)) & 0xff;
  const bio = memBio();
  try {
    assert.equal(o.BIO_write(bio, data, size), size);
    assert.equal(o.BIO_pending(bio), size);
    const out = new Uint8Array(size);
    assert.equal(o.BIO_read(bio, out, size), size);
    assert.ok(Buffer.from(out.buffer).equals(Buffer.from(data.buffer)), "4 MiB came back intact");
    assert.equal(o.BIO_pending(bio), 0);
  } finally {
    o.BIO_free(bio);
  }
});

test("buffers: empty arrays are never needed (see the header for what each runtime does)", () => {
  // The contract: a `buf` argument is never an empty array. Our helpers keep to it: the
  // smallest C string is one NUL byte, and zero-length memory copies never reach C.
  assert.deepEqual(cString(""), Uint8Array.of(0));
  assert.deepEqual(cString("ab"), Uint8Array.of(0x61, 0x62, 0));
  const bio = memBio();
  try {
    // An empty C string goes to C as a real, NUL-terminated buffer.
    const empty = cString("");
    assert.equal(o.BIO_write(bio, empty, empty.length), 1);
    assert.equal(o.BIO_pending(bio), 1);
  } finally {
    o.BIO_free(bio);
  }
});

// --- symbols -------------------------------------------------------------------------------

test("optional symbols: present ones are functions, missing ones are null", () => {
  assert.equal(typeof o.SSL_get1_peer_certificate, "function", "OpenSSL 3 exports it");
  assert.equal(typeof o.SSL_CTX_set_options_fn, "function", "an optional alias, present");

  const lib = b.open(LIBCRYPTO, {
    nope: { args: [], ret: "i32", optional: true },
    nope_alias: { symbol: "no_such_symbol_at_all", args: ["ptr"], ret: "ptr", optional: true },
    version_alias: { symbol: "OpenSSL_version_num", args: [], ret: "u64", optional: true },
    OpenSSL_version_num: { args: [], ret: "u64" },
  });
  try {
    assert.equal(lib.symbols.nope, null);
    assert.equal(lib.symbols.nope_alias, null);
    const num = lib.symbols.OpenSSL_version_num as (() => number) | null;
    const alias = lib.symbols.version_alias as (() => number) | null;
    assert.ok(num !== null && alias !== null);
    assert.equal(num(), o.OpenSSL_version_num());
    assert.equal(alias(), o.OpenSSL_version_num());
  } finally {
    lib.close();
  }
});

test("a table of only optional symbols opens; a library that does not open still throws", () => {
  // bun:ffi refuses a dlopen without symbols, so its backend opens such a table one symbol at a
  // time: the fixture of tests/library_test.ts asks for OPENSSL_atexit alone (gone in 4.0).
  const lib = b.open(LIBCRYPTO, {
    nope: { args: [], ret: "i32", optional: true },
    version_alias: { symbol: "OpenSSL_version_num", args: [], ret: "u64", optional: true },
  });
  try {
    assert.equal(lib.symbols.nope, null);
    const alias = lib.symbols.version_alias as (() => number) | null;
    assert.ok(alias !== null);
    assert.equal(alias(), o.OpenSSL_version_num());
  } finally {
    lib.close();
  }
  // A missing symbol is optional; a missing library is not.
  assert.throws(() =>
    b.open("/nonexistent/libssl-ffi-test.so", {
      nope: { args: [], ret: "i32", optional: true },
    })
  );
});

test("a missing required symbol makes open() throw, and a later open still works", () => {
  assert.throws(() =>
    b.open(LIBCRYPTO, {
      OpenSSL_version_num: { args: [], ret: "u64" },
      definitely_not_in_libcrypto: { args: [], ret: "i32" },
    })
  );
  // The same through an alias (Bun opens aliases separately and must close what it opened).
  assert.throws(() =>
    b.open(LIBCRYPTO, {
      OpenSSL_version_num: { args: [], ret: "u64" },
      alias: { symbol: "definitely_not_in_libcrypto", args: [], ret: "i32" },
    })
  );
  assert.throws(() => b.open("/nonexistent/libcrypto.so.3", {}));

  for (let i = 0; i < 3; i++) {
    const lib = b.open(LIBCRYPTO, { OpenSSL_version_num: { args: [], ret: "u64" } });
    try {
      const fn = lib.symbols.OpenSSL_version_num as (() => number) | null;
      assert.ok(fn !== null);
      assert.equal(fn(), o.versionNumber);
    } finally {
      lib.close();
    }
  }
  // The process-wide library is unaffected.
  assert.equal(o.OpenSSL_version_num(), o.versionNumber);
});

test("64-bit results come back as numbers", () => {
  const v = o.OpenSSL_version_num();
  assert.equal(typeof v, "number");
  assert.ok(v >= 0x30000000, `0x${v.toString(16)}`);

  const bio = memBio();
  try {
    assert.equal(o.BIO_write(bio, pattern(5), 5), 5);
    const pending = o.BIO_ctrl(bio, 10, /* BIO_CTRL_PENDING */ 0, null);
    assert.equal(typeof pending, "number");
    assert.equal(pending, 5);
    const info = o.BIO_ctrl_buf(bio, BIO_CTRL_INFO, 0, new BigUint64Array(1));
    assert.equal(typeof info, "number");
    assert.equal(info, 5);
  } finally {
    o.BIO_free(bio);
  }
  // A negative `long` result: BIO_ctrl(NULL, ...) is -1.
  const negative = o.BIO_ctrl(null, BIO_CTRL_INFO, 0, null);
  assert.equal(typeof negative, "number");
  assert.equal(negative, -1);

  // The full range, through libc: exact up to 2^53, a (rounded) number beyond it, never a bigint.
  const libc = b.open("libc.so.6", {
    atol: { args: ["buf"], ret: "i64" },
    strtoull: { args: ["buf", "ptr", "i32"], ret: "u64" },
  });
  try {
    const atol = libc.symbols.atol as (s: Uint8Array) => unknown;
    const strtoull = libc.symbols.strtoull as (s: Uint8Array, end: null, base: number) => unknown;
    const cases: [unknown, number][] = [
      [atol(cString("-42")), -42],
      [atol(cString("-9007199254740991")), -9007199254740991],
      [atol(cString("9007199254740991")), 9007199254740991],
      [atol(cString("9007199254740993")), 9007199254740992],
      [atol(cString("-9223372036854775808")), -(2 ** 63)],
      [strtoull(cString("4294967296"), null, 10), 2 ** 32],
      [strtoull(cString("18446744073709551615"), null, 10), 2 ** 64],
    ];
    for (const [got, want] of cases) {
      assert.equal(typeof got, "number", `${String(got)} should be a number`);
      assert.equal(got, want);
    }
  } finally {
    libc.close();
  }
});

// --- callbacks -----------------------------------------------------------------------------

/** Pushes a malloc'd i32 holding each value onto `sk`; returns the allocations. */
function pushInts(sk: Pointer, values: readonly number[]): Pointer[] {
  return values.map((v) => {
    const p = malloc(4);
    b.writeI32(p, 0, v);
    assert.ok(o.OPENSSL_sk_push(sk, p) > 0);
    return p;
  });
}

/** The i32 values the stack's elements point to, in stack order. */
function stackInts(sk: Pointer): number[] {
  const out: number[] = [];
  for (let i = 0; i < o.OPENSSL_sk_num(sk); i++) {
    const p = o.OPENSSL_sk_value(sk, i);
    assert.ok(p !== null);
    out.push(b.readI32(p));
  }
  return out;
}

test("callbacks: OPENSSL_sk_sort calls a JS comparator", () => {
  const calls: [number, number][] = [];
  let nullArgs = 0;
  const reports: unknown[] = [];
  // `int cmp(const void *a, const void *b)`: a and b point AT the stack's elements.
  const cmp = b.callback(
    COMPARE_CB,
    (a: Pointer | null, c: Pointer | null): number => {
      if (a === null || c === null) {
        nullArgs++;
        return 0;
      }
      const ea = b.readPointer(a);
      const ec = b.readPointer(c);
      if (ea === null || ec === null) {
        nullArgs++;
        return 0;
      }
      const x = b.readI32(ea);
      const y = b.readI32(ec);
      calls.push([x, y]);
      return x < y ? -1 : x > y ? 1 : 0;
    },
    COMPARE_CB.failure,
    (error) => reports.push(error),
  );
  const values = [42, -7, 1000, 0, 3, -2147483648, 2147483647, 3, 17];
  const sk = o.OPENSSL_sk_new(cmp.pointer);
  assert.ok(sk !== null);
  let allocations: Pointer[] = [];
  try {
    allocations = pushInts(sk, values);
    assert.deepEqual(stackInts(sk), values, "unsorted before the sort");
    o.OPENSSL_sk_sort(sk);
    assert.deepEqual(stackInts(sk), [...values].sort((x, y) => x - y));
    assert.equal(nullArgs, 0, "the comparator only ever got non-NULL pointers");
    assert.ok(calls.length >= values.length - 1, `${calls.length} comparisons`);
    for (const [x, y] of calls) {
      assert.ok(values.includes(x) && values.includes(y), `compared ${x} with ${y}`);
    }
    assert.deepEqual(reports, []);
  } finally {
    o.OPENSSL_sk_free(sk);
    for (const p of allocations) o.OPENSSL_free(p);
    cmp.close();
    cmp.close(); // idempotent
  }
});

test("callbacks: a throwing callback returns onThrow to C, reports once, escapes nowhere", () => {
  const boom = new Error("boom from the comparator");
  let invocations = 0;
  let throwOn = 2; // the invocation number that throws
  const returned: number[] = [];
  const reports: unknown[] = [];
  const cmp = b.callback(
    COMPARE_CB,
    (a: Pointer | null, c: Pointer | null): number => {
      invocations++;
      if (invocations === throwOn) throw boom;
      const ea = a === null ? null : b.readPointer(a);
      const ec = c === null ? null : b.readPointer(c);
      assert.ok(ea !== null && ec !== null);
      const r = Math.sign(b.readI32(ea) - b.readI32(ec));
      returned.push(r);
      return r;
    },
    COMPARE_CB.failure,
    (error) => reports.push(error),
  );
  assert.equal(COMPARE_CB.failure, 0);
  // OPENSSL_sk_find (not in our table: a bsearch over the sorted stack) makes the value C got
  // observable: the element whose comparison returned 0 is the one "found".
  const extra = b.open(LIBCRYPTO, { OPENSSL_sk_find: { args: ["ptr", "ptr"], ret: "i32" } });
  const find = extra.symbols.OPENSSL_sk_find as (sk: Pointer, data: Pointer) => number;
  const sk = o.OPENSSL_sk_new(cmp.pointer);
  assert.ok(sk !== null);
  const allocations: Pointer[] = [];
  try {
    const values = [9, 5, 7, 1, 8, 3];
    allocations.push(...pushInts(sk, values));

    // 1. The 2nd comparison of a sort throws: the sort completes, nothing escapes.
    assert.doesNotThrow(() => o.OPENSSL_sk_sort(sk));
    assert.ok(invocations >= values.length - 1, `${invocations} invocations`);
    assert.equal(reports.length, 1, "report called exactly once");
    assert.equal(reports[0], boom, "with the thrown error itself");
    assert.deepEqual(
      [...stackInts(sk)].sort((x, y) => x - y),
      [...values].sort((x, y) => x - y),
      "the stack is still a permutation of what was pushed",
    );

    // 2. The stack is sorted now (re-sort with a well-behaved comparator to be sure).
    const extraValue = pushInts(sk, [4]);
    allocations.push(...extraValue);
    o.OPENSSL_sk_sort(sk);
    const sorted = [1, 3, 4, 5, 7, 8, 9];
    assert.deepEqual(stackInts(sk), sorted, "a later normal call works");
    assert.equal(reports.length, 1);

    // 3. Find 9 normally: index 6.
    const key = malloc(4);
    allocations.push(key);
    b.writeI32(key, 0, 9);
    assert.equal(find(sk, key), 6);

    // 4. Throw on the first comparison of the next find: the bsearch probes the middle element
    //    (index 3, value 5) first; C receiving onThrow = 0 means "equal", so 3 is "found".
    throwOn = invocations + 1;
    const before = returned.length;
    assert.equal(find(sk, key), 3, "C got 0 (onThrow) from the throwing call");
    assert.equal(reports.length, 2);
    assert.equal(reports[1], boom);
    assert.ok(returned.slice(before).every((r) => r !== 0), "no other comparison returned 0");

    // 5. And normally again.
    assert.equal(find(sk, key), 6);
    assert.equal(reports.length, 2);

    // 6. The throwing call is the last (only) one of an FFI call: Deno would rethrow an unguarded
    //    exception at the call site in exactly this case. A 2-element sort compares once.
    const pair = o.OPENSSL_sk_new(cmp.pointer);
    assert.ok(pair !== null);
    try {
      allocations.push(...pushInts(pair, [2, 1]));
      throwOn = invocations + 1;
      const start = invocations;
      assert.doesNotThrow(() => o.OPENSSL_sk_sort(pair));
      assert.equal(invocations - start, 1, "one comparison");
      assert.equal(reports.length, 3);
      assert.equal(reports[2], boom);
    } finally {
      o.OPENSSL_sk_free(pair);
    }
  } finally {
    o.OPENSSL_sk_free(sk);
    for (const p of allocations) o.OPENSSL_free(p);
    extra.close();
    cmp.close();
    cmp.close();
  }
});

// --- environment and platform --------------------------------------------------------------

test("env, name, os, arch", () => {
  const path = b.env("PATH");
  assert.equal(typeof path, "string");
  assert.ok(path !== undefined && path.length > 0);
  assert.equal(b.env("LIBSSL_FFI_SURELY_UNSET_VARIABLE"), undefined);
  assert.equal(b.name, runtime);
  const ffis = { deno: ["Deno.dlopen"], bun: ["bun:ffi"], node: ["node:ffi", "koffi"] };
  assert.ok(ffis[runtime].includes(b.ffi), `${b.ffi} on ${runtime}`);
  assert.equal(b.missingPermission(), null, "this process may use FFI");
  assert.equal(b.os, "linux");
  assert.equal(b.arch, "x86_64");
  assert.equal(o.backend, b, "the loaded library uses the same backend");
});

test("nativeHeapInUse() tracks a 1 MiB CRYPTO_malloc and its free", () => {
  const n = 1024 * 1024;
  // Malloc headers and page rounding, and other threads' allocations and frees between two
  // readings: Node's own threads moved the heap by a few hundred bytes (Node 22) and once by
  // 85 KB (Node 26), so the measurement gets a few attempts, each held to the growth at the
  // malloc, the drop at the free and the way back to the start. A heap figure that does not
  // follow the block fails every attempt.
  const slack = 64 * 1024;
  const misses: string[] = [];
  for (let attempt = 0; attempt < 5; attempt++) {
    const before = nativeHeapInUse();
    assert.ok(before !== null, "mallinfo2 is callable on x86-64 glibc Linux");
    assert.ok(before > 0, `heap in use: ${before}`);
    const p = malloc(n);
    let during: number | null;
    try {
      b.writeBytes(p, n - 4, Uint8Array.of(1, 2, 3, 4)); // the whole block is ours
      during = nativeHeapInUse();
    } finally {
      o.OPENSSL_free(p);
    }
    const after = nativeHeapInUse();
    assert.ok(during !== null && after !== null);
    const grew = during - before;
    const shrank = during - after;
    const left = after - before;
    const ok = Math.abs(grew - n) <= slack && Math.abs(shrank - n) <= slack &&
      Math.abs(left) <= slack;
    if (ok) return;
    misses.push(`grew by ${grew}, then shrank by ${shrank} (${left} from the start)`);
  }
  assert.fail(`expected about ${n} both ways, in ${misses.length} attempts: ${misses.join("; ")}`);
});

test("non-blocking calls: Deno runs them on a worker thread and can unref them; others refuse", async () => {
  const table = { getpid: { args: [], ret: "i32", nonblocking: true } } as const;
  if (runtime !== "deno") {
    assert.equal(b.nonblocking, undefined);
    assert.throws(() => b.open("libc.so.6", table), /has no non-blocking calls/);
    return;
  }
  assert.ok(b.nonblocking !== undefined, "Deno's op ref/unref switch was not found");
  const lib = b.open("libc.so.6", table);
  try {
    const pending = (lib.symbols.getpid as () => Promise<number>)();
    assert.ok(pending instanceof Promise);
    b.nonblocking.setRef(pending, false);
    b.nonblocking.setRef(pending, true);
    assert.ok((await pending) > 0);
  } finally {
    lib.close();
  }
});
