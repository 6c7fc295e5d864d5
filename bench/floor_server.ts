/**
 * The floor of an OpenSSL server on whichever runtime runs it: the bare OpenSSL calls a C server
 * makes (`bench/bare_tls.ts`: an `SSL` over memory BIOs on our `TlsContext`'s `SSL_CTX`, no
 * `TlsEngine`, no `Connection`, no promise per record) over the runtime's cheapest listener with
 * plain callbacks (Deno: the epoll transport's libc calls and its shared waits,
 * `src/net/reactor.ts`; Bun: `Bun.listen`; Node.js: `node:net`). What no OpenSSL binding on that
 * runtime can beat when serving handshakes; `bench/run.ts` runs it as the server side's "floor"
 * rows (serve-handshakes only).
 *
 *   deno run -A bench/floor_server.ts <port> <cert-chain.pem> <key.pem>
 *   bun bench/floor_server.ts <port> <cert-chain.pem> <key.pem>
 *   node bench/floor_server.ts <port> <cert-chain.pem> <key.pem>
 *
 * Listens on 127.0.0.1:<port> (0 picks a free port), TLS 1.3 only, prints `LISTENING <port>`, and
 * answers as bench/native/server.c does to PING: after the handshake (and OpenSSL's default two
 * session tickets), `PING\n` gets `PONG\n` and a close_notify; the connection is freed when the
 * client closes. Anything else than PING closes the connection.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import process from "node:process";
import { ERRNO, loadSockets } from "../src/core/native.ts";
import { TlsContext } from "../src/tls/context.ts";
import { internalsOf } from "../src/tls/native_context.ts";
import { theReactor, watch } from "../src/net/reactor.ts";
import { type BareSocket, BareTls } from "./bare_tls.ts";
import { serverArgs } from "./servers/serve.ts";

const { port, certPath, keyPath } = serverArgs(process.argv.slice(2), "floor_server.ts");
const context = new TlsContext("server", {
  cert: readFileSync(certPath, "utf8"),
  key: readFileSync(keyPath, "utf8"),
  minVersion: "TLSv1.3",
});
const ctx = internalsOf(context).ctx();
const pong = new TextEncoder().encode("PONG\n");
const PING = "PING";
const decoder = new TextDecoder();

/** What a listener calls for an accepted connection's bytes and its end. */
interface Session {
  data(chunk: Uint8Array): void;
  end(): void;
}

/** Serves one accepted connection over `socket`: the handshake, then PING. */
function session(socket: BareSocket): Session {
  const tls = new BareTls(ctx, "server");
  tls.attach(socket);
  let handshaking = true;
  let answered = false;
  const line = new Uint8Array(64);
  let have = 0;
  return {
    data(chunk) {
      try {
        tls.input(chunk);
        if (handshaking) {
          if (!tls.step()) return socket.want();
          handshaking = false;
        }
        if (!answered) {
          have = tls.read(line, have);
          const nl = line.subarray(0, have).indexOf(0x0a);
          if (nl < 0 && have < line.length) return socket.want();
          if (decoder.decode(line.subarray(0, nl)) !== PING) {
            throw new Error("not PING");
          }
          tls.write(pong);
          tls.shutdown(); // close_notify, as server.c
          answered = true;
        }
        socket.want(); // until the client closes
      } catch (error) {
        console.error(`floor server: ${error instanceof Error ? error.message : error}`);
        tls.free();
      }
    },
    end: () => tls.free(),
  };
}

/** Deno: the epoll transport's libc calls and its shared waits, no stream objects. */
function listenDeno(): number {
  const s = loadSockets();
  if (s === null) throw new Error("Deno without the libc socket calls (Linux only)");
  const fd = s.tcpSocket(4);
  s.setOption(fd, "reuseAddress", true);
  const ip = s.parseIp("127.0.0.1")!;
  if (s.bind(fd, { ...ip, port }) !== 0 || s.listen(fd, 1024) !== 0) {
    throw new Error(`cannot listen on 127.0.0.1:${port}`);
  }
  const listening = watch(s, fd, "listen");
  const input = new Uint8Array(64 * 1024);
  const serveOne = (conn: number) => {
    s.setOption(conn, "noDelay", true);
    const watcher = watch(s, conn, "accept");
    let reading = false;
    let closed = false;
    const pump = async () => {
      while (!closed) {
        const n = s.recv(conn, input);
        if (n > 0) {
          reading = false;
          return handlers.data(input.subarray(0, n));
        }
        if (n !== -ERRNO.EAGAIN) {
          reading = false;
          return handlers.end(); // the client closed (or reset)
        }
        await theReactor().wait(watcher, false);
      }
    };
    const handlers = session({
      send: (bytes) => void s.send(conn, bytes),
      want() {
        if (reading || closed) return;
        reading = true;
        void pump();
      },
      close() {
        if (closed) return;
        closed = true;
        theReactor().remove(watcher);
        s.close(conn);
      },
    });
    handlers.data(new Uint8Array(0)); // starts reading the ClientHello
  };
  void (async () => {
    for (;;) {
      const conn = s.accept(fd);
      if (conn >= 0) serveOne(conn);
      else if (conn === -ERRNO.EAGAIN) await theReactor().wait(listening, false);
      else if (conn !== -ERRNO.EINTR && conn !== -ERRNO.ECONNABORTED) {
        throw s.error(-conn, "accept");
      }
    }
  })();
  return s.localAddress(fd)!.port;
}

/** Bun: `Bun.listen` with plain callbacks. */
function listenBun(): number {
  // deno-lint-ignore no-explicit-any
  const B = (globalThis as any).Bun;
  // deno-lint-ignore no-explicit-any
  type Socket = any;
  const server = B.listen({
    hostname: "127.0.0.1",
    port,
    binaryType: "uint8array",
    socket: {
      open(socket: Socket) {
        socket.setNoDelay(true);
        socket.data = session({
          send: (bytes) => void socket.write(bytes),
          want() {},
          close: () => socket.terminate(),
        });
      },
      data: (socket: Socket, chunk: Uint8Array) => socket.data.data(chunk),
      close: (socket: Socket) => socket.data?.end(),
      error() {},
    },
  });
  return server.port;
}

/** Node.js: `node:net` with plain `data` events. */
async function listenNode(): Promise<number> {
  const net = await import("node:net");
  const server = net.createServer({ noDelay: true }, (socket) => {
    const handlers = session({
      send: (bytes) => void socket.write(bytes),
      want() {},
      close: () => void socket.destroy(),
    });
    socket.on("data", (chunk: Uint8Array) => handlers.data(chunk));
    socket.on("close", () => handlers.end());
    socket.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return (server.address() as { port: number }).port;
}

const bound = "Deno" in globalThis
  ? listenDeno()
  : "Bun" in globalThis
  ? listenBun()
  : await listenNode();
console.log(`LISTENING ${bound}`);
