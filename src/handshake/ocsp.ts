/**
 * OCSP stapling in the handshake. Clients (`ocsp`): ask for a staple and verify what arrives
 * (revoked fails with `CERT_REVOKED`, invalid or unknown with `OCSP_INVALID`; must-staple
 * certificates require one). Servers (`ocspStaple`): hand a staple to clients that ask. Both
 * through OpenSSL's status callback, whose return codes differ by side.
 *
 * The response checks themselves live in `ocsp/response.ts`.
 *
 * @module
 */
import { TlsError } from "../core/errors.ts";
import type { OcspResponse } from "../core/ocsp_response.ts";
import { openssl, type Pointer, SSL_TLSEXT_ERR, STATUS_CB, X509_V } from "../core/native.ts";
import {
  coversCertificate,
  DEFAULT_OCSP_LEEWAY_SECONDS,
  requiresStaple,
  verifyOcspResponse,
} from "../ocsp/response.ts";
import { Certificate } from "../x509/certificate.ts";
import type { Feature, Link, SchemaOf } from "./feature.ts";
import { routedCallback } from "./routing.ts";
import { requestedServerName } from "./negotiated.ts";

/**
 * OCSP stapling on clients. `"off"`: do not ask. `"request"` (the default): ask for a staple;
 * accept its absence. `"require"`: ask, and fail (`OCSP_INVALID`) when none arrives. In every mode
 * but `"off"`, a staple that arrives is verified (see `parseOcspResponse`): revoked fails the
 * handshake with `CERT_REVOKED`, unknown or invalid with `OCSP_INVALID`, and a certificate with
 * the must-staple extension (TLS feature status_request) is treated as `"require"`.
 */
export type OcspMode = "off" | "request" | "require";

/** The object form of {@link OcspClientOptions.ocsp}. */
export interface OcspOptions {
  /** Default `"request"`. */
  mode?: OcspMode;
  /**
   * Called with a verified staple whose status is good; return `false` to refuse the connection
   * anyway (`OCSP_INVALID`), e.g. when it is older than you accept. A throw fails the handshake
   * with `CALLBACK_ERROR` (your error as `cause`). Synchronous.
   */
  onResponse?: (response: OcspResponse) => boolean | void;
  /** Clock skew allowed on `thisUpdate` / `nextUpdate`, in seconds. Default 300. */
  leewaySeconds?: number;
}

/** What a server's {@link OcspServerOptions.ocspStaple} function is told. */
export interface OcspStapleRequest {
  /** The host name the client asked for (SNI), or `null`. */
  readonly serverName: string | null;
  /** The certificate this connection presents (after SNI selection). */
  readonly certificate: Certificate;
}

/** Client option. */
export interface OcspClientOptions {
  /**
   * OCSP stapling, see {@link OcspMode}. Default `"request"`: a staple the server sends is
   * verified, and a revoked certificate refused.
   */
  ocsp?: OcspMode | OcspOptions;
}

/** Server option. */
export interface OcspServerOptions {
  /**
   * The OCSP response to staple (DER), for clients that ask; or a function choosing it per
   * connection (`null`: staple nothing). Synchronous: keep fresh responses at hand (see
   * `OcspStapler`). The bytes are copied for OpenSSL on every handshake. TLS 1.2 and 1.3.
   */
  ocspStaple?: Uint8Array | ((request: OcspStapleRequest) => Uint8Array | null);
}

type Options = OcspClientOptions & OcspServerOptions;

/** The OCSP mode of client options (default `"request"`). */
export function ocspModeOf(options: Readonly<OcspClientOptions>): OcspMode {
  const o = options.ocsp;
  return (typeof o === "string" ? o : o?.mode) ?? "request";
}

/** Per connection: the verified staple (clients), once the status callback accepted one. */
interface OcspState {
  response: OcspResponse | null;
}

/**
 * Clients, in OpenSSL's status callback (after the server's chain was verified): checks the
 * staple, or its absence, against the OCSP mode. Returns 1 to go on; 0 makes OpenSSL send
 * bad_certificate_status_response (113), and our own error (CERT_REVOKED / OCSP_INVALID)
 * becomes the handshake's error.
 */
