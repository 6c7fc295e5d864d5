/**
 * Callback infrastructure: how a call from OpenSSL reaches the right connection and the user's
 * function, and how the user's errors and Promises come back.
 *
 * - Trampolines: one native callback per callback *kind* for the whole process, created on first
 *   use and never closed (so a fixed, small number; and no `UnsafeCallback.close()` can ever run
 *   inside a callback, which crashes Deno). Each finds its connection from the `SSL *` it is given.
 * - Per connection, a {@link CallbackState} runs the user's function inside try/catch: a throw is
 *   stored, the trampoline returns the failure code right for that callback, and the engine
 *   rethrows the stored error (as `cause`) once the OpenSSL call returns. JS exceptions never
 *   cross into C.
 * - Suspension: when the user's function returns a Promise, the trampoline returns the code that
 *   makes OpenSSL suspend (`-1` -> `SSL_ERROR_WANT_X509_LOOKUP`, `SSL_set_retry_verify` ->
 *   `SSL_ERROR_WANT_RETRY_VERIFY`, `SSL_CLIENT_HELLO_RETRY` -> `SSL_ERROR_WANT_CLIENT_HELLO_CB`).
 *   OpenSSL calls the callback again when the handshake resumes; the settled value is kept under a
 *   key, so the user's function runs once per key per handshake.
 *
 * @module
 */
import {
  ALPN_SELECT_CB,
  type CallbackSignature,
  CERT_CB,
  CLIENT_HELLO_CB,
  INFO_CB,
  KEYLOG_CB,
  NEW_SESSION_CB,
  openssl,
  type Pointer,
  PSK_CLIENT_CB,
  PSK_FIND_SESSION_CB,
  PSK_SERVER_CB,
  PSK_USE_SESSION_CB,
  SSL_TLSEXT_ERR,
  STATUS_CB,
  TICKET_KEY_CB,
  VERIFY_CB,
} from "./native.ts";
import type { NativeCallback } from "./native.ts";

/** What a connection implements to receive OpenSSL's callbacks. @internal */
export interface CallbackTarget {
  /** The connection's callback state (errors, suspensions). */
  readonly callbacks: CallbackState;
  /** `SSL_CTX_set_verify`'s callback for this connection. */
  onVerify(preverifyOk: number, storeCtx: Pointer): number;
  /** `SSL_CTX_set_cert_cb`'s callback for this connection. */
  onCert(): number;
  /** `SSL_CTX_set_client_hello_cb`'s callback for this connection. */
  onClientHello(): number;
  /**
   * `SSL_CTX_set_alpn_select_cb`'s callback: `offered` is the client's list in wire format;
   * returns the offset and length of the chosen name within it, or null for none.
   */
  onAlpnSelect(offered: Uint8Array): { offset: number; length: number } | null;
  /** `SSL_CTX_set_tlsext_status_cb`'s callback (OCSP: check a staple, or provide one). */
  onStatus(): number;
  /** `SSL_CTX_set_keylog_callback`'s callback: one key log line. */
  onKeylog(line: string): void;
  /** `SSL_CTX_set_info_callback`'s callback. */
  onInfo(where: number, ret: number): void;
  /**
   * TLS 1.3 clients (`SSL_CTX_set_psk_use_session_callback`): the PSK to offer, or null. `md` is
   * the hash the server's suite needs (after a HelloRetryRequest), else null.
   */
  onPskUseSession(md: Pointer | null): { id: Pointer; idLength: number; session: Pointer } | null;
  /** TLS 1.3 servers (`SSL_CTX_set_psk_find_session_callback`): the session for `identity`. */
  onPskFindSession(identity: Uint8Array): Pointer | null;
  /**
   * TLS 1.2 clients (`SSL_CTX_set_psk_client_callback`): identity and key, each checked against
   * the room OpenSSL gives (`maxIdentity` excludes the NUL); null: no PSK.
   */
  onPskClient(
    hint: string | null,
    maxIdentity: number,
    maxKey: number,
  ): { identity: Uint8Array; key: Uint8Array } | null;
  /** TLS 1.2 servers (`SSL_CTX_set_psk_server_callback`): the key for `identity`, or null. */
  onPskServer(identity: Uint8Array, maxKey: number): Uint8Array | null;
  /**
   * Clients (`SSL_CTX_sess_set_new_cb`): a new session (borrowed for the call: the trampoline
   * returns 0, so OpenSSL drops the reference it took for us).
   */
  onNewSession(session: Pointer): void;
  /**
   * Servers (`SSL_CTX_set_tlsext_ticket_key_evp_cb`): seal (`enc` 1) or open (`enc` 0) a
   * session ticket; returns the callback's result code.
   */
  onTicketKey(
    keyName: Pointer,
    iv: Pointer,
    cipherCtx: Pointer,
    hmacCtx: Pointer,
    enc: number,
  ): number;
}

