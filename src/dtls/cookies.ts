/**
 * Stateless DTLS cookies (RFC 6347 4.2.1): `DTLSv1_listen` answers a ClientHello without a valid
 * cookie with a HelloVerifyRequest and keeps nothing, so a spoofed source address costs the
 * server one HMAC and one small datagram, and allocates nothing.
 *
 * cookie = HMAC-SHA256(listener secret, time slot | peer address), 16 bytes: it verifies from the
 * same address during the current and the previous slot (one minute each). The callbacks are
 * process-wide (one trampoline per signature); the listener tells them the secret and the peer's
 * address per `SSL`, right before its synchronous `DTLSv1_listen` call.
 *
 * @module
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { COOKIE_GENERATE_CB, COOKIE_VERIFY_CB, openssl, type Pointer } from "../core/native.ts";
import { trampoline } from "../core/trampolines.ts";

const COOKIE_LENGTH = 16;
const SLOT_MS = 60_000;

/** A listener's cookie secret. */
export type CookieSecret = Uint8Array;

/** A fresh random secret for one listener. */
export function newCookieSecret(): CookieSecret {
  return new Uint8Array(randomBytes(32));
}

/**
 * The secret and peer address the cookie callbacks answer for, by `SSL` address: set by the
 * listener before each `DTLSv1_listen` call on its listening engine, and kept for a new session
 * until its handshake ends (the server's state machine checks the cookie of the buffered
 * ClientHello once more, inside `SSL_do_handshake`: SSL_OP_COOKIE_EXCHANGE).
 */
const peers = new Map<number, { secret: CookieSecret; peer: string }>();

/** The cookie callbacks answer for `peer` with `secret` on `ssl` from now on. */
export function setCookiePeer(ssl: Pointer, secret: CookieSecret, peer: string): void {
  peers.set(openssl().backend.address(ssl), { secret, peer });
}

/** Forgets `ssl` (its handshake ended, or it is freed). */
export function forgetCookiePeer(ssl: Pointer): void {
  peers.delete(openssl().backend.address(ssl));
}

function cookieFor(secret: CookieSecret, peer: string, slot: number): Uint8Array {
  return new Uint8Array(
    createHmac("sha256", secret).update(`${slot}|${peer}`).digest().subarray(0, COOKIE_LENGTH),
  );
}

function generate(ssl: Pointer, cookie: Pointer, cookieLength: Pointer): number {
  try {
    const current = peers.get(openssl().backend.address(ssl));
    if (current === undefined) return 0;
    const b = openssl().backend;
    const value = cookieFor(current.secret, current.peer, Math.floor(Date.now() / SLOT_MS));
    b.writeBytes(cookie, 0, value); // OpenSSL's buffer holds DTLS1_COOKIE_LENGTH (255) bytes
    b.writeI32(cookieLength, 0, value.length); // unsigned int
    return 1;
  } catch {
    return 0;
  }
}

function verify(ssl: Pointer, cookie: Pointer, length: number): number {
  try {
    const current = peers.get(openssl().backend.address(ssl));
    if (current === undefined || length !== COOKIE_LENGTH) return 0;
    const given = openssl().backend.readBytes(cookie, 0, length);
    const slot = Math.floor(Date.now() / SLOT_MS);
    for (const s of [slot, slot - 1]) {
      if (timingSafeEqual(given, cookieFor(current.secret, current.peer, s))) return 1;
    }
    return 0;
  } catch {
    return 0;
  }
}

/** Installs the cookie callbacks on a DTLS server context's `SSL_CTX`. */
export function installCookieCallbacks(ctx: Pointer): void {
  const o = openssl();
  o.SSL_CTX_set_cookie_generate_cb(ctx, trampoline(COOKIE_GENERATE_CB, generate as never));
  o.SSL_CTX_set_cookie_verify_cb(ctx, trampoline(COOKIE_VERIFY_CB, verify as never));
}