function checkStaple(link: Link): number {
  const o = openssl();
  const options = link.options as Options;
  const mode = ocspModeOf(options);
  if (mode === "off") return 1;
  const ssl = link.ssl;
  const chain = o.SSL_get0_verified_chain(ssl); // borrowed; includes the trust anchor
  const leaf = o.sk_num(chain) > 0 ? o.sk_value(chain!, 0) : null;
  const reject = (error: TlsError): number => {
    link.reject(error);
    return 0;
  };
  const staple = o.SSL_get_tlsext_status_ocsp_resp(ssl);
  const required = mode === "require" || (leaf !== null && requiresStaple(leaf));
  if (staple === null) {
    if (!required) return 1;
    return reject(
      new TlsError(
        "OCSP_INVALID",
        mode === "require"
          ? 'the server sent no OCSP staple, and ocsp is "require"'
          : "the server sent no OCSP staple for a certificate that requires one (must-staple)",
      ),
    );
  }
  if (leaf === null) {
    // Verification was disabled and built no chain: there is nothing to check it against.
    if (!required) return 1;
    return reject(new TlsError("OCSP_INVALID", "no verified chain to check the OCSP staple"));
  }
  const issuer = o.sk_num(chain) > 1 ? o.sk_value(chain!, 1)! : leaf;
  // The SSL's own SSL_CTX (OpenSSL holds a reference): the JS context may be closed already.
  const store = o.SSL_CTX_get_cert_store(o.SSL_get_SSL_CTX(ssl)!);
  const extra = typeof options.ocsp === "object" ? options.ocsp : {};
  let response: OcspResponse;
  try {
    response = verifyOcspResponse(
      o.backend.readBytes(staple.data, 0, staple.length),
      leaf,
      issuer,
      chain,
      store!,
      extra.leewaySeconds ?? DEFAULT_OCSP_LEEWAY_SECONDS,
    );
  } catch (error) {
    if (error instanceof TlsError) return reject(error);
    throw error;
  }
  link.stateOf(ocsp).response = response;
  if (response.status === "revoked") {
    const when = response.revocationTime?.toISOString() ?? "an unknown time";
    const why = response.revocationReason === undefined ? "" : ` (${response.revocationReason})`;
    return reject(
      new TlsError(
        "CERT_REVOKED",
        `the server's certificate was revoked at ${when}${why}, says its OCSP staple`,
        { ocsp: response },
      ),
    );
  }
  if (response.status === "unknown") {
    return reject(
      new TlsError("OCSP_INVALID", "the OCSP responder does not know the server's certificate", {
        ocsp: response,
      }),
    );
  }
  if (extra.onResponse !== undefined && extra.onResponse(response) === false) {
    return reject(
      new TlsError("OCSP_INVALID", "the OCSP staple was refused by onResponse", {
        ocsp: response,
      }),
    );
  }
  return 1;
}

/**
 * Servers, in OpenSSL's status callback (a client asked for a staple): hands OpenSSL a copy of
 * the staple in `OPENSSL_malloc`'d memory, which it owns and frees from then on.
 */
function provideStaple(link: Link, serverName: string | null): number {
  const o = openssl();
  const source = (link.options as Options).ocspStaple;
  if (source === undefined) return SSL_TLSEXT_ERR.NOACK;
  const ssl = link.ssl;
  let staple: Uint8Array | null;
  if (typeof source === "function") {
    let certificate: Certificate | undefined;
    staple = source({
      serverName,
      get certificate(): Certificate {
        const x = o.SSL_get_certificate(ssl); // borrowed; after SNI selection
        if (x === null) throw new TlsError("INTERNAL", "the connection has no certificate");
        return (certificate ??= Certificate.fromX509(x));
      },
    });
    if (staple !== null && !(staple instanceof Uint8Array)) {
      throw new TypeError("ocspStaple must return a Uint8Array or null (not a Promise)");
    }
  } else {
    staple = source;
  }
  if (staple === null || staple.length === 0) return SSL_TLSEXT_ERR.NOACK;
  // Only a response about the certificate this connection presents is stapled (so fixed bytes
  // do not go out with a certificate onServerName put in). OpenSSL 3.6+ drops other ones itself;
  // checking here makes every version behave alike.
  if (!stapleCoversLeaf(ssl, staple)) return SSL_TLSEXT_ERR.NOACK;
  const mem = o.OPENSSL_malloc(staple.length);
  if (mem === null) throw new TlsError("INTERNAL", "out of memory");
  o.backend.writeBytes(mem, 0, staple);
  if (o.SSL_set_tlsext_status_ocsp_resp(ssl, mem, staple.length) !== 1) {
    o.OPENSSL_free(mem);
    throw new TlsError("INTERNAL", "SSL_set_tlsext_status_ocsp_resp failed");
  }
  return SSL_TLSEXT_ERR.OK;
}

