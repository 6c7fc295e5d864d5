/**
 * The Node.js backend over the built-in `node:ffi` module: the only file that touches it.
 *
 * `node:ffi` exists from Node.js 26.1.0. On 26.1 to 26.8 it is behind `--experimental-ffi`; from
 * 26.9.0 it is on by default (`--no-experimental-ffi` turns it off). Either way it is
 * experimental: loading it prints one `ExperimentalWarning` per process (silence it with
 * `--disable-warning=ExperimentalWarning`). Where it is missing, `backend.ts` falls back to koffi.
 * Under Node's permission model (`--permission`) it also needs `--allow-ffi`.
 *
 * The node binary exports the OpenSSL it is statically linked with (3.5 in Node.js 24 and 26),
 * unversioned. A system libcrypto loaded the ordinary way then has its own internal calls
 * (through its PLT) bound to node's copies: two OpenSSLs mixing heaps and state, which crashed at
 * once (`free(): invalid pointer` after `PEM_read_bio_X509`). So on Linux every library is first
 * opened with `RTLD_DEEPBIND` (its own symbols and dependencies before the global scope), through
 * libc's `dlopen`, before `node:ffi` opens it again (the same object, already relocated).
 *
 * `node:ffi` facts this relies on (each checked by the conformance test, Node.js 26.12):
 * - Pointers are `bigint` addresses both ways, and NULL results come back as `0n`, not `null`:
 *   pointer results are wrapped to give `null`, so a `Pointer` is never `0n`.
 * - 64-bit results are always bigints (an allocation per call): wrapped to numbers, and hot-path
 *   symbols are declared `i32` (see `symbols.ts`). Scalar `i32` results are plain numbers.
 * - A function resolved twice with different signatures throws, so an alias (`symbol:`) gets a
 *   `DynamicLibrary` of its own (another `dlopen` of the same file, reference-counted by libc).
 *   Missing symbols throw too: optional ones are resolved one by one.
 * - TypedArray arguments pass a pointer to their bytes (subarrays at their `byteOffset`). With
 *   more than one pointer-like parameter (`SSL_read`, `BIO_write`: the hot path) node:ffi turns
 *   each array into a raw address in JS on every call: a 16-byte BIO_write + BIO_read took
 *   ~385 ns with arrays and ~240 ns with raw addresses (best of 15 runs). Caching each
 *   ArrayBuffer's base address ourselves (a WeakMap, plus a last-buffer shortcut) cost as much
 *   as it saved in the wrapper, measured the same way, so arrays are passed as they are.
 * - A callback that throws aborts the whole process ("Callbacks cannot throw an exception"), so
 *   the guard (`node_shared.ts`) catches everything, `report` included. Callbacks belong to a
 *   `DynamicLibrary` and die with it: they are registered on one opened on the process image,
 *   never closed. C must only call them on the JS thread (OpenSSL does: every call is ours).
 *
 * @module
 */
import process from "node:process";
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

/** A `node:ffi` signature object. */
interface NodeSignature {
  arguments: string[];
  return: string;
}

/** The part of `node:ffi`'s `DynamicLibrary` this backend uses. */
interface NodeDynamicLibrary {
  getFunction(name: string, signature: NodeSignature): AnyFn;
  registerCallback(signature: NodeSignature, fn: (...args: never[]) => unknown): bigint;
  unregisterCallback(pointer: bigint): void;
  close(): void;
}

/** The part of `node:ffi` this backend uses (declared here: `@types/node` does not know it). */
interface NodeFfi {
  DynamicLibrary: new (path: string | null) => NodeDynamicLibrary;
  getInt32(pointer: bigint, offset?: number): number;
  setInt32(pointer: bigint, offset: number, value: number): void;
  getUint64(pointer: bigint, offset?: number): bigint;
  setUint64(pointer: bigint, offset: number, value: bigint): void;
  toString(pointer: bigint): string | null;
  toArrayBuffer(pointer: bigint, length: number, copy?: boolean): ArrayBuffer;
  exportArrayBufferView(view: ArrayBufferView, pointer: bigint, length: number): void;
}

/**
 * `node:ffi`, or `undefined` where this Node.js has none (before 26.1, or 26.1-26.8 without
 * `--experimental-ffi`, or `--no-experimental-ffi`). `getBuiltinModule` (not `import`) so that
 * asking never throws and `deno check` needs no types for it.
 */
export function nodeFfiModule(): NodeFfi | undefined {
  const p = process as unknown as { getBuiltinModule?: (id: string) => unknown };
  return p.getBuiltinModule?.("node:ffi") as NodeFfi | undefined;
}

const found = nodeFfiModule();
if (found === undefined) throw new Error("node:ffi is not available in this Node.js");
const ffi: NodeFfi = found;

function nodeType(t: NativeType): string {
  switch (t) {
    case "ptr":
    case "buf":
    case "cb":
      return "pointer";
    case "usize":
      return "u64";
    default:
      return t;
  }
}

