/**
 * The benchmark server protocol (bench/native/server.c's BULK and PING) over any connection with
 * Deno-style `read` / `write` / `closeWrite` / `close`: this library's `Connection` and
 * `Deno.TlsConn` alike. Used by bench/servers/libssl_ffi.ts and bench/servers/deno_tls.ts.
 *
 * After the handshake the client sends one line:
 *   `BULK <n>\n` -> n bytes, then close_notify
 *   `PING\n`     -> `PONG\n`, then close_notify
 * then the server waits (at most 5 s) for the client to close, like server.c.
 *
 * @module
 */

/** What {@link serve} needs from a connection. */
export interface ServedConn {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  closeWrite(): Promise<void>;
  close(): void;
}

const CHUNK = 256 * 1024;
const bulkData = new Uint8Array(CHUNK).fill(0x78); // "x", as server.c sends
const pong = new TextEncoder().encode("PONG\n");
const CLOSE_WAIT_MS = 5000;

/** Every byte of `p`, however many writes it takes (Deno.TlsConn may write part of it). */
async function writeAll(conn: ServedConn, p: Uint8Array): Promise<void> {
  for (let off = 0; off < p.length;) off += await conn.write(off === 0 ? p : p.subarray(off));
}

/** The command line, without its newline. */
async function readLine(conn: ServedConn): Promise<string> {
  const buf = new Uint8Array(256);
  let len = 0;
  for (;;) {
    const n = await conn.read(buf.subarray(len));
    if (n === null) throw new Error("EOF before the command line");
    len += n;
    const nl = buf.subarray(0, len).indexOf(0x0a);
    if (nl >= 0) return new TextDecoder().decode(buf.subarray(0, nl));
    if (len === buf.length) throw new Error("command line too long");
  }
}

/** Reads until the client closes (EOF, reset or anything else), for at most 5 s. */
async function waitForClose(conn: ServedConn): Promise<void> {
  const sink = new Uint8Array(4096);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_WAIT_MS)));
  const eof = (async () => {
    try {
      while ((await conn.read(sink)) !== null) { /* discard */ }
    } catch { /* a reset or an EOF without close_notify: the client is gone either way */ }
  })();
  await Promise.race([eof, timeout]);
  clearTimeout(timer);
}

/**
 * Serves one handshaken connection: reads the command, answers, sends close_notify, waits for
 * the client to close, closes. Rejects if reading the command or writing the answer fails; the
 * connection is closed either way.
 */
export async function serve(conn: ServedConn): Promise<void> {
  try {
    const line = await readLine(conn);
    if (line.startsWith("BULK ")) {
      for (let left = Number(line.slice(5)); left > 0; left -= CHUNK) {
        await writeAll(conn, left >= CHUNK ? bulkData : bulkData.subarray(0, left));
      }
    } else if (line === "PING") {
      await writeAll(conn, pong);
    } else {
      throw new Error(`unknown command ${JSON.stringify(line.slice(0, 40))}`);
    }
    // A PING client may be gone already (it closes once it has PONG): the client checks the
    // close_notify where it matters (after BULK), so a failing closeWrite is not reported here.
    await conn.closeWrite().catch(() => {});
    await waitForClose(conn);
  } finally {
    conn.close();
  }
}

/** The command-line arguments of every benchmark server: `<port> <cert-chain.pem> <key.pem>`. */
export function serverArgs(argv: string[], name: string): {
  port: number;
  certPath: string;
  keyPath: string;
} {
  const [port, certPath, keyPath] = argv;
  if (port === undefined || certPath === undefined || keyPath === undefined) {
    throw new Error(`usage: ${name} <port> <cert-chain.pem> <key.pem>`);
  }
  return { port: Number(port), certPath, keyPath };
}
