/**
 * A bare OpenSSL connection for the floor measurements (`bench/floor.ts`, a client;
 * `bench/floor_server.ts`, a server): the calls a C program makes, an `SSL` over memory BIOs on
 * our `TlsContext`'s `SSL_CTX` (so it verifies and negotiates as we do), driven from a socket's
 * plain data callbacks, with no `TlsEngine` and no `Connection`.
 *
 * @example
 * ```ts ignore
 * const tls = new BareTls(ctx, "client", socket);
 * onData = (chunk) => { tls.input(chunk); if (tls.step()) ready(); };
 * ```
 * @module
 */
import { openssl, type Pointer, SSL_ERROR } from "../src/core/native.ts";

const o = openssl();
const hostC = new TextEncoder().encode("localhost\0");

/** The runtime's cheapest socket, as plain callbacks: bytes in, bytes out, closed. */
export interface BareSocket {
  send(bytes: Uint8Array): void;
  /** The session waits for input (Deno: read now, or wait for the socket; else a no-op). */
  want(): void;
  close(): void;
}

/** A bare `SSL` over memory BIOs, driven from a socket's data callbacks. */
export class BareTls {
  readonly ssl: Pointer;
  #rbio: Pointer;
  #wbio: Pointer;
  #socket: BareSocket | null = null;

  /** A client sends SNI "localhost" and checks that name; a server answers any. */
  constructor(ctx: Pointer, role: "client" | "server") {
    this.ssl = o.SSL_new(ctx)!;
    this.#rbio = o.BIO_new(o.BIO_s_mem())!;
    this.#wbio = o.BIO_new(o.BIO_s_mem())!;
    o.SSL_set_bio(this.ssl, this.#rbio, this.#wbio); // the SSL owns both
    if (role === "server") {
      o.SSL_set_accept_state(this.ssl);
      return;
    }
    o.SSL_set_connect_state(this.ssl);
    o.SSL_set_tlsext_host_name(this.ssl, "localhost");
    o.SSL_set1_host(this.ssl, hostC);
  }

  attach(socket: BareSocket): void {
    this.#socket = socket;
  }

  /** Sends what OpenSSL wrote. */
  flush(): void {
    const n = o.BIO_ctrl_pending(this.#wbio);
    if (n <= 0) return;
    const out = new Uint8Array(new ArrayBuffer(n));
    o.BIO_read(this.#wbio, out, n);
    this.#socket!.send(out);
  }

  input(chunk: Uint8Array): void {
    o.BIO_write(this.#rbio, chunk, chunk.length);
  }

  /** One handshake step: true when done (its last flight sent). */
  step(): boolean {
    const r = o.SSL_do_handshake(this.ssl);
    this.flush();
    if (r === 1) return true;
    if (o.SSL_get_error(this.ssl, r) !== SSL_ERROR.WANT_READ) throw new Error("handshake failed");
    return false;
  }

  write(bytes: Uint8Array): void {
    if (o.SSL_write(this.ssl, bytes, bytes.length) !== bytes.length) throw new Error("SSL_write");
    this.flush();
  }

  /** Decrypts what is there into `into` from `at`: the new fill level. */
  read(into: Uint8Array, at: number): number {
    while (at < into.length) {
      const r = o.SSL_read(this.ssl, at === 0 ? into : into.subarray(at), into.length - at);
      if (r <= 0) {
        if (o.SSL_get_error(this.ssl, r) !== SSL_ERROR.WANT_READ) throw new Error("SSL_read");
        break;
      }
      at += r;
    }
    return at;
  }

  /** Sends a close_notify. */
  shutdown(): void {
    o.SSL_shutdown(this.ssl);
    this.flush();
  }

  /**
   * Gives the `SSL` fresh memory BIOs once both are empty, as the library does after the
   * handshake (a memory BIO's buffer keeps its largest size): the idle floor (a C program on
   * socket BIOs has no such buffers).
   */
  renewBios(): void {
    if (o.BIO_ctrl_pending(this.#rbio) !== 0 || o.BIO_ctrl_pending(this.#wbio) !== 0) return;
    this.#rbio = o.BIO_new(o.BIO_s_mem())!;
    this.#wbio = o.BIO_new(o.BIO_s_mem())!;
    o.SSL_set_bio(this.ssl, this.#rbio, this.#wbio); // frees the old ones
  }

  #freed = false;

  /** Closes the socket and frees the `SSL` (and its BIOs). Idempotent. */
  free(): void {
    if (this.#freed) return;
    this.#freed = true;
    this.#socket?.close();
    o.SSL_free(this.ssl);
  }
}
