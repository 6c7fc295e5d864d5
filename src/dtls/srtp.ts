/**
 * DTLS-SRTP (RFC 5764): the `use_srtp` extension negotiates an SRTP protection profile during
 * the DTLS handshake (`SSL_CTX_set_tlsext_use_srtp`, `SSL_get_selected_srtp_profile`), and the
 * SRTP master keys and salts come from the DTLS secrets (the exporter with the label
 * "EXTRACTOR-dtls_srtp", RFC 5764 4.2). The media itself (SRTP) is the application's.
 *
 * @module
 */
import { cString, openssl, type Pointer } from "../core/native.ts";
import { TlsError } from "../core/errors.ts";
import { drainErrorQueue } from "../core/error_queue.ts";
import { exportKeyingMaterial } from "../handshake/keying.ts";

/** An SRTP protection profile OpenSSL negotiates (RFC 5764 4.1.2, RFC 7714). */
export type SrtpProfile =
  | "SRTP_AES128_CM_SHA1_80"
  | "SRTP_AES128_CM_SHA1_32"
  | "SRTP_AEAD_AES_128_GCM"
  | "SRTP_AEAD_AES_256_GCM";

/** Master key and salt lengths per profile, bytes. */
const KEYS: Readonly<Record<SrtpProfile, { key: number; salt: number }>> = {
  SRTP_AES128_CM_SHA1_80: { key: 16, salt: 14 },
  SRTP_AES128_CM_SHA1_32: { key: 16, salt: 14 },
  SRTP_AEAD_AES_128_GCM: { key: 16, salt: 12 },
  SRTP_AEAD_AES_256_GCM: { key: 32, salt: 12 },
};

/** The DTLS-SRTP option of both sides. */
export interface DtlsSrtpOptions {
  /**
   * DTLS-SRTP: the SRTP protection profiles to offer (clients, in preference order) or accept
   * (servers), e.g. `["SRTP_AEAD_AES_128_GCM", "SRTP_AES128_CM_SHA1_80"]`. The one agreed on is
   * `conn.srtpProfile` and its keys `conn.srtpKeyingMaterial`. Default: no DTLS-SRTP.
   */
  srtpProfiles?: readonly SrtpProfile[];
}

/** Checks `srtpProfiles` (TypeError / RangeError). */
export function checkSrtpProfiles(value: unknown): readonly SrtpProfile[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.length === 0) {
    throw new TypeError("srtpProfiles must be a non-empty array of profile names");
  }
  for (const name of value) {
    if (typeof name !== "string" || !(name in KEYS)) {
      throw new RangeError(
        `unknown SRTP profile ${JSON.stringify(name)}: use ${Object.keys(KEYS).join(", ")}`,
      );
    }
  }
  return value as readonly SrtpProfile[];
}

/** Offers (clients) or accepts (servers) `profiles` on `ctx`. */
export function configureSrtp(ctx: Pointer, profiles: readonly SrtpProfile[]): void {
  // 0 on success (the opposite of most of OpenSSL).
  if (openssl().SSL_CTX_set_tlsext_use_srtp(ctx, cString(profiles.join(":"))) !== 0) {
    throw new TlsError("INTERNAL", "SSL_CTX_set_tlsext_use_srtp failed", {
      openssl: drainErrorQueue(),
    });
  }
}

/** What a completed handshake agreed on for SRTP. */
export interface SrtpResult {
  readonly profile: SrtpProfile | null;
  /**
   * The SRTP master keys and salts, as RFC 5764 4.2 lays them out: client key, server key,
   * client salt, server salt.
   */
  readonly keyingMaterial: Uint8Array | null;
}

const NONE: SrtpResult = Object.freeze({ profile: null, keyingMaterial: null });

/** The profile `ssl`'s handshake selected and its keying material, or nulls. */
export function srtpOf(ssl: Pointer): SrtpResult {
  const o = openssl();
  const p = o.SSL_get_selected_srtp_profile(ssl);
  if (p === null) return NONE;
  const namePtr = o.backend.readPointer(p, 0);
  const name = namePtr === null ? "" : o.backend.readCString(namePtr);
  const sizes = KEYS[name as SrtpProfile];
  if (sizes === undefined) return NONE;
  const length = 2 * (sizes.key + sizes.salt);
  return Object.freeze({
    profile: name as SrtpProfile,
    keyingMaterial: exportKeyingMaterial(ssl, length, "EXTRACTOR-dtls_srtp"),
  });
}
