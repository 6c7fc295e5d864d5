/**
 * Loading certificates and private keys (PEM or DER) into OpenSSL objects, and reading
 * certificates back out as plain data.
 *
 * @module
 */
import { TlsError } from "./errors.ts";
import { clearErrorQueue, drainErrorQueue } from "./error_queue.ts";
import { NativeHandle } from "./ownership.ts";
import {
  cString,
  ERR_LIB_PEM,
  openssl,
  PEM_R_NO_START_LINE,
  type Pointer,
  XN_FLAG_RFC2253,
} from "./native.ts";

/** A certificate or key as PEM text, or as DER (or PEM) bytes. */
export type PemOrDer = string | Uint8Array;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function isPem(bytes: Uint8Array): boolean {
  // "-----BEGIN" possibly after whitespace.
  const head = decoder.decode(bytes.subarray(0, 64)).trimStart();
  return head.startsWith("-----BEGIN");
}

/** A fresh memory BIO holding a copy of `bytes`; the caller closes it. */
export function memoryBioFrom(bytes: Uint8Array): NativeHandle {
  const o = openssl();
  const p = o.BIO_new(o.BIO_s_mem());
  if (p === null) throw new TlsError("INTERNAL", "BIO_new failed", { openssl: drainErrorQueue() });
  const bio = new NativeHandle("BIO", p, (q) => o.BIO_free(q));
  if (bytes.length > 0 && o.BIO_write(p, bytes, bytes.length) !== bytes.length) {
    bio.close();
    throw new TlsError("INTERNAL", "BIO_write failed", { openssl: drainErrorQueue() });
  }
  return bio;
}

/** Reads everything written into a memory BIO. */
export function readMemoryBio(bio: Pointer): Uint8Array {
  const o = openssl();
  const n = o.BIO_ctrl_pending(bio);
  const out = new Uint8Array(n);
  if (n > 0) o.BIO_read(bio, out, n);
  return out;
}

function toBytes(input: PemOrDer): Uint8Array {
  return typeof input === "string" ? encoder.encode(input) : input;
}

function describe(input: PemOrDer, what: string): string {
  return typeof input === "string" ? `${what} (PEM text)` : `${what} (${input.length} bytes)`;
}

/**
 * Parses one or more certificates. PEM input may hold several (a chain, leaf first); DER input
 * holds exactly one. Returns owned `X509` handles; the caller closes them.
 *
 * @throws {TlsError} `INVALID_CERTIFICATE` if nothing parses or the input has trailing garbage.
 */
export function loadCertificates(input: PemOrDer): NativeHandle[] {
  if (typeof input !== "string" && !(input instanceof Uint8Array)) {
    throw new TypeError("a certificate must be a PEM string or a Uint8Array");
  }
  const o = openssl();
  const bytes = toBytes(input);
  const out: NativeHandle[] = [];
  clearErrorQueue();
  const bio = memoryBioFrom(bytes);
  try {
    if (isPem(bytes)) {
      for (;;) {
        const x = o.PEM_read_bio_X509(bio.ptr, null, null, null);
        if (x === null) break;
        out.push(new NativeHandle("X509", x, (p) => o.X509_free(p)));
      }
      // The loop ends with PEM_R_NO_START_LINE at the end of input: expected. Any other error
      // means a block failed to parse (a broken certificate after good ones must not be
      // silently dropped).
      const errors = drainErrorQueue();
      const broken = errors.some((e) =>
        !(e.library === ERR_LIB_PEM && e.reason === PEM_R_NO_START_LINE)
      );
      if (out.length === 0 || broken) {
        for (const h of out) h.close();
        throw new TlsError(
          "INVALID_CERTIFICATE",
          `could not parse ${describe(input, "certificate")} as PEM`,
          { openssl: errors },
        );
      }
    } else {
      const x = o.d2i_X509_bio(bio.ptr, null);
      if (x === null || o.BIO_ctrl_pending(bio.ptr) !== 0) {
        if (x !== null) o.X509_free(x);
        throw new TlsError(
          "INVALID_CERTIFICATE",
          `could not parse ${describe(input, "certificate")} as DER`,
          { openssl: drainErrorQueue() },
        );
      }
      out.push(new NativeHandle("X509", x, (p) => o.X509_free(p)));
    }
  } finally {
    bio.close();
  }
  return out;
}

/**
 * Parses a private key (PKCS#8, traditional or encrypted PEM, or DER). Never prompts on a
 * terminal: without a passphrase an encrypted key fails with `BAD_PASSPHRASE`. A `Uint8Array`
 * passphrase is zeroed after use (strings cannot be wiped).
 *
 * @throws {TlsError} `INVALID_KEY` or `BAD_PASSPHRASE`.
 */
