/**
 * Finding and loading libssl + libcrypto.
 *
 * Order: `LIBSSL_PATH` / `LIBCRYPTO_PATH` (read only when the environment permission is there),
 * then the versioned sonames of the platform, newest major first (OpenSSL 4 renamed them:
 * `libssl.so.4`). A pair is accepted only when libssl and libcrypto come from one release. We test
 * OpenSSL 3.0.2+ on Linux; 1.1.1, macOS (Homebrew) and Windows names are best-effort and untested.
 *
 * Failures are returned, not thrown, so that `src/` can turn them into its own `TlsError`
 * (`ffi/` does not depend on `src/`).
 *
 * @module
 */
import { backend } from "./backend.ts";
import { createMacros, type Macros } from "./macros.ts";
import { cryptoSymbols, sslSymbols, type Symbols } from "./symbols.ts";
import type { Backend, NativeLibrary } from "./types.ts";
import {
  OPENSSL_INIT_NO_ATEXIT,
  OPENSSL_MIN_VERSION,
  OPENSSL_VERSION_SELECTOR,
} from "./constants.ts";

/** Every raw symbol plus the macros, bound to one loaded libssl/libcrypto pair. */
export type OpenSsl =
  & Symbols<typeof sslSymbols>
  & Symbols<typeof cryptoSymbols>
  & Macros
  & {
    /** The runtime backend (memory access, callbacks). */
    readonly backend: Backend;
    /** `OpenSSL_version_num()`, e.g. `0x30000130`. */
    readonly versionNumber: number;
    /** `OpenSSL_version(OPENSSL_VERSION)`, e.g. `"OpenSSL 3.0.19 27 Jan 2026"`. */
    readonly versionText: string;
    /** The libssl file that was loaded. */
    readonly libsslPath: string;
    /** The libcrypto file that was loaded. */
    readonly libcryptoPath: string;
  };

/** Why loading failed. */
export interface LoadFailure {
  readonly code: "LIBRARY_NOT_FOUND" | "LIBRARY_TOO_OLD" | "PERMISSION_DENIED";
  readonly message: string;
  /** Every `libssl` / `libcrypto` pair tried, in order, with why each failed. */
  readonly tried: readonly string[];
}

/** The result of {@link loadOpenSsl}. */
export type LoadResult = { ok: true; openssl: OpenSsl } | { ok: false; failure: LoadFailure };

interface Candidate {
  ssl: string;
  crypto: string;
}

/** The majors we look for, newest first, with the suffix each platform gives its files. */
const MAJORS = [
  { elf: "4", dylib: "4", dll: "4", brew: "openssl@4" },
  { elf: "3", dylib: "3", dll: "3", brew: "openssl@3" },
  { elf: "1.1", dylib: "1.1", dll: "1_1", brew: "openssl@1.1" },
] as const;

function platformCandidates(os: Backend["os"]): Candidate[] {
  switch (os) {
    case "darwin":
      // Never /usr/lib/libcrypto.dylib: Apple's shim aborts the process.
      return ["/opt/homebrew/opt", "/usr/local/opt"].flatMap((prefix) =>
        MAJORS.map((m) => ({
          ssl: `${prefix}/${m.brew}/lib/libssl.${m.dylib}.dylib`,
          crypto: `${prefix}/${m.brew}/lib/libcrypto.${m.dylib}.dylib`,
        }))
      );
    case "windows":
      return MAJORS.map((m) => ({
        ssl: `libssl-${m.dll}-x64.dll`,
        crypto: `libcrypto-${m.dll}-x64.dll`,
      }));
    default:
      // The versioned sonames: plain libssl.so exists only with the -dev package.
      return MAJORS.map((m) => ({ ssl: `libssl.so.${m.elf}`, crypto: `libcrypto.so.${m.elf}` }));
  }
}

