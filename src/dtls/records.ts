/**
 * Datagrams from a memory BIO. OpenSSL writes each DTLS datagram with one `BIO_write`, but a
 * memory BIO (OpenSSL 3.0 has no datagram memory BIO; `BIO_s_dgram_mem` is 3.2+) concatenates
 * them. So the output is cut back at record boundaries (the 13-byte DTLS record header: type,
 * version 2, epoch 2, sequence 6, length 2) and consecutive records are packed into datagrams of
 * at most `mtu` bytes. A record never spans two datagrams, which is all DTLS asks (RFC 6347
 * 4.1.1: several records may share a datagram).
 *
 * @module
 */
import { DTLS } from "../core/native.ts";

/**
 * Splits `bytes` (whole DTLS records, back to back) into datagrams of whole records, each at most
 * `mtu` bytes unless a single record is longer (it then travels alone). A truncated tail (never
 * produced by OpenSSL) is sent as it is, alone.
 */
export function packRecords(bytes: Uint8Array, mtu: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let start = 0; // start of the datagram being filled
  let at = 0;
  const header = DTLS.RT_HEADER_LENGTH;
  while (at < bytes.length) {
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
