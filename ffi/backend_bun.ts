/**
 * The Bun backend of the FFI contract: the only file that touches `bun:ffi`.
 *
 * Bun facts this relies on (each measured; docs/architecture.md has the FFI layer):
 * - Pointers are numbers; NULL results are `null`, but `read.ptr` gives 0 for NULL.
 * - No symbol aliases and no optional symbols: `dlopen` throws if any symbol is missing, so
 *   optional symbols are probed one by one and aliases get their own small `dlopen`.
 * - `i64`/`u64` results allocate a bigint; the `_fast` variants return a number when it fits,
 *   and a bigint above 2^53: wide results are wrapped to always give a number, as on Deno.
 * - A TypedArray passed directly as a `ptr` argument is safe; `ptr(array)` kept around is not.
 * - Never `threadsafe: true` callbacks: they are always deferred and C gets 0 at once.
 *
 * `bun:ffi` is loaded through a variable specifier, and its few types are declared below, so that
 * `deno check` type-checks this file too.
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
  Pointer,
  SymbolTable,
} from "./types.ts";
import { mapResult, refuseNonblocking } from "./types.ts";

type BunType =
  | "ptr"
  | "i32"
  | "u32"
  | "i64"
  | "u64"
  | "i64_fast"
  | "u64_fast"
  | "usize"
  | "void";

interface BunFunctionDef {
  args: BunType[];
  returns: BunType;
}

type AnyFn = (...args: never[]) => unknown;

/** The part of `bun:ffi` this backend uses. */
interface BunFfi {
  dlopen(
    path: string,
    symbols: Record<string, BunFunctionDef>,
  ): { symbols: Record<string, AnyFn>; close(): void };
  read: {
    ptr(p: number, offset?: number): number;
    i32(p: number, offset?: number): number;
  };
  toArrayBuffer(p: number, offset: number, length: number): ArrayBuffer;
  CString: new (p: number, offset?: number) => { toString(): string };
  JSCallback: new (
    fn: (...args: never[]) => unknown,
    def: BunFunctionDef,
  ) => { readonly ptr: number | null; close(): void };
}

import process from "node:process";

const specifier = "bun:ffi";
const ffi = (await import(specifier)) as BunFfi;

function bunArg(t: NativeType): BunType {
  switch (t) {
    case "buf":
    case "cb":
      return "ptr";
    default:
      return t;
  }
}

function bunRet(t: NativeType): BunType {
  switch (t) {
    case "i64":
      return "i64_fast";
    case "u64":
    case "usize":
      return "u64_fast";
    default:
      return bunArg(t);
  }
}

const bunDef = (def: FunctionDef): BunFunctionDef => ({
  args: def.args.map(bunArg),
  returns: bunRet(def.ret),
});

const WIDE: ReadonlySet<NativeType> = new Set(["i64", "u64", "usize"]);

const toNumber = (r: unknown): unknown => typeof r === "bigint" ? Number(r) : r;

/** A `_fast` result is a bigint when it does not fit in 2^53: make it a number, as on Deno. */
function bind(f: AnyFn | undefined, def: FunctionDef): AnyFn | null {
  if (f === undefined) return null;
  if (!WIDE.has(def.ret)) return f;
  return mapResult(f, def.args.length, toNumber);
}

const num = (p: Pointer | null): number => (p ?? 0) as unknown as number;
const ptrOrNull = (n: number | null): Pointer | null =>
  n === null || n === 0 ? null : n as unknown as Pointer;

function view(p: Pointer, offset: number, length: number): Uint8Array {
  return new Uint8Array(ffi.toArrayBuffer(num(p), offset, length));
}

