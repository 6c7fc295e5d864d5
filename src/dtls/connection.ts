/**
 * `DtlsConnection`: a {@link TlsEngine} over a `DTLS_method` context, driven one datagram at a
 * time, with OpenSSL's retransmission timer run on the runtime's timers.
 *
 * Input: DTLS reads one "packet" per `BIO_read`, and from a memory BIO that is everything the BIO
 * holds. So each datagram goes into the read BIO alone, once the engine has taken the previous
 * one (a `want-read` step or a read of 0): a garbage datagram is then discarded alone and never
 * spoils the next. Output: cut back into datagrams at record boundaries (`records.ts`).
 *
 * @module
 */
import { Deadline } from "../core/deadline.ts";
import { TlsError } from "../core/errors.ts";
import { openssl } from "../core/native.ts";
import { unrefTimer } from "../core/timers.ts";
import { messageOf } from "../core/values.ts";
import type { HandshakeInfo } from "../connection/connection.ts";
import {
  copyPeerCertificates,
  NO_PEER,
  type PeerCertificates,
} from "../connection/peer_certificates.ts";
import type { Certificate } from "../x509/certificate.ts";
import type { UdpAddr } from "../net/udp.ts";
import type { TlsContext } from "../tls/context.ts";
import type { TlsEngine } from "../tls/engine.ts";
import { packRecords } from "./records.ts";
import { srtpOf, type SrtpProfile, type SrtpResult } from "./srtp.ts";
import { exportKeyingMaterial } from "../handshake/keying.ts";

/** The largest UDP payload: a DTLS record's plaintext is at most 2^14 bytes anyway. */
const READ_BUFFER_SIZE = 16 * 1024 + 2048;

/** How a connection sends its datagrams, and what closing it releases. */
export interface DatagramLink {
  /** Sends one datagram to the peer. */
  send(datagram: Uint8Array): void;
  /**
   * Releases the transport (the client's socket; a server's slot in its listener); resolves
   * once what was sent is handed to the OS.
   */
  release(): Promise<void> | void;
  /** Local address. */
  readonly localAddr: UdpAddr;
  /** The peer's address. */
  readonly remoteAddr: UdpAddr;
}

/** @internal What a {@link DtlsConnection} is made of (see `connect.ts`, `listen.ts`). */
export interface DtlsConnectionParts {
  readonly engine: TlsEngine;
  readonly link: DatagramLink;
  /** The context, when the connection owns it (clients). */
  readonly ownedContext: TlsContext | null;
  /** UDP payload size limit, bytes. */
  readonly mtu: number;
  /** Milliseconds without a datagram either way before closing; 0: none. */
  readonly idleTimeout: number;
}

interface Waiter {
  resolve(datagram: Uint8Array | null): void;
  reject(error: unknown): void;
}

/**
 * One DTLS association: datagrams in both directions, each one record. Made by
 * {@link connectDtls} (clients) and by a {@link DtlsListener} (servers).
 *
 * @example
 * ```ts
 * import { readFileSync } from "node:fs";
 * import { connectDtls } from "../../mod.ts";
 * const caPem = readFileSync("ca.pem", "utf8");
 * await using conn = await connectDtls({ hostname: "localhost", port: 4433, caCerts: [caPem] });
 * conn.send(new TextEncoder().encode("ping"));
 * const reply = await conn.receive(); // one whole datagram, or null after close_notify
 * console.log(conn.protocol, reply && new TextDecoder().decode(reply));
 * ```
 */
export class DtlsConnection {
  #engine: TlsEngine;
  #link: DatagramLink;
  #ownedContext: TlsContext | null;
  #mtu: number;
  #idleMs: number;
  #idleTimer: ReturnType<typeof setTimeout> | undefined;
  #lastActivity = 0;
  #retransmitTimer: ReturnType<typeof setTimeout> | undefined;
  /** Datagrams that arrived while the engine still had input (or a callback pending). */
  #inbox: Uint8Array[] = [];
  /** Whether the read BIO holds input the engine has not finished with. */
  #fed = false;
  #suspended = false;
  #buffer = new Uint8Array(READ_BUFFER_SIZE);
  #received: Uint8Array[] = [];
  #waiters: Waiter[] = [];
  #receivedCloseNotify = false;
  #info: HandshakeInfo | null = null;
  /** The peer's certificates: `undefined` until read (see #peerCertificates). */
  #peer: PeerCertificates | undefined = undefined;
  #maxDatagramSize = 0;
  #srtp: SrtpResult | null = null;
  /** Inside `DTLSv1_handle_timeout` (user callbacks may run there). */
  #inTimeoutCall = false;
  #error: TlsError | null = null;
  #closed = false;
  #handshakeDone: Promise<void>;
  #resolveHandshake: () => void = () => {};
  #rejectHandshake: (error: unknown) => void = () => {};

