/**
 * TCP on Deno through `Deno.connect`: measured 3-4x faster than Deno's `node:net`.
 *
 * @module
 */
import type { ByteStream, NetAddr, TcpConnectOptions } from "./stream.ts";

function addr(a: Deno.Addr): NetAddr | null {
  return a.transport === "tcp" ? { transport: "tcp", hostname: a.hostname, port: a.port } : null;
}

class DenoTcpStream implements ByteStream {
  #conn: Deno.TcpConn;
  #closed = false;
  readonly localAddr: NetAddr | null;
  readonly remoteAddr: NetAddr | null;

  constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
    this.localAddr = addr(conn.localAddr);
    this.remoteAddr = addr(conn.remoteAddr);
  }

  read(into: Uint8Array): Promise<number | null> {
    return this.#conn.read(into);
  }

  async write(data: Uint8Array): Promise<void> {
    for (let off = 0; off < data.length;) off += await this.#conn.write(data.subarray(off));
  }

  async closeWrite(): Promise<void> {
    await this.#conn.closeWrite();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // already closed by the runtime (e.g. after a reset)
    }
  }
}

/** Opens a TCP connection with TCP_NODELAY set. */
export async function connectTcp(options: TcpConnectOptions): Promise<ByteStream> {
  const conn = await Deno.connect({ hostname: options.hostname, port: options.port });
  // Without it a small write after the handshake waits ~40 ms (Nagle + delayed ACK).
  conn.setNoDelay(true);
  return new DenoTcpStream(conn);
}
