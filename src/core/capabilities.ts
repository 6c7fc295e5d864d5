/**
 * What the loaded OpenSSL can do beyond the 3.0 baseline. Detected from the library itself (an
 * optional symbol is there, or not), never assumed from the version number: distributions
 * backport and disable features. Version-dependent features ask here, and say which release they
 * need when the answer is no. (New entries: an optional symbol in `ffi/symbols.ts`, a line here.)
 *
 * @module
 */
import { DTLS_VERSION, type OpenSsl, openssl } from "./native.ts";

interface CapabilityEntry {
  /** The first OpenSSL release that has it, for messages. */
  readonly since: string;
  /** Whether the loaded library has it. */
  readonly detect: (o: OpenSsl) => boolean;
}

/** A feature of OpenSSL that not every supported release has. */
export type Capability =
  | "groupName"
  | "groupToName"
  | "ticketKeyEvp"
  | "peerSignatureName"
  | "dtls13";

const ENTRIES: Readonly<Record<Capability, CapabilityEntry>> = {
  /** `SSL_get0_group_name`: the negotiated group by name, hybrids included (3.2). */
  groupName: { since: "3.2", detect: (o) => o.SSL_get0_group_name !== null },
  /** `SSL_group_to_name`: a group's name from its NID (3.0). */
  groupToName: { since: "3.0", detect: (o) => o.SSL_group_to_name !== null },
  /** `SSL_CTX_set_tlsext_ticket_key_evp_cb`: rotating ticket keys, keeping the previous (3.0). */
  ticketKeyEvp: {
    since: "3.0",
    detect: (o) => o.SSL_CTX_set_tlsext_ticket_key_evp_cb !== null,
  },
  /** `SSL_get0_peer_signature_name`: the peer's signature scheme by its IANA name (3.5). */
  peerSignatureName: { since: "3.5", detect: (o) => o.SSL_get0_peer_signature_name !== null },
  /**
   * DTLS 1.3 (RFC 9147): a `DTLS_method` context takes `DTLS1_3_VERSION` (0xFEFC) as its highest
   * version. No symbol tells (the version is a number): asked of a throwaway context. No
   * release up to 4.0.3 has it (src/dtls/ pins DTLS 1.2 either way, for now).
   */
  dtls13: {
    since: "a release after 4.0",
    detect: (o) => {
      const ctx = o.SSL_CTX_new(o.DTLS_method());
      if (ctx === null) return false;
      try {
        return o.SSL_CTX_set_max_proto_version(ctx, DTLS_VERSION.DTLS1_3_VERSION) === 1;
      } finally {
        o.SSL_CTX_free(ctx); // (a refused bound puts nothing on the error queue: 3.0.19)
      }
    },
  },
};

/** Which {@link Capability} the loaded OpenSSL has. */
export type Capabilities = { readonly [K in Capability]: boolean };

let detected: Capabilities | undefined;

/** What the loaded OpenSSL can do (detected once). */
export function capabilities(): Capabilities {
  if (detected !== undefined) return detected;
  const o = openssl();
  const out: Record<string, boolean> = {};
  for (const [name, entry] of Object.entries(ENTRIES) as [Capability, CapabilityEntry][]) {
    out[name] = entry.detect(o);
  }
  detected = Object.freeze(out) as Capabilities;
  return detected;
}

/** Whether the loaded OpenSSL has `capability`. */
export function supports(capability: Capability): boolean {
  return capabilities()[capability];
}

let freeBuffersSafe: boolean | undefined;

/**
 * Whether `SSL_free_buffers` may be called on an idle TLS connection. Before 3.0.14, 3.1.6, 3.2.2
 * and 3.3.1 it could free a read buffer a record still pointed into (CVE-2024-4741, a
 * use-after-free). A fix has no symbol to detect, so this one goes by the version number (a
 * distribution that backported the fix without raising it, such as Ubuntu 22.04's 3.0.2, only
 * keeps the ~17 KiB buffer of each connection that waits for its peer).
 */
export function freeBuffersIsSafe(): boolean {
  return freeBuffersSafe ??= freeBuffersFixedIn(openssl().versionNumber);
}

/** Whether `OpenSSL_version_num()` `n` (3.x: 0xMNN00PP0) has the CVE-2024-4741 fix. */
export function freeBuffersFixedIn(n: number): boolean {
  if (n >= 0x40000000) return true;
  const minor = (n >>> 20) & 0xff;
  const patch = (n >>> 4) & 0xff;
  const fixedIn = [14, 6, 2, 1][minor]; // 3.0.14, 3.1.6, 3.2.2, 3.3.1; any later minor
  return fixedIn === undefined || patch >= fixedIn;
}
