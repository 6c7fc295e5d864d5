/**
 * Finding and loading libssl + libcrypto.
 *
 * Order: `LIBSSL_PATH` / `LIBCRYPTO_PATH` (read only when the environment permission is there),
 * then the versioned sonames of the platform. We test OpenSSL 3.0.2+ on Linux; 1.1.1, macOS
 * (Homebrew) and Windows names are best-effort and untested.
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
import { OPENSSL_MIN_VERSION, OPENSSL_VERSION_SELECTOR } from "./constants.ts";

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
  readonly code: "LIBRARY_NOT_FOUND" | "LIBRARY_TOO_OLD";
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

function platformCandidates(os: Backend["os"]): Candidate[] {
  switch (os) {
    case "darwin": {
      // Never /usr/lib/libcrypto.dylib: Apple's shim aborts the process.
      const out: Candidate[] = [];
      for (const prefix of ["/opt/homebrew/opt", "/usr/local/opt"]) {
        out.push({
          ssl: `${prefix}/openssl@3/lib/libssl.3.dylib`,
          crypto: `${prefix}/openssl@3/lib/libcrypto.3.dylib`,
        });
        out.push({
          ssl: `${prefix}/openssl@1.1/lib/libssl.1.1.dylib`,
          crypto: `${prefix}/openssl@1.1/lib/libcrypto.1.1.dylib`,
        });
      }
      return out;
    }
    case "windows":
      return [
        { ssl: "libssl-3-x64.dll", crypto: "libcrypto-3-x64.dll" },
        { ssl: "libssl-1_1-x64.dll", crypto: "libcrypto-1_1-x64.dll" },
      ];
    default:
      // The versioned sonames: plain libssl.so exists only with the -dev package.
      return [
        { ssl: "libssl.so.3", crypto: "libcrypto.so.3" },
        { ssl: "libssl.so.1.1", crypto: "libcrypto.so.1.1" },
      ];
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

function hex(n: number): string {
  return "0x" + n.toString(16);
}

function tryPair(b: Backend, c: Candidate): OpenSsl | string {
  let crypto: NativeLibrary;
  try {
    crypto = b.open(c.crypto, cryptoSymbols);
  } catch (error) {
    return `${c.crypto}: ${message(error)}`;
  }
  const cryptoFns = crypto.symbols as unknown as Symbols<typeof cryptoSymbols>;
  const versionNumber = cryptoFns.OpenSSL_version_num();
  if (versionNumber < OPENSSL_MIN_VERSION) {
    crypto.close();
    return `too old: ${c.crypto} is ${hex(versionNumber)}`;
  }
  let ssl: NativeLibrary;
  try {
    ssl = b.open(c.ssl, sslSymbols);
  } catch (error) {
    crypto.close();
    return `${c.ssl}: ${message(error)}`;
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
