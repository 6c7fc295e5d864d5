/**
 * Watching a handshake: `onHandshakeEvent` (OpenSSL's info callback: states, alerts, start and
 * end) and key logging (`onKeylog`, and the `SSLKEYLOGFILE` environment variable), for debugging
 * and for decrypting captures in Wireshark.
 *
 * @module
 */
import { appendFileSync } from "node:fs";
import { alertName } from "../core/errors.ts";
import {
  INFO_CB,
  KEYLOG_CB,
  openssl,
  type Pointer,
  SSL_CB,
  SSL_KEY_UPDATE,
} from "../core/native.ts";
import type { Feature, Link, SchemaOf } from "./feature.ts";
import { routedCallback } from "./routing.ts";

/** One step of a handshake, from OpenSSL's info callback (`SSL_CTX_set_info_callback`). */
export interface HandshakeEvent {
  /**
   * `"start"` / `"done"`: a handshake begins / completes; `"loop"`: a state change;
   * `"exit"`: a handshake function returned (also while waiting for data); `"alert"`: an alert
   * was sent or received; `"keyUpdate"`: a TLS 1.3 KeyUpdate was sent or read (see
   * {@link HandshakeEvent.keyUpdate}; OpenSSL reports it as a state change, which this event
   * replaces).
   */
  readonly type: "start" | "loop" | "exit" | "done" | "alert" | "keyUpdate";
  /** OpenSSL's short state name (`SSL_state_string`), e.g. `"TRSH"`. */
  readonly state: string;
  /** OpenSSL's long state name (`SSL_state_string_long`), e.g. `"SSLv3/TLS read server hello"`. */
  readonly stateLong: string;
  /** For `"alert"` events. */
  readonly alert?: {
    /** `"warning"` or `"fatal"`. */
    readonly level: string;
    /** The alert number, e.g. 48 (unknown_ca). */
    readonly code: number;
    /** e.g. `"unknown CA"`. */
    readonly description: string;
    /** `true` if we sent it, `false` if the peer did. */
    readonly sent: boolean;
  };
  /**
   * For `"keyUpdate"` events (TLS 1.3, after the handshake; states `TWCKU` / `TWSKU` written,
   * `TRCKU` / `TRSKU` read). A peer's KeyUpdate changed the keys its records are read with; one
   * sent changed this side's sending keys. A peer's KeyUpdate that requested an update is
   * answered as soon as it is read (by the read that needs more input after it): an event with
   * `sent: true, requestPeer: false` follows it.
   */
  readonly keyUpdate?: {
    /**
     * `true`: this side sent it (`updateKeys()`, or the answer to a peer's request); `false`:
     * the peer's was read.
     */
    readonly sent: boolean;
    /** For sent ones: whether it asks the peer to update its keys too (`update_requested`). */
    readonly requestPeer?: boolean;
  };
}

/**
 * Per connection (while it has `onHandshakeEvent`): the type of the KeyUpdate OpenSSL is about to
 * send (`SSL_get_key_update_type`), seen at the state change before the one that sends it.
 */
const pendingKeyUpdate = new WeakMap<Link, number>();
/** Per connection (while it has `onHandshakeEvent`): the state of its last "loop" report. */
const lastLoopState = new WeakMap<Link, string>();

/** OpenSSL's short state names of a KeyUpdate being written / read (`SSL_state_string`). */
const KEY_UPDATE_WRITTEN = new Set(["TWCKU", "TWSKU"]);
const KEY_UPDATE_READ = new Set(["TRCKU", "TRSKU"]);

/** Tracing options of both sides. */
export interface TraceOptions {
  /**
   * Handshake tracing: called for every state change, alert, start and end of a handshake, with
   * OpenSSL's own state names. Synchronous; a throw fails the connection.
   */
  onHandshakeEvent?: (event: HandshakeEvent) => void;
  /**
   * Key logging: called with every NSS key log line (`CLIENT_TRAFFIC_SECRET_0 ...`), so a capture
   * can be decrypted (Wireshark). Independently of this option, when the environment variable
   * `SSLKEYLOGFILE` is set (and readable: Deno needs `--allow-env`), lines are appended to that
   * file. Off otherwise. Anyone with these lines can read the traffic: debugging only.
   */
  onKeylog?: (line: string) => void;
}

/** Per context: `SSLKEYLOGFILE` as it was when the context was made. */
interface TraceContextState {
  readonly keylogFile: string | undefined;
}

