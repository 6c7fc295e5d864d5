/**
 * What a finished handshake lets both sides derive and prove: keying material
 * (`SSL_export_keying_material`, RFC 5705 / RFC 8446 7.5), the Finished messages
 * (`SSL_get_finished` / `SSL_get_peer_finished`), channel bindings (`tls-exporter`, RFC 9266;
 * `tls-unique`, RFC 5929) and TLS 1.3 key updates (`SSL_key_update`). No options: methods of a
 * connection (`TlsEngine`, `Connection`) after its handshake, which call these with its `SSL`.
 *
 * @module
 */
import { clearErrorQueue, drainErrorQueue } from "../core/error_queue.ts";
import { TlsError } from "../core/errors.ts";
import { openssl, type Pointer, SSL_KEY_UPDATE, TLS_VERSION } from "../core/native.ts";

/**
 * A channel binding type (RFC 5056): `"tls-exporter"` (RFC 9266, TLS 1.3, and TLS 1.2 with the
 * extended master secret) or `"tls-unique"` (RFC 5929, TLS 1.2 only).
 */
export type ChannelBindingType = "tls-exporter" | "tls-unique";

/** Options of `conn.updateKeys()` / `engine.updateKeys()`. */
export interface UpdateKeysOptions {
  /**
   * Also ask the peer to update its sending keys (a KeyUpdate with `update_requested`, which the
   * peer answers with a KeyUpdate of its own). Default `false`: only this side's sending keys
   * change.
   */
  requestPeer?: boolean;
}

/** RFC 9266: the exporter label of `tls-exporter`; 32 bytes, no context. */
const TLS_EXPORTER_LABEL = "EXPORTER-Channel-Binding";
const TLS_EXPORTER_LENGTH = 32;
/**
 * The longest label: TLS 1.3's HkdfLabel holds "tls13 " + label in a 255-byte vector
 * (RFC 8446 7.1); TLS 1.2 has no limit but one rule for both keeps labels portable.
 */
const MAX_LABEL_BYTES = 249;
/** TLS 1.2's exporter puts the context length in 2 bytes (RFC 5705 4). */
const MAX_CONTEXT_BYTES = 0xffff;
/**
 * The most bytes one export may ask for. TLS 1.3's HKDF-Expand gives at most 255 hash lengths
 * (8160 bytes with SHA-256); OpenSSL refuses more, and so does this check for any protocol.
 */
const MAX_EXPORT_LENGTH = 255 * 32;
/** EVP_MAX_MD_SIZE: no Finished message is longer (TLS 1.3: the hash length; TLS 1.2: 12). */
const MAX_FINISHED = 64;

function isTls13(ssl: Pointer): boolean {
  return openssl().SSL_version(ssl) === TLS_VERSION.TLS1_3_VERSION;
}

/**
 * `SSL_export_keying_material(ssl, out, length, label, context)`: `length` bytes both sides of
 * this connection derive alike from its secrets, `label` and `context` (RFC 5705, RFC 8446 7.5).
 * In TLS 1.2, an absent `context` and an empty one give different bytes (RFC 5705: "no
 * context" is not "a context of length 0"); in TLS 1.3 they are the same.
 *
 * @throws {TypeError} for a label that is not a non-empty string, a context that is not a
 * `Uint8Array`, or a label OpenSSL refuses (TLS 1.2 reserves "client finished", "master
 * secret", ...); {@link RangeError} for a length outside 1..8160, a label over 249 bytes or a
 * context over 65535 bytes.
 */
export function exportKeyingMaterial(
  ssl: Pointer,
  length: number,
  label: string,
  context?: Uint8Array,
): Uint8Array {
  if (!Number.isSafeInteger(length) || length < 1 || length > MAX_EXPORT_LENGTH) {
    throw new RangeError(
      `length must be an integer from 1 to ${MAX_EXPORT_LENGTH}, got ${String(length)}`,
    );
  }
  if (typeof label !== "string" || label.length === 0) {
    throw new TypeError('label must be a non-empty string (e.g. "EXPORTER-my-protocol")');
  }
  const labelBytes = new TextEncoder().encode(label);
  if (labelBytes.length > MAX_LABEL_BYTES) {
    throw new RangeError(
      `label must be at most ${MAX_LABEL_BYTES} bytes, got ${labelBytes.length}`,
    );
  }
  if (context !== undefined && !(context instanceof Uint8Array)) {
    throw new TypeError("context must be a Uint8Array (or left out)");
  }
  if (context !== undefined && context.length > MAX_CONTEXT_BYTES) {
    throw new RangeError(`context must be at most ${MAX_CONTEXT_BYTES} bytes`);
  }
  const o = openssl();
  const out = new Uint8Array(length);
  clearErrorQueue();
  // An empty context goes as NULL with length 0 (Bun cannot pass an empty buffer); with
  // use_context = 1 OpenSSL still hashes "a context of length 0", as RFC 5705 wants.
  const ok = o.SSL_export_keying_material(
    ssl,
    out,
    length,
    labelBytes,
    labelBytes.length,
    context === undefined || context.length === 0 ? null : context,
    context?.length ?? 0,
    context === undefined ? 0 : 1,
  );
  if (ok !== 1) {
    const errors = drainErrorQueue();
    const why = errors.at(-1)?.reasonText ?? "unknown reason";
    throw new TypeError(`OpenSSL refused to export keying material for label "${label}": ${why}`);
  }
  return out;
}

