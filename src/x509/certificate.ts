/**
 * Loading certificates and private keys (PEM or DER) into OpenSSL objects, and reading
 * certificates back out as plain data.
 *
 * @module
 */
import { TlsError } from "../core/errors.ts";
import { hexWithColons, toDer } from "../core/der.ts";
import { clearErrorQueue, drainErrorQueue } from "../core/error_queue.ts";
import { NativeHandle } from "../core/ownership.ts";
import {
  ERR_LIB_PEM,
  GEN,
  NID_subject_alt_name,
  openssl,
  PEM_R_NO_START_LINE,
  type Pointer,
  STRUCT,
  XN_FLAG_RFC2253,
} from "../core/native.ts";

/** A certificate or key as PEM text, or as DER (or PEM) bytes. */
export type PemOrDer = string | Uint8Array;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Whether `bytes` hold PEM text (`-----BEGIN`, possibly after whitespace). */
export function isPem(bytes: Uint8Array): boolean {
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

/** Throws a TypeError unless `value` is absent, a PEM string or bytes. */
export function checkPemOrDer(name: string, value: unknown): void {
  if (value !== undefined && typeof value !== "string" && !(value instanceof Uint8Array)) {
    throw new TypeError(`${name} must be a PEM string or a Uint8Array`);
  }
}

/** The bytes of a PEM string or DER/PEM bytes. */
export function toBytes(input: PemOrDer): Uint8Array {
  return typeof input === "string" ? encoder.encode(input) : input;
}

/**
 * The error for text that is not PEM where PEM (or DER bytes) is expected: names the option,
 * says that no PEM block was found and, when the text looks like a file path (a common mistake:
 * `cert: "server.pem"`), that the file's contents are wanted.
 */
export function notPemError(
  input: string,
  label: string,
  block: string,
  code: "INVALID_CERTIFICATE" | "INVALID_KEY",
): TlsError {
  const text = input.trim();
  const looksLikePath = text.length > 0 && text.length < 4096 && !/[\r\n]/.test(text) &&
    (/[/\\]/.test(text) || /\.(pem|crt|cer|key|der|p12|pfx)$/i.test(text));
  const hint = looksLikePath
    ? `; ${JSON.stringify(text)} looks like a file path: pass the file's contents, e.g. ` +
      `readFileSync(${JSON.stringify(text)}, "utf8") (node:fs) or ` +
      `await Deno.readTextFile(${JSON.stringify(text)})`
    : text.length === 0
    ? " (the text is empty)"
    : "";
  return new TlsError(
    code,
    `${label}: no PEM block found (PEM text starts with "-----BEGIN ${block}-----")${hint}`,
  );
}

/** How `input` is named in messages: "the PEM certificate", "the 1234-byte DER ...". */
export function describe(input: PemOrDer, what: string): string {
  return typeof input === "string" ? `${what} (PEM text)` : `${what} (${input.length} bytes)`;
}

/**
 * What {@link loadObjects} needs to know about one kind of object (certificates, CRLs).
 *
 * @internal
 */
export interface PemObjectKind {
  /** The native object's type, for ownership and leak counts, e.g. `"X509"`. */
  type: "X509" | "X509_CRL";
  /** The PEM block name, e.g. `"CERTIFICATE"`. */
  pemBlock: string;
  /** What one is called in messages, e.g. `"certificate"`. */
  noun: string;
  /** The message when PEM text holds no block of this kind (null: the generic parse error). */
  noneFound: string | null;
  /** `PEM_read_bio_*`: the next object, or null at the end (other block types are skipped). */
  readPem(bio: Pointer): Pointer | null;
  /** `d2i_*_bio`: one object from DER, or null. */
  readDer(bio: Pointer): Pointer | null;
  /** `*_free`. */
  free(p: Pointer): void;
}

/**
 * Parses one or more objects of `kind`: PEM input may hold several, DER input exactly one.
 * Returns owned handles; the caller closes them.
 *
 * @internal
 * @throws {TlsError} `INVALID_CERTIFICATE` if nothing parses, a block is broken, or DER input
 * has trailing bytes; for text without a PEM block the message says so (and when it looks like
 * a file path). Every message names `label`.
 */
export function loadObjects(input: PemOrDer, label: string, kind: PemObjectKind): NativeHandle[] {
  if (typeof input !== "string" && !(input instanceof Uint8Array)) {
    throw new TypeError(`${label} must be a PEM string or a Uint8Array`);
  }
  const o = openssl();
  const bytes = toBytes(input);
  // Text is PEM or nothing: parsing it as DER would only say "could not parse as DER".
  if (typeof input === "string" && !isPem(bytes)) {
    throw notPemError(input, label, kind.pemBlock, "INVALID_CERTIFICATE");
  }
  const own = (p: Pointer) => new NativeHandle(kind.type, p, kind.free);
  const out: NativeHandle[] = [];
  clearErrorQueue();
  const bio = memoryBioFrom(bytes);
  try {
    if (isPem(bytes)) {
      for (;;) {
        const x = kind.readPem(bio.ptr);
        if (x === null) break;
        out.push(own(x));
      }
      // The loop ends with PEM_R_NO_START_LINE at the end of input: expected. Any other error
      // means a block failed to parse (a broken one after good ones must not be silently
      // dropped).
      const errors = drainErrorQueue();
      const broken = errors.some((e) =>
        !(e.library === ERR_LIB_PEM && e.reason === PEM_R_NO_START_LINE)
      );
      if (out.length === 0 || broken) {
        for (const h of out) h.close();
        throw new TlsError(
          "INVALID_CERTIFICATE",
          out.length === 0 && !broken && kind.noneFound !== null
            ? `${label}: ${kind.noneFound}`
            : `${label}: could not parse ${describe(input, kind.noun)} as PEM`,
          { openssl: errors },
        );
      }
    } else {
      const x = kind.readDer(bio.ptr);
      if (x === null || o.BIO_ctrl_pending(bio.ptr) !== 0) {
        if (x !== null) kind.free(x);
        throw new TlsError(
          "INVALID_CERTIFICATE",
          `${label}: could not parse ${describe(input, kind.noun)} as DER`,
          { openssl: drainErrorQueue() },
        );
      }
      out.push(own(x));
    }
  } finally {
    bio.close();
  }
  return out;
}

const CERTIFICATES: PemObjectKind = {
  type: "X509",
  pemBlock: "CERTIFICATE",
  noun: "certificate",
  noneFound: null,
  readPem: (bio) => openssl().PEM_read_bio_X509(bio, null, null, null),
  readDer: (bio) => openssl().d2i_X509_bio(bio, null),
  free: (p) => openssl().X509_free(p),
};

/**
 * Parses one or more certificates. PEM input may hold several (a chain, leaf first); DER input
 * holds exactly one. Returns owned `X509` handles; the caller closes them.
 *
 * @param label What the input is called in error messages: the option, e.g. `"caCerts[1]"`.
 * @throws {TlsError} `INVALID_CERTIFICATE` if nothing parses or the input has trailing garbage;
 * for text without a PEM block the message says so (and when it looks like a file path).
 */
export function loadCertificates(input: PemOrDer, label = "certificate"): NativeHandle[] {
  return loadObjects(input, label, CERTIFICATES);
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
  return toDer(o.i2d_X509_NAME(name, null), (cell) => o.i2d_X509_NAME_buf(name, cell)) ??
    new Uint8Array(0);
}

/** `ASN1_TIME_to_tm`: an ASN.1 time as a `Date` (UTC). @internal */
export function timeToDate(time: Pointer | null): Date {
  if (time === null) return new Date(NaN);
  const o = openssl();
  const tm = new Int32Array(STRUCT.TM_SIZE / 4);
  if (o.ASN1_TIME_to_tm(time, tm) !== 1) return new Date(NaN);
  const at = (offset: number) => tm[offset / 4]!;
  return new Date(Date.UTC(
    at(STRUCT.TM_YEAR) + 1900,
    at(STRUCT.TM_MON),
    at(STRUCT.TM_MDAY),
    at(STRUCT.TM_HOUR),
    at(STRUCT.TM_MIN),
    at(STRUCT.TM_SEC),
  ));
}

/** The serial number as uppercase hex, e.g. `"4F1A..."` (as `openssl x509 -serial` prints it). */
function serialOf(x509: Pointer): string {
  const o = openssl();
  const bn = o.ASN1_INTEGER_to_BN(o.X509_get_serialNumber(x509), null);
  if (bn === null) return "";
  try {
    const hex = o.BN_bn2hex(bn);
    if (hex === null) return "";
    try {
      return o.backend.readCString(hex);
    } finally {
      o.OPENSSL_free(hex);
    }
  } finally {
    o.BN_free(bn);
  }
}

/** `X509_digest(SHA-256)` as `AB:CD:...`, the way Node prints `fingerprint256`. */
function fingerprint256Of(x509: Pointer): string {
  const o = openssl();
  const md = new Uint8Array(64);
  const len = new Uint32Array(1);
  if (o.X509_digest(x509, o.EVP_sha256(), md, len) !== 1) return "";
  return hexWithColons(md.subarray(0, len[0]));
}

function ipToString(bytes: Uint8Array): string {
  if (bytes.length === 4) return bytes.join(".");
  if (bytes.length !== 16) return [...bytes].map((b) => b.toString(16)).join(":");
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  // Compress the longest run of zero groups (RFC 5952), as Node and OpenSSL print it.
  let best = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== "0") {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > bestLength) {
      best = i;
      bestLength = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(":");
  return `${groups.slice(0, best).join(":")}::${groups.slice(best + bestLength).join(":")}`;
}

/**
 * The subjectAltName entries as `"DNS:example.com"`, `"IP:127.0.0.1"`, `"email:a@b"`,
 * `"URI:https://..."` (other kinds are skipped).
 */
function subjectAltNamesOf(x509: Pointer): string[] {
  const o = openssl();
  const names = o.X509_get_ext_d2i(x509, NID_subject_alt_name, null, null);
  if (names === null) return [];
  const out: string[] = [];
  try {
    for (let i = 0; i < o.sk_num(names); i++) {
      const gn = o.sk_value(names, i);
      if (gn === null) continue;
      // GENERAL_NAME { int type; union { ASN1_IA5STRING *, ASN1_OCTET_STRING *, ... } d; }
      const type = o.backend.readI32(gn, STRUCT.GENERAL_NAME_TYPE);
      const value = o.backend.readPointer(gn, STRUCT.GENERAL_NAME_D);
      if (value === null) continue;
      const length = o.ASN1_STRING_length(value);
      const data = o.ASN1_STRING_get0_data(value);
      const bytes = data === null || length <= 0
        ? new Uint8Array(0)
        : o.backend.readBytes(data, 0, length);
      const text = () => new TextDecoder().decode(bytes);
      if (type === GEN.DNS) out.push(`DNS:${text()}`);
      else if (type === GEN.IPADD) out.push(`IP:${ipToString(bytes)}`);
      else if (type === GEN.EMAIL) out.push(`email:${text()}`);
      else if (type === GEN.URI) out.push(`URI:${text()}`);
    }
  } finally {
    o.GENERAL_NAMES_free(names);
  }
  return out;
}

/**
 * One memory BIO for the whole process that {@link derOf} encodes into and reads empty again at
 * once (a connection's handshake summary reads two or three certificates: a BIO made and freed
 * for each cost more than the encoding). Never freed, like the callback trampolines: it holds
 * nothing between calls.
 */
let derScratch: Pointer | null = null;

/** `i2d_X509_bio`: the DER encoding of a borrowed `X509 *`. */
function derOf(x509: Pointer): Uint8Array {
  const o = openssl();
  if (derScratch === null) {
    derScratch = o.BIO_new(o.BIO_s_mem());
    if (derScratch === null) {
      throw new TlsError("INTERNAL", "BIO_new failed", { openssl: drainErrorQueue() });
    }
  }
  if (o.i2d_X509_bio(derScratch, x509) !== 1) {
    readMemoryBio(derScratch); // drops what part of it was written: the next call starts empty
    throw new TlsError("INTERNAL", "i2d_X509_bio failed", { openssl: drainErrorQueue() });
  }
  return readMemoryBio(derScratch);
}

/** What a certificate says, parsed once. */
interface CertificateFields {
  readonly subject: string;
  readonly issuer: string;
  readonly subjectAltNames: readonly string[];
  readonly serialNumber: string;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly fingerprint256: string;
}

function fieldsOf(x509: Pointer): CertificateFields {
  const o = openssl();
  return Object.freeze({
    subject: nameToString(o.X509_get_subject_name(x509)),
    issuer: nameToString(o.X509_get_issuer_name(x509)),
    subjectAltNames: Object.freeze(subjectAltNamesOf(x509)),
    serialNumber: serialOf(x509),
    notBefore: timeToDate(o.X509_get0_notBefore(x509)).getTime(),
    notAfter: timeToDate(o.X509_get0_notAfter(x509)).getTime(),
    fingerprint256: fingerprint256Of(x509),
  });
}

/**
 * A certificate as plain, immutable data (it holds no native object, so it never needs closing).
 *
 * @example
 * ```ts
 * import { readFileSync } from "node:fs";
 * import { Certificate } from "../../mod.ts";
 * const pem = readFileSync("cert.pem", "utf8");
 * const cert = Certificate.fromPem(pem);
 * console.log(cert.subject, cert.subjectAltNames, cert.notAfter, cert.fingerprint256);
 * ```
 */
export class Certificate {
  /** The DER encoding. */
  readonly der: Uint8Array;
  #fields: CertificateFields | undefined;

  private constructor(der: Uint8Array, fields?: CertificateFields) {
    this.der = der;
    this.#fields = fields;
  }

  /**
   * The parsed fields, computed on first use from the DER (a handshake only copies the DER out
   * of OpenSSL: parsing names, dates and fingerprints costs dozens of FFI calls per certificate).
   */
  #parsed(): CertificateFields {
    if (this.#fields !== undefined) return this.#fields;
    const handles = loadCertificates(this.der);
    try {
      this.#fields = fieldsOf(handles[0]!.ptr);
    } finally {
      for (const h of handles) h.close();
    }
    return this.#fields;
  }

  /** The subject distinguished name, RFC 2253 form, e.g. `"CN=localhost,O=Test"`. */
  get subject(): string {
    return this.#parsed().subject;
  }

  /** The issuer distinguished name, RFC 2253 form. */
  get issuer(): string {
    return this.#parsed().issuer;
  }

  /** subjectAltName entries: `"DNS:localhost"`, `"IP:127.0.0.1"`, `"email:..."`, `"URI:..."`. */
  get subjectAltNames(): readonly string[] {
    return this.#parsed().subjectAltNames;
  }

  /** The serial number, uppercase hex without separators. */
  get serialNumber(): string {
    return this.#parsed().serialNumber;
  }

  /** Start of validity (UTC). */
  get notBefore(): Date {
    return new Date(this.#parsed().notBefore);
  }

  /** End of validity (UTC). */
  get notAfter(): Date {
    return new Date(this.#parsed().notAfter);
  }

  /** SHA-256 of the DER, `"AB:CD:..."` (uppercase, colon-separated, as Node prints it). */
  get fingerprint256(): string {
    return this.#parsed().fingerprint256;
  }

  /** Reads a certificate's DER from a borrowed `X509 *` (the pointer is not kept). @internal */
  static fromX509(x509: Pointer): Certificate {
    return new Certificate(derOf(x509));
  }

  /**
   * Parses every certificate in PEM text (or one DER certificate), leaf first.
   *
   * @throws {TlsError} `INVALID_CERTIFICATE`.
   */
  static parseAll(input: PemOrDer): Certificate[] {
    const handles = loadCertificates(input);
    try {
      return handles.map((h) => new Certificate(derOf(h.ptr), fieldsOf(h.ptr)));
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