// Weak: a connection a caller forgot to close can still be collected (its SSL is then freed by
// the FinalizationRegistry backstop, whose free function also unregisters it).
const targets = new Map<number, WeakRef<CallbackTarget>>();

/** Routes OpenSSL's callbacks for `ssl` to `target` until {@link unregisterSsl}. @internal */
export function registerSsl(ssl: Pointer, target: CallbackTarget): void {
  targets.set(openssl().backend.address(ssl), new WeakRef(target));
}

/** Stops routing callbacks for `ssl` (call just before `SSL_free`). @internal */
export function unregisterSsl(ssl: Pointer): void {
  targets.delete(openssl().backend.address(ssl));
}

/** How many SSL objects are registered for callbacks (tests use it to prove nothing leaks). */
export function registeredConnections(): number {
  return targets.size;
}

function targetOf(ssl: Pointer | null): CallbackTarget | undefined {
  return ssl === null ? undefined : targets.get(openssl().backend.address(ssl))?.deref();
}

let exDataIndex: number | undefined;

/** The SSL behind an X509_STORE_CTX during a handshake's verification. */
function sslOfStoreCtx(storeCtx: Pointer | null): Pointer | null {
  if (storeCtx === null) return null;
  const o = openssl();
  exDataIndex ??= o.SSL_get_ex_data_X509_STORE_CTX_idx();
  if (exDataIndex < 0) return null;
  return o.X509_STORE_CTX_get_ex_data(storeCtx, exDataIndex);
}

function lastResort(error: unknown): void {
  // Only reached if a trampoline itself threw (a bug in this file): it cannot be attributed to a
  // connection, so report it rather than lose it.
  queueMicrotask(() => {
    throw error;
  });
}

const trampolines = new Map<CallbackSignature, NativeCallback>();

/**
 * The process-wide native callback for `signature`, created on first use and never closed. `fn`
 * must not throw (wrap it); it is the only implementation for that signature. @internal
 */
export function trampoline(
  signature: CallbackSignature,
  fn: (...args: never[]) => unknown,
): Pointer {
  let cb = trampolines.get(signature);
  if (cb === undefined) {
    cb = openssl().backend.callback(signature, fn, signature.failure, lastResort);
    trampolines.set(signature, cb);
  }
  return cb.pointer;
}

/** The process-wide verify trampoline, for `SSL_CTX_set_verify`. @internal */
export function verifyTrampoline(): Pointer {
  return trampoline(VERIFY_CB, (preverifyOk: number, storeCtx: Pointer | null) => {
    const target = targetOf(sslOfStoreCtx(storeCtx));
    // Not one of ours (cannot happen: only our contexts use it): keep OpenSSL's verdict.
    if (target === undefined || storeCtx === null) return preverifyOk;
    return target.callbacks.run(
      VERIFY_CB.failure ?? 0,
      () => target.onVerify(preverifyOk, storeCtx),
    );
  });
}

/** The process-wide certificate trampoline, for `SSL_CTX_set_cert_cb`. @internal */
export function certTrampoline(): Pointer {
  return trampoline(CERT_CB, (ssl: Pointer | null) => {
    const target = targetOf(ssl);
    if (target === undefined) return 1;
    return target.callbacks.run(CERT_CB.failure ?? 0, () => target.onCert());
  });
}

/** The process-wide client-hello trampoline, for `SSL_CTX_set_client_hello_cb`. @internal */
export function clientHelloTrampoline(): Pointer {
  return trampoline(CLIENT_HELLO_CB, (ssl: Pointer | null) => {
    const target = targetOf(ssl);
    if (target === undefined) return 1;
    // On failure `*al` keeps OpenSSL's default, internal_error (80).
    return target.callbacks.run(CLIENT_HELLO_CB.failure ?? 0, () => target.onClientHello());
  });
}