const signature = (def: { args: readonly NativeType[]; ret: NativeType }): NodeSignature => ({
  arguments: def.args.map(nodeType),
  return: nodeType(def.ret),
});

/** `f` with its result made contract-shaped: `null` for NULL, numbers for 64-bit integers. */
function bind(f: AnyFn, def: FunctionDef): AnyFn {
  if (def.ret === "ptr") return mapResult(f, def.args.length, toPointer);
  if (WIDE.has(def.ret)) return mapResult(f, def.args.length, toNumber);
  return f;
}

/**
 * The process image (libc's `dlopen`, and the home of every callback, since callbacks live and
 * die with a library handle): opened once, never closed.
 */
let processImage: NodeDynamicLibrary | undefined;
const image = (): NodeDynamicLibrary => (processImage ??= new ffi.DynamicLibrary(null));

/** `<dlfcn.h>` on Linux (glibc): resolve every symbol now, and look in the library first. */
const RTLD_NOW = 2;
const RTLD_DEEPBIND = 8;

let dl: { open: AnyFn; close: AnyFn } | undefined;

/**
 * Runs `open` with `path` already loaded deep-bound (Linux), so that it binds to its own
 * dependencies and not to the OpenSSL symbols the node binary exports (see the module doc).
 * A file that does not load is left to `open`, whose error names the reason.
 */
function deepBound<T>(path: string, open: () => T): T {
  if (nodeOs !== "linux") return open();
  dl ??= {
    open: image().getFunction("dlopen", { arguments: ["pointer", "i32"], return: "pointer" }),
    close: image().getFunction("dlclose", { arguments: ["pointer"], return: "i32" }),
  };
  const dlopen = dl.open as (file: Uint8Array, flags: number) => bigint;
  const dlclose = dl.close as (handle: bigint) => number;
  const handle = dlopen(new TextEncoder().encode(`${path}\0`), RTLD_NOW | RTLD_DEEPBIND);
  try {
    return open();
  } finally {
    // `open` holds its own reference now (or failed): drop ours.
    if (handle !== 0n) dlclose(handle);
  }
}

/** The `node:ffi` implementation of {@link Backend}. */
export const nodeFfiBackend: Backend = {
  ...nodeBackendBase,
  ffi: "node:ffi",

  missingPermission() {
    const permission = (process as unknown as { permission?: { has(scope: string): boolean } })
      .permission;
    if (permission === undefined || permission.has("ffi")) return null;
    return "Node.js runs with the permission model (--permission) and without --allow-ffi, " +
      "which loading OpenSSL through node:ffi needs";
  },

  open(path: string, table: SymbolTable): NativeLibrary {
    refuseNonblocking(table, "node:ffi");
    const main = deepBound(path, () => new ffi.DynamicLibrary(path));
    const handles: NodeDynamicLibrary[] = [main];
    const closeAll = () => {
      for (const h of handles.splice(0)) h.close();
    };
    const symbols: Record<string, AnyFn | null> = {};
    for (const [name, def] of Object.entries(table)) {
      let lib = main;
      if (def.symbol !== undefined) {
        // The same symbol resolved again with other parameter types throws: its own handle.
        lib = new ffi.DynamicLibrary(path);
        handles.push(lib);
      }
      try {
        symbols[name] = bind(lib.getFunction(def.symbol ?? name, signature(def)), def);
      } catch (error) {
        if (def.optional !== true) {
          closeAll();
          throw error;
        }
        symbols[name] = null;
      }
    }
    return { symbols, close: closeAll };
  },

  readBytes(p, offset, length) {
    // copy = true: a fresh ArrayBuffer of exactly `length` bytes, never a view of C memory.
    return length > 0
      ? new Uint8Array(ffi.toArrayBuffer(at(p, offset), length, true))
      : new Uint8Array(0);
  },

  writeBytes(p, offset, bytes) {
    if (bytes.length > 0) ffi.exportArrayBufferView(bytes, at(p, offset), bytes.length);
  },

  readCString(p, offset = 0) {
    return ffi.toString(at(p, offset)) ?? "";
  },

  readPointer(p, offset = 0) {
    return toPointer(ffi.getUint64(addressOf(p), offset));
  },

  readI32(p, offset = 0) {
    return ffi.getInt32(addressOf(p), offset);
  },

  writeI32(p, offset, value) {
    ffi.setInt32(addressOf(p), offset, value);
  },

  writePointer(p, offset, value) {
    ffi.setUint64(addressOf(p), offset, addressOf(value));
  },

  callback(def: CallbackDef, fn, onThrow, report): NativeCallback {
    const home = image();
    const address = home.registerCallback(
      signature(def),
      guardCallback(def.args, def.ret, fn, onThrow, report) as AnyFn,
    );
    return nodeCallback(address, (a) => home.unregisterCallback(a));
  },
};
