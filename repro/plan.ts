/**
 * `deno task repro:plan [tin|cub|sweep|all] [options]`: the experiments a
 * study (or all studies, each experiment once) trains under a profile, in
 * levels, with each one's estimated time on this adapter from a short
 * measured calibration, and each level's wall time with N shards.
 * @module
 */

import { parseFlags } from "../src/cli/_args.ts";
import { writeFileAtomic } from "../src/data/mod.ts";
import { openGpu } from "../src/gpu/device.ts";
import { calibrate, SOFTWARE_CALIBRATION_BATCH } from "../src/repro/calibrate.ts";
import { EXTRA_STUDIES, formatPlan, loadPlan, planJson, STUDIES } from "../src/repro/planner.ts";
import { loadProfile, type ProfileName, PROFILES } from "../src/repro/profiles.ts";

const HELP = `usage: deno task repro:plan [tin|cub|sweep|all] [options]

Prints the experiments of a study (default: all studies, each experiment
once): level (0 needs nothing; level k starts from checkpoints of lower
levels), what each depends on, its mode, images x epochs, and its estimated
time on this adapter; then each level's time with N shards and the total.

Times come from a calibration: a few training steps of each model shape
(MAE, probe, classifier, critic, SMAE, DINO) at the stage's batch and image
size on synthetic images. Results are cached per adapter and shape, so only
the first plan on a machine trains (steps only: no --force is needed for
the paper profile on a CPU).

options:
  --profile P       smoke | ci | small | short | paper (default paper)
  --shards N        jobs per level for the wall time (default 1)
  --json            print the plan as one JSON object instead of the table
  --out FILE        also write the JSON plan to FILE
  --cache FILE      calibration cache (default .cache/calibration.json)
  --recalibrate     measure again even when cached
  --steps N         timed calibration steps per shape (default 2)
  --calibration-batch N
                    calibrate at batch N instead of each stage's batch (default on
                    a software adapter: 8, since a CPU's images/s hardly depends on
                    the batch and the paper's shapes take minutes a step at 128)
  --no-calibrate    no times: the plan and its shards only (no device needed)
  -h, --help        this text`;

if (import.meta.main) {
  const { values, positionals } = parseFlags(
    "repro:plan",
    Deno.args,
    {
      profile: { type: "string", default: "paper" },
      shards: { type: "string", default: "1" },
      json: { type: "boolean", default: false },
      out: { type: "string" },
      cache: { type: "string", default: ".cache/calibration.json" },
      recalibrate: { type: "boolean", default: false },
      steps: { type: "string", default: "2" },
      "calibration-batch": { type: "string" },
      "no-calibrate": { type: "boolean", default: false },
    },
    HELP,
    true,
  );
  const fail = (msg: string): never => {
    console.error(`repro:plan: ${msg}`);
    Deno.exit(2);
  };
  const study = positionals[0] ?? "all";
  const known: readonly string[] = [...STUDIES, ...EXTRA_STUDIES];
  if (study !== "all" && !known.includes(study)) {
    fail(`unknown study '${study}' (${known.join(", ")}, all)`);
  }
  if (positionals.length > 1) fail(`one study at most, got ${positionals.join(" ")}`);
  if (!PROFILES.includes(values.profile as ProfileName)) {
    fail(`unknown profile '${values.profile}' (${PROFILES.join(", ")})`);
  }
  const shards = Number(values.shards);
  if (!Number.isInteger(shards) || shards < 1) {
    fail(`--shards must be a positive integer, got '${values.shards}'`);
  }
  const steps = Number(values.steps);
  if (!Number.isInteger(steps) || steps < 1) {
    fail(`--steps must be a positive integer, got '${values.steps}'`);
  }
  const calBatch = values["calibration-batch"] === undefined
    ? undefined
    : Number(values["calibration-batch"]);
  if (calBatch !== undefined && (!Number.isInteger(calBatch) || calBatch < 1)) {
    fail(`--calibration-batch must be a positive integer, got '${values["calibration-batch"]}'`);
  }
  const profile = await loadProfile(values.profile as ProfileName).catch((e) => fail(e.message));
  const plan = await loadPlan(study, profile).catch((e) => fail(e.message));
  let rates: Map<string, number> | null = null;
  const sources = new Map<string, string>();
  let adapter: string | null = null;
  if (!values["no-calibrate"]) {
    const gpu = await openGpu().catch((e) => fail(e.message));
    adapter = gpu.adapter.description;
    const batch = calBatch ?? (gpu.adapter.software ? SOFTWARE_CALIBRATION_BATCH : undefined);
    if (batch !== undefined && calBatch === undefined) {
      console.error(`repro:plan: software adapter: calibration steps at batch ${batch}`);
    }
    const cal = await calibrate(profile, plan.work, {
      gpu,
      cacheFile: values.cache,
      recalibrate: values.recalibrate,
      steps,
      batch,
      log: (l) => console.error(`repro:plan: ${l}`),
    }).catch((e) => fail(`calibration: ${(e as Error).message}`));
    rates = cal.rates;
    for (const k of rates.keys()) sources.set(k, cal.measured.includes(k) ? "measured" : "cached");
  }
  const j = planJson(plan, shards, rates, sources, adapter);
  if (values.out) {
    await writeFileAtomic(values.out, new TextEncoder().encode(JSON.stringify(j, null, 2) + "\n"));
  }
  console.log(values.json ? JSON.stringify(j) : formatPlan(j));
}
