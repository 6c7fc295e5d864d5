/**
 * PKCS#12 (`.p12` / `.pfx`) files: a private key, its certificate and the chain, encrypted with a
 * passphrase (`d2i_PKCS12_bio` + `PKCS12_parse`). Files made with OpenSSL 3's defaults (AES-256,
 * PBKDF2) load as they are; files with the old RC2-40 / 3DES encryption (`openssl pkcs12
 * -export -legacy`, older Windows and Java exports) need OpenSSL 3's legacy provider, which is
 * loaded into the default library context the first time such a file is met (and stays loaded
 * for the process), next to the default provider.
 *
 * @module
 */
import { TlsError } from "../core/errors.ts";
import { clearErrorQueue, drainErrorQueue } from "../core/error_queue.ts";
import type { OpenSslErrorEntry } from "../core/errors.ts";
import { NativeHandle } from "../core/ownership.ts";
import { cString, openssl } from "../core/native.ts";
import { messageOf } from "../core/values.ts";
import { memoryBioFrom } from "./certificate.ts";
import type { Passphrase } from "./private_key.ts";

/** `ERR_LIB_PKCS12` (err.h). */
const ERR_LIB_PKCS12 = 35;
/** `PKCS12_R_MAC_VERIFY_FAILURE` (pkcs12err.h): the passphrase does not match the file's MAC. */
const PKCS12_R_MAC_VERIFY_FAILURE = 113;
/** `ERR_R_UNSUPPORTED` (err.h, 3.0: 268 with `ERR_RFLAG_COMMON`): an algorithm no provider has. */
const ERR_R_UNSUPPORTED = 0x8010c;
/** The buffer size OpenSSL's own PEM passphrase prompts use (`PEM_BUFSIZE`). */
const MAX_PASSPHRASE = 1024;

/** What a PKCS#12 file held: owned handles the caller closes. */
export interface Pkcs12Contents {
  /** The private key (`EVP_PKEY`). */
  readonly key: NativeHandle;
  /** The certificate matching the key, then the file's other certificates (the chain). */
  readonly certs: readonly NativeHandle[];
}

/** Whether the legacy provider was loaded by us (once per process). */
let legacyLoaded = false;

/**
 * Loads OpenSSL 3's legacy provider (RC2, 3DES with SHA-1 KDFs, ...) into the default library
 * context, with the default provider explicitly too: once any provider is loaded explicitly,
 * OpenSSL no longer loads the default one implicitly. Returns why it failed, or `undefined`.
 */
function loadLegacyProvider(): string | undefined {
  if (legacyLoaded) return undefined;
  const o = openssl();
  if (o.OSSL_PROVIDER_load === null) {
    return "this OpenSSL has no providers (OpenSSL 1.1.1): it should read the file as it is";
  }
  clearErrorQueue();
  if (o.OSSL_PROVIDER_load(null, cString("default")) === null) {
    return `the default provider did not load: ${drainErrorQueue().map((e) => e.text).join("; ")}`;
  }
  if (o.OSSL_PROVIDER_load(null, cString("legacy")) === null) {
    const why = drainErrorQueue().map((e) => e.reasonText || e.text).join("; ");
    return `the legacy provider did not load (${why || "no reason given"}; its module is ` +
      "legacy.so / legacy.dll in OpenSSL's modules directory, or where OPENSSL_MODULES points)";
  }
  legacyLoaded = true;
  return undefined;
}

/** The bytes of `passphrase` as a NUL-terminated C string (our copy; the caller wipes it). */
function passphraseBytes(passphrase: Passphrase | undefined, label: string): Uint8Array {
  if (passphrase === undefined) return new Uint8Array(1);
  let answer: string | Uint8Array;
  if (typeof passphrase === "function") {
    try {
      answer = passphrase({ maxLength: MAX_PASSPHRASE });
    } catch (cause) {
      throw new TlsError(
        "CALLBACK_ERROR",
        `${label}: the passphrase function failed: ${messageOf(cause)}`,
        {
          cause,
        },
      );
    }
    if (typeof answer !== "string" && !(answer instanceof Uint8Array)) {
      throw new TypeError("a passphrase function must return a string or a Uint8Array");
    }
  } else {
    answer = passphrase;
  }
  const bytes = typeof answer === "string" ? new TextEncoder().encode(answer) : answer;
  if (bytes.includes(0)) throw new TypeError(`${label}: the passphrase must not contain NUL bytes`);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  if (typeof passphrase === "function" && answer instanceof Uint8Array) answer.fill(0);
  return out;
}

const unsupported = (errors: readonly OpenSslErrorEntry[]) =>
  errors.some((e) => e.reason === ERR_R_UNSUPPORTED || /unsupported/i.test(e.reasonText));

/**
 * Parses a PKCS#12 file: its private key, the certificate matching it, and its other
 * certificates. An empty or absent passphrase opens files exported with `-passout pass:` (either
 * empty-password form). Files that need the legacy provider load through it (see the module
 * doc). A `Uint8Array` passphrase is zeroed after use unless `keepPassphrase`.
 *
 * @param label What the input is called in messages: the option, e.g. `"pfx"`.
 * @throws {TlsError} `BAD_PASSPHRASE` (wrong or missing passphrase), `INVALID_CERTIFICATE` (not a
 * PKCS#12 file, no certificate in it, or legacy encryption the loaded OpenSSL cannot read),
 * `INVALID_KEY` (no private key in it), `CALLBACK_ERROR` (a passphrase function threw).
 */
