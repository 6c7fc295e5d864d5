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
// Errors, the library, ownership.
export { TLS_ERROR_CODES, TlsError } from "./src/core/errors.ts";
export type {
  OpenSslErrorEntry,
  TlsAlert,
  TlsErrorCode,
  TlsErrorOptions,
} from "./src/core/errors.ts";
export { opensslVersion } from "./src/core/version.ts";
export type { OpenSslVersion } from "./src/core/version.ts";
export type { Capabilities, Capability } from "./src/core/capabilities.ts";
export { liveNativeObjects, nativeMemoryInUse } from "./src/core/ownership.ts";
export type { LiveNativeObjects, NativeKind } from "./src/core/ownership.ts";
export { registeredConnections } from "./src/handshake/routing.ts";

// Connections: clients, servers, STARTTLS, the connection itself.
export { connect, DEFAULT_HANDSHAKE_TIMEOUT } from "./src/connect.ts";
export type { ConnectOptions, TlsClientOptions } from "./src/connect.ts";
export { startTls } from "./src/start_tls.ts";
export type { StartTlsOptions, WebTransport } from "./src/start_tls.ts";
export {
  DEFAULT_MAX_PENDING_CONNECTIONS,
  DEFAULT_SERVER_HANDSHAKE_TIMEOUT,
  listen,
  TlsListener,
} from "./src/server/server.ts";
export type {
  ListenerErrorInfo,
  ListenOptions,
  StartTlsServerOptions,
  TlsServerOptions,
} from "./src/server/server.ts";
export type { ListenerContextOptions } from "./src/server/listener_context.ts";
export { Connection } from "./src/connection/connection.ts";
export type { HandshakeInfo } from "./src/connection/connection.ts";
// DTLS (issue #19): datagram connections over UDP.
export { connectDtls } from "./src/dtls/connect.ts";
export type { DtlsConnectOptions } from "./src/dtls/connect.ts";
export { DtlsConnection } from "./src/dtls/connection.ts";
export {
  DEFAULT_DTLS_IDLE_TIMEOUT,
  DEFAULT_DTLS_MAX_CONNECTIONS,
  DtlsListener,
  listenDtls,
} from "./src/dtls/listen.ts";
export type { DtlsListenOptions } from "./src/dtls/listen.ts";
export { DEFAULT_DTLS_MTU } from "./src/dtls/options.ts";
export type { DtlsUdpOptions } from "./src/dtls/options.ts";
export type { DtlsSrtpOptions, SrtpProfile } from "./src/dtls/srtp.ts";
export type { UdpAddr } from "./src/net/udp.ts";
export type { NetAddr } from "./src/net/stream.ts";

// Contexts and the sans-I/O engine.
export { SecureContext, TlsContext } from "./src/tls/context.ts";
export type { ServerNameResult, TlsContextOptions } from "./src/tls/context.ts";
export type { OptionAliases } from "./src/tls/option_names.ts";
export { clearContextCache } from "./src/tls/context_cache.ts";
export { TlsEngine } from "./src/tls/engine.ts";
export type { HandshakeStep, TlsEngineOptions } from "./src/tls/engine.ts";