function onInfo(link: Link, _ssl: Pointer | null, where: number, ret: number): void {
  const handler = (link.options as TraceOptions).onHandshakeEvent;
  if (handler === undefined) return;
  const o = openssl();
  const text = (p: Pointer | null) => (p === null ? "" : o.backend.readCString(p));
  const base = {
    state: text(o.SSL_state_string(link.ssl)),
    stateLong: text(o.SSL_state_string_long(link.ssl)),
  };
  let event: HandshakeEvent;
  if ((where & SSL_CB.ALERT) !== 0) {
    // For alerts, ret = (level << 8) | description.
    event = {
      type: "alert",
      ...base,
      alert: {
        level: text(o.SSL_alert_type_string_long(ret)),
        code: ret & 0xff,
        description: alertName(ret & 0xff, text(o.SSL_alert_desc_string_long(ret))),
        sent: (where & SSL_CB.WRITE) !== 0,
      },
    };
  } else if ((where & SSL_CB.HANDSHAKE_START) !== 0) {
    event = { type: "start", ...base };
  } else if ((where & SSL_CB.HANDSHAKE_DONE) !== 0) {
    event = { type: "done", ...base };
  } else if ((where & SSL_CB.LOOP) !== 0) {
    // One KeyUpdate is one event even if a release reports its state twice in a row (as it
    // enters the state and as it leaves it): consecutive reports of the same state are one.
    const repeated = lastLoopState.get(link) === base.state;
    lastLoopState.set(link, base.state);
    if (KEY_UPDATE_READ.has(base.state) && !repeated) {
      // Reported as the message is read, before OpenSSL processes it: whether it requests an
      // update shows as the KeyUpdate OpenSSL sends in answer.
      event = { type: "keyUpdate", ...base, keyUpdate: { sent: false } };
    } else if (KEY_UPDATE_WRITTEN.has(base.state) && !repeated) {
      // Reported once the message is written (OpenSSL 3.0), when OpenSSL no longer says which
      // type it was: the type pending at the state change before it is the one that was sent.
      const requestPeer = pendingKeyUpdate.get(link) === SSL_KEY_UPDATE.REQUESTED;
      pendingKeyUpdate.delete(link);
      event = { type: "keyUpdate", ...base, keyUpdate: { sent: true, requestPeer } };
    } else {
      // Before OpenSSL moves on to write a KeyUpdate, its type is still pending: remember it.
      const pending = o.SSL_get_key_update_type(link.ssl);
      if (pending !== SSL_KEY_UPDATE.NONE) pendingKeyUpdate.set(link, pending);
      event = { type: "loop", ...base };
    }
  } else if ((where & SSL_CB.EXIT) !== 0) {
    event = { type: "exit", ...base };
  } else {
    return;
  }
  handler(event);
}

function onKeylog(link: Link, _ssl: Pointer | null, line: Pointer | null): void {
  if (line === null) return;
  const text = openssl().backend.readCString(line);
  const file = link.contextStateOf(trace).keylogFile;
  // NSS key log format: one line per secret. Created private (0600); appended, never truncated.
  if (file !== undefined) appendFileSync(file, `${text}\n`, { mode: 0o600 });
  (link.options as TraceOptions).onKeylog?.(text);
}

/** `onHandshakeEvent`, `onKeylog` and `SSLKEYLOGFILE`. */
export const trace: Feature<TraceOptions, TraceContextState> = {
  name: "trace and keylog",
  options: {
    onHandshakeEvent: { role: "both", scope: "context" },
    onKeylog: { role: "both", scope: "context" },
  } satisfies SchemaOf<TraceOptions, TraceOptions>,
  validate(_role, { onHandshakeEvent, onKeylog }) {
    if (onHandshakeEvent !== undefined && typeof onHandshakeEvent !== "function") {
      throw new TypeError("onHandshakeEvent must be a function");
    }
    if (onKeylog !== undefined && typeof onKeylog !== "function") {
      throw new TypeError("onKeylog must be a function");
    }
  },
  contextState() {
    const file = openssl().backend.env("SSLKEYLOGFILE"); // never prompts (Deno: queried)
    return { keylogFile: file === undefined || file === "" ? undefined : file };
  },
  configure({ ctx, options, stateOf }) {
    const o = openssl();
    if (options.onHandshakeEvent !== undefined) {
      o.SSL_CTX_set_info_callback(ctx, routedCallback(INFO_CB, onInfo));
    }
    if (options.onKeylog !== undefined || stateOf(trace).keylogFile !== undefined) {
      o.SSL_CTX_set_keylog_callback(ctx, routedCallback(KEYLOG_CB, onKeylog));
    }
  },
};
