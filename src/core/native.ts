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
