/**
 * The Node.js backend over the `koffi` npm package (3.x): the only file that touches it. Used on
 * Node.js 22 and 24, which have no `node:ffi`, and on 26.1-26.8 without `--experimental-ffi`.
 * koffi's native code ships prebuilt in its per-platform packages (`@koromix/koffi-linux-x64`,
 * ...), so nothing is compiled at install time.
 *
 * The node binary exports the OpenSSL it is statically linked with, unversioned; loaded the
 * ordinary way, the system libcrypto's internal calls would bind to node's copies (two OpenSSLs
 * mixing heaps: `free(): invalid pointer` at once). So on Linux libraries are loaded with
 * `RTLD_DEEPBIND` (koffi's `deep: true`): their own symbols and dependencies first.
 *
 * koffi facts this relies on (each checked by the conformance test, koffi 3.3 on Node.js 24):
 * - Pointers are `bigint` addresses (koffi 3; koffi 2 had opaque externals), NULL is `null` in
 *   results and in callback arguments.
 * - 64-bit results are numbers up to 2^53 and bigints beyond: wrapped to always give a number.
 * - TypedArray arguments to `void *` pass a pointer to their bytes (subarrays at their offset),
 *   no copy; C's writes land in the array.
 * - The same symbol may be declared again with other types (aliases just work); a missing symbol
 *   throws, so optional ones are declared one by one.
 * - A callback's exception reaches C as 0 and is rethrown at the FFI call site: the guard
 *   (`node_shared.ts`) catches everything first. Registered callbacks are limited to 8192 live
 *   at once (we keep one per signature, see `src/core/trampolines.ts`) and must be unregistered.
 *
 * Loaded through a variable specifier, with its few types declared below, so that `deno check`
 * type-checks this file without resolving the package, and Deno and Bun never load it.
 *
 * @module
 */
import type {
  Backend,
  CallbackDef,
  FunctionDef,
  NativeCallback,
  NativeLibrary,
  NativeType,
  SymbolTable,
} from "./types.ts";
import { mapResult, refuseNonblocking } from "./types.ts";
import {
  addressAt as at,
  addressOf,
  guardCallback,
  nodeBackendBase,
  nodeCallback,
  nodeOs,
  toNumber,
  toPointer,
  WIDE,
} from "./node_shared.ts";

type AnyFn = (...args: never[]) => unknown;

/** An opaque koffi type object. */
type KoffiType = { readonly __koffiType: unique symbol };

/** The part of a koffi library handle this backend uses. */
interface KoffiLibrary {
  func(name: string, result: string, args: string[]): AnyFn;
  unload(): void;
}

/** The part of koffi this backend uses. */
interface Koffi {
  /** `null`: the process image (every loaded library's exports; libc's `memcpy` for us). */
  load(path: string | null, options?: { deep?: boolean }): KoffiLibrary;
  proto(result: string, args: string[]): KoffiType;
  pointer(type: KoffiType): KoffiType;
  register(fn: AnyFn, type: KoffiType): bigint;
  unregister(pointer: bigint): void;
  decode: {
    (pointer: bigint, offset: number, type: string): unknown;
    int32(pointer: bigint): number;
    string(pointer: bigint): string;
  };
  encode(pointer: bigint, offset: number, type: string, value: unknown): void;
}

const specifier = "koffi";
const koffi = ((await import(specifier)) as { default: Koffi }).default;

function koffiType(t: NativeType): string {
  switch (t) {
    case "ptr":
    case "buf":
    case "cb":
      return "void *";
    case "i32":
      return "int32_t";
    case "u32":
      return "uint32_t";
    case "i64":
      return "int64_t";
    case "u64":
      return "uint64_t";
    case "usize":
      return "size_t";
    case "void":
      return "void";
  }
}

/** `f` with its result made contract-shaped: numbers for 64-bit integers. */
function bind(f: AnyFn, def: FunctionDef): AnyFn {
  return WIDE.has(def.ret) ? mapResult(f, def.args.length, toNumber) : f;
}

/** koffi's callback types, one per distinct signature (koffi parses each once). */
const callbackTypes = new Map<string, KoffiType>();

function callbackType(def: CallbackDef): KoffiType {
  const key = `${def.ret}(${def.args.join(",")})`;
  let type = callbackTypes.get(key);
  if (type === undefined) {
    type = koffi.pointer(koffi.proto(koffiType(def.ret), def.args.map(koffiType)));
    callbackTypes.set(key, type);
  }
  return type;
}

/**
 * libc's `memcpy`, for copies between C memory and JS arrays: a TypedArray argument is passed as
 * a pointer to its bytes, so one call copies, where `koffi.view()` would first make an external
 * ArrayBuffer (and a finalizer) per copy.
 */
let memcpy: ((dst: unknown, src: unknown, n: number) => unknown) | undefined;
const copy = () =>
  memcpy ??= koffi.load(null).func(
    "memcpy",
    "void *",
    ["void *", "void *", "size_t"],
  ) as (dst: unknown, src: unknown, n: number) => unknown;

/** The koffi implementation of {@link Backend}. */
export const koffiBackend: Backend = {
  ...nodeBackendBase,
  ffi: "koffi",

  missingPermission() {
    // Under Node's permission model koffi (a native addon) needs --allow-addons; without it the
    // import in backend.ts already failed, so reaching this means it was granted.
    return null;
  },

  open(path: string, table: SymbolTable): NativeLibrary {
    refuseNonblocking(table, "koffi");
    const lib = koffi.load(path, { deep: nodeOs === "linux" });
    const symbols: Record<string, AnyFn | null> = {};
    for (const [name, def] of Object.entries(table)) {
      try {
        const f = lib.func(def.symbol ?? name, koffiType(def.ret), def.args.map(koffiType));
        symbols[name] = bind(f, def);
      } catch (error) {
        if (def.optional !== true) {
          lib.unload();
          throw error;
        }
        symbols[name] = null;
      }
    }
    let closed = false;
    return {
      symbols,
      close() {
        if (closed) return;
        closed = true;
        lib.unload();
      },
    };
  },

  readBytes(p, offset, length) {
    const out = new Uint8Array(length);
    if (length > 0) copy()(out, at(p, offset), length);
    return out;
  },

  writeBytes(p, offset, bytes) {
    if (bytes.length > 0) copy()(at(p, offset), bytes, bytes.length);
  },

  readCString(p, offset = 0) {
    return koffi.decode.string(at(p, offset));
  },

  readPointer(p, offset = 0) {
    return toPointer(koffi.decode(addressOf(p), offset, "void *"));
  },

  readI32(p, offset = 0) {
    return koffi.decode.int32(at(p, offset));
  },

  writeI32(p, offset, value) {
    koffi.encode(addressOf(p), offset, "int32_t", value);
  },

  writePointer(p, offset, value) {
    koffi.encode(addressOf(p), offset, "void *", value === null ? null : addressOf(value));
  },

  callback(def: CallbackDef, fn, onThrow, report): NativeCallback {
    const address = koffi.register(
      guardCallback(def.args, def.ret, fn, onThrow, report) as AnyFn,
      callbackType(def),
    );
    return nodeCallback(address, (a) => koffi.unregister(a));
  },
};
