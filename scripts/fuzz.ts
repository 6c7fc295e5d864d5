/**
 * The long fuzz run (`tests/support/fuzz.ts`): seeded mutation of real in-memory handshakes and
 * records, on whichever runtime runs it. Prints the outcomes; exits 1 at the first case that
 * breaks an invariant (its message names the seed and the case, to replay it).
 *
 *   npm run fuzz -- --cases 100000 --seed 7          # Deno
 *   node_modules/.bin/bun scripts/fuzz.ts --cases 100000
 *
 * @module
 */
import process from "node:process";
import { liveNativeObjects } from "../mod.ts";
import { runFuzz } from "../tests/support/fuzz.ts";

const args = process.argv.slice(2);
const value = (name: string, fallback: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const cases = value("--cases", 10_000);
const seed = value("--seed", Date.now() % 2 ** 31);
console.log(`fuzz: ${cases} cases, seed ${seed}`);
const started = performance.now();
try {
  const report = await runFuzz({ cases, seed });
  const seconds = (performance.now() - started) / 1000;
  console.log(`fuzz: done in ${seconds.toFixed(1)} s`);
  console.log("outcomes:", report.outcomes);
  console.log("mutators:", report.mutators);
  const live = liveNativeObjects();
  if (live.total !== 0) {
    console.error(`fuzz: native objects left: ${JSON.stringify(live.byKind)}`);
    process.exit(1);
  }
} catch (error) {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exit(1);
}
