/**
 * What the two Node.js backends (`backend_node_ffi.ts` over `node:ffi`, `backend_koffi.ts` over
 * koffi) have in common: both represent a C pointer as a `bigint` address, so a {@link Pointer}
 * on Node.js is a non-zero `bigint` and NULL is `null`; the platform comes from `node:process`.
 *
 * @module
 */
import process from "node:process";
import type { Backend, NativeCallback, NativeType, Pointer } from "./types.ts";

/** The operating system, as {@link Backend.os} names it. */
export const nodeOs: Backend["os"] = process.platform === "linux" || process.platform === "darwin"
  ? process.platform
  : process.platform === "win32"
  ? "windows"
  : "other";

/** The CPU architecture, as {@link Backend.arch} names it. */
export const nodeArch: Backend["arch"] = process.arch === "x64"
  ? "x86_64"
  : process.arch === "arm64"
  ? "aarch64"
  : "other";

/** A C address as the FFI hands it over (bigint, or null/0 for NULL) to a {@link Pointer}. */
export function toPointer(value: unknown): Pointer | null {
  return value === null || value === undefined || value === 0n || value === 0
    ? null
    : value as Pointer;
}

/** The `bigint` address of a {@link Pointer} (`0n` for NULL). */
export function addressOf(p: Pointer | null): bigint {
  return p === null ? 0n : p as unknown as bigint;
}

/** The address `offset` bytes past `p`. */
export function addressAt(p: Pointer, offset: number): bigint {
  return offset === 0 ? addressOf(p) : addressOf(p) + BigInt(offset);
}

/**
 * What both Node.js backends share of {@link Backend}: the runtime, the platform, the environment
 * (Node.js has no environment permission) and pointer addresses.
 */
export const nodeBackendBase: Pick<
  Backend,
  "name" | "os" | "arch" | "env" | "address" | "fromAddress"
> = {
  name: "node",
  os: nodeOs,
  arch: nodeArch,
  env: (name) => process.env[name],
  address: (p) => Number(addressOf(p)),
  fromAddress: (address) =>
    address === 0 || address === 0n ? null : BigInt(address) as unknown as Pointer,
};

/** A {@link NativeCallback} for a callback at `address`, released once by `release`. */
export function nodeCallback(address: bigint, release: (address: bigint) => void): NativeCallback {
  let closed = false;
  return {
    pointer: address as unknown as Pointer,
    close() {
      if (closed) return;
      closed = true;
      release(address);
    },
  };
}

/** The 64-bit integer types: the FFIs give bigints for them (always, or above 2^53). */
export const WIDE: ReadonlySet<NativeType> = new Set(["i64", "u64", "usize"]);

/** A 64-bit result to a number: every 64-bit value this library reads fits in 2^53. */
export const toNumber = (r: unknown): unknown => typeof r === "bigint" ? Number(r) : r;

/**
 * Wraps a callback body for C: NULL pointer arguments become `null`, 64-bit arguments numbers, a
 * returned {@link Pointer} (or `null`) its bigint address; a throw becomes `onThrow`, handed to
 * `report`. Nothing may escape into C: `node:ffi` aborts the process on a callback that throws
 * ("Callbacks cannot throw an exception"), so even a throwing `report` is swallowed here.
 */
export function guardCallback(
  args: readonly NativeType[],
  ret: NativeType,
  fn: (...args: never[]) => unknown,
  onThrow: number | null,
  report: (error: unknown) => void,
): (...args: unknown[]) => unknown {
  const kinds = args.map((t) => (t === "ptr" ? 1 : WIDE.has(t) ? 2 : 0));
  const body = fn as (...a: unknown[]) => unknown;
  const failure = ret === "ptr" ? 0n : ret === "void" ? undefined : onThrow;
  return (...a: unknown[]): unknown => {
    try {
      for (let i = 0; i < a.length; i++) {
        const kind = kinds[i];
        if (kind === 1) a[i] = toPointer(a[i]);
        else if (kind === 2) a[i] = toNumber(a[i]);
      }
      const result = body(...a);
      return ret === "ptr" ? addressOf(result as Pointer | null) : result;
    } catch (error) {
      try {
        report(error);
      } catch {
        // Nowhere left to send it: returning into C with an exception pending is worse.
      }
      return failure;
    }
  };
}
