/**
 * The long-lived-process work, shared by the benchmark clients: the bulk transfer, then `count`
 * sequential handshakes, then the same bulk transfer again (each the median of three). Prints one
 * JSON line whose value is the throughput after the handshakes as a ratio to the fresh one.
 *
 * @module
 */
import process from "node:process";

/** One bulk transfer's throughput and the CPU seconds it took. */
export interface Transfer {
  mbps: number;
  cpu: number;
}

/** The median of three transfers (by throughput). */
async function medianOfThree(receive: () => Promise<Transfer>): Promise<Transfer> {
  const runs = [await receive(), await receive(), await receive()];
  return runs.sort((a, b) => a.mbps - b.mbps)[1]!;
}

/**
 * Runs the work with the client's own `receive` (one bulk transfer) and `handshake` (one
 * connection with a PING).
 */
export async function longLived(
  receive: () => Promise<Transfer>,
  handshake: () => Promise<void>,
  count: number,
): Promise<void> {
  await receive(); // warm-up: code paths and buffers
  const fresh = await medianOfThree(receive);
  for (let i = 0; i < count; i++) await handshake();
  const after = await medianOfThree(receive);
  console.log(JSON.stringify({
    work: "longlived",
    value: after.mbps / fresh.mbps,
    unit: "ratio",
    fresh: fresh.mbps,
    after: after.mbps,
    cpuRatio: after.cpu / fresh.cpu,
    rss: process.memoryUsage().rss,
  }));
}