/** The process-wide ALPN selection trampoline, for `SSL_CTX_set_alpn_select_cb`. @internal */
export function alpnSelectTrampoline(): Pointer {
  return trampoline(
    ALPN_SELECT_CB,
    (
      ssl: Pointer | null,
      out: Pointer | null,
      outlen: Pointer | null,
      input: Pointer | null,
      inlen: number,
    ) => {
      const target = targetOf(ssl);
      if (target === undefined || out === null || outlen === null || input === null) {
        return SSL_TLSEXT_ERR.NOACK;
      }
      return target.callbacks.run(ALPN_SELECT_CB.failure ?? SSL_TLSEXT_ERR.ALERT_FATAL, () => {
        const b = openssl().backend;
        const choice = target.onAlpnSelect(b.readBytes(input, 0, inlen));
        if (choice === null) return SSL_TLSEXT_ERR.ALERT_FATAL; // no_application_protocol (120)
        // *out must point into OpenSSL's own copy of the client's list (it is not copied), and
        // *outlen is an unsigned char.
        b.writePointer(out, 0, b.fromAddress(b.address(input) + choice.offset));
        b.writeBytes(outlen, 0, Uint8Array.of(choice.length));
        return SSL_TLSEXT_ERR.OK;
      });
    },
  );
}

/** The process-wide OCSP status trampoline, for `SSL_CTX_set_tlsext_status_cb`. @internal */
export function statusTrampoline(): Pointer {
  return trampoline(STATUS_CB, (ssl: Pointer | null) => {
    const target = targetOf(ssl);
    // Not ours: clients accept (OpenSSL's own behaviour), servers staple nothing (on a server
    // 1 would be SSL_TLSEXT_ERR_ALERT_WARNING, which OpenSSL treats as fatal).
    if (target === undefined) {
      return ssl !== null && openssl().SSL_is_server(ssl) === 1 ? SSL_TLSEXT_ERR.NOACK : 1;
    }
    return target.callbacks.run(STATUS_CB.failure ?? -1, () => target.onStatus());
  });
}

/** The process-wide key log trampoline, for `SSL_CTX_set_keylog_callback`. @internal */
export function keylogTrampoline(): Pointer {
  return trampoline(KEYLOG_CB, (ssl: Pointer | null, line: Pointer | null) => {
    const target = targetOf(ssl);
    if (target === undefined || line === null) return;
    const text = openssl().backend.readCString(line);
    // A void callback: a throw is stored and fails the connection after OpenSSL returns.
    target.callbacks.run(0, () => {
      target.onKeylog(text);
      return 0;
    });
  });
}

/** The process-wide info trampoline, for `SSL_CTX_set_info_callback`. @internal */
export function infoTrampoline(): Pointer {
  return trampoline(INFO_CB, (ssl: Pointer | null, where: number, ret: number) => {
    const target = targetOf(ssl);
    if (target === undefined) return;
    target.callbacks.run(0, () => {
      target.onInfo(where, ret);
      return 0;
    });
  });
}

/** A `size_t` as 8 little-endian bytes (LP64), for out-parameters. */
function sizeBytes(n: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(n), true);
  return out;
}

/** The bytes of the NUL-terminated string at `p`, without the NUL (at most `max` bytes read). */
function cStringBytes(p: Pointer, max: number): Uint8Array {
  const b = openssl().backend;
  // Read byte by byte: reading a block could run past the end of OpenSSL's allocation.
  const out: number[] = [];
  for (let i = 0; i < max; i++) {
    const byte = b.readBytes(p, i, 1)[0]!;
    if (byte === 0) break;
    out.push(byte);
  }
  return Uint8Array.from(out);
}

