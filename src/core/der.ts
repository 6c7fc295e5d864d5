/**
 * DER in and out of OpenSSL's `d2i_*` / `i2d_*` functions, and bytes printed as `AB:CD:...`.
 *
 * Both function families take `unsigned char **`: a cell holding a pointer to the bytes, which
 * they advance past what they read or wrote. A JS buffer has no stable address to put in such a
 * cell, so the bytes travel through `OPENSSL_malloc`'d memory, freed before returning.
 *
 * @module
 */
import { TlsError } from "./errors.ts";
import { openssl, type Pointer } from "./native.ts";

/** `OPENSSL_malloc(length)` and an 8-byte cell holding its address, for `fn`; freed after. */
function withCell<T>(length: number, fn: (mem: Pointer, cell: BigUint64Array) => T): T {
  const o = openssl();
  const mem = o.OPENSSL_malloc(length);
  if (mem === null) throw new TlsError("INTERNAL", "out of memory");
  try {
    return fn(mem, new BigUint64Array([BigInt(o.backend.address(mem))]));
  } finally {
    o.OPENSSL_free(mem);
  }
}

/**
 * Runs a `d2i_*` function over a copy of `der`: `decode(cell, length)` is e.g.
 * `(cell, n) => o.d2i_SSL_SESSION(null, cell, n)`. Returns what it returned (`null`: not DER
 * of that type). `der` must not be empty. @internal
 */
export function fromDer(
  der: Uint8Array,
  decode: (cell: BigUint64Array, length: number) => Pointer | null,
): Pointer | null {
  return withCell(der.length, (mem, cell) => {
    openssl().backend.writeBytes(mem, 0, der);
    return decode(cell, der.length);
  });
}

/**
 * The DER bytes an `i2d_*` function writes: `length` is its answer for a NULL output (`<= 0`:
 * cannot be encoded, `null` returned), `encode(cell)` the call that writes them and returns how
 * many it wrote. @internal
 */
export function toDer(
  length: number,
  encode: (cell: BigUint64Array) => number,
): Uint8Array | null {
  if (length <= 0) return null;
  return withCell(
    length,
    (mem, cell) => encode(cell) === length ? openssl().backend.readBytes(mem, 0, length) : null,
  );
}

/** Bytes as uppercase hex pairs joined by colons, e.g. `"AB:CD:01"` (how Node prints them). */
export function hexWithColons(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0").toUpperCase()).join(":");
}
