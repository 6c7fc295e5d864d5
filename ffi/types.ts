/**
 * The typed contract between the runtime-neutral FFI layer and the runtime backends
 * (`backend_deno.ts`, `backend_bun.ts`, and on Node.js `backend_node_ffi.ts` over the built-in
 * `node:ffi` or `backend_koffi.ts` over the `koffi` package). Nothing above `ffi/` sees a runtime
 * FFI type: it sees the opaque {@link Pointer}, the {@link Backend} operations and
 * {@link NativeCallback}.
 *
 * @module
 */

declare const pointerBrand: unique symbol;

/**
 * An opaque, non-NULL C pointer. NULL is always `null`.
 *
 * On Deno it is a `Deno.PointerObject`, on Bun a number, on Node.js (both backends) a bigint;
 * Deno's is not identity-stable, so compare pointers with {@link Backend.address}.
 */
export type Pointer = { readonly [pointerBrand]: "Pointer" };

/**
 * Runtime-neutral value types used in the symbol table.
 *
 * - `ptr`: an opaque pointer ({@link Pointer} or `null`).
 * - `buf`: a `Uint8Array` (or other TypedArray) whose bytes C reads or writes during the call, or
 *   `null`. Never an empty array: neither backend rejects one, but C gets NULL on Deno (for an
 *   array without a backing store) and a non-NULL address on Bun.
 * - `cb`: a callback slot; pass {@link NativeCallback.pointer} or `null`.
 * - `i32`/`u32`: 32-bit integers as numbers.
 * - `i64`/`u64`/`usize`: 64-bit integers; arguments take a number or bigint, results come back
 *   as a number (every 64-bit value this library reads fits in 2^53).
 * - `void`: results only.
 */
export type NativeType = "ptr" | "buf" | "cb" | "i32" | "u32" | "i64" | "u64" | "usize" | "void";

/** One C function: its parameter and result types, and optionally the symbol it aliases. */
export interface FunctionDef {
  /** Parameter types, in order. */
  readonly args: readonly NativeType[];
  /** Result type. */
  readonly ret: NativeType;
  /**
   * The exported C symbol when this entry is an alias (the same function declared again with
   * different parameter types, e.g. `SSL_ctrl` taking a buffer instead of a pointer).
   */
  readonly symbol?: string;
  /** The symbol may be missing (e.g. only in OpenSSL 3.x); it is then `null` after loading. */
  readonly optional?: boolean;
  /**
   * The call blocks (`epoll_wait`, `getaddrinfo`): run it on a worker thread and return a
   * `Promise` of the result. Only where {@link Backend.nonblocking} exists; other backends refuse
   * such a table. Never for OpenSSL: its error queue is per thread.
   */
  readonly nonblocking?: true;
}

/** A table of C functions by name. */
export type SymbolTable = Readonly<Record<string, FunctionDef>>;

/** The signature of a C function pointer that OpenSSL calls back. */
export interface CallbackDef {
  /** Parameter types (`ptr`, `i32`, `u32`, `i64`, `u64`, `usize`). */
  readonly args: readonly NativeType[];
  /** Result type (`i32`, `u32`, `ptr`, `void`, ...). */
  readonly ret: NativeType;
}

/** A JS function that C can call, with an idempotent `close()`. */
export interface NativeCallback {
  /** The C function pointer to hand to OpenSSL. */
  readonly pointer: Pointer;
  /**
   * Frees the native trampoline. Must not be called from inside the callback itself (Deno
   * crashes), and only once OpenSSL can no longer call it (after the owning SSL_CTX is freed).
   */
  close(): void;
}

/** An opened shared library: the symbols as callable functions. */
export interface NativeLibrary {
  /** Callable symbols; optional ones that were missing are `null`. */
  readonly symbols: Readonly<Record<string, ((...args: never[]) => unknown) | null>>;
  /** Unloads the library. */
  close(): void;
}

/**
 * What each runtime backend must provide. Kept small on purpose: every operation here is tested by
 * the conformance test (`tests/ffi_backend_test.ts`) on every runtime.
 */
