/**
 * Protocol versions, cipher lists and the secure defaults every context starts from: TLS 1.2
 * minimum, no compression, no renegotiation, truncation is an error.
 *
 * @module
 */
import { fail } from "../core/error_queue.ts";
import {
  cString,
  DTLS_VERSION,
  openssl,
  type Pointer,
  SSL_MODE,
  SSL_OP,
  TLS_VERSION,
} from "../core/native.ts";
import type { Feature, Role, SchemaOf } from "./feature.ts";

/** A TLS protocol version this library speaks. */
export type TlsVersion = "TLSv1.2" | "TLSv1.3";

/** Versions and ciphers: options of both sides. */
export interface ProtocolOptions {
  /** Lowest protocol version allowed. Default `"TLSv1.2"`. */
  minVersion?: TlsVersion;
  /** Highest protocol version allowed. Default: the highest OpenSSL supports (TLS 1.3). */
  maxVersion?: TlsVersion;
  /**
   * The cipher suites, in OpenSSL's colon-separated syntax, for both versions as Node's
   * `ciphers`: names starting with `TLS_` are TLS 1.3 suites (`SSL_CTX_set_ciphersuites`, e.g.
   * `"TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"`), the others the TLS 1.2 cipher list
   * (`SSL_CTX_set_cipher_list`, e.g. `"ECDHE-ECDSA-AES128-GCM-SHA256"`). Unlike Node, a version
   * the string names nothing for keeps its default (to turn TLS 1.3 or 1.2 off, use
   * `maxVersion` / `minVersion`). Defaults: TLS 1.3, OpenSSL's three suites (AES-256-GCM,
   * ChaCha20-Poly1305, AES-128-GCM); TLS 1.2, ECDHE and (servers with automatic FFDHE
   * parameters) DHE, with AES-GCM or ChaCha20. A list in which OpenSSL finds no usable suite is
   * a `TlsError` `HANDSHAKE_FAILED`.
   */
  ciphers?: string;
}

/** The TLS 1.2 cipher list used by default: Mozilla's "intermediate" set. */
export const DEFAULT_TLS12_CIPHERS: string = [
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-CHACHA20-POLY1305",
  "DHE-RSA-AES128-GCM-SHA256",
  "DHE-RSA-AES256-GCM-SHA384",
  "DHE-RSA-CHACHA20-POLY1305",
].join(":");

const VERSIONS: Record<TlsVersion, number> = {
  "TLSv1.2": TLS_VERSION.TLS1_2_VERSION,
  "TLSv1.3": TLS_VERSION.TLS1_3_VERSION,
};

function versionOf(name: string, value: unknown): number {
  if (value !== "TLSv1.2" && value !== "TLSv1.3") {
    throw new RangeError(`${name} must be "TLSv1.2" or "TLSv1.3", got ${JSON.stringify(value)}`);
  }
  return VERSIONS[value];
}

/** Sets `ciphers` as the TLS 1.2 cipher list; a list OpenSSL finds nothing usable in fails. */
export function setCipherList(ctx: Pointer, ciphers: string, given: string | undefined): void {
  if (openssl().SSL_CTX_set_cipher_list(ctx, cString(ciphers)) !== 1) {
    fail(`no usable cipher in "${given}"`, "HANDSHAKE_FAILED");
  }
}

/**
 * `ciphers` split as Node splits it: the TLS 1.3 suites (names starting with `TLS_`) and the
 * TLS 1.2 list (the rest, OpenSSL's syntax: `!`, `+`, `@SECLEVEL=` and all), each `undefined`
 * when the string has none.
 */
export function splitCiphers(
  ciphers: string | undefined,
): { tls13: string | undefined; tls12: string | undefined } {
  if (ciphers === undefined) return { tls13: undefined, tls12: undefined };
  const parts = ciphers.split(":").filter((p) => p.length > 0);
  const tls13 = parts.filter((p) => p.startsWith("TLS_")).join(":");
  const tls12 = parts.filter((p) => !p.startsWith("TLS_")).join(":");
  return { tls13: tls13 === "" ? undefined : tls13, tls12: tls12 === "" ? undefined : tls12 };
}

/** `SSL_CTX_set_ciphersuites`, or a TlsError naming the suite OpenSSL does not know. */
function setCiphersuites(ctx: Pointer, suites: string): void {
  const o = openssl();
  for (const name of suites.split(":")) {
    if (o.SSL_CTX_set_ciphersuites(ctx, cString(name)) !== 1) {
      fail(
        `"${name}" in ciphers is not a TLS 1.3 cipher suite ${o.versionText} knows`,
        "HANDSHAKE_FAILED",
      );
    }
  }
  if (o.SSL_CTX_set_ciphersuites(ctx, cString(suites)) !== 1) {
    fail(`no usable TLS 1.3 cipher suite in "${suites}"`, "HANDSHAKE_FAILED");
  }
}

