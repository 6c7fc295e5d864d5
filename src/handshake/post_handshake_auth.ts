/**
 * TLS 1.3 post-handshake client authentication (RFC 8446 §4.6.2): a server asks an already
 * connected client for a certificate, e.g. when it reaches a protected resource.
 *
 * - Clients offer it with `postHandshakeAuth: true` (`SSL_CTX_set_post_handshake_auth`: the
 *   `post_handshake_auth` extension in the ClientHello). A CertificateRequest that arrives later
 *   is answered while the client reads, with its `cert` / `key` or `onClientCertificate` (the
 *   same `cert_cb` as in the handshake).
 * - Servers send one with `conn.requestClientCertificate()`: {@link startRequest} here checks
 *   and queues it (`SSL_verify_client_post_handshake`), the engine writes it, and the client's
 *   Certificate, CertificateVerify and Finished are processed inside later `SSL_read` calls. The
 *   connection-level part (reading while the user does not, keeping the data that arrives
 *   meanwhile) is `src/client_certificate_request.ts`.
 *
 * OpenSSL has no call that says "the client's answer has been processed". Its Finished message
 * ends the answer, and OpenSSL keeps the peer's latest Finished (`SSL_get_peer_finished`): it is
 * a new value once the answer was processed (it covers a longer transcript), and a failed answer
 * fails the `SSL_read` itself. So a request remembers the client's Finished of the handshake and
 * is answered once it changed.
 *
 * @module
 */
import { TlsError } from "../core/errors.ts";
import { clearErrorQueue, drainErrorQueue } from "../core/error_queue.ts";
import { openssl, SSL_R_POST_HANDSHAKE, SSL_VERIFY, TLS_VERSION } from "../core/native.ts";
import type { Feature, Link, SchemaOf } from "./feature.ts";

/** Client option. */
export interface PostHandshakeAuthClientOptions {
  /**
   * TLS 1.3: offer post-handshake authentication (the `post_handshake_auth` extension), so the
   * server may ask for a certificate after the handshake (`conn.requestClientCertificate()` on
   * this library's servers). The request is answered while this side reads (a client that
   * never reads never answers): with `cert` / `key` when given, else `onClientCertificate`
   * (which may return a Promise), else no certificate. Default `false` (a server's request then
   * fails on the server's side without reaching the client).
   */
  postHandshakeAuth?: boolean;
}

/** Per connection (servers): the request in flight. */
interface RequestState {
  /** Whether a CertificateRequest was sent and the client's answer not processed yet. */
  outstanding: boolean;
  /** The client's Finished before the request (see the module doc). */
  finishedBefore: Uint8Array;
}

/** TLS Finished messages are at most this long (SHA-384: 48 bytes). */
const FINISHED_MAX = 64;

