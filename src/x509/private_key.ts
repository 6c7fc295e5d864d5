/**
 * Private keys (PKCS#8, traditional or encrypted PEM, or DER) and their passphrases: text, bytes,
 * or a function OpenSSL calls through `pem_password_cb` only when the key turns out to be
 * encrypted. Never a terminal prompt.
 *
 * @module
 */
import { CallbackState } from "../core/callback_state.ts";
import { TlsError } from "../core/errors.ts";
import { clearErrorQueue, drainErrorQueue } from "../core/error_queue.ts";
import { NativeHandle } from "../core/ownership.ts";
import { cString, openssl, PASSWORD_CB, type Pointer } from "../core/native.ts";
import { messageOf } from "../core/values.ts";
import { trampoline } from "../core/trampolines.ts";
import {
  describe,
  isPem,
  memoryBioFrom,
  notPemError,
  type PemOrDer,
  toBytes,
} from "./certificate.ts";

const decoder = new TextDecoder();

/** What a passphrase function is told. */
export interface PassphraseRequest {
  /** The most bytes the passphrase may have (OpenSSL's buffer size). */
  readonly maxLength: number;
}

/**
 * A passphrase: text, bytes (zeroed after use), or a function called only when the key turns out
 * to be encrypted (through OpenSSL's `pem_password_cb`; never a terminal prompt).
 */
export type Passphrase =
  | string
  | Uint8Array
  | ((request: PassphraseRequest) => string | Uint8Array);

/**
 * The passphrase function being asked right now, with the callback state its errors go to (key
 * loading is synchronous, so one at a time).
 */
let active:
  | { ask: (request: PassphraseRequest) => string | Uint8Array; state: CallbackState }
  | null = null;

/**
 * `pem_password_cb`: writes the user's passphrase into OpenSSL's buffer. Its errors go through
 * the same `CallbackState` as every other callback's: stored, -1 to OpenSSL, rethrown after.
 */
function passwordTrampoline(): Pointer {
  return trampoline(PASSWORD_CB, (buf: Pointer | null, size: number) => {
    const current = active;
    if (current === null || buf === null) return -1;
    return current.state.run(PASSWORD_CB.failure ?? -1, () => {
      const answer = current.ask({ maxLength: size });
      if (typeof answer !== "string" && !(answer instanceof Uint8Array)) {
        throw new TypeError("a passphrase function must return a string or a Uint8Array");
      }
      const bytes = typeof answer === "string" ? new TextEncoder().encode(answer) : answer;
      if (bytes.length > size) throw new RangeError(`the passphrase is longer than ${size} bytes`);
      openssl().backend.writeBytes(buf, 0, bytes);
      const n = bytes.length;
      bytes.fill(0); // our copy, or the caller's bytes: wiped either way
      return n;
    });
  });
}

/**
 * Parses a private key (PKCS#8, traditional or encrypted PEM, or DER). Never prompts on a
 * terminal: without a passphrase an encrypted key fails with `BAD_PASSPHRASE`. A `Uint8Array`
 * passphrase is zeroed after use (strings cannot be wiped).
 *
 * @throws {TlsError} `INVALID_KEY` or `BAD_PASSPHRASE`.
 */
export function loadPrivateKey(
  input: PemOrDer,
  passphrase?: Passphrase,
  label = "private key",
): NativeHandle {
  if (typeof input !== "string" && !(input instanceof Uint8Array)) {
    throw new TypeError(`${label} must be a PEM string or a Uint8Array`);
  }
  const o = openssl();
  const bytes = toBytes(input);
  if (typeof input === "string" && !isPem(bytes)) {
    throw notPemError(input, label, "PRIVATE KEY", "INVALID_KEY");
  }
  clearErrorQueue();
  const bio = memoryBioFrom(bytes);
  // With cb = NULL, PEM_read_bio_PrivateKey uses `u` as the NUL-terminated passphrase; an empty
  // one (never NULL) keeps OpenSSL from prompting on the terminal.
  const asks = typeof passphrase === "function";
  const pass = typeof passphrase === "string"
    ? cString(passphrase)
    : new Uint8Array([...(passphrase instanceof Uint8Array ? passphrase : []), 0]);
  const asking = asks ? { ask: passphrase, state: new CallbackState() } : null;
  try {
    const pem = isPem(bytes);
    active = asking;
    const k = !pem
      ? o.d2i_PrivateKey_bio(bio.ptr, null)
      : asking !== null
      ? o.PEM_read_bio_PrivateKey_cb(bio.ptr, null, passwordTrampoline(), null)
      : o.PEM_read_bio_PrivateKey_buf(bio.ptr, null, null, pass);
    if (k === null) {
      const errors = drainErrorQueue();
      if (asking?.state.failed) {
        const cause = asking.state.takeError();
        throw new TlsError(
          "CALLBACK_ERROR",
          `the passphrase function failed: ${messageOf(cause)}`,
          { cause, openssl: errors },
        );
      }
      const encrypted = pem && /ENCRYPTED/.test(decoder.decode(bytes.subarray(0, 200)));
      if (encrypted) {
        throw new TlsError(
          "BAD_PASSPHRASE",
          passphrase === undefined
            ? `${label}: the private key is encrypted and no passphrase was given`
            : `${label}: the passphrase does not decrypt the private key`,
          { openssl: errors },
        );
      }
      throw new TlsError(
        "INVALID_KEY",
        `${label}: could not parse ${describe(input, "private key")}`,
        {
          openssl: errors,
        },
      );
    }
    return new NativeHandle("EVP_PKEY", k, (p) => o.EVP_PKEY_free(p));
  } finally {
    active = null;
    // Wipe our copy and the caller's bytes (a string passphrase cannot be wiped in JS).
    pass.fill(0);
    if (passphrase instanceof Uint8Array) passphrase.fill(0);
    bio.close();
  }
}
