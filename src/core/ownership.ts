/**
 * Ownership of native objects: exactly one owner per SSL_CTX, SSL, BIO, X509 and EVP_PKEY, each
 * with an idempotent `close()` (callback trampolines are process-wide: see `trampolines.ts`). A
 * FinalizationRegistry frees what a careless caller dropped, but only as a backstop: explicit `close()` unregisters it. A process-wide count of live
 * objects lets tests prove nothing leaks.
 *
 * @module
 */
import { nativeHeapInUse, type Pointer } from "./native.ts";

/** The kinds of native object the library owns. */
export type NativeKind =
  | "SSL_CTX"
  | "SSL"
  | "BIO"
  | "X509"
  | "EVP_PKEY"
  | "X509_STORE"
  | "OCSP_RESPONSE"
  | "OCSP_BASICRESP"
  | "OCSP_CERTID"
  | "SSL_SESSION"
  | "PSK_IDENTITY"
  | "X509_CRL"
  | "PKCS12";

const live = new Map<NativeKind, number>();
let finalizedCount = 0;

function count(kind: NativeKind, delta: number): void {
  live.set(kind, (live.get(kind) ?? 0) + delta);
}

interface Held {
  kind: NativeKind;
  free: () => void;
}

const backstop = new FinalizationRegistry<Held>((held) => {
  finalizedCount++;
  count(held.kind, -1);
  try {
    held.free();
  } catch {
    // Nothing can be reported from a finalizer.
  }
});

/**
 * One owned native object: holds the pointer, frees it exactly once.
 *
 * @example
 * ```ts
 * import { NativeHandle } from "./ownership.ts";
 * import { openssl } from "./native.ts";
 * const o = openssl();
 * const bio = new NativeHandle("BIO", o.BIO_new(o.BIO_s_mem())!, (p) => o.BIO_free(p));
 * bio.close();
 * bio.close(); // no-op
 * ```
 */
export class NativeHandle {
  /** What kind of object this is. */
  readonly kind: NativeKind;
  #ptr: Pointer | null;
  #free: (p: Pointer) => void;

  /** Takes ownership of `ptr`; `free` releases it. */
  constructor(kind: NativeKind, ptr: Pointer, free: (p: Pointer) => void) {
    this.kind = kind;
    this.#ptr = ptr;
    this.#free = free;
    count(kind, 1);
    backstop.register(this, { kind, free: () => free(ptr) }, this);
  }

  /** The pointer; throws `TypeError` after `close()` or `release()`. */
  get ptr(): Pointer {
    if (this.#ptr === null) throw new TypeError(`${this.kind} used after close`);
    return this.#ptr;
  }

  /** Whether the object has been freed or released. */
  get closed(): boolean {
    return this.#ptr === null;
  }

  /**
   * Gives up ownership without freeing (OpenSSL took it over, e.g. `SSL_set_bio`).
   * Returns the pointer.
   */
  release(): Pointer {
    const p = this.ptr;
    this.#ptr = null;
    count(this.kind, -1);
    backstop.unregister(this);
    return p;
  }

  /** Frees the object. Idempotent. */
  close(): void {
    const p = this.#ptr;
    if (p === null) return;
    this.#ptr = null;
    count(this.kind, -1);
    backstop.unregister(this);
    this.#free(p);
  }
}

/** A snapshot of live native objects by kind, plus their total. */
export interface LiveNativeObjects {
  /** Live objects per kind (kinds never seen are absent or 0). */
  readonly byKind: Readonly<Partial<Record<NativeKind, number>>>;
  /** The sum over all kinds. */
  readonly total: number;
  /** How many objects the FinalizationRegistry backstop had to free (a caller forgot `close()`). */
  readonly finalized: number;
}

/**
 * How many native objects this library currently owns. Use it in tests to prove nothing leaks.
 *
 * @example
 * ```ts
 * import { liveNativeObjects } from "../../mod.ts";
 * const before = liveNativeObjects().total;
 * // ... open and close connections ...
 * console.log(liveNativeObjects().total === before);
 * ```
 */
export function liveNativeObjects(): LiveNativeObjects {
  const byKind: Partial<Record<NativeKind, number>> = {};
  let total = 0;
  for (const [kind, n] of live) {
    byKind[kind] = n;
    total += n;
  }
  return { byKind, total, finalized: finalizedCount };
}

/**
 * Bytes in use on the C heap (glibc `mallinfo2`), or `null` where it cannot be measured
 * (only x86-64 glibc Linux is supported). For leak tests.
 *
 * @example
 * ```ts
 * import { nativeMemoryInUse } from "../../mod.ts";
 * console.log(nativeMemoryInUse()); // e.g. 1843200, or null
 * ```
 */
export function nativeMemoryInUse(): number | null {
  return nativeHeapInUse();
}
