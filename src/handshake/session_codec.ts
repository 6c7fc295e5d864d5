/**
 * Session resumption: serialised client sessions (`i2d_SSL_SESSION` / `d2i_SSL_SESSION`), the
 * host-name binding that keeps a session for one server from being offered to another, and the
 * server's session ticket keys with rotation.
 *
 * How OpenSSL 3.0 runs it (SSL_CTX_sess_set_new_cb(3), SSL_CTX_set_num_tickets(3),
 * SSL_CTX_set_tlsext_ticket_key_evp_cb(3), d2i_SSL_SESSION(3)):
 * - Clients get sessions through the new-session callback, which OpenSSL calls only when client
 *   session caching is on (`SSL_SESS_CACHE_CLIENT`; `NO_INTERNAL_STORE` keeps them out of the
 *   context's own cache). TLS 1.2: once, at the end of a full handshake. TLS 1.3: once per
 *   NewSessionTicket, which the server sends after the handshake, so it is processed by a read.
 * - A resumed handshake does not verify the server's certificate again (there is none in it):
 *   OpenSSL trusts whatever verified the session. So a session must only be offered to the
 *   server name it was made for; OpenSSL records that name only when the server acknowledged SNI,
 *   so the engine writes it into every session itself (`SSL_SESSION_set1_hostname`) before
 *   serialising, and checks it before `SSL_set_session`.
 * - Servers issue stateless tickets (2 after a full TLS 1.3 handshake, 1 after a resumption),
 *   encrypted with AES-256-CBC and authenticated with HMAC-SHA256 under a random key of the
 *   `SSL_CTX`, or under `SSL_CTX_set_tlsext_ticket_keys` (16-byte name, 32-byte HMAC key, 32-byte
 *   AES key). Rotation keeps the previous key through the ticket key callback, in the same format,
 *   so tickets sealed before the callback was installed still open.
 *
 * @module
 */
import { TlsError } from "../core/errors.ts";
import { fromDer, toDer } from "../core/der.ts";
import { drainErrorQueue } from "../core/error_queue.ts";
import { NativeHandle } from "../core/ownership.ts";
import { cString, openssl, type Pointer, TICKET_KEY_LENGTH } from "../core/native.ts";

const KEY_NAME_LENGTH = 16;
const HMAC_KEY = [16, 48] as const;
const AES_KEY = [48, 80] as const;
/** AES-256-CBC, as OpenSSL's own tickets: a 16-byte IV. */
const IV_LENGTH = 16;

/**
 * Decodes serialised session bytes (`d2i_SSL_SESSION`) into an owned `SSL_SESSION`.
 *
 * @throws {TypeError} when `bytes` is not a Uint8Array holding a DER-encoded session. @internal
 */
export function decodeSession(bytes: unknown): NativeHandle {
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError("session must be a Uint8Array (conn.session of an earlier connection)");
  }
  if (bytes.length === 0) throw new TypeError("session is empty");
  const o = openssl();
  const p = fromDer(bytes, (cell, n) => o.d2i_SSL_SESSION(null, cell, n));
  if (p === null) {
    drainErrorQueue();
    throw new TypeError(
      "session is not a serialised TLS session (conn.session bytes): garbage or truncated",
    );
  }
  return new NativeHandle("SSL_SESSION", p, (s) => o.SSL_SESSION_free(s));
}

/** `i2d_SSL_SESSION`: the DER bytes of a session, or `null` when OpenSSL cannot encode it. */
export function encodeSession(session: Pointer): Uint8Array | null {
  const o = openssl();
  return toDer(o.i2d_SSL_SESSION(session, null), (cell) => o.i2d_SSL_SESSION_buf(session, cell));
}

/** The host name a session is bound to (`SSL_SESSION_get0_hostname`), or `null`. */
export function sessionHostname(session: Pointer): string | null {
  const o = openssl();
  const p = o.SSL_SESSION_get0_hostname(session);
  return p === null ? null : o.backend.readCString(p);
}

/**
 * Binds `session` to `name` (`null`: to nothing, i.e. usable only by connections that do not
 * verify the server) and to the scope of the context that verified it. @internal
 */
export function bindSession(session: Pointer, name: string | null, scope: Uint8Array): void {
  const o = openssl();
  if (o.SSL_SESSION_set1_hostname(session, name === null ? null : cString(name)) !== 1) {
    throw new TlsError("INTERNAL", "SSL_SESSION_set1_hostname failed", {
      openssl: drainErrorQueue(),
    });
  }
  // A client session's "session id context" is never sent (servers check their own copy inside
  // the ticket or cache) and is serialised with the session: it carries the verifying
  // context's scope, so a session is offered only where the same verification holds.
  if (o.SSL_SESSION_set1_id_context(session, scope, scope.length) !== 1) {
    throw new TlsError("INTERNAL", "SSL_SESSION_set1_id_context failed", {
      openssl: drainErrorQueue(),
    });
  }
}

