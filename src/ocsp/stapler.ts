/**
 * `OcspStapler`: what nginx and Caddy do for their users. It asks the OCSP responder named in a
 * certificate's Authority Information Access extension for a fresh response (the request is
 * built with libcrypto, sent with the runtime's `fetch`), verifies it, keeps it until shortly
 * before its `nextUpdate`, and hands it to a server's `ocspStaple` option.
 *
 * @module
 */
import { TlsError } from "../core/errors.ts";
import { toDer } from "../core/der.ts";
import { clearErrorQueue, drainErrorQueue } from "../core/error_queue.ts";
import { openssl } from "../core/native.ts";
import { messageOf } from "../core/values.ts";
import { unrefTimer } from "../core/timers.ts";
import { type OcspResponse, parseOcspResponse } from "./response.ts";
import { Certificate, loadCertificates, type PemOrDer } from "../x509/certificate.ts";

/** Options for {@link OcspStapler}. */
export interface OcspStaplerOptions {
  /** The server's certificate; PEM may carry the chain after the leaf (the issuer comes next). */
  certificate: PemOrDer;
  /** The issuer of the certificate. Default: the second certificate of `certificate`'s PEM. */
  issuer?: PemOrDer;
  /** The responder's URL. Default: the OCSP URL of the certificate's AIA extension. */
  responderUrl?: string;
  /** Milliseconds allowed per request. Default 10,000. */
  timeoutMs?: number;
  /** Milliseconds to wait after a failed refresh before trying again. Default 60,000. */
  retryMs?: number;
  /** Told about failed (background) refreshes; the last good response keeps being stapled. */
  onError?: (error: TlsError) => void;
  /** The `fetch` to use. Default: the runtime's. */
  fetch?: typeof fetch;
}

/** A refresh is due once this fraction of the response's validity has passed. */
const REFRESH_AT = 0.5;
/** Never refresh more often than this (ms), whatever the response's window. */
const MIN_REFRESH_MS = 60_000;

/** The OCSP URLs of a certificate's AIA extension (`X509_get1_ocsp`). */
function ocspUrlsOf(certificate: PemOrDer): string[] {
  const o = openssl();
  const [leaf, ...rest] = loadCertificates(certificate);
  try {
    const sk = o.X509_get1_ocsp(leaf!.ptr);
    if (sk === null) return [];
    try {
      const urls: string[] = [];
      for (let i = 0; i < o.sk_num(sk); i++) {
        const p = o.sk_value(sk, i);
        if (p !== null) urls.push(o.backend.readCString(p));
      }
      return urls;
    } finally {
      o.X509_email_free(sk); // frees the strings and the stack
    }
  } finally {
    leaf!.close();
    for (const h of rest) h.close();
  }
}

/** The DER of an OCSP request for `certificate` issued by `issuer` (no nonce: cacheable). */
export function buildOcspRequest(certificate: PemOrDer, issuer: PemOrDer): Uint8Array {
  const o = openssl();
  const leafHandles = loadCertificates(certificate);
  const issuerHandles = loadCertificates(issuer);
  clearErrorQueue();
  const req = o.OCSP_REQUEST_new();
  try {
    if (req === null) throw new TlsError("INTERNAL", "OCSP_REQUEST_new failed");
    const id = o.OCSP_cert_to_id(null, leafHandles[0]!.ptr, issuerHandles[0]!.ptr);
    if (id === null) {
      throw new TlsError("INTERNAL", "OCSP_cert_to_id failed", { openssl: drainErrorQueue() });
    }
    if (o.OCSP_request_add0_id(req, id) === null) { // takes the id on success only
      o.OCSP_CERTID_free(id);
      throw new TlsError("INTERNAL", "OCSP_request_add0_id failed", { openssl: drainErrorQueue() });
    }
    const der = toDer(o.i2d_OCSP_REQUEST(req, null), (cell) => o.i2d_OCSP_REQUEST_buf(req, cell));
    if (der === null) throw new TlsError("INTERNAL", "i2d_OCSP_REQUEST failed");
    return der;
  } finally {
    if (req !== null) o.OCSP_REQUEST_free(req);
    for (const h of [...leafHandles, ...issuerHandles]) h.close();
  }
}

/**
 * Keeps a fresh, verified OCSP response for one server certificate, for `ocspStaple`.
 *
 * @example
 * ```ts
 * import { readFileSync } from "node:fs";
 * import { listen, OcspStapler } from "../../mod.ts";
 * const cert = readFileSync("server-chain.pem", "utf8"); // leaf, then its issuer
 * const key = readFileSync("server.key", "utf8");
 * const stapler = new OcspStapler({ certificate: cert, onError: (e) => console.warn(e.message) });
 * await stapler.start(); // first response now, then refreshed in the background
 * const server = listen({ port: 8443, cert, key, ocspStaple: stapler.staple });
 * ```
 */