  /** @internal Made by `connectDtls()` and `listenDtls()`. */
  constructor(parts: DtlsConnectionParts) {
    this.#engine = parts.engine;
    this.#link = parts.link;
    this.#ownedContext = parts.ownedContext;
    this.#mtu = parts.mtu;
    this.#idleMs = parts.idleTimeout;
    this.#handshakeDone = new Promise<void>((resolve, reject) => {
      this.#resolveHandshake = resolve;
      this.#rejectHandshake = reject;
    });
    this.#handshakeDone.catch(() => {}); // observed by handshake(); never unhandled
  }

  // ---- driving the engine ---------------------------------------------------------------------

  /**
   * @internal Runs the handshake to its end (the client's first flight goes out at once), within
   * `deadline`, which it then disposes. On failure everything is released.
   */
  async handshake(deadline: Deadline): Promise<void> {
    deadline.onInterrupt = () => this.#fail(deadline.error!);
    try {
      this.#process();
      await this.#handshakeDone;
    } finally {
      deadline.dispose();
    }
    if (this.#idleMs > 0) this.#touch();
  }

  /** @internal A datagram from the peer. */
  deliver(datagram: Uint8Array): void {
    if (this.#closed) return;
    this.#touch();
    this.#inbox.push(datagram);
    if (!this.#fed && !this.#suspended) this.#process();
  }

  /**
   * Steps the engine until it needs another datagram (feeding queued ones one at a time), then
   * sends what it produced and arms the retransmission timer.
   */
  #process(): void {
    const engine = this.#engine;
    try {
      while (!this.#closed && !this.#suspended) {
        if (!engine.handshakeDone) {
          const step = engine.handshake();
          if (step.status === "suspended") {
            this.#suspended = true;
            step.until.then(() => {
              this.#suspended = false;
              this.#process();
            });
            break;
          }
          if (step.status === "want-read") {
            if (!this.#feed()) break;
            continue;
          }
          this.#established();
          continue;
        }
        if (this.#receivedCloseNotify) {
          this.#inbox.length = 0;
          break;
        }
        const n = engine.read(this.#buffer);
        if (n === null) {
          this.#receivedCloseNotify = true;
          this.#settleWaiters();
          continue;
        }
        if (n > 0) {
          this.#received.push(this.#buffer.slice(0, n));
          this.#settleWaiters();
          continue;
        }
        if (!this.#feed()) break;
      }
      this.#flush();
      this.#armRetransmit();
    } catch (error) {
      this.#flush(); // the alert, if OpenSSL wrote one
      this.#fail(
        error instanceof TlsError
          ? error
          : new TlsError("INTERNAL", messageOf(error), { cause: error }),
      );
    }
  }

  /** Puts the next queued datagram into the (drained) read BIO; false when none is queued. */
  #feed(): boolean {
    this.#fed = false;
    const next = this.#inbox.shift();
    if (next === undefined) return false;
    this.#engine.receive(next);
    this.#fed = true;
    return true;
  }

  #established(): void {
    const e = this.#engine;
    // The peer's certificates stay in OpenSSL until they are asked for, as on a TLS connection
    // (src/connection/peer_certificates.ts); #release takes them before the SSL goes away.
    const peer = () => this.#peerCertificates();
    this.#info = Object.freeze({
      protocol: e.protocol,
      cipher: e.cipher,
      alpnProtocol: e.alpnProtocol,
      group: e.group,
      get peerCertificate(): Certificate | null {
        return peer().leaf;
      },
      get peerCertificateChain(): readonly Certificate[] {
        return peer().chain;
      },
      sessionReused: e.sessionReused,
      servername: e.servername ?? null,
      ocspResponse: e.ocspResponse,
      pskIdentity: e.pskIdentity,
    });
    // The plaintext one record of the negotiated cipher carries within the MTU.
    this.#maxDatagramSize = openssl().DTLS_get_data_mtu(e.dtlsSsl);
    this.#srtp = srtpOf(e.dtlsSsl);
    this.#resolveHandshake();
  }

  /** Sends the engine's output, cut into datagrams of whole records. */
  #flush(): void {
    if (this.#engine.closed) return;
    const out = this.#engine.outgoing();
    if (out === null) return;
    let datagrams: Uint8Array[];
    try {
      datagrams = packRecords(out, this.#mtu);
    } catch (error) {
      this.#fail(error as TlsError); // NOT_SUPPORTED: a DTLS 1.3 record; nothing is sent
      throw error;
    }
    for (const datagram of datagrams) this.#link.send(datagram);
  }

  /** Arms a timer for OpenSSL's retransmission timer (`DTLSv1_get_timeout`), if one runs. */
  #armRetransmit(): void {
    clearTimeout(this.#retransmitTimer);
    this.#retransmitTimer = undefined;
    if (this.#closed) return;
    const ms = openssl().DTLSv1_get_timeout(this.#engine.dtlsSsl);
    if (ms < 0) return;
    this.#retransmitTimer = unrefTimer(setTimeout(() => this.#onRetransmit(), ms));
  }

  #onRetransmit(): void {
    this.#retransmitTimer = undefined;
    if (this.#closed) return;
    // Resends the last flight into the write BIO (-1: too many retransmissions; OpenSSL gives
    // up after 12 by default; the handshake timeout usually comes first). Outside the engine's
    // call path: a close() from a callback in there (onHandshakeEvent) waits until it returns.
    let r: number;
    this.#inTimeoutCall = true;
    try {
      r = openssl().DTLSv1_handle_timeout(this.#engine.dtlsSsl);
    } finally {
      this.#inTimeoutCall = false;
    }
    if (this.#closed) {
      this.#engine.close(); // deferred by #release
      return;
    }
    if (r < 0) {
      this.#fail(
        new TlsError("TIMEOUT", "the DTLS peer stopped answering (retransmissions exhausted)"),
      );
      return;
    }
    this.#flush();
    this.#armRetransmit();
  }

  /** Notes activity and (re)arms the idle timer. */
  #touch(): void {
    if (this.#idleMs <= 0 || this.#closed) return;
    this.#lastActivity = Date.now();
    if (this.#idleTimer !== undefined) return;
    const check = () => {
      const idle = Date.now() - this.#lastActivity;
      if (idle >= this.#idleMs) {
        this.#idleTimer = undefined;
        void this.#close(new TlsError("TIMEOUT", `no datagram for ${this.#idleMs} ms: closed`));
        return;
      }
      this.#idleTimer = unrefTimer(setTimeout(check, this.#idleMs - idle));
    };
    this.#idleTimer = unrefTimer(setTimeout(check, this.#idleMs));
  }

  #settleWaiters(): void {
    while (this.#waiters.length > 0) {
      const next = this.#received.shift();
      if (next !== undefined) this.#waiters.shift()!.resolve(next);
      else if (this.#receivedCloseNotify) this.#waiters.shift()!.resolve(null);
      else if (this.#error !== null) this.#waiters.shift()!.reject(this.#error);
      else return;
    }
  }

  /** Fails the connection for good: pending and later calls reject with `error`. */
  #fail(error: TlsError): void {
    if (this.#closed) return;
    this.#error ??= error;
    this.#rejectHandshake(error);
    this.#release();
    this.#settleWaiters();
  }

  /**
   * @internal Ends the association without a close_notify, as if the peer had vanished: its
   * listener saw the client restart from the same address (RFC 6347 4.2.8), and an alert under
   * the old keys would only reach the new client. Pending and later calls reject with `error`.
   */
  abandon(error: TlsError): void {
    this.#fail(error);
  }

  #released: Promise<void> | void = undefined;

  /** The peer's certificates, copied out of OpenSSL on first use (see #established). */
  #peerCertificates(): PeerCertificates {
    // After #release (which took them): not reached.
    return this.#peer ??= this.#engine.closed ? NO_PEER : copyPeerCertificates(this.#engine);
  }

  #release(): void {
    if (this.#closed) return;
    if (this.#info !== null) {
      // The SSL goes away: take the peer's certificates now (they outlive close()).
      try {
        this.#peerCertificates();
      } catch {
        this.#peer ??= NO_PEER;
      }
    }
    this.#closed = true;
    clearTimeout(this.#retransmitTimer);
    clearTimeout(this.#idleTimer);
    this.#inbox.length = 0;
    if (!this.#inTimeoutCall) this.#engine.close(); // else once DTLSv1_handle_timeout returned
    this.#ownedContext?.close();
    this.#released = this.#link.release();
  }

  // ---- datagrams ------------------------------------------------------------------------------

  /**
   * Sends `datagram` as one DTLS record (one UDP datagram). UDP semantics: it may be lost,
   * duplicated or reordered (DTLS drops duplicates and forgeries, not losses).
   *
   * @throws {RangeError} when `datagram` is longer than {@link maxDatagramSize}.
   * @throws {TlsError} `CLOSED` after {@link close}, or the error that ended the connection.
   */
  send(datagram: Uint8Array): void {
    if (!(datagram instanceof Uint8Array)) throw new TypeError("datagram must be a Uint8Array");
    if (this.#error !== null) throw this.#error;
    if (this.#closed) throw new TlsError("CLOSED", "the DTLS connection is closed");
    if (this.#info === null) throw new TypeError("send() before the handshake is done");
    if (datagram.length > this.#maxDatagramSize) {
      throw new RangeError(
        `datagram of ${datagram.length} bytes exceeds maxDatagramSize (${this.#maxDatagramSize} ` +
          `bytes with mtu ${this.#mtu}): split it, or raise mtu if the path allows`,
      );
    }
    if (datagram.length === 0) return;
    try {
      this.#engine.write(datagram);
    } catch (error) {
      this.#flush();
      if (error instanceof TlsError) this.#fail(error);
      throw error;
    }
    this.#touch();
    this.#flush();
  }

  /**
   * The next datagram from the peer (whole, as it was sent), or `null` once the peer closed
   * (close_notify).
   *
   * @throws {TlsError} `CLOSED` after {@link close}; `TIMEOUT` after the idle timeout;
   * `ALERT_RECEIVED` when the peer ended with a fatal alert.
   */
  receive(): Promise<Uint8Array | null> {
    const next = this.#received.shift();
    if (next !== undefined) return Promise.resolve(next);
    if (this.#receivedCloseNotify) return Promise.resolve(null);
    if (this.#error !== null) return Promise.reject(this.#error);
    if (this.#closed) {
      return Promise.reject(new TlsError("CLOSED", "the DTLS connection is closed"));
    }
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /**
   * The largest datagram {@link send} takes: what one record of the negotiated cipher carries
   * within the MTU (`DTLS_get_data_mtu`), e.g. 1,163 bytes with AES-GCM and `mtu` 1200.
   */
  get maxDatagramSize(): number {
    return this.#maxDatagramSize;
  }

  // ---- what was negotiated --------------------------------------------------------------------

  #infoOrThrow(): HandshakeInfo {
    if (this.#info === null) throw new TypeError("the DTLS handshake is not done yet");
    return this.#info;
  }

  /** The negotiated protocol, e.g. `"DTLSv1.2"`. */
  get protocol(): string {
    return this.#infoOrThrow().protocol;
  }

  /** The negotiated cipher suite, e.g. `"ECDHE-RSA-AES128-GCM-SHA256"`. */
  get cipher(): string {
    return this.#infoOrThrow().cipher;
  }

  /** The key exchange group used, or `null` (a plain PSK handshake). */
  get group(): string | null {
    return this.#infoOrThrow().group;
  }

  /** The ALPN protocol agreed on, or `null`. */
  get alpnProtocol(): string | null {
    return this.#infoOrThrow().alpnProtocol;
  }

  /** The peer's certificate, or `null` (a PSK handshake, a client that sent none). */
  get peerCertificate(): HandshakeInfo["peerCertificate"] {
    return this.#infoOrThrow().peerCertificate;
  }

  /** The verified chain, leaf first. */
  get peerCertificateChain(): HandshakeInfo["peerCertificateChain"] {
    return this.#infoOrThrow().peerCertificateChain;
  }

  /** Whether the session was resumed. */
  get sessionReused(): boolean {
    return this.#infoOrThrow().sessionReused;
  }

  /** Clients: the name the server was verified against. Servers: the client's SNI, or `null`. */
  get servername(): string | null {
    return this.#infoOrThrow().servername;
  }

  /** The PSK identity used, or `null` (as `Connection.pskIdentity`). */
  get pskIdentity(): string | Uint8Array | null {
    return this.#infoOrThrow().pskIdentity;
  }

  /** `"client"` or `"server"`. */
  get role(): "client" | "server" {
    return this.#engine.role;
  }

  /** DTLS-SRTP: the protection profile agreed on (`srtpProfiles`), or `null`. */
  get srtpProfile(): SrtpProfile | null {
    this.#infoOrThrow();
    return this.#srtp?.profile ?? null;
  }

  /**
   * DTLS-SRTP: the SRTP master keys and salts for {@link srtpProfile} (RFC 5764 4.2: client
   * key, server key, client salt, server salt; "EXTRACTOR-dtls_srtp"), or `null` without
   * DTLS-SRTP. Equal on both sides; it is a secret.
   *
   * @example
   * ```ts
   * import { connectDtls } from "../../mod.ts";
   * const key = new Uint8Array(16).fill(1);
   * await using conn = await connectDtls({
   *   hostname: "127.0.0.1", port: 5004, psk: { identity: "cam", key },
   *   srtpProfiles: ["SRTP_AES128_CM_SHA1_80"],
   * });
   * const m = conn.srtpKeyingMaterial!; // 60 bytes for SRTP_AES128_CM_SHA1_80
   * const clientKey = m.subarray(0, 16), serverKey = m.subarray(16, 32);
   * const clientSalt = m.subarray(32, 46), serverSalt = m.subarray(46, 60);
   * console.log(conn.srtpProfile, clientKey, serverKey, clientSalt, serverSalt);
   * ```
   */
  get srtpKeyingMaterial(): Uint8Array | null {
    this.#infoOrThrow();
    return this.#srtp?.keyingMaterial?.slice() ?? null;
  }

  /**
   * Keying material (`SSL_export_keying_material`, RFC 5705): `length` bytes both sides derive
   * alike from this association's secrets, `label` and `context`.
   *
   * @example
   * ```ts
   * import { readFileSync } from "node:fs";
   * import { connectDtls } from "../../mod.ts";
   * const caPem = readFileSync("ca.pem", "utf8");
   * await using conn = await connectDtls({ hostname: "localhost", port: 4433, caCerts: [caPem] });
   * console.log(conn.exportKeyingMaterial(32, "EXPORTER-my-protocol"));
   * ```
   * @throws {TypeError | RangeError} for a bad label, length or context (see `Connection`);
   * {@link TlsError} `CLOSED` after {@link close}.
   */
  exportKeyingMaterial(length: number, label: string, context?: Uint8Array): Uint8Array {
    this.#infoOrThrow();
    if (this.#closed) throw new TlsError("CLOSED", "the DTLS connection is closed");
    return exportKeyingMaterial(this.#engine.dtlsSsl, length, label, context);
  }

  /** The local UDP address. */
  get localAddr(): UdpAddr {
    return this.#link.localAddr;
  }

  /** The peer's UDP address. */
  get remoteAddr(): UdpAddr {
    return this.#link.remoteAddr;
  }

  /** The UDP payload limit this connection was made with (`mtu`). */
  get mtu(): number {
    return this.#mtu;
  }

  // ---- lifetime -------------------------------------------------------------------------------

  /** Whether the connection is closed (by {@link close}, an error or the idle timeout). */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Sends close_notify (after a completed handshake) and releases everything: the `SSL`, the
   * timers and the socket (clients) or the listener's slot (servers). Idempotent. Pending
   * {@link receive} calls reject with `CLOSED`. Everything is released at once; the promise
   * resolves once the close_notify is handed to the OS (await it before `process.exit()`: UDP
   * sends are asynchronous).
   */
  close(): Promise<void> {
    return this.#close(null);
  }

  /** {@link close}; `reason` (the idle timeout) becomes what pending and later calls reject with. */
  #close(reason: TlsError | null): Promise<void> {
    if (this.#closed) return Promise.resolve(this.#released);
    if (this.#info !== null && this.#error === null) {
      try {
        this.#engine.closeWrite();
        this.#flush();
      } catch {
        // closing anyway
      }
    }
    if (reason !== null) this.#error ??= reason;
    const error = new TlsError("CLOSED", "the DTLS connection is closed");
    this.#rejectHandshake(error);
    this.#release();
    for (const waiter of this.#waiters.splice(0)) {
      if (this.#receivedCloseNotify) waiter.resolve(null);
      else waiter.reject(this.#error ?? error);
    }
    return Promise.resolve(this.#released);
  }

  /** Same as {@link close} (without waiting for the close_notify to leave). */
  [Symbol.dispose](): void {
    void this.close();
  }

  /** Same as {@link close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
