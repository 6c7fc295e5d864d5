/**
 * What `connectDtls()` and `listenDtls()` share: their own options (`mtu`), the TLS options that
 * do not apply to DTLS, and the DTLS context (`DTLS_method`, no MTU query).
 *
 * @module
 */
import { supports } from "../core/capabilities.ts";
import { DTLS, openssl } from "../core/native.ts";
import type { Role } from "../handshake/feature.ts";
import { TlsContext, type TlsContextOptions } from "../tls/context.ts";
import { internalsOf } from "../tls/native_context.ts";
import { configureSrtp, type SrtpProfile } from "./srtp.ts";

/** The default UDP payload limit: fits IPv6's minimum MTU (1280) with room for tunnels. */
export const DEFAULT_DTLS_MTU = 1200;

/** The smallest `mtu` OpenSSL takes (`SSL_set_mtu` refuses less than 256 - 48). */
const MIN_MTU = 256;
/** The largest UDP payload over IPv4. */
const MAX_MTU = 65_507;

/** The UDP options of both DTLS sides. */
export interface DtlsUdpOptions {
  /**
   * The largest UDP payload sent, in bytes (`SSL_set_mtu`; IP and UDP headers not included).
   * Handshake messages are fragmented to fit, and {@link DtlsConnection.maxDatagramSize} is what
   * one record carries within it. Default 1200 (fits any IPv6 path). From 256 to 65,507.
   */
  mtu?: number;
}

/** Checks `mtu` and returns it (default {@link DEFAULT_DTLS_MTU}). */
export function checkMtu(value: unknown): number {
  if (value === undefined) return DEFAULT_DTLS_MTU;
  if (!Number.isInteger(value) || (value as number) < MIN_MTU || (value as number) > MAX_MTU) {
    throw new RangeError(
      `mtu must be an integer from ${MIN_MTU} to ${MAX_MTU} (bytes of UDP payload), got ${
        String(value)
      }`,
    );
  }
  return value as number;
}

/**
 * Refuses the TLS options DTLS has no use for yet, with what to do instead: versions (DTLS 1.2
 * only, for now). (A shared `context` is not an option of the DTLS entry points: DTLS contexts
 * are made per call.)
 */
export function refuseTlsOnly(entry: string, options: Readonly<Record<string, unknown>>): void {
  for (const key of ["minVersion", "maxVersion"]) {
    if (options[key] !== undefined) {
      throw new TypeError(
        `${entry} takes no ${key}: DTLS connections are DTLS 1.2 (${
          supports("dtls13")
            ? "this OpenSSL has DTLS 1.3, but this library does not speak it yet"
            : "DTLS 1.3 is not supported yet, and this OpenSSL does not have it either"
        })`,
      );
    }
  }
}

/**
 * A DTLS context for `role`: `DTLS_method`, no MTU query (memory BIOs know no MTU), and the
 * DTLS-SRTP profiles, if any.
 */
export function dtlsContext(
  role: Role,
  options: TlsContextOptions,
  srtpProfiles: readonly SrtpProfile[] | undefined,
): TlsContext {
  const context = new TlsContext(role, options, true);
  try {
    const ctx = internalsOf(context).ctx();
    // A memory BIO answers no BIO_CTRL_DGRAM_QUERY_MTU: the MTU is set per SSL (SSL_set_mtu), and
    // SSL_OP_NO_QUERY_MTU also keeps it across the SSL_clear inside DTLSv1_listen (dtls1_clear).
    openssl().SSL_CTX_set_options(ctx, DTLS.OP_NO_QUERY_MTU);
    if (srtpProfiles !== undefined) configureSrtp(ctx, srtpProfiles);
  } catch (error) {
    context.close();
    throw error;
  }
  return context;
}
