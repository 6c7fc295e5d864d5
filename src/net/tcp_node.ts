/**
 * TCP through `node:net`: used on Bun (where it is as fast as `Bun.connect` in our measurements)
 * and as the portable fallback. Adapts node's push-based 'data' events to pull-based reads, with
 * backpressure (the socket is paused while unread data exceeds a high-water mark).
 *
 * @module
 */
import net from "node:net";
import type { ByteStream, NetAddr, TcpConnectOptions } from "./stream.ts";

const HIGH_WATER = 1 << 20;

function addr(address: string | undefined, port: number | undefined): NetAddr | null {
  return address === undefined || port === undefined
    ? null
    : { transport: "tcp", hostname: address, port };
}

class NodeTcpStream implements ByteStream {
  #socket: net.Socket;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #ended = false;
  #error: Error | null = null;
  #closed = false;
  #waiter: (() => void) | null = null;
  readonly localAddr: NetAddr | null;
  readonly remoteAddr: NetAddr | null;

  constructor(socket: net.Socket) {
    this.#socket = socket;
    this.localAddr = addr(socket.localAddress, socket.localPort);
    this.remoteAddr = addr(socket.remoteAddress, socket.remotePort);
    socket.on("data", (chunk: Uint8Array) => {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
      if (this.#buffered > HIGH_WATER) socket.pause();
      this.#wake();
    });
    socket.on("end", () => {
      this.#ended = true;
      this.#wake();
    });
    socket.on("error", (error) => {
      this.#error ??= error;
      this.#wake();
    });
    socket.on("close", () => {
      this.#ended = true;
      this.#wake();
    });
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = null;
    w?.();
  }

  async #waitForData(): Promise<boolean> {
    while (this.#chunks.length === 0) {
      if (this.#closed) throw new Error("the stream is closed");
      if (this.#error !== null) throw this.#error;
      if (this.#ended) return false;
      await new Promise<void>((resolve) => (this.#waiter = resolve));
    }
    return true;
  }

  #resumeIfDrained(): void {
    if (this.#buffered <= HIGH_WATER / 2 && this.#socket.isPaused()) this.#socket.resume();
  }

  async readChunk(): Promise<Uint8Array | null> {
    if (!(await this.#waitForData())) return null;
    const chunk = this.#chunks.shift()!;
    this.#buffered -= chunk.length;
    this.#resumeIfDrained();
    return chunk;
  }

  async read(into: Uint8Array): Promise<number | null> {
    if (!(await this.#waitForData())) return null;
    let n = 0;
    while (n < into.length && this.#chunks.length > 0) {
      const chunk = this.#chunks[0]!;
      const take = Math.min(chunk.length, into.length - n);
      into.set(take === chunk.length ? chunk : chunk.subarray(0, take), n);
      n += take;
      if (take === chunk.length) this.#chunks.shift();
      else this.#chunks[0] = chunk.subarray(take);
    }
    this.#buffered -= n;
    this.#resumeIfDrained();
    return n;
  }

  write(data: Uint8Array): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("the stream is closed"));
    if (this.#error !== null) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => {
      const flushed = this.#socket.write(data, (error) => {
        if (error) reject(error);
        else if (!flushed) resolve();
      });
      if (flushed) resolve();
    });
  }

  closeWrite(): Promise<void> {
    return new Promise((resolve) => this.#socket.end(() => resolve()));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#socket.destroy();
    this.#wake();
  }
}

/** Opens a TCP connection with TCP_NODELAY set. */
export function connectTcp(options: TcpConnectOptions): Promise<ByteStream> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: options.hostname, port: options.port });
    const onError = (error: Error) => {
      socket.destroy();
      reject(error);
    };
    socket.once("error", onError);
    socket.once("connect", () => {
      socket.off("error", onError);
      // Without it a small write after the handshake waits ~40 ms (Nagle + delayed ACK).
      socket.setNoDelay(true);
      resolve(new NodeTcpStream(socket));
    });
  });
}
