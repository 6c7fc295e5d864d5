/**
 * `connectDtls()`: a verified DTLS client association over UDP.
 *
 * @module
 */
import { lookup } from "node:dns/promises";
import { abortedError, Deadline } from "../core/deadline.ts";
import { TlsError } from "../core/errors.ts";
import { openssl } from "../core/native.ts";
import { messageOf } from "../core/values.ts";
import type { ClientFeatureOptions } from "../handshake/features.ts";
import { isIpAddress, stripBrackets } from "../net/address.ts";
import { bindUdp, type UdpAddr, type UdpSocket } from "../net/udp.ts";
import type { TlsContextOptions } from "../tls/context.ts";
import {
  checkConnectionOptions,
  engineWithCheckedOptions,
  type TlsEngine,
  type TlsEngineOptions,
} from "../tls/engine.ts";
import {
  checkCallOptions,
  checkIdleTimeout,
  normalizeOptions,
  splitOptions,
} from "../tls/options.ts";
import { DtlsConnection } from "./connection.ts";
import { checkMtu, dtlsContext, type DtlsUdpOptions, refuseTlsOnly } from "./options.ts";
import { checkSrtpProfiles, type DtlsSrtpOptions } from "./srtp.ts";

/**
 * Options for {@link connectDtls}: the client options of `connect()` (verification, `caCerts`,
 * `servername`, client certificates with `onClientCertificate`, `psk` with the server's hint,
 * `alpnProtocols`, `onKeylog`, `onHandshakeEvent`, `ciphers`, ...) with the same meaning, except
 * `minVersion`/`maxVersion` (DTLS 1.2 only, for now)
 * and `context`; plus `mtu`.
 */
export interface DtlsConnectOptions
  extends Omit<ClientFeatureOptions, "minVersion" | "maxVersion">, DtlsUdpOptions, DtlsSrtpOptions {
  /** Host name or IP address of the server. */
  hostname: string;
  /** UDP port. */
  port: number;
  /** Aborts the handshake: it rejects with `ABORTED`. */
  signal?: AbortSignal;
  /**
   * Milliseconds allowed for the whole handshake, retransmissions included. Default 30,000.
   * (OpenSSL retransmits a lost flight after 1 s, doubling up to 60 s.)
   */
  handshakeTimeout?: number;
  /**
   * After the handshake, milliseconds without a datagram in either direction after which the
   * connection closes itself (close_notify). Default: no limit (also `0` or `Infinity`).
   */
  idleTimeout?: number;
}

/**
 * Opens a DTLS association with a server over UDP and resolves once the handshake is done (so
 * certificate problems reject it). Secure by default, like `connect()`: the server's chain is
 * verified against `caCerts` (or the system store) and its name against `servername` (default
 * `hostname`). DTLS 1.2 (DTLS 1.3 not yet). Lost handshake flights are
 * retransmitted by OpenSSL's timer; datagrams that are not DTLS, or not from the server's
 * address, are dropped.
 *
 * @example
 * ```ts
 * import { readFileSync } from "node:fs";
 * import { connectDtls } from "../../mod.ts";
 * const caPem = readFileSync("ca.pem", "utf8");
 * await using conn = await connectDtls({ hostname: "localhost", port: 4433, caCerts: [caPem] });
 * conn.send(new TextEncoder().encode("hello"));
 * console.log(conn.protocol, conn.cipher, conn.peerCertificate?.subject);
 * ```
 * @example With a pre-shared key (CoAP / LwM2M style), no certificates
 * ```ts
 * import { connectDtls } from "../../mod.ts";
 * const key = new Uint8Array(16).fill(7);
 * await using conn = await connectDtls({
 *   hostname: "127.0.0.1", port: 5684, psk: { identity: "device-1", key },
 * });
 * console.log(conn.pskIdentity); // "device-1"
 * ```
 * @throws {TypeError | RangeError} for bad options.
 * @throws {TlsError} `CERT_VERIFY_FAILED`, `HANDSHAKE_FAILED`, `ALERT_RECEIVED`,
 * `NETWORK_ERROR`, `TIMEOUT`, `ABORTED`, `CALLBACK_ERROR`, ...
 */
