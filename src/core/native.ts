/**
 * The one module in `src/` that imports `ffi/`: loads OpenSSL on first use and turns a load
 * failure into a `TlsError`. Everything else in `src/` gets the library through {@link openssl}.
 *
 * @module
 */
import { loadOpenSsl, type OpenSsl } from "../../ffi/mod.ts";
import { TlsError } from "./errors.ts";

export * from "../../ffi/mod.ts";

let loaded: OpenSsl | undefined;

/**
 * The loaded library (loaded once, on first call).
 *
 * @throws {TlsError} `LIBRARY_NOT_FOUND` (the message lists every path tried) or
 * `LIBRARY_TOO_OLD`.
 */
export function openssl(): OpenSsl {
  if (loaded !== undefined) return loaded;
  const result = loadOpenSsl();
  if (!result.ok) {
    throw new TlsError(result.failure.code, result.failure.message, {
      cause: result.failure.tried,
    });
  }
  loaded = result.openssl;
  return loaded;
}

/** What {@link opensslVersion} reports. */
export interface OpenSslVersion {
  /** `OpenSSL_version(OPENSSL_VERSION)`, e.g. `"OpenSSL 3.0.19 27 Jan 2026"`. */
  readonly text: string;
  /** `OpenSSL_version_num()`, e.g. `0x30000130` for 3.0.19. */
  readonly number: number;
  /** `major.minor.patch`, e.g. `"3.0.19"`. */
  readonly version: string;
  /** The libssl file that was loaded. */
  readonly libssl: string;
  /** The libcrypto file that was loaded. */
  readonly libcrypto: string;
  /** The FFI backend in use: `"deno"` or `"bun"`. */
  readonly runtime: "deno" | "bun";
}

/**
 * The OpenSSL this process loaded, and from where.
 *
 * @example
 * ```ts
 * import { opensslVersion } from "../../mod.ts";
 * const v = opensslVersion();
 * console.log(`${v.text} from ${v.libssl} on ${v.runtime}`); // "OpenSSL 3.0.19 ... from libssl.so.3 on deno"
 * ```
 * @throws {TlsError} `LIBRARY_NOT_FOUND` or `LIBRARY_TOO_OLD`.
 */
export function opensslVersion(): OpenSslVersion {
  const o = openssl();
  const n = o.versionNumber;
  // 3.x: 0xMNN00PP0 (major, minor, patch); 1.1.1: 0xMNNFFPPS (fix, patch letter).
  const major = Math.floor(n / 0x10000000) & 0xf;
  const minor = (n >>> 20) & 0xff;
  const patch = major >= 3 ? (n >>> 4) & 0xff : (n >>> 12) & 0xff;
  return {
    text: o.versionText,
    number: n,
    version: `${major}.${minor}.${patch}`,
    libssl: o.libsslPath,
    libcrypto: o.libcryptoPath,
    runtime: o.backend.name,
  };
}