export function loadPkcs12(
  input: Uint8Array,
  passphrase: Passphrase | undefined,
  label = "pfx",
  keepPassphrase = false,
): Pkcs12Contents {
  if (!(input instanceof Uint8Array)) {
    throw new TypeError(
      `${label} must be the bytes of a PKCS#12 file (a Uint8Array), e.g. readFileSync("id.p12")`,
    );
  }
  const o = openssl();
  clearErrorQueue();
  // Asked first: a passphrase function that throws leaves nothing native behind.
  const pass = passphraseBytes(passphrase, label);
  let bio: NativeHandle | undefined;
  let p12: NativeHandle | undefined;
  try {
    bio = memoryBioFrom(input);
    const ptr = o.d2i_PKCS12_bio(bio.ptr, null);
    if (ptr === null) {
      throw new TlsError(
        "INVALID_CERTIFICATE",
        `${label}: not a PKCS#12 file (${input.length} bytes that do not parse as DER PKCS#12; ` +
          "PEM text is given as cert and key instead)",
        { openssl: drainErrorQueue() },
      );
    }
    p12 = new NativeHandle("PKCS12", ptr, (q) => o.PKCS12_free(q));
    let parsed = parse(p12, pass, label);
    if (!parsed.ok && unsupported(parsed.errors)) {
      // RC2-40 / 3DES: only OpenSSL 3's legacy provider has them. Load it, and try again.
      const why = loadLegacyProvider();
      if (why !== undefined) {
        throw new TlsError(
          "INVALID_CERTIFICATE",
          `${label}: the PKCS#12 file uses legacy encryption (RC2-40 or 3DES, as made by ` +
            "openssl pkcs12 -export -legacy and older Windows exports), which needs OpenSSL's " +
            `legacy provider, and ${why}. Install or point OPENSSL_MODULES at the legacy module, or ` +
            "re-encrypt the file with AES: openssl pkcs12 -in old.p12 -legacy -nodes -out id.pem " +
            "&& openssl pkcs12 -export -in id.pem -out new.p12",
          { openssl: parsed.errors },
        );
      }
      parsed = parse(p12, pass, label);
    }
    if (!parsed.ok) {
      const badMac = parsed.errors.some((e) =>
        e.library === ERR_LIB_PKCS12 && e.reason === PKCS12_R_MAC_VERIFY_FAILURE
      );
      if (badMac) {
        throw new TlsError(
          "BAD_PASSPHRASE",
          passphrase === undefined
            ? `${label}: the PKCS#12 file is protected by a passphrase and none was given`
            : `${label}: the passphrase does not open the PKCS#12 file`,
          { openssl: parsed.errors },
        );
      }
      throw new TlsError("INVALID_CERTIFICATE", `${label}: could not read the PKCS#12 file`, {
        openssl: parsed.errors,
      });
    }
    return parsed.contents;
  } finally {
    pass.fill(0);
    if (passphrase instanceof Uint8Array && !keepPassphrase) passphrase.fill(0);
    p12?.close();
    bio?.close();
  }
}

type Parsed =
  | { ok: true; contents: Pkcs12Contents }
  | { ok: false; errors: OpenSslErrorEntry[] };

/** One `PKCS12_parse`, its three out-values owned by handles. */
function parse(p12: NativeHandle, pass: Uint8Array, label: string): Parsed {
  const o = openssl();
  const b = o.backend;
  const keyCell = new BigUint64Array(1);
  const certCell = new BigUint64Array(1);
  const caCell = new BigUint64Array(1); // NULL: PKCS12_parse makes the stack
  clearErrorQueue();
  const ok = o.PKCS12_parse(p12.ptr, pass, keyCell, certCell, caCell) === 1;
  // On failure PKCS12_parse frees what it made and NULLs the cells; on success all three are ours.
  const keyPtr = b.fromAddress(keyCell[0]!);
  const certPtr = b.fromAddress(certCell[0]!);
  const caPtr = b.fromAddress(caCell[0]!);
  const key = keyPtr === null
    ? null
    : new NativeHandle("EVP_PKEY", keyPtr, (q) => o.EVP_PKEY_free(q));
  const certs: NativeHandle[] = [];
  if (certPtr !== null) certs.push(new NativeHandle("X509", certPtr, (q) => o.X509_free(q)));
  if (caPtr !== null) {
    for (let i = 0; i < o.OPENSSL_sk_num(caPtr); i++) {
      const x = o.OPENSSL_sk_value(caPtr, i);
      if (x !== null) certs.push(new NativeHandle("X509", x, (q) => o.X509_free(q)));
    }
    o.OPENSSL_sk_free(caPtr); // the stack only: its certificates are ours now
  }
  if (!ok) {
    key?.close();
    for (const c of certs) c.close();
    return { ok: false, errors: drainErrorQueue() };
  }
  if (key === null || certPtr === null) {
    key?.close();
    for (const c of certs) c.close();
    throw new TlsError(
      key === null ? "INVALID_KEY" : "INVALID_CERTIFICATE",
      `${label}: the PKCS#12 file holds no ${
        key === null ? "private key" : "certificate for its key"
      }`,
    );
  }
  return { ok: true, contents: { key, certs } };
}