/** The Bun implementation of {@link Backend}. */
export const bunBackend: Backend = {
  name: "bun",
  ffi: "bun:ffi",
  os: process.platform === "linux" || process.platform === "darwin"
    ? process.platform
    : process.platform === "win32"
    ? "windows"
    : "other",
  arch: process.arch === "x64" ? "x86_64" : process.arch === "arm64" ? "aarch64" : "other",

  missingPermission() {
    return null; // Bun has no permission system
  },

  env(name) {
    return process.env[name];
  },

  open(path: string, table: SymbolTable): NativeLibrary {
    refuseNonblocking(table, "bun:ffi");
    const handles: { close(): void }[] = [];
    const symbols: Record<string, AnyFn | null> = {};
    const main: Record<string, BunFunctionDef> = {};
    const separate: [string, FunctionDef][] = [];
    for (const [name, def] of Object.entries(table)) {
      if (def.symbol !== undefined || def.optional === true) separate.push([name, def]);
      else main[name] = bunDef(def);
    }
    // bun:ffi refuses a dlopen without symbols: a table of only aliases and optional symbols
    // opens nothing here, and the library's own failure surfaces below. (An empty table still
    // goes to bun:ffi, which refuses it.)
    if (Object.keys(main).length > 0 || separate.length === 0) {
      const lib = ffi.dlopen(path, main);
      handles.push(lib);
      for (const [name, def] of Object.entries(table)) {
        if (name in main) symbols[name] = bind(lib.symbols[name], def);
      }
    }
    // Aliases and optional symbols: one small dlopen each (Bun has neither feature).
    for (const [name, def] of separate) {
      const symbol = def.symbol ?? name;
      try {
        const one = ffi.dlopen(path, { [symbol]: bunDef(def) });
        handles.push(one);
        symbols[name] = bind(one.symbols[symbol], def);
      } catch (error) {
        // Only a missing symbol is optional; a library that does not open (ERR_DLOPEN_FAILED,
        // where Bun says "Symbol ... not found" with ERR_INVALID_ARG_TYPE) fails the open.
        const unopened = (error as { code?: unknown }).code === "ERR_DLOPEN_FAILED";
        if (def.optional !== true || unopened) {
          for (const h of handles) h.close();
          throw error;
        }
        symbols[name] = null;
      }
    }
    return {
      symbols,
      close() {
        for (const h of handles.splice(0)) h.close();
      },
    };
  },

  address(p) {
    return num(p);
  },

  fromAddress(address) {
    return ptrOrNull(Number(address));
  },

  readBytes(p, offset, length) {
    return length > 0 ? view(p, offset, length).slice() : new Uint8Array(0);
  },

  writeBytes(p, offset, bytes) {
    if (bytes.length > 0) view(p, offset, bytes.length).set(bytes);
  },

  readCString(p, offset = 0) {
    return new ffi.CString(num(p), offset).toString();
  },

  readPointer(p, offset = 0) {
    return ptrOrNull(ffi.read.ptr(num(p), offset));
  },

  readI32(p, offset = 0) {
    return ffi.read.i32(num(p), offset);
  },

  writeI32(p, offset, value) {
    const b = view(p, offset, 4);
    new DataView(b.buffer, b.byteOffset, 4).setInt32(0, value, true);
  },

  writePointer(p, offset, value) {
    const b = view(p, offset, 8);
    new DataView(b.buffer, b.byteOffset, 8).setBigUint64(0, BigInt(num(value)), true);
  },

  callback(def: CallbackDef, fn, onThrow, report): NativeCallback {
    const pointerArgs = def.args.map((t) => t === "ptr");
    const guarded = (...args: unknown[]): unknown => {
      try {
        // Bun hands NULL pointer arguments over as 0 or null: normalise to null.
        for (let i = 0; i < args.length; i++) {
          if (pointerArgs[i] === true && (args[i] === 0 || args[i] === undefined)) args[i] = null;
        }
        const result = (fn as (...a: unknown[]) => unknown)(...args);
        return def.ret === "ptr" ? num(result as Pointer | null) : result;
      } catch (error) {
        report(error);
        return onThrow;
      }
    };
    const cb = new ffi.JSCallback(guarded as AnyFn, {
      args: def.args.map(bunArg),
      returns: bunArg(def.ret),
    });
    let closed = false;
    return {
      pointer: ptrOrNull(cb.ptr) as Pointer,
      close() {
        if (closed) return;
        closed = true;
        cb.close();
      },
    };
  },
};
