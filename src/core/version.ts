/**
 * `opensslVersion()`: which OpenSSL this process loaded, from where, and what it can do.
 *
 * @module
 */
import { type Capabilities, capabilities } from "./capabilities.ts";
import { openssl } from "./native.ts";

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
  /**
   * What this OpenSSL can do beyond the 3.0 baseline, detected from the library (e.g.
   * `groupName`: the negotiated key exchange group by name, 3.2+).
   */
  readonly capabilities: Capabilities;
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
    capabilities: capabilities(),
  };
}