/** Whether `staple` holds an entry for the certificate `ssl` presents (issuer from its chain). */
function stapleCoversLeaf(ssl: Pointer, staple: Uint8Array): boolean {
  const o = openssl();
  const leaf = o.SSL_get_certificate(ssl); // borrowed; after SNI selection
  if (leaf === null) return false;
  const chain = o.SSL_get0_chain_certs(ssl); // borrowed
  let issuer: Pointer | null = null;
  for (let i = 0; i < o.sk_num(chain) && issuer === null; i++) {
    const candidate = o.sk_value(chain!, i);
    if (candidate !== null && o.X509_check_issued(candidate, leaf) === X509_V.OK) {
      issuer = candidate;
    }
  }
  // A self-issued leaf is its own issuer; a leaf served without its issuer cannot be matched.
  if (issuer === null && o.X509_check_issued(leaf, leaf) === X509_V.OK) issuer = leaf;
  return issuer !== null && coversCertificate(staple, leaf, issuer);
}

/** The verified OCSP staple of a client connection, or `null`. */
export function stapleOf(link: Link): OcspResponse | null {
  // Read for every connection when its handshake ends: no state made for that.
  return link.peekStateOf(ocsp)?.response ?? null;
}

/** `ocsp` (clients) and `ocspStaple` (servers). */
export const ocsp: Feature<Options, undefined, OcspState> = {
  name: "OCSP stapling",
  options: {
    ocsp: { role: "client", scope: "context", otherSide: "ocspStaple" },
    ocspStaple: { role: "server", scope: "context", otherSide: "ocsp" },
  } satisfies SchemaOf<OcspClientOptions, OcspServerOptions>,
  validate(_role, options) {
    if (options.ocsp !== undefined) {
      const mode = typeof options.ocsp === "string" ? options.ocsp : options.ocsp?.mode;
      if (
        typeof options.ocsp !== "string" &&
        (typeof options.ocsp !== "object" || options.ocsp === null)
      ) {
        throw new TypeError('ocsp must be "off", "request", "require" or { mode, onResponse }');
      }
      if (mode !== undefined && mode !== "off" && mode !== "request" && mode !== "require") {
        throw new TypeError(
          `ocsp mode must be "off", "request" or "require", got ${JSON.stringify(mode)}`,
        );
      }
      if (typeof options.ocsp === "object") {
        const { onResponse, leewaySeconds } = options.ocsp;
        if (onResponse !== undefined && typeof onResponse !== "function") {
          throw new TypeError("ocsp.onResponse must be a function");
        }
        if (leewaySeconds !== undefined && (!Number.isFinite(leewaySeconds) || leewaySeconds < 0)) {
          throw new RangeError("ocsp.leewaySeconds must be a non-negative number");
        }
      }
    }
    const staple = options.ocspStaple;
    if (staple !== undefined) {
      if (!(staple instanceof Uint8Array) && typeof staple !== "function") {
        throw new TypeError("ocspStaple must be a Uint8Array or a function");
      }
      if (staple instanceof Uint8Array && staple.length === 0) {
        throw new TypeError("ocspStaple is empty");
      }
    }
  },
  configure({ role, ctx, options }) {
    const wanted = role === "server"
      ? options.ocspStaple !== undefined
      : ocspModeOf(options) !== "off";
    if (!wanted) return;
    const cb = routedCallback(
      STATUS_CB,
      (link: Link, ssl: Pointer | null) =>
        link.role === "client"
          ? checkStaple(link)
          : provideStaple(link, requestedServerName(ssl!) ?? null),
      {
        // Not ours: clients accept (OpenSSL's own behaviour), servers staple nothing (on a server
        // 1 would be SSL_TLSEXT_ERR_ALERT_WARNING, which OpenSSL treats as fatal).
        notOurs: (ssl: Pointer | null) =>
          ssl !== null && openssl().SSL_is_server(ssl) === 1 ? SSL_TLSEXT_ERR.NOACK : 1,
      },
    );
    openssl().SSL_CTX_set_tlsext_status_cb(ctx, cb);
  },
  setupConnection(link) {
    // status_request in the ClientHello (the status callback is on the context).
    if (link.role === "client" && ocspModeOf(link.options as Options) !== "off") {
      openssl().SSL_set_tlsext_status_type_ocsp(link.ssl);
    }
  },
  connectionState: () => ({ response: null }),
  // OpenSSL 3.6+ parses a staple before the status callback sees it, and answers garbage with
  // alert 113 (bad_certificate_status_response) itself: the same verdict the callback gives
  // on 3.0, so the same error.
  explainFailure(link, _state, { phase, why, sentAlert }) {
    if (link.role !== "client" || phase !== "handshake" || sentAlert !== 113) return undefined;
    return {
      code: "OCSP_INVALID",
      message: "the OCSP response is not acceptable: it is not a DER OCSP response (garbage or " +
        `truncated; OpenSSL: ${why})`,
    };
  },
};