function peerFinished(link: Link): Uint8Array {
  const buf = new Uint8Array(FINISHED_MAX);
  const n = openssl().SSL_get_peer_finished(link.ssl, buf, buf.length);
  return buf.slice(0, Math.min(n, buf.length));
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * Servers: checks that `link`'s connection can ask for a certificate now and queues the
 * CertificateRequest (`SSL_verify_client_post_handshake`); the caller then runs
 * `SSL_do_handshake`, which writes it. `require`: a client that sends no certificate fails the
 * connection (alert certificate_required, 116) instead of being accepted without one.
 *
 * @throws {TypeError} on clients, before the handshake, or while a request is unanswered.
 * @throws {TlsError} `NOT_SUPPORTED` on TLS 1.2, or when the client did not offer
 * post-handshake authentication; `INTERNAL` for any other refusal.
 */
export function startRequest(link: Link, require: boolean): void {
  if (link.role !== "server") {
    throw new TypeError("requestClientCertificate() is for servers: clients answer requests");
  }
  if (!link.established) {
    throw new TypeError("requestClientCertificate() before the handshake is done");
  }
  const state = link.stateOf(postHandshakeAuth);
  if (state.outstanding) {
    throw new TypeError(
      "requestClientCertificate(): the client has not answered the previous request yet " +
        "(TLS 1.3 allows one at a time): await it first",
    );
  }
  const o = openssl();
  if (o.SSL_version(link.ssl) !== TLS_VERSION.TLS1_3_VERSION) {
    throw new TlsError(
      "NOT_SUPPORTED",
      "requestClientCertificate() needs TLS 1.3 (post-handshake authentication does not exist " +
        "in TLS 1.2, whose renegotiation this library refuses): ask for the certificate in the " +
        "handshake instead (requestClientCert)",
    );
  }
  // SSL_verify_client_post_handshake refuses unless the verify mode asks for a certificate:
  // set it on this connection only (a NULL callback keeps the context's verify callback).
  o.SSL_set_verify(
    link.ssl,
    require ? SSL_VERIFY.PEER | SSL_VERIFY.FAIL_IF_NO_PEER_CERT : SSL_VERIFY.PEER,
    null,
  );
  const finishedBefore = peerFinished(link);
  clearErrorQueue();
  if (o.SSL_verify_client_post_handshake(link.ssl) !== 1) {
    const entries = drainErrorQueue();
    const reasons = new Set(entries.map((e) => e.reason));
    if (reasons.has(SSL_R_POST_HANDSHAKE.EXTENSION_NOT_RECEIVED)) {
      throw new TlsError(
        "NOT_SUPPORTED",
        "requestClientCertificate(): the client did not offer post-handshake authentication " +
          "(no post_handshake_auth extension; this library's clients offer it with " +
          "postHandshakeAuth: true, openssl s_client with -enable_pha)",
        { openssl: entries },
      );
    }
    if (
      reasons.has(SSL_R_POST_HANDSHAKE.REQUEST_PENDING) ||
      reasons.has(SSL_R_POST_HANDSHAKE.REQUEST_SENT)
    ) {
      throw new TypeError(
        "requestClientCertificate(): a request is already in flight on this connection",
      );
    }
    throw new TlsError("INTERNAL", "SSL_verify_client_post_handshake failed", {
      openssl: entries,
    });
  }
  state.outstanding = true;
  state.finishedBefore = finishedBefore;
}

/**
 * Servers: whether the client's answer to the request in flight has been processed (after a
 * read). Also ends the request: afterwards another may be sent.
 */
export function requestAnswered(link: Link): boolean {
  const state = link.peekStateOf(postHandshakeAuth);
  if (state === undefined || !state.outstanding) return false;
  if (sameBytes(peerFinished(link), state.finishedBefore)) return false;
  state.outstanding = false;
  return true;
}

/** `postHandshakeAuth`, and the server's requests (see the module doc). */
export const postHandshakeAuth: Feature<PostHandshakeAuthClientOptions, undefined, RequestState> = {
  name: "post-handshake authentication",
  options: {
    postHandshakeAuth: { role: "client", scope: "context" },
  } satisfies SchemaOf<PostHandshakeAuthClientOptions, Record<never, never>>,
  validate(_role, { postHandshakeAuth }) {
    if (postHandshakeAuth !== undefined && typeof postHandshakeAuth !== "boolean") {
      throw new TypeError("postHandshakeAuth must be a boolean");
    }
  },
  configure({ role, ctx, options }) {
    if (role !== "client" || options.postHandshakeAuth !== true) return;
    openssl().SSL_CTX_set_post_handshake_auth(ctx, 1);
  },
  connectionState() {
    return { outstanding: false, finishedBefore: new Uint8Array(0) };
  },
  explainFailure(_link, state, facts) {
    if (state === undefined || !state.outstanding || facts.phase !== "read") return undefined;
    // OpenSSL queues SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE (not an alert reason) and sends
    // certificate_required.
    if (facts.sentAlert === 116 || /did not return a certificate/.test(facts.why)) {
      return {
        code: "HANDSHAKE_FAILED",
        message: "the client answered requestClientCertificate() without a certificate " +
          "(require: true): it was sent alert certificate_required (116) and the connection " +
          `is over (${facts.why})`,
      };
    }
    return undefined;
  },
};