/** A session's id context (`SSL_SESSION_get0_id_context`), or `null` when empty. @internal */
export function sessionIdContext(session: Pointer): Uint8Array | null {
  const o = openssl();
  const length = new Uint32Array(1);
  const p = o.SSL_SESSION_get0_id_context(session, length);
  return p === null || length[0] === 0 ? null : o.backend.readBytes(p, 0, length[0]!);
}

/** Whether `session` was bound (by {@link bindSession}) to exactly `scope`. @internal */
export function sessionInScope(session: Pointer, scope: Uint8Array): boolean {
  const bytes = sessionIdContext(session);
  return bytes !== null && bytes.length === scope.length && bytes.every((b, i) => b === scope[i]);
}

/**
 * Validates a server's `ticketKeys` (or a key for `rotateTicketKeys`).
 *
 * @throws {TypeError | RangeError} @internal
 */
export function checkTicketKeys(name: string, value: unknown): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${name} must be a Uint8Array`);
  if (value.length !== TICKET_KEY_LENGTH) {
    throw new RangeError(
      `${name} must be ${TICKET_KEY_LENGTH} bytes (16-byte name, 32-byte HMAC key, 32-byte AES ` +
        `key), got ${value.length}`,
    );
  }
  return value.slice();
}

/**
 * A fresh random session ticket key, 80 bytes, in the layout `ticketKeys` and `rotateTicketKeys`
 * take.
 *
 * @example
 * ```ts
 * import { generateTicketKeys } from "../../mod.ts";
 * const keys = generateTicketKeys(); // share it between the servers of one service
 * console.log(keys.length); // 80
 * ```
 */
export function generateTicketKeys(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(TICKET_KEY_LENGTH));
}

function sameName(key: Uint8Array, name: Uint8Array): boolean {
  for (let i = 0; i < KEY_NAME_LENGTH; i++) if (key[i] !== name[i]) return false;
  return true;
}

/**
 * A server's ticket keys once rotated: the current key seals new tickets, the current and the
 * previous one open tickets (a ticket under the previous key is renewed: callback result 2).
 * Used from OpenSSL's ticket key callback. @internal
 */
export class TicketKeyRing {
  #current: Uint8Array;
  #previous: Uint8Array | null;

  constructor(current: Uint8Array, previous: Uint8Array | null) {
    this.#current = current;
    this.#previous = previous;
  }

  /** Makes `next` the current key; the current one becomes the previous one. */
  rotate(next: Uint8Array): void {
    this.#previous?.fill(0);
    this.#previous = this.#current;
    this.#current = next;
  }

  /**
   * The ticket key callback: `enc` 1 seals a new ticket, `enc` 0 opens one. Returns 1 (go on),
   * 2 (opened with the previous key: issue a fresh ticket), 0 (unknown key: full handshake),
   * -1 (error).
   */
  handle(
    keyName: Pointer,
    iv: Pointer,
    cipherCtx: Pointer,
    hmacCtx: Pointer,
    enc: number,
  ): number {
    const o = openssl();
    let key: Uint8Array;
    let result: number;
    if (enc === 1) {
      key = this.#current;
      o.backend.writeBytes(keyName, 0, key.slice(0, KEY_NAME_LENGTH));
      // OpenSSL gives EVP_MAX_IV_LENGTH (16) bytes of room for it.
      o.backend.writeBytes(iv, 0, crypto.getRandomValues(new Uint8Array(IV_LENGTH)));
      if (
        o.EVP_EncryptInit_ex(cipherCtx, o.EVP_aes_256_cbc(), null, key.slice(...AES_KEY), iv) !== 1
      ) {
        return -1;
      }
      result = 1;
    } else {
      const name = o.backend.readBytes(keyName, 0, KEY_NAME_LENGTH);
      if (sameName(this.#current, name)) {
        key = this.#current;
        result = 1;
      } else if (this.#previous !== null && sameName(this.#previous, name)) {
        key = this.#previous;
        result = 2;
      } else {
        return 0; // a key we no longer have (or never had): a full handshake
      }
      if (
        o.EVP_DecryptInit_ex(cipherCtx, o.EVP_aes_256_cbc(), null, key.slice(...AES_KEY), iv) !== 1
      ) {
        return -1;
      }
    }
    if (o.EVP_MAC_CTX_set_hmac_key(hmacCtx, key.slice(...HMAC_KEY), "SHA256") !== 1) return -1;
    return result;
  }
}