export class OcspStapler {
  #certificate: PemOrDer;
  #issuer: PemOrDer;
  #url: string;
  #timeoutMs: number;
  #retryMs: number;
  #onError: ((error: TlsError) => void) | undefined;
  #fetch: typeof fetch;
  #der: Uint8Array | null = null;
  #response: OcspResponse | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  /**
   * Reads the certificate, its issuer and its responder's URL; does not fetch yet (see
   * {@link start} and {@link refresh}).
   *
   * @throws {TypeError} for bad options, or when the certificate names no OCSP responder and no
   * `responderUrl` is given, or no issuer can be found.
   */
  constructor(options: OcspStaplerOptions) {
    if (typeof options !== "object" || options === null) {
      throw new TypeError("options must be an object");
    }
    const chain = Certificate.parseAll(options.certificate);
    const issuer = options.issuer ?? chain[1]?.der;
    if (issuer === undefined) {
      throw new TypeError("no issuer: pass issuer, or a certificate PEM with its chain");
    }
    const url = options.responderUrl ?? ocspUrlsOf(options.certificate)[0];
    if (url === undefined) {
      throw new TypeError(
        "the certificate names no OCSP responder (Authority Information Access): pass responderUrl",
      );
    }
    if (!/^https?:\/\//i.test(url)) throw new TypeError(`not an http(s) URL: ${url}`);
    this.#certificate = chain[0]!.der;
    this.#issuer = issuer;
    this.#url = url;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#retryMs = options.retryMs ?? MIN_REFRESH_MS;
    this.#onError = options.onError;
    this.#fetch = options.fetch ?? fetch;
  }

  /** The responder this stapler asks. */
  get responderUrl(): string {
    return this.#url;
  }

  /** The last verified response, or `null` before the first one (or once it expired). */
  get response(): OcspResponse | null {
    return this.#fresh() ? this.#response : null;
  }

  #fresh(): boolean {
    const next = this.#response?.nextUpdate;
    return this.#response !== null && (next === null || next === undefined || next > new Date());
  }

  /**
   * For `listen({ ocspStaple: stapler.staple })`: the current response's DER, or `null` (staple
   * nothing) before the first response or once it expired.
   */
  readonly staple = (): Uint8Array | null => (this.#fresh() ? this.#der : null);

  /**
   * Asks the responder now and keeps the answer if it verifies (a revoked status is kept too:
   * it is the truth, and clients will refuse the certificate).
   *
   * @throws {TlsError} `NETWORK_ERROR` (HTTP or transport failure, timeout), `OCSP_INVALID`.
   */
  async refresh(): Promise<OcspResponse> {
    const request = buildOcspRequest(this.#certificate, this.#issuer);
    let der: Uint8Array;
    try {
      const response = await this.#fetch(this.#url, {
        method: "POST",
        headers: {
          "content-type": "application/ocsp-request",
          "accept": "application/ocsp-response",
        },
        body: new Uint8Array(request), // over a plain ArrayBuffer, as BodyInit wants
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
      if (!response.ok) {
        await response.body?.cancel();
        throw new Error(`HTTP ${response.status} ${response.statusText}`);
      }
      der = new Uint8Array(await response.arrayBuffer());
    } catch (error) {
      const detail = messageOf(error);
      throw new TlsError("NETWORK_ERROR", `OCSP request to ${this.#url} failed: ${detail}`, {
        cause: error,
      });
    }
    const parsed = parseOcspResponse(der, { certificate: this.#certificate, issuer: this.#issuer });
    if (parsed.status === "unknown") {
      throw new TlsError(
        "OCSP_INVALID",
        `the responder at ${this.#url} does not know this certificate`,
        {
          ocsp: parsed,
        },
      );
    }
    this.#der = der;
    this.#response = parsed;
    return parsed;
  }

  /**
   * Fetches the first response (rejecting if that fails), then refreshes in the background:
   * when half of each response's validity has passed, and `retryMs` after a failure. The
   * background timer does not keep the process alive.
   */
  async start(): Promise<OcspResponse> {
    const first = await this.refresh();
    this.#schedule();
    return first;
  }

  #schedule(delay?: number): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    let wait = delay;
    if (wait === undefined) {
      const r = this.#response;
      const start = r?.thisUpdate.getTime() ?? Date.now();
      const end = r?.nextUpdate?.getTime() ?? start + 2 * 3600_000;
      wait = Math.max(MIN_REFRESH_MS, start + (end - start) * REFRESH_AT - Date.now());
    }
    this.#timer = setTimeout(() => {
      this.refresh().then(
        () => this.#schedule(),
        (error) => {
          try {
            this.#onError?.(
              error instanceof TlsError ? error : new TlsError("INTERNAL", String(error)),
            );
          } finally {
            this.#schedule(this.#retryMs);
          }
        },
      );
    }, Math.min(wait, 2 ** 31 - 1));
    unrefTimer(this.#timer);
  }

  /** Stops background refreshes. Idempotent. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }

  /** Same as {@link close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}
