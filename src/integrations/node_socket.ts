/**
 * `toNodeSocket()`: a {@link Connection} as a `node:stream` `Duplex` shaped like Node's
 * `tls.TLSSocket`, for libraries written against Node's sockets (`node:http`, `ws`, undici,
 * MQTT.js, ...). Only `node:stream`, `node:buffer` and `node:timers` are used, which Deno, Bun and
 * Node.js all ship.
 *
 * Reads are pulled: the stream reads from the connection only when its consumer wants data (at
 * most one read in flight, of at most {@link NODE_SOCKET_READ_SIZE} bytes, on top of the stream's
 * own high-water mark), so a slow consumer makes the connection, and then TCP, push back.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { Duplex } from "node:stream";
import { clearTimeout, setTimeout } from "node:timers";
import type { Connection } from "../connection/connection.ts";
import type { Certificate } from "../x509/certificate.ts";

/** The largest single read the socket makes from its connection, in bytes. */
export const NODE_SOCKET_READ_SIZE = 64 * 1024;

/** The smallest read the socket makes from its connection (a TLS record's plaintext). */
const MIN_READ_SIZE = 16 * 1024;

/**
 * A certificate as Node's `tlsSocket.getPeerCertificate()` reports it (`tls.PeerCertificate`),
 * as far as {@link Certificate} offers the fields.
 */
export interface NodePeerCertificate {
  /** The subject's attributes, e.g. `{ CN: "localhost", O: "Test" }` (repeated ones as arrays). */
  subject: Record<string, string | string[]>;
  /** The issuer's attributes. */
  issuer: Record<string, string | string[]>;
  /** The subjectAltName entries as Node prints them: `"DNS:localhost, IP Address:127.0.0.1"`. */
  subjectaltname?: string;
  /** Start of validity, as OpenSSL prints it: `"Jan  2 03:04:05 2026 GMT"`. */
  valid_from: string;
  /** End of validity, in the same format. */
  valid_to: string;
  /** The serial number, uppercase hex. */
  serialNumber: string;
  /** SHA-1 of the DER, `"AB:CD:..."`. */
  fingerprint: string;
  /** SHA-256 of the DER, `"AB:CD:..."`. */
  fingerprint256: string;
  /** SHA-512 of the DER, `"AB:CD:..."`. */
  fingerprint512: string;
  /** The DER encoding. */
  raw: Buffer;
  /**
   * With `getPeerCertificate(true)`: the issuer's certificate from the verified chain (a
   * self-signed root refers to itself, as in Node).
   */
  issuerCertificate?: NodePeerCertificate;
}

/** What {@link NodeTlsSocket.getCipher} reports, shaped like Node's `tls.CipherNameAndProtocol`. */
export interface NodeCipher {
  /** OpenSSL's name of the cipher suite, e.g. `"TLS_AES_256_GCM_SHA384"`, `"ECDHE-RSA-AES128-GCM-SHA256"`. */
  name: string;
  /** The IANA name for TLS 1.3 suites (the same as `name`); otherwise OpenSSL's name. */
  standardName: string;
  /** The protocol version negotiated, e.g. `"TLSv1.3"`. */
  version: string;
}

/** Options for {@link toNodeSocket}. */
export interface NodeSocketOptions {
  /**
   * The readable side's high-water mark in bytes: how much decrypted data may wait for the
   * consumer before the socket stops reading from the connection. Default: the runtime's default
   * for streams (16 or 64 KiB).
   */
  readableHighWaterMark?: number;
  /** The writable side's high-water mark in bytes (when `write()` starts returning false). */
  writableHighWaterMark?: number;
  /**
   * Whether the writable side stays open after the peer's close_notify (Node's `allowHalfOpen`).
   * Default `false`: as in `node:net`, the socket then ends its side too.
   */
  allowHalfOpen?: boolean;
}

/** Connection methods another version of the library may have; called only when present. */
interface SocketControls {
  setNoDelay?(noDelay?: boolean): void;
  setKeepAlive?(enable?: boolean, initialDelay?: number): void;
  ref?(): void;
  unref?(): void;
}

function familyOf(hostname: string): "IPv4" | "IPv6" {
  return hostname.includes(":") ? "IPv6" : "IPv4";
}