/** The process-wide TLS 1.3 client PSK trampoline (`SSL_CTX_set_psk_use_session_callback`). */
export function pskUseSessionTrampoline(): Pointer {
  return trampoline(
    PSK_USE_SESSION_CB,
    (
      ssl: Pointer | null,
      md: Pointer | null,
      id: Pointer | null,
      idlen: Pointer | null,
      sess: Pointer | null,
    ) => {
      const target = targetOf(ssl);
      if (target === undefined || id === null || idlen === null || sess === null) return 1;
      return target.callbacks.run(PSK_USE_SESSION_CB.failure ?? 0, () => {
        const b = openssl().backend;
        const psk = target.onPskUseSession(md);
        // *sess NULL (and 1): "no PSK", the handshake goes on without one.
        b.writePointer(sess, 0, psk?.session ?? null);
        if (psk !== null) {
          b.writePointer(id, 0, psk.id);
          b.writeBytes(idlen, 0, sizeBytes(psk.idLength));
        }
        return 1;
      });
    },
  );
}

/** The process-wide TLS 1.3 server PSK trampoline (`SSL_CTX_set_psk_find_session_callback`). */
export function pskFindSessionTrampoline(): Pointer {
  return trampoline(
    PSK_FIND_SESSION_CB,
    (
      ssl: Pointer | null,
      identity: Pointer | null,
      identityLength: number | bigint,
      sess: Pointer | null,
    ) => {
      const target = targetOf(ssl);
      if (target === undefined || sess === null) return 1;
      return target.callbacks.run(PSK_FIND_SESSION_CB.failure ?? 0, () => {
        const b = openssl().backend;
        const length = Number(identityLength);
        const bytes = identity === null || length === 0
          ? new Uint8Array(0)
          : b.readBytes(identity, 0, length);
        b.writePointer(sess, 0, target.onPskFindSession(bytes));
        return 1;
      });
    },
  );
}

/** The process-wide TLS 1.2 client PSK trampoline (`SSL_CTX_set_psk_client_callback`). */
export function pskClientTrampoline(): Pointer {
  return trampoline(
    PSK_CLIENT_CB,
    (
      ssl: Pointer | null,
      hint: Pointer | null,
      identity: Pointer | null,
      maxIdentity: number,
      psk: Pointer | null,
      maxPsk: number,
    ) => {
      const target = targetOf(ssl);
      if (target === undefined || identity === null || psk === null) return 0;
      return target.callbacks.run(PSK_CLIENT_CB.failure ?? 0, () => {
        const b = openssl().backend;
        const hintText = hint === null ? null : b.readCString(hint);
        // max_identity_len excludes the NUL OpenSSL left room for (its buffer is one larger).
        const chosen = target.onPskClient(hintText, maxIdentity, maxPsk);
        if (chosen === null) return 0;
        // Never write past OpenSSL's buffers (the engine checked too, with a clearer message).
        if (chosen.identity.length > maxIdentity || chosen.key.length > maxPsk) {
          throw new RangeError("the PSK identity or key does not fit OpenSSL's buffer");
        }
        b.writeBytes(identity, 0, chosen.identity);
        b.writeBytes(identity, chosen.identity.length, Uint8Array.of(0));
        b.writeBytes(psk, 0, chosen.key);
        return chosen.key.length;
      });
    },
  );
}

/** The process-wide TLS 1.2 server PSK trampoline (`SSL_CTX_set_psk_server_callback`). */
export function pskServerTrampoline(): Pointer {
  return trampoline(
    PSK_SERVER_CB,
    (ssl: Pointer | null, identity: Pointer | null, psk: Pointer | null, maxPsk: number) => {
      const target = targetOf(ssl);
      if (target === undefined || identity === null || psk === null) return 0;
      return target.callbacks.run(PSK_SERVER_CB.failure ?? 0, () => {
        const key = target.onPskServer(cStringBytes(identity, 65_536), maxPsk);
        if (key === null) return 0; // unknown_psk_identity (115)
        if (key.length > maxPsk) throw new RangeError("the PSK does not fit OpenSSL's buffer");
        openssl().backend.writeBytes(psk, 0, key);
        return key.length;
      });
    },
  );
}

/** The process-wide new-session trampoline, for `SSL_CTX_sess_set_new_cb`. @internal */
export function newSessionTrampoline(): Pointer {
  return trampoline(NEW_SESSION_CB, (ssl: Pointer | null, session: Pointer | null) => {
    const target = targetOf(ssl);
    if (target === undefined || session === null) return 0;
    // Always 0: the engine serialises the session during the call and keeps no pointer, so
    // OpenSSL releases the reference it took on our behalf.
    target.callbacks.run(0, () => {
      target.onNewSession(session);
      return 0;
    });
    return 0;
  });
}