/**
 * The last Finished message this side sent (`SSL_get_finished`) or, with `peer`, the last it
 * received (`SSL_get_peer_finished`): its verify_data. `null` when there is none.
 */
export function finishedOf(ssl: Pointer, peer: boolean): Uint8Array | null {
  const o = openssl();
  const buf = new Uint8Array(MAX_FINISHED);
  const n = peer
    ? o.SSL_get_peer_finished(ssl, buf, buf.length)
    : o.SSL_get_finished(ssl, buf, buf.length);
  return n <= 0 ? null : buf.slice(0, Math.min(n, buf.length));
}

/**
 * The channel binding `type` of the connection on `ssl` (a client or server, `resumed` when its
 * handshake resumed a session).
 *
 * - `"tls-exporter"` (RFC 9266): 32 bytes exported with label "EXPORTER-Channel-Binding" and no
 *   context. TLS 1.2 only when the handshake used the extended master secret (RFC 7627; OpenSSL
 *   negotiates it by default): without it the exporter is not unique to the connection.
 * - `"tls-unique"` (RFC 5929): the first Finished message of the latest handshake, which is the
 *   client's on a full handshake and the server's on a resumed one. TLS 1.2 only: RFC 8446 C.5
 *   leaves it undefined for TLS 1.3.
 *
 * @throws {TypeError} for an unknown type; {@link RangeError} when the type is not defined for
 * this connection (the message says why and what to use).
 */
export function channelBindingOf(
  ssl: Pointer,
  role: "client" | "server",
  resumed: boolean,
  type: ChannelBindingType,
): Uint8Array {
  if (type === "tls-exporter") {
    if (!isTls13(ssl) && openssl().SSL_get_extms_support(ssl) !== 1) {
      throw new RangeError(
        'channel binding "tls-exporter" on TLS 1.2 needs the extended master secret (RFC 9266 ' +
          "4.2), which this handshake did not use: the peer does not support it. Use TLS 1.3, " +
          'or "tls-unique"',
      );
    }
    return exportKeyingMaterial(ssl, TLS_EXPORTER_LENGTH, TLS_EXPORTER_LABEL);
  }
  if (type === "tls-unique") {
    if (isTls13(ssl)) {
      throw new RangeError(
        'channel binding "tls-unique" is not defined for TLS 1.3 (RFC 8446 C.5): use ' +
          '"tls-exporter"',
      );
    }
    // The first Finished of the handshake: the client's, unless the session was resumed (then
    // the server finishes first).
    const first = role === "client" ? !resumed : resumed;
    const bytes = finishedOf(ssl, !first);
    if (bytes === null) throw new TlsError("INTERNAL", "OpenSSL has no Finished message");
    return bytes;
  }
  throw new TypeError(
    `channel binding type must be "tls-exporter" or "tls-unique", got ${JSON.stringify(type)}`,
  );
}

/**
 * Queues a TLS 1.3 KeyUpdate on `ssl` (`SSL_key_update`): this side's sending keys change with
 * the next record it sends (the caller then drives OpenSSL to send it). With `requestPeer` the
 * peer is asked to update its own sending keys too.
 *
 * @throws {TypeError} for bad options; {@link RangeError} on TLS 1.2 (which has no KeyUpdate);
 * {@link TlsError} `INTERNAL` if OpenSSL refuses.
 */
export function queueKeyUpdate(ssl: Pointer, options: UpdateKeysOptions | undefined): void {
  if (options !== undefined && (typeof options !== "object" || options === null)) {
    throw new TypeError("options must be an object, e.g. { requestPeer: true }");
  }
  const requestPeer = options?.requestPeer ?? false;
  if (typeof requestPeer !== "boolean") throw new TypeError("requestPeer must be a boolean");
  if (!isTls13(ssl)) {
    throw new RangeError(
      "updateKeys() needs TLS 1.3: TLS 1.2 has no KeyUpdate (its keys change only with a " +
        "renegotiation, which this library refuses); reconnect for fresh keys",
    );
  }
  const o = openssl();
  clearErrorQueue();
  const type = requestPeer ? SSL_KEY_UPDATE.REQUESTED : SSL_KEY_UPDATE.NOT_REQUESTED;
  if (o.SSL_key_update(ssl, type) !== 1) {
    throw new TlsError("INTERNAL", "SSL_key_update failed", { openssl: drainErrorQueue() });
  }
}