/** Splits an RFC 2253 name (`CN=a,O=b\,c`) into Node's attribute object. */
export function nameToObject(name: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  let key = "";
  let value = "";
  let inValue = false;
  const add = () => {
    if (key === "") return;
    const existing = out[key];
    if (existing === undefined) out[key] = value;
    else if (Array.isArray(existing)) existing.push(value);
    else out[key] = [existing, value];
  };
  for (let i = 0; i < name.length; i++) {
    const c = name[i]!;
    if (c === "\\" && i + 1 < name.length) {
      const next = name[i + 1]!;
      // "\2C"-style hex escapes, or a backslash before a special character.
      if (/^[0-9A-Fa-f]{2}$/.test(name.slice(i + 1, i + 3))) {
        const byte = String.fromCharCode(parseInt(name.slice(i + 1, i + 3), 16));
        if (inValue) value += byte;
        else key += byte;
        i += 2;
      } else {
        if (inValue) value += next;
        else key += next;
        i += 1;
      }
    } else if (!inValue && c === "=") {
      inValue = true;
    } else if (c === "," || c === "+") {
      add();
      key = "";
      value = "";
      inValue = false;
    } else if (inValue) {
      value += c;
    } else {
      key += c;
    }
  }
  add();
  return out;
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** A date as OpenSSL's `ASN1_TIME_print` (and so Node) prints it: `"Jan  2 03:04:05 2026 GMT"`. */
function opensslTime(date: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${MONTHS[date.getUTCMonth()]} ${String(date.getUTCDate()).padStart(2, " ")} ` +
    `${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())} ` +
    `${date.getUTCFullYear()} GMT`;
}

function fingerprint(algorithm: string, der: Uint8Array): string {
  const hex = createHash(algorithm).update(der).digest("hex").toUpperCase();
  return hex.match(/../g)!.join(":");
}

/** A {@link Certificate} in the shape of Node's `tls.PeerCertificate`. */
export function nodePeerCertificate(cert: Certificate): NodePeerCertificate {
  const out: NodePeerCertificate = {
    subject: nameToObject(cert.subject),
    issuer: nameToObject(cert.issuer),
    valid_from: opensslTime(cert.notBefore),
    valid_to: opensslTime(cert.notAfter),
    serialNumber: cert.serialNumber,
    fingerprint: fingerprint("sha1", cert.der),
    fingerprint256: cert.fingerprint256,
    fingerprint512: fingerprint("sha512", cert.der),
    raw: Buffer.from(cert.der),
  };
  if (cert.subjectAltNames.length > 0) {
    out.subjectaltname = cert.subjectAltNames
      .map((san) => san.startsWith("IP:") ? `IP Address:${san.slice(3)}` : san)
      .join(", ");
  }
  return out;
}

/** What `nodeConnect()` does to a socket it made before the connection exists. @internal */
export interface SocketInternals {
  /** Gives the socket its connection (the handshake may still be running). */
  attach(socket: NodeTlsSocket, conn: Connection): void;
  /** The connect attempt failed before a connection existed: destroy(error). */
  fail(socket: NodeTlsSocket, error: Error): void;
  /** How to cancel the connect in progress when the socket is destroyed first. */
  onCancel(socket: NodeTlsSocket, cancel: (reason: Error) => void): void;
  /** The server name asked for, known before the handshake. */
  expectServername(socket: NodeTlsSocket, name: string): void;
}

/** @internal Set by NodeTlsSocket's static block. */
export let socketInternals: SocketInternals;

/**
 * A TLS {@link Connection} as a `node:stream` `Duplex` with the properties, methods and events of
 * Node's `tls.TLSSocket`. Made by {@link toNodeSocket} and `nodeConnect()`.
 *
 * Events, with Node's semantics: `'connect'` then `'secureConnect'` once the handshake is done
 * (both at that moment: the TCP connect and the handshake are one step here); `'data'`; `'end'`
 * when the peer closed cleanly (close_notify); `'error'` with the library's `TlsError` (e.g.
 * `UNEXPECTED_EOF` when the peer went away without close_notify, a truncation); `'timeout'` (see
 * {@link setTimeout}); `'close'` last.
 *
 * Closing: `end()` sends close_notify once everything written is out (the peer reads a clean
 * end); `destroy()` closes the connection cleanly when nothing written is still waiting, and
 * without close_notify otherwise (the peer must not take a cut-off stream for a complete one);
 * `destroy(error)` closes without close_notify and emits `'error'` then `'close'`.
 *
 * @example
 * ```ts
 * import { connect, toNodeSocket } from "../../mod.ts";
 * const conn = await connect({ hostname: "example.com", port: 443 });
 * const socket = toNodeSocket(conn);
 * socket.on("data", (chunk) => console.log(chunk.length, "bytes"));
 * socket.on("end", () => console.log("clean end"));
 * socket.end("GET / HTTP/1.0\r\nHost: example.com\r\n\r\n");
 * ```
 */
export class NodeTlsSocket extends Duplex {
  /** Always `true`: this is a TLS socket. */
  readonly encrypted = true;
  /** Bytes of plaintext received so far. */
  bytesRead = 0;
  /** Bytes of plaintext written to the connection so far. */
  bytesWritten = 0;
  /** Set by `node:http` servers (and others) that adopt the socket. */
  server?: unknown;

  #conn: Connection | null = null;
  #ready: Promise<Connection>;
  #resolveReady!: (conn: Connection) => void;
  #rejectReady!: (error: unknown) => void;
  /** Cancels a connect still in progress (nodeConnect). */
  #cancel: ((reason: Error) => void) | null = null;
  #handshaken = false;
  #reading = false;
  #scratch: Uint8Array | null = null;
  #timeoutMs = 0;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #servername: string | null = null;
  /** Calls made before the connection existed, replayed on it. */
  #noDelay: boolean | undefined;
  #keepAlive: [boolean, number] | undefined;
  #refed: boolean | undefined;

  /** @internal Use {@link toNodeSocket} or `nodeConnect()`. */
  constructor(options: NodeSocketOptions = {}) {
    super({
      allowHalfOpen: options.allowHalfOpen ?? false,
      ...(options.readableHighWaterMark !== undefined
        ? { readableHighWaterMark: options.readableHighWaterMark }
        : {}),
      ...(options.writableHighWaterMark !== undefined
        ? { writableHighWaterMark: options.writableHighWaterMark }
        : {}),
    });
    this.#ready = new Promise((resolve, reject) => {
      this.#resolveReady = resolve;
      this.#rejectReady = reject;
    });
    this.#ready.catch(() => {}); // surfaces through destroy(error), never as unhandled
  }

  // ---- wiring (internal) ----------------------------------------------------------------------

  static {
    socketInternals = {
      attach: (socket, conn) => socket.#attach(conn),
      fail: (socket, error) => {
        socket.#cancel = null;
        socket.destroy(error);
      },
      onCancel: (socket, cancel) => void (socket.#cancel = cancel),
      expectServername: (socket, name) => void (socket.#servername = name),
    };
  }

  /**
   * Gives the socket its connection: starts (or adopts) the handshake and emits `'connect'` and
   * `'secureConnect'` when it is done.
   */
  #attach(conn: Connection): void {
    if (this.destroyed) {
      conn.close();
      return;
    }
    this.#cancel = null;
    this.#conn = conn;
    const controls = conn as unknown as SocketControls;
    if (this.#noDelay !== undefined) controls.setNoDelay?.(this.#noDelay);
    if (this.#keepAlive !== undefined) controls.setKeepAlive?.(...this.#keepAlive);
    if (this.#refed === true) controls.ref?.();
    else if (this.#refed === false) controls.unref?.();
    this.#resolveReady(conn);
    try {
      void conn.protocol; // throws until the handshake is done
      this.#handshaken = true; // listen() and connect() hand over handshaken connections
    } catch {
      // Still handshaking: the properties are filled in when it is done.
    }
    conn.handshake().then(
      () => {
        if (this.destroyed) return;
        this.#handshaken = true;
        this.#armTimer();
        this.emit("connect");
        this.emit("secureConnect");
      },
      (error) => this.destroy(error),
    );
  }

  /** The connection, once there is one (nodeConnect makes it in the background). */
  get connection(): Connection | null {
    return this.#conn;
  }

  // ---- stream implementation ------------------------------------------------------------------

  /** @internal */
  override _read(size: number): void {
    if (this.#reading) return;
    this.#reading = true;
    this.#ready.then((conn) => {
      const length = Math.min(NODE_SOCKET_READ_SIZE, Math.max(MIN_READ_SIZE, size));
      if (this.#scratch === null || this.#scratch.length < length) {
        this.#scratch = new Uint8Array(NODE_SOCKET_READ_SIZE);
      }
      const scratch = this.#scratch;
      return conn.read(scratch.subarray(0, length)).then((n) => {
        this.#reading = false;
        if (this.destroyed) return;
        if (n === null) {
          this.push(null);
          return;
        }
        this.bytesRead += n;
        this.#activity();
        this.push(Buffer.from(scratch.subarray(0, n))); // a copy: the scratch buffer is reused
      });
    }).catch((error) => {
      this.#reading = false;
      if (!this.destroyed) this.destroy(error);
    });
  }

  /** @internal */
  override _write(
    chunk: Buffer,
    _encoding: BufferEncoding,
    callback: (error?: Error | null) => void,
  ): void {
    this.#send(chunk, callback);
  }

  /** @internal Corked writes (a header and its body) go out as one write. */
  override _writev(
    chunks: { chunk: Buffer; encoding: BufferEncoding }[],
    callback: (error?: Error | null) => void,
  ): void {
    this.#send(
      chunks.length === 1 ? chunks[0]!.chunk : Buffer.concat(chunks.map((c) => c.chunk)),
      callback,
    );
  }

  #send(bytes: Uint8Array, callback: (error?: Error | null) => void): void {
    const write = this.#conn !== null
      ? this.#conn.write(bytes)
      : this.#ready.then((conn) => conn.write(bytes));
    write.then(
      () => {
        this.bytesWritten += bytes.length;
        this.#activity();
        callback();
      },
      (error) => callback(error),
    );
  }

  /** @internal end(): close_notify once everything written is out. */
  override _final(callback: (error?: Error | null) => void): void {
    this.#ready.then((conn) => conn.closeWrite()).then(
      () => callback(),
      (error) => {
        // The peer already ended cleanly (its close_notify was read) and may have closed the
        // TCP connection already: our close_notify in reply is a courtesy that can meet a reset
        // (Bun closes a half-closed server socket). Everything we wrote was handed over before
        // it; nothing the peer asked for is cut off.
        if (this.readableEnded) callback();
        else callback(error);
      },
    );
  }

  /** @internal */
  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#clearTimer();
    const cancel = this.#cancel;
    this.#cancel = null;
    if (cancel !== null) cancel(error ?? new Error("the socket was destroyed while connecting"));
    this.#rejectReady(error ?? new Error("the socket was destroyed"));
    const conn = this.#conn;
    if (conn !== null) {
      // A clean close (close_notify) only when everything written was delivered to it: with
      // data still waiting, the peer must see a truncation, not a complete stream.
      if (error !== null || (this.writableLength > 0 && !this.writableFinished)) {
        conn.abort(error ?? undefined);
      } else {
        conn.close();
      }
    }
    callback(error);
  }

  // ---- tls.TLSSocket --------------------------------------------------------------------------

  #info<T>(read: (conn: Connection) => T): T | undefined {
    return this.#handshaken && this.#conn !== null ? read(this.#conn) : undefined;
  }

  /**
   * Whether the peer was verified: its certificate chain (or, resumed, the session's original
   * verification) or a PSK. `false` before the handshake, for a peer without a certificate (a
   * server that did not ask for one) and with `unsafelyDisableVerification`.
   */
  get authorized(): boolean {
    return this.#info((c) =>
      c.peerCertificateChain.length > 0 || c.pskIdentity !== null ||
      (c.sessionReused && c.peerCertificate !== null)
    ) ?? false;
  }

  /**
   * Why {@link authorized} is false: `"NO_PEER_CERTIFICATE"` (the peer sent none),
   * `"VERIFICATION_DISABLED"` (`unsafelyDisableVerification`); `null` when authorized and before
   * the handshake. (A certificate that fails verification fails the handshake itself, with
   * `CERT_VERIFY_FAILED`.)
   */
  get authorizationError(): string | null {
    if (!this.#handshaken || this.authorized) return null;
    return this.#conn!.peerCertificate === null ? "NO_PEER_CERTIFICATE" : "VERIFICATION_DISABLED";
  }

  /** The ALPN protocol agreed on; `false` when none was; `null` before the handshake (as Node). */
  get alpnProtocol(): string | false | null {
    if (!this.#handshaken) return null;
    return this.#conn!.alpnProtocol ?? false;
  }

  /**
   * Clients: the server name asked for. Servers: the one the client sent (SNI), or `false`.
   * `null` while unknown.
   */
  get servername(): string | false | null {
    if (!this.#handshaken) return this.#servername;
    return this.#conn!.servername ?? false;
  }

  /** The negotiated protocol version (`"TLSv1.3"`), or `null` before the handshake. */
  getProtocol(): string | null {
    return this.#info((c) => c.protocol) ?? null;
  }

  /** The negotiated cipher suite, or `undefined` before the handshake (see {@link NodeCipher}). */
  getCipher(): NodeCipher | undefined {
    return this.#info((c) => ({ name: c.cipher, standardName: c.cipher, version: c.protocol }));
  }

  /**
   * The peer's certificate in Node's shape (see {@link NodePeerCertificate}); with
   * `detailed`, each has its `issuerCertificate` from the verified chain. `{}` when the peer sent
   * none (or before the handshake), `null` once the socket is destroyed, as in Node.
   */
  getPeerCertificate(detailed?: boolean): NodePeerCertificate | Record<string, never> | null {
    if (this.destroyed && !this.#handshaken) return null;
    const conn = this.#handshaken ? this.#conn : null;
    const leaf = conn?.peerCertificate ?? null;
    if (conn === null || leaf === null) return {};
    const first = nodePeerCertificate(leaf);
    if (detailed !== true) return first;
    const chain = conn.peerCertificateChain;
    let current = first;
    for (let i = 1; i < chain.length; i++) {
      const next = nodePeerCertificate(chain[i]!);
      current.issuerCertificate = next;
      current = next;
    }
    if (chain.length > 0 && chain[chain.length - 1]!.subject === chain[chain.length - 1]!.issuer) {
      current.issuerCertificate = current; // a self-signed root is its own issuer, as in Node
    }
    return first;
  }

  /**
   * Clients: the session to resume with (`connect({ session })`, or `nodeConnect`), as a
   * Buffer; `undefined` when there is none yet (TLS 1.3 tickets arrive with the first read).
   */
  getSession(): Buffer | undefined {
    const session = this.#conn?.session ?? null;
    return session === null ? undefined : Buffer.from(session);
  }

  /** Whether the session was resumed. */
  isSessionReused(): boolean {
    return this.#info((c) => c.sessionReused) ?? false;
  }

  // ---- net.Socket -----------------------------------------------------------------------------

  /** The remote IP address, or `undefined` while not connected. */
  get remoteAddress(): string | undefined {
    return this.#conn?.remoteAddr?.hostname;
  }

  /** The remote port. */
  get remotePort(): number | undefined {
    return this.#conn?.remoteAddr?.port;
  }

  /** `"IPv4"` or `"IPv6"`. */
  get remoteFamily(): "IPv4" | "IPv6" | undefined {
    const addr = this.#conn?.remoteAddr;
    return addr === null || addr === undefined ? undefined : familyOf(addr.hostname);
  }

  /** The local IP address. */
  get localAddress(): string | undefined {
    return this.#conn?.localAddr?.hostname;
  }

  /** The local port. */
  get localPort(): number | undefined {
    return this.#conn?.localAddr?.port;
  }

  /** The local address as `net.Socket.address()` gives it, or `{}`. */
  address(): { address: string; family: string; port: number } | Record<string, never> {
    const addr = this.#conn?.localAddr;
    if (addr === null || addr === undefined) return {};
    return { address: addr.hostname, family: familyOf(addr.hostname), port: addr.port };
  }

  /** `true` until the handshake is done. */
  get connecting(): boolean {
    return !this.#handshaken && !this.destroyed;
  }

  /** `true` until the handshake is done (Node: not yet connected). */
  get pending(): boolean {
    return !this.#handshaken;
  }

  /** `"opening"`, `"open"`, `"readOnly"`, `"writeOnly"` or `"closed"`, as `net.Socket`. */
  get readyState(): "opening" | "open" | "readOnly" | "writeOnly" | "closed" {
    if (this.connecting) return "opening";
    if (this.readable && this.writable) return "open";
    if (this.readable) return "readOnly";
    if (this.writable) return "writeOnly";
    return "closed";
  }

  /**
   * Disables (or enables) Nagle's algorithm on the TCP socket, when the connection offers it;
   * remembered until the connection exists. Returns the socket.
   */
  setNoDelay(noDelay = true): this {
    this.#noDelay = noDelay;
    (this.#conn as unknown as SocketControls | null)?.setNoDelay?.(noDelay);
    return this;
  }

  /** TCP keep-alive, when the connection offers it; remembered until it exists. Returns the socket. */
  setKeepAlive(enable = false, initialDelay = 0): this {
    this.#keepAlive = [enable, initialDelay];
    (this.#conn as unknown as SocketControls | null)?.setKeepAlive?.(enable, initialDelay);
    return this;
  }

  /** Lets the socket keep the process alive (the default), when the connection offers it. */
  ref(): this {
    this.#refed = true;
    (this.#conn as unknown as SocketControls | null)?.ref?.();
    return this;
  }

  /** Lets the process exit while the socket is open, when the connection offers it. */
  unref(): this {
    this.#refed = false;
    (this.#conn as unknown as SocketControls | null)?.unref?.();
    return this;
  }

  /**
   * Emits `'timeout'` after `ms` milliseconds without data read or written (0 disables it), as
   * `net.Socket`: the socket stays open; the listener decides (usually `destroy()`). `callback`
   * is added as a one-time `'timeout'` listener. Returns the socket.
   */
  setTimeout(ms: number, callback?: () => void): this {
    if (typeof ms !== "number" || !(ms >= 0) || !Number.isFinite(ms)) {
      throw new RangeError(`the timeout must be a non-negative finite number, got ${ms}`);
    }
    if (callback !== undefined) {
      if (ms === 0) this.off("timeout", callback);
      else this.once("timeout", callback);
    }
    this.#timeoutMs = ms;
    this.#clearTimer();
    this.#armTimer();
    return this;
  }

  /** The idle timeout set with {@link setTimeout} (0: none). */
  get timeout(): number | undefined {
    return this.#timeoutMs === 0 ? undefined : this.#timeoutMs;
  }

  /** Ends the writable side, then destroys the socket once it has finished (`net.Socket`). */
  destroySoon(): void {
    if (this.writable) this.end();
    if (this.writableFinished) this.destroy();
    else this.once("finish", () => this.destroy());
  }

  #armTimer(): void {
    if (this.#timeoutMs === 0 || this.#timer !== null || this.destroyed) return;
    const timer = setTimeout(() => {
      if (!this.destroyed) this.emit("timeout");
    }, this.#timeoutMs);
    timer.unref?.();
    this.#timer = timer;
  }

  #clearTimer(): void {
    if (this.#timer === null) return;
    clearTimeout(this.#timer);
    this.#timer = null;
  }

  #activity(): void {
    this.#timer?.refresh();
  }
}

/**
 * Wraps a {@link Connection} (from `connect()`, `listen()` or `startTls()`, client or server) in a
 * `node:stream` `Duplex` shaped like Node's `tls.TLSSocket`, for code written against Node's
 * sockets. The socket owns the connection from then on: read and write through the socket only,
 * and close it with `end()` / `destroy()`. Works before the handshake has finished too
 * (`'secureConnect'` is emitted when it is done; on an already handshaken connection right after
 * this call returns).
 *
 * @example
 * ```ts
 * import { readFileSync } from "node:fs";
 * import { createServer } from "node:http";
 * import { listen, toNodeSocket } from "../../mod.ts";
 * const cert = readFileSync("server.pem", "utf8");
 * const key = readFileSync("server.key", "utf8");
 * const http = createServer((req, res) => res.end(`hello ${req.socket.remoteAddress}\n`));
 * for await (const conn of listen({ port: 8443, cert, key, alpnProtocols: ["http/1.1"] })) {
 *   http.emit("connection", toNodeSocket(conn));
 * }
 * ```
 * @throws {TypeError} when `conn` is not a Connection-like object.
 */
export function toNodeSocket(conn: Connection, options: NodeSocketOptions = {}): NodeTlsSocket {
  if (
    typeof conn !== "object" || conn === null || typeof conn.read !== "function" ||
    typeof conn.handshake !== "function"
  ) {
    throw new TypeError("conn must be a Connection");
  }
  checkSocketOptions(options);
  const socket = new NodeTlsSocket(options);
  socketInternals.attach(socket, conn);
  return socket;
}

/** Validates {@link NodeSocketOptions}. @internal */
export function checkSocketOptions(options: NodeSocketOptions): void {
  if (typeof options !== "object" || options === null) {
    throw new TypeError("options must be an object");
  }
  for (const key of ["readableHighWaterMark", "writableHighWaterMark"] as const) {
    const value = options[key];
    if (value !== undefined && (!Number.isInteger(value) || value < 0)) {
      throw new RangeError(`${key} must be a non-negative integer, got ${value}`);
    }
  }
  if (options.allowHalfOpen !== undefined && typeof options.allowHalfOpen !== "boolean") {
    throw new TypeError("allowHalfOpen must be a boolean");
  }
}