/**
 * The process-wide session ticket key trampoline, for `SSL_CTX_set_tlsext_ticket_key_evp_cb`.
 * @internal
 */
export function ticketKeyTrampoline(): Pointer {
  return trampoline(
    TICKET_KEY_CB,
    (
      ssl: Pointer | null,
      keyName: Pointer | null,
      iv: Pointer | null,
      cipherCtx: Pointer | null,
      hmacCtx: Pointer | null,
      enc: number,
    ) => {
      const target = targetOf(ssl);
      // Not ours (cannot happen): 0 = no ticket / cannot open it, a full handshake.
      if (
        target === undefined || keyName === null || iv === null || cipherCtx === null ||
        hmacCtx === null
      ) {
        return 0;
      }
      return target.callbacks.run(
        TICKET_KEY_CB.failure ?? 0,
        () => target.onTicketKey(keyName, iv, cipherCtx, hmacCtx, enc),
      );
    },
  );
}

/** The outcome of {@link CallbackState.settle}. */
export type Settled<T> = { readonly done: true; readonly value: T } | { readonly done: false };

interface Slot {
  settled: boolean;
  ok: boolean;
  value: unknown;
  error: unknown;
  promise: Promise<void>;
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof v === "object" && v !== null &&
    typeof (v as { then?: unknown }).then === "function";
}

/**
 * A connection's callback bookkeeping: the first error a user callback raised, and the user
 * Promises the handshake is suspended on.
 *
 * @example
 * ```ts
 * import { CallbackState } from "./callbacks.ts";
 * const state = new CallbackState();
 * const code = state.run(0, () => { throw new Error("boom"); }); // 0, error kept
 * console.log(code, state.takeError()); // 0 Error: boom
 * ```
 */
export class CallbackState {
  #error: { value: unknown } | undefined;
  #slots = new Map<string, Slot>();

  /**
   * Runs `fn`; if it throws, keeps the (first) error and returns `failure` instead. Used by every
   * trampoline so that no JS exception crosses into C.
   */
  run(failure: number, fn: () => number): number {
    try {
      return fn();
    } catch (error) {
      this.fail(error);
      return failure;
    }
  }

  /** Records a callback failure (the first one wins). */
  fail(error: unknown): void {
    this.#error ??= { value: error };
  }

  /** Whether a callback failed since the last {@link takeError}. */
  get failed(): boolean {
    return this.#error !== undefined;
  }

  /** Returns and clears the stored callback error (`undefined` if none). */
  takeError(): unknown {
    const e = this.#error;
    this.#error = undefined;
    return e?.value;
  }

  /**
   * Calls `start` once per `key` per handshake. A plain value is returned at once. A Promise
   * suspends: `{ done: false }` until it settles, then its value (a rejection is thrown, to be
   * caught by {@link run}).
   */
  settle<T>(key: string, start: () => T | Promise<T>): Settled<T> {
    const slot = this.#slots.get(key);
    if (slot !== undefined) {
      if (!slot.settled) return { done: false };
      if (!slot.ok) throw slot.error;
      return { done: true, value: slot.value as T };
    }
    const result = start();
    if (!isThenable(result)) {
      this.#slots.set(key, {
        settled: true,
        ok: true,
        value: result,
        error: undefined,
        promise: Promise.resolve(),
      });
      return { done: true, value: result };
    }
    const fresh: Slot = {
      settled: false,
      ok: false,
      value: undefined,
      error: undefined,
      promise: Promise.resolve(),
    };
    fresh.promise = Promise.resolve(result).then(
      (value) => {
        fresh.settled = true;
        fresh.ok = true;
        fresh.value = value;
      },
      (error) => {
        fresh.settled = true;
        fresh.error = error;
      },
    );
    this.#slots.set(key, fresh);
    return { done: false };
  }

  /** A Promise that resolves (never rejects) once every pending callback settled, or `null`. */
  pending(): Promise<void> | null {
    const waiting = [...this.#slots.values()].filter((s) => !s.settled).map((s) => s.promise);
    return waiting.length === 0 ? null : Promise.all(waiting).then(() => undefined);
  }

  /** Forgets settled values (at the end of a handshake). */
  reset(): void {
    this.#slots.clear();
  }
}
