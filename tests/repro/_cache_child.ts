/**
 * Child process for the cache tests: runs `pretrain-mae-random` of the smoke
 * profile, cut to 2 epochs, through the experiment cache given as the first
 * argument (`--fresh` second to retrain), and prints one line
 * `RESULT {cached, eval}` when done. Its log goes to stderr, so a test can
 * kill it by pid at a marker (a step line, or REPRO_PAUSE_AT's pause line).
 * @module
 */

import { openGpu } from "../../src/gpu/device.ts";
import { loadProfile } from "../../src/repro/profiles.ts";
import { runExperiments } from "../../src/repro/runner.ts";

const [cacheDir, flag] = Deno.args;
const profile = await loadProfile("smoke");
// A run's config is built from the stage as written (raw), not the copy checked at load.
(profile.raw.pretrain as { optim: { epochs: number } }).optim.epochs = 2;
const { results, runs } = await runExperiments(["pretrain-mae-random"], {
  profile,
  seeds: [42],
  gpu: await openGpu({ log: false }),
  cacheDir,
  fresh: flag === "--fresh",
  roots: {},
  log: (l) => console.error(`repro: ${l}`),
}).catch((e) => {
  console.error(`repro: ${(e as Error).message}`);
  Deno.exit(3);
});
const r = results.get("pretrain-mae-random") as { metrics: Record<string, unknown>[] };
console.log(`RESULT ${JSON.stringify({ cached: runs[0].cached, eval: r.metrics[0].eval })}`);
Deno.exit(0);