/** Versions, ciphers and the secure defaults. */
export const protocol: Feature<ProtocolOptions> = {
  name: "protocol",
  options: {
    minVersion: { role: "both", scope: "context" },
    maxVersion: { role: "both", scope: "context" },
    ciphers: { role: "both", scope: "context" },
  } satisfies SchemaOf<ProtocolOptions, ProtocolOptions>,
  validate(_role: Role, options) {
    if (options.minVersion !== undefined) versionOf("minVersion", options.minVersion);
    if (options.maxVersion !== undefined) versionOf("maxVersion", options.maxVersion);
    if (
      options.minVersion !== undefined && options.maxVersion !== undefined &&
      VERSIONS[options.minVersion] > VERSIONS[options.maxVersion]
    ) {
      throw new RangeError("minVersion is above maxVersion");
    }
    if (options.ciphers !== undefined && typeof options.ciphers !== "string") {
      throw new TypeError("ciphers must be a string");
    }
    if (options.ciphers !== undefined && options.ciphers.split(":").every((p) => p === "")) {
      throw new TypeError("ciphers must name at least one cipher suite");
    }
  },
  configure({ ctx, options, datagram }) {
    const o = openssl();
    // DTLS (src/dtls/ refuses minVersion/maxVersion): DTLS 1.2 only, for now: src/dtls/records.ts
    // cuts datagrams at DTLS 1.2 record headers, and DTLS 1.3's unified header (RFC 9147 4)
    // may omit the length. Then the defaults below, as for TLS.
    const dtls = datagram ? DTLS_VERSION.DTLS1_2_VERSION : 0;
    // Versions: TLS 1.2 minimum unless asked otherwise; 0 = highest supported.
    const min = dtls || versionOf("minVersion", options.minVersion ?? "TLSv1.2");
    if (o.SSL_CTX_set_min_proto_version(ctx, min) !== 1) {
      fail("cannot set the minimum protocol version");
    }
    const max = dtls ||
      (options.maxVersion === undefined ? 0 : versionOf("maxVersion", options.maxVersion));
    if (o.SSL_CTX_set_max_proto_version(ctx, max) !== 1) {
      fail("cannot set the maximum protocol version");
    }
    // No TLS-level compression (CRIME) and no renegotiation (a server's HelloRequest is refused
    // with a no_renegotiation warning). We never set SSL_OP_IGNORE_UNEXPECTED_EOF: a peer that
    // closes without close_notify must surface as a truncation.
    o.SSL_CTX_set_options(ctx, SSL_OP.NO_COMPRESSION | SSL_OP.NO_RENEGOTIATION);
    // Free the ~34 KB of record buffers while a connection is idle (measured in bench/).
    o.SSL_CTX_set_mode(ctx, SSL_MODE.RELEASE_BUFFERS);
    // Read-ahead: one BIO_read fills the record buffer as far as it goes, instead of a header read
    // plus a body read per record. The buffer keeps its default size (one record): before each
    // record, OpenSSL 3.0 (ssl3_read_n) memmoves whatever else the buffer holds to its aligned
    // start, so a larger buffer (64 KiB was tried) only moves more bytes per record, and from a
    // memory BIO a refill is a memcpy, never a syscall (measured in-process: ~6% less CPU).
    o.SSL_CTX_set_read_ahead(ctx, 1);
    // The default list has DHE-RSA suites (for TLS 1.2 clients without ECDHE): they need DH
    // parameters, and without any a server never picks them (the client gets alert 40). "Auto"
    // uses the built-in RFC 7919 FFDHE group that matches the certificate's strength (2048 bits
    // for RSA-2048); clients ignore the setting.
    if (o.SSL_CTX_set_dh_auto(ctx, 1) !== 1) fail("cannot enable automatic DH parameters");
    // The PSK feature replaces the default list with one that has PSK suites too.
    const { tls13, tls12 } = splitCiphers(options.ciphers);
    setCipherList(ctx, tls12 ?? DEFAULT_TLS12_CIPHERS, tls12 ?? options.ciphers);
    // TLS 1.3 suites come from their own list (SSL_CTX_set_cipher_list ignores TLS_ names). It
    // accepts a list with unknown names as long as one is known: check that all of them are.
    if (tls13 !== undefined) setCiphersuites(ctx, tls13);
  },
};