export function loadPrivateKey(input: PemOrDer, passphrase?: string | Uint8Array): NativeHandle {
  if (typeof input !== "string" && !(input instanceof Uint8Array)) {
    throw new TypeError("a private key must be a PEM string or a Uint8Array");
  }
  const o = openssl();
  const bytes = toBytes(input);
  clearErrorQueue();
  const bio = memoryBioFrom(bytes);
  // With cb = NULL, PEM_read_bio_PrivateKey uses `u` as the NUL-terminated passphrase; an empty
  // one (never NULL) keeps OpenSSL from prompting on the terminal.
  const pass = typeof passphrase === "string"
    ? cString(passphrase)
    : new Uint8Array([...(passphrase ?? []), 0]);
  try {
    const pem = isPem(bytes);
    const k = pem
      ? o.PEM_read_bio_PrivateKey_buf(bio.ptr, null, null, pass)
      : o.d2i_PrivateKey_bio(bio.ptr, null);
    if (k === null) {
      const errors = drainErrorQueue();
      const encrypted = pem && /ENCRYPTED/.test(decoder.decode(bytes.subarray(0, 200)));
      if (encrypted) {
        throw new TlsError(
          "BAD_PASSPHRASE",
          passphrase === undefined
            ? "the private key is encrypted and no passphrase was given"
            : "the passphrase does not decrypt the private key",
          { openssl: errors },
        );
      }
      throw new TlsError("INVALID_KEY", `could not parse ${describe(input, "private key")}`, {
        openssl: errors,
      });
    }
    return new NativeHandle("EVP_PKEY", k, (p) => o.EVP_PKEY_free(p));
  } finally {
    // Wipe our copy and the caller's bytes (a string passphrase cannot be wiped in JS).
    pass.fill(0);
    if (passphrase instanceof Uint8Array) passphrase.fill(0);
    bio.close();
  }
}

/** `X509_NAME_print_ex(..., XN_FLAG_RFC2253)`: e.g. `"CN=localhost,O=Test"`. */
export function nameToString(name: Pointer | null): string {
  if (name === null) return "";
  const o = openssl();
  const bio = memoryBioFrom(new Uint8Array(0));
  try {
    o.X509_NAME_print_ex(bio.ptr, name, 0, XN_FLAG_RFC2253);
    return decoder.decode(readMemoryBio(bio.ptr));
  } finally {
    bio.close();
  }
}

/** `i2d_X509_NAME`: the DER encoding of a distinguished name. */
export function nameToDer(name: Pointer): Uint8Array {
  const o = openssl();
  const length = o.i2d_X509_NAME(name, null);
  if (length <= 0) return new Uint8Array(0);
  // i2d writes through `unsigned char **out` and advances it: give it a malloc'd buffer's
  // address in an 8-byte cell, then copy out.
  const mem = o.OPENSSL_malloc(length);
  if (mem === null) throw new TlsError("INTERNAL", "out of memory");
  try {
    const cell = new BigUint64Array([BigInt(o.backend.address(mem))]);
    o.i2d_X509_NAME_buf(name, cell);
    return o.backend.readBytes(mem, 0, length);
  } finally {
    o.OPENSSL_free(mem);
  }
}

/**
 * A certificate as plain, immutable data (it holds no native object, so it never needs closing).
 *
 * @example
 * ```ts
 * import { Certificate } from "../mod.ts";
 * const pem = await Deno.readTextFile("cert.pem");
 * const cert = Certificate.fromPem(pem);
 * console.log(cert.subject, cert.issuer, cert.der.length);
 * ```
 */
export class Certificate {
  /** The subject distinguished name, RFC 2253 form, e.g. `"CN=localhost,O=Test"`. */
  readonly subject: string;
  /** The issuer distinguished name, RFC 2253 form. */
  readonly issuer: string;
  /** The DER encoding. */
  readonly der: Uint8Array;

  private constructor(subject: string, issuer: string, der: Uint8Array) {
    this.subject = subject;
    this.issuer = issuer;
    this.der = der;
  }

  /** Reads a certificate from a borrowed `X509 *` (the pointer is not kept). @internal */
  static fromX509(x509: Pointer): Certificate {
    const o = openssl();
    const bio = memoryBioFrom(new Uint8Array(0));
    let der: Uint8Array;
    try {
      o.i2d_X509_bio(bio.ptr, x509);
      der = readMemoryBio(bio.ptr);
    } finally {
      bio.close();
    }
    return new Certificate(
      nameToString(o.X509_get_subject_name(x509)),
      nameToString(o.X509_get_issuer_name(x509)),
      der,
    );
  }

  /**
   * Parses every certificate in PEM text (or one DER certificate), leaf first.
   *
   * @throws {TlsError} `INVALID_CERTIFICATE`.
   */
  static parseAll(input: PemOrDer): Certificate[] {
    const handles = loadCertificates(input);
    try {
      return handles.map((h) => Certificate.fromX509(h.ptr));
    } finally {
      for (const h of handles) h.close();
    }
  }

  /**
   * Parses the first certificate of PEM text or DER bytes.
   *
   * @throws {TlsError} `INVALID_CERTIFICATE`.
   */
  static fromPem(input: PemOrDer): Certificate {
    return Certificate.parseAll(input)[0]!;
  }

  /** The PEM encoding (`-----BEGIN CERTIFICATE-----` ...). */
  toPEM(): string {
    let binary = "";
    for (const b of this.der) binary += String.fromCharCode(b);
    const b64 = btoa(binary).replace(/.{1,64}/g, "$&\n");
    return `-----BEGIN CERTIFICATE-----\n${b64}-----END CERTIFICATE-----\n`;
  }
}