/** The candidate pairs, in the order they are tried. */
export function libraryCandidates(b: Backend = backend): Candidate[] {
  const ssl = b.env("LIBSSL_PATH");
  const crypto = b.env("LIBCRYPTO_PATH");
  if (ssl !== undefined && ssl !== "") {
    // LIBCRYPTO_PATH defaults to the file next to LIBSSL_PATH with the matching name.
    const guess = ssl.replace(/libssl([^/\\]*)$/, "libcrypto$1");
    return [{ ssl, crypto: crypto !== undefined && crypto !== "" ? crypto : guess }];
  }
  return platformCandidates(b.os);
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Why `path` did not open, in one clause. The runtimes word dlopen failures differently, and Bun
 * retries a bare name joined to the working directory and reports that path instead (so its
 * message named a file we never asked for).
 */
export function whyNotOpened(path: string, error: unknown): string {
  const text = message(error);
  if (/cannot open shared object file|image not found|no such file/i.test(text)) {
    return /[\\/]/.test(path)
      ? `${path}: no such file`
      : `${path}: not found by the dynamic linker (not installed, or not on its search path)`;
  }
  if (/wrong ELF class|incompatible architecture|not a mach-o|not a valid win32/i.test(text)) {
    return `${path}: built for another architecture`;
  }
  const symbol =
    /(?:undefined symbol|symbol not found|Failed to find symbol|find symbol)[: ]*['"]?([\w.]+)/i
      .exec(text)?.[1];
  if (symbol !== undefined) {
    return `${path}: lacks the function ${symbol} (too old or not OpenSSL?)`;
  }
  return `${path}: ${text}`;
}

function hex(n: number): string {
  return "0x" + n.toString(16);
}

function tryPair(b: Backend, c: Candidate): OpenSsl | string {
  let crypto: NativeLibrary;
  try {
    crypto = b.open(c.crypto, cryptoSymbols);
  } catch (error) {
    return whyNotOpened(c.crypto, error);
  }
  const cryptoFns = crypto.symbols as unknown as Symbols<typeof cryptoSymbols>;
  const versionNumber = cryptoFns.OpenSSL_version_num();
  if (versionNumber < OPENSSL_MIN_VERSION) {
    crypto.close();
    return `too old: ${c.crypto} is ${hex(versionNumber)}`;
  }
  // Before any other call that initialises libcrypto: no OPENSSL_cleanup at process exit.
  // OpenSSL 3.x registers it as a libc atexit handler on its first initialisation (4.0 has none).
  // It frees every global table while the runtime's other threads (a worker using this library)
  // may still be inside OpenSSL, and a fault in it kills a process whose work is done: a Deno
  // test run with 3.5.9 aborted at exit with glibc's "double free or corruption" after every test
  // had passed (cause not proven). The kernel takes the memory back anyway; curl opts out the
  // same way. If the process initialised this libcrypto before us, the call changes nothing.
  cryptoFns.OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, null);
  let ssl: NativeLibrary;
  try {
    ssl = b.open(c.ssl, sslSymbols);
  } catch (error) {
    crypto.close();
    return whyNotOpened(c.ssl, error);
  }
  // libssl calls the libcrypto it was linked against; the functions we call come from the one we
  // opened. Two releases side by side (4.0 and 3.x on one system) must not be mixed: objects of
  // one would reach the other.
  const sslSide = (ssl.symbols as unknown as Symbols<typeof sslSymbols>)
    .libssl_OpenSSL_version_num();
  if (sslSide !== versionNumber) {
    ssl.close();
    crypto.close();
    return `mismatch: ${c.ssl} is built for OpenSSL ${hex(sslSide)} but ${c.crypto} is ${
      hex(versionNumber)
    } (set LIBCRYPTO_PATH to the libcrypto of the same release)`;
  }
  const lib = {
    ...(ssl.symbols as unknown as Symbols<typeof sslSymbols>),
    ...cryptoFns,
  };
  const versionPtr = lib.OpenSSL_version(OPENSSL_VERSION_SELECTOR.VERSION);
  return {
    ...lib,
    ...createMacros(lib, {
      fromAddress: (a) => b.fromAddress(a),
      address: (p) => b.address(p),
      writeBytes: (p, off, bytes) => b.writeBytes(p, off, bytes),
    }),
    backend: b,
    versionNumber,
    versionText: versionPtr === null ? "unknown" : b.readCString(versionPtr),
    libsslPath: c.ssl,
    libcryptoPath: c.crypto,
  };
}

/**
 * Tries every candidate with `b`, without caching: {@link loadOpenSsl} is the cached entry point;
 * tests call this with a fake backend.
 */
export function loadOpenSslWith(b: Backend): LoadResult {
  // A runtime that forbids FFI fails every dlopen the same way: say so once, with the flag,
  // instead of listing each candidate as "not found".
  const denied = b.missingPermission();
  if (denied !== null) {
    return { ok: false, failure: { code: "PERMISSION_DENIED", message: denied, tried: [] } };
  }
  const tried: string[] = [];
  let tooOld = false;
  for (const candidate of libraryCandidates(b)) {
    const result = tryPair(b, candidate);
    if (typeof result !== "string") return { ok: true, openssl: result };
    if (result.startsWith("too old")) tooOld = true;
    tried.push(result);
  }
  const code = tooOld ? "LIBRARY_TOO_OLD" : "LIBRARY_NOT_FOUND";
  const what = tooOld
    ? "OpenSSL 1.1.1 or later is required (3.0.2+ is what we test)"
    : "could not load libssl/libcrypto (set LIBSSL_PATH, and LIBCRYPTO_PATH if its name differs)";
  return { ok: false, failure: { code, message: `${what}; tried: ${tried.join("; ")}`, tried } };
}

let cached: LoadResult | undefined;

/**
 * Loads libssl and libcrypto once per process (later calls return the same result). The
 * libraries stay loaded for the life of the process.
 */
export function loadOpenSsl(): LoadResult {
  cached ??= loadOpenSslWith(backend);
  return cached;
}