// The handshake features: their option interfaces and types.
export type {
  ClientFeatureOptions,
  ContextFeatureOptions,
  ServerFeatureOptions,
} from "./src/handshake/features.ts";
export { DEFAULT_TLS12_CIPHERS } from "./src/handshake/protocol.ts";
export type { ProtocolOptions, TlsVersion } from "./src/handshake/protocol.ts";
export type { GroupsOptions } from "./src/handshake/groups.ts";
export type {
  ClientVerificationOptions,
  ServerVerificationOptions,
  VerificationOptions,
  VerifyCertificateInfo,
} from "./src/handshake/verification.ts";
export type {
  Identity,
  IdentityOptions,
  PemIdentity,
  Pkcs12Identity,
} from "./src/handshake/identity.ts";
export type { CrlCheck, RevocationOptions } from "./src/handshake/revocation.ts";
export {
  identityForAcceptableIssuers,
  matchesAcceptableIssuers,
} from "./src/handshake/client_certificate.ts";
export type {
  CertificateRequest,
  ClientCertificateOptions,
  DistinguishedName,
  IdentityChoiceOptions,
} from "./src/handshake/client_certificate.ts";
export type {
  ServerNameClientOptions,
  ServerNameServerOptions,
} from "./src/handshake/server_name.ts";
export type { AlpnClientOptions, AlpnOptions, AlpnSelector } from "./src/handshake/alpn.ts";
export type {
  OcspClientOptions,
  OcspMode,
  OcspOptions,
  OcspServerOptions,
  OcspStapleRequest,
} from "./src/handshake/ocsp.ts";
export type { SessionClientOptions, SessionServerOptions } from "./src/handshake/sessions.ts";
export { generateTicketKeys } from "./src/handshake/session_codec.ts";
export type {
  CachedSession,
  SessionCacheOperation,
  SessionCacheServerOptions,
} from "./src/handshake/session_cache.ts";
export type { EarlyDataClientOptions, EarlyDataServerOptions } from "./src/handshake/early_data.ts";
export type { PskClientOptions, PskOptions, PskServerOptions } from "./src/handshake/psk.ts";
export { DEFAULT_PSK_CIPHER_SUITE, DEFAULT_PSK_TLS12_CIPHERS } from "./src/handshake/psk_keys.ts";
export type {
  PskClientCallback,
  PskClientKey,
  PskClientOption,
  PskClientRequest,
  PskKeyExchange,
  PskServerCallback,
  PskServerKey,
  PskServerRequest,
} from "./src/handshake/psk_keys.ts";
export type { HandshakeEvent, TraceOptions } from "./src/handshake/trace.ts";
export type { ChannelBindingType, UpdateKeysOptions } from "./src/handshake/keying.ts";
export type { AlgorithmsOptions } from "./src/handshake/algorithms.ts";
// TLS 1.3 post-handshake client authentication.
export type { PostHandshakeAuthClientOptions } from "./src/handshake/post_handshake_auth.ts";
export { DEFAULT_CLIENT_CERTIFICATE_TIMEOUT } from "./src/connection/client_certificate_request.ts";
export type { RequestClientCertificateOptions } from "./src/connection/client_certificate_request.ts";

// Certificates, keys, OCSP.
export { Certificate } from "./src/x509/certificate.ts";
export type { PemOrDer } from "./src/x509/certificate.ts";
export type { Passphrase, PassphraseRequest } from "./src/x509/private_key.ts";
export { DEFAULT_OCSP_LEEWAY_SECONDS, parseOcspResponse } from "./src/ocsp/response.ts";
export type { OcspCheckOptions, OcspResponse } from "./src/ocsp/response.ts";
export { buildOcspRequest, OcspStapler } from "./src/ocsp/stapler.ts";
export type { OcspStaplerOptions } from "./src/ocsp/stapler.ts";

// node:stream adapters: Node-style sockets for node:http, ws, undici, MQTT.js, ...
export {
  NODE_SOCKET_READ_SIZE,
  NodeTlsSocket,
  toNodeSocket,
} from "./src/integrations/node_socket.ts";
export type {
  NodeCipher,
  NodePeerCertificate,
  NodeSocketOptions,
} from "./src/integrations/node_socket.ts";
export { nodeConnect } from "./src/integrations/node_connect.ts";
export type { NodeConnectOptions } from "./src/integrations/node_connect.ts";
export { tlsConnector } from "./src/integrations/undici.ts";
export type {
  TlsConnectorOptions,
  UndiciConnectCallback,
  UndiciConnectOptions,
  UndiciConnector,
} from "./src/integrations/undici.ts";
export { serveHttp } from "./src/integrations/http_server.ts";
export type {
  ConnectionRouter,
  ConnectionTarget,
  ServeHttpOptions,
} from "./src/integrations/http_server.ts";
