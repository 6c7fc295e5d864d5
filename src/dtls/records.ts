/**
 * Datagrams from a memory BIO. OpenSSL writes each DTLS datagram with one `BIO_write`, but a
 * memory BIO (OpenSSL 3.0 has no datagram memory BIO; `BIO_s_dgram_mem` is 3.2+) concatenates
 * them. So the output is cut back at record boundaries (the 13-byte DTLS record header: type,
 * version 2, epoch 2, sequence 6, length 2) and consecutive records are packed into datagrams of
 * at most `mtu` bytes. A record never spans two datagrams, which is all DTLS asks (RFC 6347
 * 4.1.1: several records may share a datagram).
 *
 * DTLS 1.3 (RFC 9147 4) has another record header, the "unified header": its first byte is
 * 0b001CSLEE, and the sequence number and the length may be shortened or left out (a record
 * without length runs to the end of the datagram), so it cannot be cut this way. Connections are
 * pinned to DTLS 1.2 (`src/handshake/protocol.ts`; no OpenSSL release up to 4.0.3 has DTLS 1.3
 * anyway: `opensslVersion().capabilities.dtls13`), and {@link packRecords} refuses such a record with
 * `NOT_SUPPORTED` rather than cut it wrong.
 *
 * @module
 */
import { TlsError } from "../core/errors.ts";
import { DTLS } from "../core/native.ts";

/** The unified header's fixed bits (RFC 9147 4): the first byte is 0b001xxxxx. */
const UNIFIED_HEADER_MASK = 0xe0;
const UNIFIED_HEADER_BITS = 0x20;

/**
 * Splits `bytes` (whole DTLS records, back to back) into datagrams of whole records, each at most
 * `mtu` bytes unless a single record is longer (it then travels alone). A truncated tail (never
 * produced by OpenSSL) is sent as it is, alone.
 *
 * @throws {TlsError} `NOT_SUPPORTED` for a DTLS 1.3 record (unified header), which it cannot cut.
 */
export function packRecords(bytes: Uint8Array, mtu: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let start = 0; // start of the datagram being filled
  let at = 0;
  const header = DTLS.RT_HEADER_LENGTH;
  while (at < bytes.length) {
    if ((bytes[at]! & UNIFIED_HEADER_MASK) === UNIFIED_HEADER_BITS) {
      throw new TlsError(
        "NOT_SUPPORTED",
        "a DTLS 1.3 record (unified header, RFC 9147 4) cannot be cut into datagrams: DTLS " +
          "connections are pinned to DTLS 1.2 (DTLS 1.3 is not supported yet)",
      );
    }
    if (bytes.length - at < header) {
      if (at > start) out.push(bytes.subarray(start, at));
      out.push(bytes.subarray(at));
      return out;
    }
    const length = (bytes[at + 11]! << 8) | bytes[at + 12]!;
    const end = Math.min(bytes.length, at + header + length);
    if (end - start > mtu && at > start) {
      out.push(bytes.subarray(start, at));
      start = at;
    }
    at = end;
  }
  if (at > start) out.push(bytes.subarray(start, at));
  return out;
}

/** DTLS record content type of handshake messages. */
const HANDSHAKE = 22;
/** Handshake message type of a ClientHello. */
const CLIENT_HELLO = 1;
/** Where a ClientHello's random starts: record header 13, handshake header 12, version 2. */
const RANDOM_AT = 13 + 12 + 2;
const RANDOM_LENGTH = 32;

/**
 * The client random (hex) when `datagram` starts with a ClientHello at epoch 0 (a new handshake:
 * renegotiation runs at epoch 1 and up, encrypted) whose first fragment holds the random; else
 * `null`. A listener tells a client that restarted from the same address and port (a new random,
 * RFC 6347 4.2.8) from a retransmitted or duplicated ClientHello of the live session (the same
 * random: DTLS 1.2 clients repeat it after a HelloVerifyRequest, RFC 6347 4.2.1).
 */
export function newClientHelloRandom(datagram: Uint8Array): string | null {
  if (datagram.length < RANDOM_AT + RANDOM_LENGTH) return null;
  if (datagram[0] !== HANDSHAKE || datagram[3] !== 0 || datagram[4] !== 0) return null;
  if (datagram[13] !== CLIENT_HELLO) return null;
  if (datagram[19] !== 0 || datagram[20] !== 0 || datagram[21] !== 0) return null; // offset 0
  let hex = "";
  for (let i = RANDOM_AT; i < RANDOM_AT + RANDOM_LENGTH; i++) {
    hex += datagram[i]!.toString(16).padStart(2, "0");
  }
  return hex;
}
