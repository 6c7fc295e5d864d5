/**
 * libssl-ffi: the system's OpenSSL through the runtime's own FFI, one typed TLS API for Deno and
 * Bun, with JS callbacks inside the handshake.
 *
 * @example
 * ```ts
 * import { opensslVersion } from "./mod.ts";
 * console.log(opensslVersion().text);
 * ```
 * @module
 */
export { TLS_ERROR_CODES, TlsError } from "./src/errors.ts";
export type { OpenSslErrorEntry, TlsAlert, TlsErrorCode, TlsErrorOptions } from "./src/errors.ts";
export { opensslVersion } from "./src/native.ts";
export type { OpenSslVersion } from "./src/native.ts";
export { DEFAULT_TLS12_CIPHERS, SecureContext, TlsContext } from "./src/context.ts";
export type {
  AlpnSelector,
  CertificateRequest,
  DistinguishedName,
  HandshakeEvent,
  Identity,
  OcspMode,
  OcspOptions,
  OcspStapleRequest,
  ServerNameResult,
  TlsContextOptions,
  TlsVersion,
  VerifyCertificateInfo,
} from "./src/context.ts";
export { isIpAddress, TlsEngine } from "./src/engine.ts";
export type { HandshakeStep, TlsEngineOptions } from "./src/engine.ts";
export { Certificate } from "./src/x509.ts";
export type { Passphrase, PassphraseRequest, PemOrDer } from "./src/x509.ts";
export { liveNativeObjects, nativeMemoryInUse } from "./src/ownership.ts";
export type { LiveNativeObjects, NativeKind } from "./src/ownership.ts";
export { registeredConnections } from "./src/callbacks.ts";
export { connect, DEFAULT_HANDSHAKE_TIMEOUT, startTls } from "./src/connect.ts";
export type {
  ConnectOptions,
  StartTlsOptions,
  StartTlsServerOptions,
  TlsClientOptions,
  WebTransport,
} from "./src/connect.ts";
export { Connection } from "./src/connection.ts";
export {
  DEFAULT_MAX_PENDING_CONNECTIONS,
  DEFAULT_SERVER_HANDSHAKE_TIMEOUT,
  listen,
  TlsListener,
} from "./src/server.ts";
export type { ListenerErrorInfo, ListenOptions, TlsServerOptions } from "./src/server.ts";
export type { HandshakeInfo } from "./src/connection.ts";
export type { NetAddr } from "./src/net/stream.ts";
export { clearContextCache } from "./src/context_cache.ts";
export { encodeAlpn } from "./src/context.ts";
export { identityForAcceptableIssuers, matchesAcceptableIssuers } from "./src/identity.ts";
export { DEFAULT_OCSP_LEEWAY_SECONDS, parseOcspResponse } from "./src/ocsp.ts";
export type { OcspCheckOptions, OcspResponse } from "./src/ocsp.ts";
export { buildOcspRequest, OcspStapler } from "./src/ocsp_stapler.ts";
export type { OcspStaplerOptions } from "./src/ocsp_stapler.ts";
export { generateTicketKeys } from "./src/session.ts";
export { DEFAULT_PSK_CIPHER_SUITE, DEFAULT_PSK_TLS12_CIPHERS } from "./src/psk.ts";
export type {
  PskClientCallback,
  PskClientKey,
  PskClientOption,
  PskClientRequest,
  PskKeyExchange,
  PskServerCallback,
  PskServerKey,
  PskServerRequest,
} from "./src/psk.ts";