export async function connectDtls(given: DtlsConnectOptions): Promise<DtlsConnection> {
  if (typeof given !== "object" || given === null) {
    throw new TypeError("options must be an object");
  }
  const options = normalizeOptions("connectDtls", "client", given);
  const raw = options as unknown as Readonly<Record<string, unknown>>;
  refuseTlsOnly("connectDtls()", raw);
  const { hostname, port } = options;
  if (typeof hostname !== "string" || hostname === "") {
    throw new TypeError("hostname must be a non-empty string");
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RangeError(`port must be an integer from 1 to 65535, got ${port}`);
  }
  const mtu = checkMtu(options.mtu);
  const srtpProfiles = checkSrtpProfiles(options.srtpProfiles);
  const timeout = checkCallOptions(options);
  const idleTimeout = checkIdleTimeout(options.idleTimeout);
  const signal = options.signal;
  if (signal?.aborted) throw abortedError(signal);
  const host = stripBrackets(hostname);
  const split = splitOptions("client", raw);
  const engineOptions = split.connection as TlsEngineOptions;
  engineOptions.servername ??= isIpAddress(host) ? host : host.toLowerCase();
  const contextOptions = split.context as TlsContextOptions;
  checkConnectionOptions("client", contextOptions as never, engineOptions as never);

  const deadline = new Deadline(timeout, signal, "the DTLS handshake");
  let address: string;
  try {
    address = isIpAddress(host) ? host : (await deadline.race(lookup(host))).address;
  } catch (error) {
    deadline.dispose();
    if (error instanceof TlsError) throw error;
    throw new TlsError("NETWORK_ERROR", `cannot resolve ${hostname}: ${messageOf(error)}`, {
      cause: error,
    });
  }
  const server: UdpAddr = { transport: "udp", hostname: address, port };
  const holder: { conn?: DtlsConnection } = {}; // the socket's handler runs before it exists
  let socket: UdpSocket;
  try {
    socket = await bindUdp({
      hostname: address.includes(":") ? "::" : "0.0.0.0",
      onDatagram: (datagram, from) => {
        // An unconnected socket: only the server's datagrams count.
        if (from.port === server.port && sameHost(from.hostname, server.hostname)) {
          holder.conn?.deliver(datagram);
        }
      },
    });
  } catch (error) {
    deadline.dispose();
    if (error instanceof TlsError) throw error; // PERMISSION_DENIED (Deno), naming the flag
    throw new TlsError("NETWORK_ERROR", `cannot open a UDP socket: ${messageOf(error)}`, {
      cause: error,
    });
  }
  let engine: TlsEngine;
  const context = (() => {
    try {
      return dtlsContext("client", contextOptions, srtpProfiles);
    } catch (error) {
      void socket.close();
      deadline.dispose();
      throw error;
    }
  })();
  try {
    engine = engineWithCheckedOptions(context, engineOptions);
    openssl().SSL_set_mtu(engine.dtlsSsl, mtu);
  } catch (error) {
    context.close();
    void socket.close();
    deadline.dispose();
    throw error;
  }
  const conn = new DtlsConnection({
    engine,
    ownedContext: context,
    mtu,
    idleTimeout,
    link: {
      send: (datagram) => socket.send(datagram, server),
      release: () => socket.close(),
      localAddr: socket.localAddr,
      remoteAddr: server,
    },
  });
  holder.conn = conn;
  await conn.handshake(deadline); // releases everything itself on failure
  return conn;
}

/** Whether two IP literals name the same host (`::ffff:127.0.0.1` is `127.0.0.1`). */
function sameHost(a: string, b: string): boolean {
  const plain = (h: string) => h.startsWith("::ffff:") ? h.slice(7) : h;
  return plain(a) === plain(b);
}
