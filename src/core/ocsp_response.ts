/**
 * The shape of a verified OCSP response: plain data, below everything that reports one (errors,
 * connections, the OCSP checks themselves).
 *
 * @module
 */

/** What a verified OCSP response says about one certificate. */
export interface OcspResponse {
  /** The certificate's status. */
  readonly status: "good" | "revoked" | "unknown";
  /** The response status (always `"successful"` for a verified response). */
  readonly responseStatus: string;
  /** When the status was known to be correct. */
  readonly thisUpdate: Date;
  /** When newer information will be available (`null` if the responder did not say). */
  readonly nextUpdate: Date | null;
  /** For `"revoked"`: when. */
  readonly revocationTime?: Date;
  /** For `"revoked"`, when given: the CRL reason, e.g. `"keyCompromise"`. */
  readonly revocationReason?: string;
  /** When the responder signed the response. */
  readonly producedAt: Date;
  /** The responder: its name (RFC 2253) or `"keyid:AB:CD:..."` (the SHA-1 of its key). */
  readonly responderId: string;
  /** The response's DER encoding, as received. */
  readonly der: Uint8Array;
}
