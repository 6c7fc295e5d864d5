/**
 * glibc's `mallinfo2()`, for leak tests: bytes currently allocated by the C heap.
 *
 * `mallinfo2` returns a 80-byte struct by value, which neither backend can express (Bun FFI has no
 * struct results). On x86-64 System V a struct that large is returned through a hidden pointer
 * passed as the first argument, so we declare it as `void *mallinfo2(struct mallinfo2 *out)`.
 * That is only correct on x86-64 Linux with glibc; everywhere else this reports `null`.
 *
 * @module
 */
import { backend } from "./backend.ts";
import type { NativeLibrary } from "./types.ts";

let libc: NativeLibrary | null | undefined;

function load(): NativeLibrary | null {
  if (libc !== undefined) return libc;
  libc = null;
  if (backend.os !== "linux" || backend.arch !== "x86_64") return libc;
  try {
    libc = backend.open("libc.so.6", { mallinfo2: { args: ["buf"], ret: "ptr" } });
  } catch {
    libc = null; // musl or glibc < 2.33: no mallinfo2
  }
  return libc;
}

/**
 * Bytes in use on the C heap (`uordblks + hblkhd` of glibc's `mallinfo2()`), or `null` where that
 * cannot be called (not x86-64 glibc Linux).
 */
export function nativeHeapInUse(): number | null {
  const lib = load();
  const fn = lib?.symbols.mallinfo2 as ((out: BigUint64Array) => unknown) | null | undefined;
  if (fn === null || fn === undefined) return null;
  // struct mallinfo2 { size_t arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks,
  //                    uordblks, fordblks, keepcost; }
  const out = new BigUint64Array(10);
  fn(out);
  return Number(out[7]! + out[4]!);
}
