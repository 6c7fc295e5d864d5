/**
 * The Deno backend of the FFI contract: the only file that touches `Deno.dlopen`,
 * `Deno.UnsafePointer*` and `Deno.UnsafeCallback`.
 *
 * Deno facts this relies on (each measured; docs/architecture.md has the FFI layer):
 * - Pointers are `PointerObject | null` and not identity-stable: compare their addresses.
 * - 64-bit results come back as `number | bigint`; we normalise them to numbers.
 * - Never `nonblocking: true` for OpenSSL: its error queue is per thread, and it is 30-57 µs a
 *   call. Only the socket transport's `epoll_wait` and `getaddrinfo` run that way.
 * - A callback's exception reaches C as 0 and is only sometimes rethrown: the caller-provided
 *   wrapper (src/core/callback_state.ts) catches everything, and so do we, as a last line of defence.
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
import { mapResult } from "./types.ts";

const WIDE: ReadonlySet<NativeType> = new Set(["i64", "u64", "usize"]);

function denoType(t: NativeType): Deno.NativeResultType {
  switch (t) {
    case "ptr":
    case "cb":
      return "pointer";
    case "buf":
      return "buffer";
    default:
      return t;
  }
}

function denoDef(def: FunctionDef): Deno.ForeignFunction {
  const fn: Deno.ForeignFunction = {
    parameters: def.args.map(denoType) as Deno.NativeType[],
    result: denoType(def.ret),
  };
  if (def.symbol !== undefined) fn.name = def.symbol;
  if (def.optional === true) fn.optional = true;
  if (def.nonblocking === true) fn.nonblocking = true;
  return fn;
}

type AnyFn = (...args: never[]) => unknown;

const toPtr = (p: Pointer | null) => p as unknown as Deno.PointerValue;
const fromPtr = (p: Deno.PointerValue) => p as unknown as Pointer | null;

function view(p: Pointer, offset: number, length: number): Uint8Array {
  return new Uint8Array(
    Deno.UnsafePointerView.getArrayBuffer(toPtr(p) as Deno.PointerObject, length, offset),
  );
}

/**
 * Deno's own switch for whether a pending op keeps the event loop alive (what `Deno.Conn.unref()`
 * uses for its pending read). Not a public API, so it is looked up, and without it there is no
 * {@link Backend.nonblocking} (the socket transport then stays with `Deno.connect`).
 */
const core = (Deno as unknown as Record<symbol, { core?: Record<string, unknown> } | undefined>)[
  (Deno as unknown as { internal: symbol }).internal
]?.core;
const refOp = core?.refOpPromise as ((p: Promise<unknown>) => void) | undefined;
const unrefOp = core?.unrefOpPromise as ((p: Promise<unknown>) => void) | undefined;

/** The Deno implementation of {@link Backend}. */
export const denoBackend: Backend = {
  name: "deno",
  ffi: "Deno.dlopen",
  os: Deno.build.os === "linux" || Deno.build.os === "darwin" || Deno.build.os === "windows"
    ? Deno.build.os
    : "other",
  arch: Deno.build.arch === "x86_64" || Deno.build.arch === "aarch64" ? Deno.build.arch : "other",

  missingPermission() {
    // Without it every dlopen fails with NotCapable, which the loader would report as "library
    // not found" for each candidate. Ask for the unscoped permission: `--allow-ffi=PATH` lets
    // dlopen through but not the pointer reads (UnsafePointerView) the library needs.
    // Not granted: ask (Deno prompts on a terminal; with --no-prompt or without a terminal the
    // answer is "denied" at once, as dlopen's own check would have been).
    if (Deno.permissions.querySync({ name: "ffi" }).state === "granted") return null;
    if (Deno.permissions.requestSync({ name: "ffi" }).state === "granted") return null;
    return "Deno needs --allow-ffi to load OpenSSL (the plain flag: --allow-ffi=PATH is not " +
      "enough, since reading C memory is checked without a path)";
  },

  env(name) {
    // Reading without the permission would prompt or throw: ask first, quietly.
    if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") {
      return undefined;
    }
    return Deno.env.get(name);
  },

  open(path: string, table: SymbolTable): NativeLibrary {
    const defs: Record<string, Deno.ForeignFunction> = {};
    for (const [name, def] of Object.entries(table)) defs[name] = denoDef(def);
    const lib = Deno.dlopen(path, defs);
    const raw = lib.symbols as unknown as Record<string, AnyFn | null>;
    const symbols: Record<string, AnyFn | null> = {};
    for (const [name, def] of Object.entries(table)) {
      const f = raw[name] ?? null;
      if (f !== null && WIDE.has(def.ret) && def.nonblocking !== true) {
        // `number | bigint` -> number: every 64-bit value we read fits in 2^53.
        symbols[name] = mapResult(f, def.args.length, Number);
      } else {
        symbols[name] = f;
      }
    }
    return { symbols, close: () => lib.close() };
  },

  nonblocking: typeof refOp === "function" && typeof unrefOp === "function"
    ? { setRef: (pending, ref) => (ref ? refOp : unrefOp)(pending) }
    : undefined,

  address(p) {
    return p === null ? 0 : Number(Deno.UnsafePointer.value(toPtr(p)));
  },

  fromAddress(address) {
    return fromPtr(Deno.UnsafePointer.create(BigInt(address)));
  },

  readBytes(p, offset, length) {
    const out = new Uint8Array(length);
    if (length > 0) out.set(view(p, offset, length));
    return out;
  },

  writeBytes(p, offset, bytes) {
    if (bytes.length > 0) view(p, offset, bytes.length).set(bytes);
  },

  readCString(p, offset = 0) {
    return Deno.UnsafePointerView.getCString(toPtr(p) as Deno.PointerObject, offset);
  },

  readPointer(p, offset = 0) {
    return fromPtr(new Deno.UnsafePointerView(toPtr(p) as Deno.PointerObject).getPointer(offset));
  },

  readI32(p, offset = 0) {
    return new Deno.UnsafePointerView(toPtr(p) as Deno.PointerObject).getInt32(offset);
  },

  writeI32(p, offset, value) {
    const b = view(p, offset, 4);
    new DataView(b.buffer, b.byteOffset, 4).setInt32(0, value, true);
  },

  writePointer(p, offset, value) {
    const b = view(p, offset, 8);
    const address = value === null ? 0n : Deno.UnsafePointer.value(toPtr(value));
    new DataView(b.buffer, b.byteOffset, 8).setBigUint64(0, BigInt(address), true);
  },

  callback(def: CallbackDef, fn, onThrow, report): NativeCallback {
    const guarded = (...args: unknown[]): unknown => {
      try {
        return (fn as (...a: unknown[]) => unknown)(...args);
      } catch (error) {
        report(error);
        return onThrow;
      }
    };
    const cb = new Deno.UnsafeCallback(
      {
        parameters: def.args.map(denoType) as Deno.NativeType[],
        result: denoType(def.ret),
      } as Deno.UnsafeCallbackDefinition,
      guarded as never,
    );
    let closed = false;
    return {
      pointer: fromPtr(cb.pointer) as Pointer,
      close() {
        if (closed) return;
        closed = true;
        cb.close();
      },
    };
  },
};
