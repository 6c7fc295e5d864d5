/**
 * The byte-stream contract a {@link Connection} runs TLS over: TCP on either runtime, or any pair
 * of Web streams (STARTTLS). Implementations: `tcp_epoll.ts` (libc sockets, Deno's first choice),
 * `tcp_deno.ts` (the only file in `src/` that touches `Deno.*`), `tcp_bun.ts` (the only one that touches `Bun.*`), `tcp_node.ts` (`node:net`, used on
 * Node.js), and `web_stream.ts`; `tcp.ts` picks the TCP one for the runtime.
 *
 * @module
 */

/** A network address, shaped like `Deno.NetAddr`. */
export interface NetAddr {
  /** Always `"tcp"` for now. */
  readonly transport: "tcp";
  /** The IP address. */
  readonly hostname: string;
  /** The port. */
  readonly port: number;
}

/** Where {@link ByteStream.readLazily} takes its buffers from. */
export interface ReadBuffers {
  /** A buffer for one receive attempt. */
  take(): Uint8Array;
  /** Gives back the buffer taken last, which received nothing: the stream waits now. */
  giveBack(buffer: Uint8Array): void;
}

/**
 * A bidirectional byte stream. `A` is what its addresses are: `NetAddr` for TCP, `NetAddr | null`
 * for a transport that may have none.
 */
export interface ByteStream<A extends NetAddr | null = NetAddr | null> {
  /**
   * Reads into `into`: the byte count (> 0), or `null` at end of stream. Rejects on I/O errors
   * and once {@link close} was called.
   */
  read(into: Uint8Array): Promise<number | null>;
  /**
   * Optional: like {@link read}, but takes the buffer from `buffers` for each receive attempt and
   * gives it back before it waits for the peer, so that a read that waits holds no buffer (an
   * idle connection keeps none). Resolves with the count received into the buffer taken last,
   * or `null` at end of stream.
   */
  readLazily?(buffers: ReadBuffers): Promise<number | null>;
  /**
   * For streams that receive data in chunks they own (Bun, node:net, Web streams): the next chunk, or
   * `null` at end of stream. Lets the connection hand the chunk straight to the engine instead of
   * copying it into a read buffer first. Optional.
   */
  readChunk?(): Promise<Uint8Array | null>;
  /**
   * True when nobody writes to a chunk from {@link readChunk} once it was returned (Bun's `data`
   * callbacks and node:net's 'data' events get a fresh buffer each), so the connection may lend it
   * to OpenSSL instead of copying it. Web-stream producers give no such promise.
   */
  readonly chunksStayIntact?: boolean;
  /**
   * Writes all of `data`; resolves when the stream accepted it (backpressure). The caller must
   * not reuse `data` afterwards (node:net keeps a reference until it is flushed), unless
   * {@link releasesWrites} says the stream is done with it once this settles.
   */
  write(data: Uint8Array): Promise<void>;
  /**
   * True when the stream no longer references `data` once {@link write} has settled (Deno's
   * `conn.write` completes its op first; Bun's `socket.write` keeps nothing), so the caller may
   * reuse the buffer from then on.
   * A number: the same, for writes of at least that many bytes only. Absent or false: never
   * reuse it (node:net resolves while it still holds the buffer).
   */
  readonly releasesWrites?: boolean | number;
  /** Half-closes the sending side (TCP FIN). */
  closeWrite(): Promise<void>;
  /** Closes both directions at once and fails pending operations. Idempotent. */
  close(): void;
  /**
   * The local address, when there is one. A TCP listener's streams have both addresses or
   * neither (a client gone before its socket was accepted).
   */
  readonly localAddr: A;
  /** The remote address, when there is one. */
  readonly remoteAddr: A;
  /**
   * Lets the open stream keep the process alive (the default), or not ({@link unref}). Absent
   * on a transport that has no such notion (then `Connection.ref()` throws).
   */
  ref?(): void;
  /** The stream no longer keeps the process alive while it waits for data. Optional. */
  unref?(): void;
  /** Sets or clears TCP_NODELAY. Absent on a transport that has no such option. */
  setNoDelay?(noDelay: boolean): void;
  /** Turns TCP keep-alive probes on or off. Absent on a transport that has no such option. */
  setKeepAlive?(keepAlive: boolean): void;
}

/** Options for opening a TCP connection. */
export interface TcpConnectOptions {
  /** Host name or IP address. */
  hostname: string;
  /** Port. */
  port: number;
}

/** Options for listening on a TCP port. */
export interface TcpListenOptions {
  /** The address to bind, e.g. `"0.0.0.0"`, `"::"` or `"127.0.0.1"`. */
  hostname: string;
  /** The port; 0 picks a free one. */
  port: number;
  /**
   * How many accepted connections may wait for {@link TcpListener.accept}; beyond that they wait
   * in the kernel's backlog (Deno), or are closed at once where the runtime pushes connections
   * at us (Bun, node:net).
   */
  maxQueued: number;
}

/** A listening TCP socket, pull-based: connections are taken one at a time. */
export interface TcpListener {
  /**
   * The next connection (TCP_NODELAY set), or `null` once the listener is closed. Rejects on
   * accept errors (e.g. out of file descriptors) and when the port could not be bound. A stream
   * without addresses is a client that was gone before it was accepted (node:net or Bun could
   * no longer tell its addresses): the caller reports it.
   */
  accept(): Promise<ByteStream<NetAddr | null> | null>;
  /** The bound address. Throws when binding failed (the error `accept()` rejects with). */
  readonly addr: NetAddr;
  /** Stops listening; connections already accepted stay open. Idempotent. */
  close(): void;
}

/** A TCP implementation: what `tcp_deno.ts`, `tcp_epoll.ts`, `tcp_bun.ts` and `tcp_node.ts` export. */
export interface TcpTransport {
  /** Opens a TCP connection with TCP_NODELAY set. */
  connectTcp(options: TcpConnectOptions): Promise<ByteStream<NetAddr>>;
  /** Listens on a TCP port. */
  listenTcp(options: TcpListenOptions): TcpListener;
}