export interface Backend {
  /** The runtime: `"deno"`, `"bun"` or `"node"`. */
  readonly name: "deno" | "bun" | "node";
  /**
   * The FFI underneath: `"Deno.dlopen"`, `"bun:ffi"`, or on Node.js `"node:ffi"` (the built-in
   * module, Node.js 26+) or `"koffi"` (the npm package, Node.js 22 and 24).
   */
  readonly ffi: "Deno.dlopen" | "bun:ffi" | "node:ffi" | "koffi";
  /**
   * Why this process may not call C at all, naming the runtime flag that allows it (Deno without
   * `--allow-ffi`, Node.js's permission model without `--allow-ffi`), or `null` when it may.
   * Asked once before loading, so that a missing permission is reported as such rather than as
   * a library that could not be found.
   */
  missingPermission(): string | null;
  /** The operating system, for library discovery. */
  readonly os: "linux" | "darwin" | "windows" | "other";
  /** The CPU architecture. */
  readonly arch: "x86_64" | "aarch64" | "other";
  /**
   * Reads an environment variable, or `undefined` when it is unset or when reading it is not
   * permitted (on Deno this never prompts: the permission is queried first).
   */
  env(name: string): string | undefined;
  /** Opens a shared library with the given symbols. Throws if the file cannot be loaded. */
  open(path: string, symbols: SymbolTable): NativeLibrary;
  /** The numeric address of a pointer (0 for NULL): the only way to compare pointers. */
  address(p: Pointer | null): number;
  /** A pointer from a numeric address (`null` for 0). */
  fromAddress(address: number | bigint): Pointer | null;
  /** Copies `length` bytes starting at `p + offset` into a new `Uint8Array`. */
  readBytes(p: Pointer, offset: number, length: number): Uint8Array;
  /** Copies `bytes` into C memory at `p + offset`. */
  writeBytes(p: Pointer, offset: number, bytes: Uint8Array): void;
  /** Reads a NUL-terminated UTF-8 string at `p + offset`. */
  readCString(p: Pointer, offset?: number): string;
  /** Reads a pointer stored at `p + offset` (`null` when it is NULL). */
  readPointer(p: Pointer, offset?: number): Pointer | null;
  /** Reads a signed 32-bit integer at `p + offset`. */
  readI32(p: Pointer, offset?: number): number;
  /** Writes a signed 32-bit integer at `p + offset`. */
  writeI32(p: Pointer, offset: number, value: number): void;
  /** Writes a pointer (or NULL) at `p + offset`. */
  writePointer(p: Pointer, offset: number, value: Pointer | null): void;
  /**
   * Present when the backend can run calls on a worker thread ({@link FunctionDef.nonblocking}) and
   * choose whether such a pending call keeps the process alive: Deno (whose pending calls are
   * ops, and its `core.refOpPromise` / `unrefOpPromise` apply to them).
   */
  readonly nonblocking?: {
    /** Whether the pending call behind `pending` keeps the process alive (it does at first). */
    setRef(pending: Promise<unknown>, ref: boolean): void;
  } | undefined;
  /**
   * Creates a C-callable function. `fn` must not throw: wrap its body (see `src/core/callback_state.ts`);
   * as a last line of defence the backend catches anything that escapes, returns `onThrow`
   * instead, and hands the error to `report`.
   */
  callback(
    def: CallbackDef,
    fn: (...args: never[]) => unknown,
    onThrow: number | null,
    report: (error: unknown) => void,
  ): NativeCallback;
}

/**
 * For backends without {@link Backend.nonblocking}: refuses a table that asks for a worker-thread
 * call, which they would otherwise make on the JS thread and block it.
 */
export function refuseNonblocking(table: SymbolTable, ffi: string): void {
  for (const [name, def] of Object.entries(table)) {
    if (def.nonblocking === true) throw new Error(`${name}: ${ffi} has no non-blocking calls`);
  }
}

/**
 * `f` with `convert` applied to its result, for every backend. Fixed-arity wrappers up to 4
 * arguments: a rest-parameter one costs measurably more per call (~15 ns on Bun; on Deno more than
 * the `SSL_ctrl` it wraps), and `BIO_ctrl_pending` and friends are hot.
 */
export function mapResult(
  f: (...args: never[]) => unknown,
  arity: number,
  convert: (r: unknown) => unknown,
): (...args: never[]) => unknown {
  type AnyFn = (...args: never[]) => unknown;
  const g = f as (...a: unknown[]) => unknown;
  switch (arity) {
    case 0:
      return () => convert(g());
    case 1:
      return ((a: unknown) => convert(g(a))) as AnyFn;
    case 2:
      return ((a: unknown, b: unknown) => convert(g(a, b))) as AnyFn;
    case 3:
      return ((a: unknown, b: unknown, c: unknown) => convert(g(a, b, c))) as AnyFn;
    case 4:
      return ((a: unknown, b: unknown, c: unknown, d: unknown) => convert(g(a, b, c, d))) as AnyFn;
    default:
      return ((...a: unknown[]) => convert(g(...a))) as AnyFn;
  }
}
