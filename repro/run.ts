/**
 * `deno task repro:tin | repro:cub | repro:sweep [options]`: regenerates a
 * study's results with seeded experiments and asserts each claim against its
 * tolerance. Exit status 1 when any claim fails (or its check is invalid).
 * @module
 */

import { parseFlags } from "../src/cli/_args.ts";
import { defaultTinDir, exists } from "../src/data/mod.ts";
import { openGpu } from "../src/gpu/device.ts";
import { evaluateClaims, experimentsOf, loadStudy, strictFailures } from "../src/repro/claims.ts";
import {
  loadProfile,
  type ProfileName,
  PROFILES,
  type RunSeeds,
  runSeeds,
} from "../src/repro/profiles.ts";
import { studyConfigs } from "../src/repro/experiments.ts";
import { claimsTable, commitId, verdictCounts, writeReport } from "../src/repro/report.ts";
import { families, runExperiments } from "../src/repro/runner.ts";
import { loadLevelJob } from "../src/repro/level_run.ts";
import { lockDir, LockedError } from "../src/repro/lock.ts";
import { renderFigures } from "../src/repro/figures_report.ts";

const HELP = `usage: deno task repro:<study> [options]     studies: tin, cub, sweep, scale

Regenerates the paper's results for one study and checks every claim in
repro/claims/<study>.yaml against its tolerance for the chosen profile.
The scale study (deno task repro:scale) goes beyond the paper: MAE's margins
over a random init at 1k, 4k and 16k training images, in the small profile
(checks at 16k images, measured at 1k and 4k: repro/claims/scale.yaml says why).

options:
  --profile P     smoke | ci | small | short | paper (default: paper when a Tiny ImageNet
                  copy is found and the adapter is a hardware GPU, else smoke)
  --seeds N       run every experiment with N seeds, N >= 1: seeds 1..N, or in a
                  profile that holds seeds apart from the ones its thresholds were
                  set on (small), the first N held-apart seeds (default: the
                  profile's seed, once)
  --seed-list S   run exactly these seeds (comma-separated, e.g. the small
                  profile's design seeds 1,2,3); the report says whether they
                  are design or held-apart seeds
  --shard i/n     run slice i of n (1-based) of the experiment families;
                  join the slices with deno task repro:merge
  --level K       with --shard i/n: train exactly shard i of n of level K of the
                  plan over all studies (deno task repro:plan); what it starts
                  from must be complete in the cache (else exit 1 naming it);
                  study 'all', no report (the workflow's merge jobs report)
  --strict        exit 1 unless every claim the profile asserts passes: an
                  inconclusive interval or a claim not run counts as a failure
                  (what CI uses)
  --asserted      run only the experiments of the claims the profile asserts
                  (with their controls; on a software adapter not the timing
                  claims, which are only measured there); the others read "not run"
  --only IDS      run only these experiments (comma-separated ids, plus what they
                  start from); claims on other experiments read "not run"
  --data DIR      root of the main dataset: Tiny ImageNet (default: $TIN_DIR, else
                  data/tiny-imagenet-200), or the Fashion-MNIST IDX folder in the ci
                  profile; the smoke profile reads fixtures/ and refuses --data/--cub
  --cub DIR       CUB-200-2011 root (default: $CUB_DIR, else data/CUB_200_2011)
  --out DIR       report directory (default runs/repro-<study>-<profile>)
  --cache DIR     experiment cache (default .cache/repro)
  --fresh         retrain every experiment (a cached entry is replaced only once
                  its retraining completes)
  --cached-only   train nothing: report from what the cache holds (an experiment
                  with a seed missing there reads "not run"); reads the cache
                  without locking it, so it can report while a run fills it
  --force         run the paper/short profile on a software adapter anyway
  --plan          print the study's plan instead of running it: each experiment,
                  what it starts from, images x epochs and its estimated time on
                  this adapter (deno task repro:plan; --profile defaults to paper
                  here, --shards N prices N jobs per level)
  --print-config  print every experiment's final config (profile stage, then the
                  experiment's changes, then seed and checkpoints, validated once)
                  as JSON and exit; --profile defaults to paper here
  -h, --help      this text

writes: OUT/claims.json, OUT/report.md, OUT/*.svg, OUT/figure2.png; prints the claims table.
The cache and OUT are locked while a run uses them: a second run on either
stops, naming the pid that holds it.
exit: 0 all checked claims pass, 1 a claim fails (or a run fails), 2 bad usage.`;

/** Rough CPU-adapter hours of a profile, for the --force warning. */
const CPU_ESTIMATE_HOURS: Record<ProfileName, number> = {
  smoke: 0.05,
  ci: 0.3,
  small: 1,
  short: 300,
  paper: 20000,
};

if (import.meta.main) {
  const t0 = performance.now();
  const commit = commitId();
  const fail = (msg: string): never => {
    console.error(`repro: ${msg}`);
    Deno.exit(2);
  };
  const { values, positionals } = parseFlags(
    "repro",
    Deno.args,
    {
      profile: { type: "string" },
      seeds: { type: "string" },
      asserted: { type: "boolean", default: false },
      strict: { type: "boolean", default: false },
      "seed-list": { type: "string" },
      shard: { type: "string" },
      level: { type: "string" },
      only: { type: "string" },
      data: { type: "string" },
      cub: { type: "string" },
      out: { type: "string" },
      cache: { type: "string", default: ".cache/repro" },
      fresh: { type: "boolean", default: false },
      "cached-only": { type: "boolean", default: false },
      force: { type: "boolean", default: false },
      "print-config": { type: "boolean", default: false },
      plan: { type: "boolean", default: false },
      shards: { type: "string" },
    },
    HELP,
    true,
  );
  if (values["cached-only"] && (values.fresh || values.level !== undefined)) {
    fail("--cached-only reports from the cache as it is: it cannot go with --fresh or --level");
  }
  if (values.level !== undefined) {
    // One job of the level-by-level GPU workflow (all studies): exactly what levelShard() assigns.
    const name = (values.profile ?? "smoke") as ProfileName;
    if (!PROFILES.includes(name)) fail(`unknown profile '${name}' (${PROFILES.join(", ")})`);
    const profile = await loadProfile(name);
    const job = await loadLevelJob(profile, values.level, values.shard ?? "1/1")
      .catch((e) => fail(e.message));
    const gpu = await openGpu().catch((e) => fail(e.message));
    console.log(
      `repro: level ${job.level} shard ${job.shard.index + 1}/${job.shard.count} ` +
        `(profile ${name}): ${job.ids.join(", ") || "nothing to train"}`,
    );
    const { runs } = await runExperiments(job.ids, {
      profile,
      seeds: [profile.stages.pretrain?.seed ?? 42],
      gpu,
      cacheDir: values.cache!,
      fresh: false,
      roots: {
        tin: values.data ?? Deno.env.get("TIN_DIR"),
        cub: values.cub ?? Deno.env.get("CUB_DIR"),
      },
      levelJob: job,
      log: (l) => console.error(`repro: ${l}`),
    }).catch((e) => {
      console.error(`repro: ${(e as Error).message}`);
      Deno.exit(1);
    });
    for (const r of runs) {
      console.log(`${r.experiment} (seed ${r.seed}): ${r.cached ? "cached" : "trained"}, ${r.dir}`);
    }
    Deno.exit(0);
  }
  const studyName = positionals[0] ?? fail(`name a study (tin, cub, sweep, scale)\n\n${HELP}`);
  if (positionals.length > 1) fail(`one study at a time, got '${positionals.join(" ")}'`);
  let nSeeds = 0;
  if (values.seeds !== undefined) {
    nSeeds = /^\d+$/.test(values.seeds) ? Number(values.seeds) : NaN;
    if (!(nSeeds >= 1)) fail(`--seeds must be an integer >= 1, got '${values.seeds}'`);
  }
  let seedList: number[] | undefined;
  if (values["seed-list"] !== undefined) {
    if (values.seeds !== undefined) fail("--seeds and --seed-list: give one of them");
    const parts = values["seed-list"].split(",").map((x: string) => x.trim());
    if (!parts.every((x: string) => /^\d+$/.test(x)) || new Set(parts).size !== parts.length) {
      fail(`--seed-list must be distinct integers >= 0 like 1,2,3; got '${values["seed-list"]}'`);
    }
    seedList = parts.map(Number);
  }
  let shard: { index: number; count: number } | undefined;
  if (values.shard !== undefined) {
    const m = /^(\d+)\/(\d+)$/.exec(values.shard);
    if (!m || Number(m[1]) < 1 || Number(m[1]) > Number(m[2])) {
      fail(`--shard must be i/n with 1 <= i <= n, like 1/4; got '${values.shard}'`);
    }
    shard = { index: Number(m![1]) - 1, count: Number(m![2]) };
  }
  if (values.profile !== undefined && !PROFILES.includes(values.profile as ProfileName)) {
    fail(`unknown profile '${values.profile}' (${PROFILES.join(", ")})`);
  }
  const study = await loadStudy(studyName).catch((e) => fail(e.message));
  if (values.plan) {
    // The study's plan with estimated times: the same as deno task repro:plan STUDY.
    const args = [studyName, "--profile", values.profile ?? "paper"];
    if (values.shards !== undefined) args.push("--shards", values.shards);
    const plan = new URL("./plan.ts", import.meta.url).pathname;
    const r = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", plan, ...args],
      stdout: "inherit",
      stderr: "inherit",
    }).spawn().status;
    Deno.exit(r.code);
  }
  if (values["print-config"]) {
    // Every experiment's final, validated config: no GPU and no data needed.
    const p = await loadProfile((values.profile ?? "paper") as ProfileName).catch((e) =>
      fail(e.message)
    );
    let seed = 0;
    try {
      seed = runSeeds(p, nSeeds > 0 ? nSeeds : undefined, seedList).seeds[0];
    } catch (e) {
      fail((e as Error).message);
    }
    console.log(JSON.stringify(studyConfigs(study, p, seed), null, 2));
    Deno.exit(0);
  }
  const gpu = await openGpu().catch((e) => fail(e.message));
  const tinRoot = values.data ?? Deno.env.get("TIN_DIR") ?? defaultTinDir();
  const haveTin = await exists(`${tinRoot}/wnids.txt`);
  let profileName: ProfileName;
  let why: string;
  if (values.profile) {
    profileName = values.profile as ProfileName;
    why = "chosen with --profile";
  } else if (haveTin && !gpu.adapter.software) {
    profileName = "paper";
    why = `Tiny ImageNet found at ${tinRoot} and ${gpu.adapter.description} is a hardware GPU`;
  } else {
    profileName = "smoke";
    why = !haveTin
      ? `no Tiny ImageNet at ${tinRoot} (fetch it with deno task data:tin, or pass --data)`
      : `${gpu.adapter.description} is a software rasterizer`;
  }
  console.log(
    `repro ${studyName}: profile ${profileName} — ${why}. Choose another with --profile ${
      PROFILES.join("|")
    }.`,
  );
  if (
    (profileName === "paper" || profileName === "short") && gpu.adapter.software && !values.force
  ) {
    fail(
      `the ${profileName} profile would take roughly ${
        CPU_ESTIMATE_HOURS[profileName]
      } hours on this software adapter ` +
        `(${gpu.adapter.description}); add --force to run it anyway`,
    );
  }
  const profile = await loadProfile(profileName);
  for (const [flag, key] of [["--data", "tin"], ["--cub", "cub"]] as const) {
    const fixed = profile.roots[key];
    if (values[flag.slice(2) as "data" | "cub"] !== undefined && fixed) {
      fail(
        `${flag}: the ${profileName} profile reads its fixed data (${fixed}) and would ignore ` +
          `${flag}; drop ${flag}, or choose a profile that reads it with --profile ci|short|paper`,
      );
    }
  }
  let ids = experimentsOf(study, profileName, {
    asserted: values.asserted,
    softwareAdapter: gpu.adapter.software,
  });
  if (values.only !== undefined) {
    const only: string[] = values.only.split(",").map((x: string) => x.trim()).filter((x: string) =>
      x
    );
    const unknown = only.filter((x: string) => !ids.includes(x));
    if (only.length === 0 || unknown.length > 0) {
      fail(
        `--only: ${unknown.length ? `'${unknown.join(",")}' not` : "no experiment"} among the ` +
          `${studyName} study's experiments in profile ${profileName}: ${ids.join(", ")}`,
      );
    }
    ids = only;
  }
  if (shard) {
    const nFam = families(ids, profile).length;
    if (shard.index >= nFam) {
      fail(
        `--shard ${shard.index + 1}/${shard.count} is empty: the ${studyName} study has ` +
          `${nFam} experiment families in profile ${profileName}, so use at most ${nFam} shards`,
      );
    }
  }
  let seedRun: RunSeeds;
  try {
    seedRun = runSeeds(profile, nSeeds > 0 ? nSeeds : undefined, seedList);
  } catch (e) {
    fail((e as Error).message);
  }
  const seeds = seedRun!.seeds;
  if (seedRun!.role) {
    console.log(`repro ${studyName}: seeds ${seeds.join(", ")} — ${seedRun!.role}`);
  }
  const out = values.out ??
    `runs/repro-${studyName}-${profileName}${
      shard ? `-shard${shard.index + 1}of${shard.count}` : ""
    }`;
  const outLock = await lockDir(
    out,
    `repro ${studyName} --out`,
    (l) => console.error(`repro: ${l}`),
  )
    .catch((e) => {
      if (e instanceof LockedError) fail(e.message);
      throw e;
    });
  const { results, runs } = await runExperiments(ids, {
    profile,
    seeds,
    gpu,
    cacheDir: values.cache!,
    fresh: values.fresh,
    cachedOnly: values["cached-only"],
    roots: {
      tin: values.data ?? Deno.env.get("TIN_DIR"),
      cub: values.cub ?? Deno.env.get("CUB_DIR"),
    },
    shard,
    log: (l) => console.error(`repro: ${l}`),
  }).catch((e) => {
    // One line naming the file or setting at fault (missing dataset, bad layout, bad config).
    console.error(`repro: ${(e as Error).message}`);
    outLock.release();
    Deno.exit(e instanceof LockedError ? 2 : 1);
  });
  // Experiments left out by --asserted or --only: their claims say why they were not run.
  for (const id of experimentsOf(study, profileName)) {
    if (!results.has(id) && !shard) {
      results.set(id, {
        notrun: `left out of this run (${values.asserted ? "--asserted" : "--only"})`,
      });
    }
  }
  const claims = evaluateClaims(study, profileName, results, {
    softwareAdapter: gpu.adapter.software,
  });
  const figures = await renderFigures(out, results, profile, gpu).catch((e) => {
    console.error(`repro: figures skipped: ${(e as Error).message}`);
    return [] as string[];
  });
  await writeReport(out, {
    study: study.study,
    title: study.title,
    profile: profileName,
    profileReason: why,
    seeds,
    ...(seedRun!.kind ? { seedRole: seedRun!.role, seedKind: seedRun!.kind } : {}),
    adapter: { description: gpu.adapter.description, software: gpu.adapter.software },
    commit: await commit,
    started: new Date(Date.now() - (performance.now() - t0)).toISOString(),
    seconds: (performance.now() - t0) / 1000,
    shard: shard ? `${shard.index + 1}/${shard.count}` : null,
    ...(values["cached-only"] ? { cachedOnly: true } : {}),
    claims,
    results,
    runs,
    figures,
  });
  outLock.release();
  console.log(claimsTable(claims));
  const counts = verdictCounts(claims);
  console.log(
    `\n${Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(", ")}; report: ${out}/report.md`,
  );
  const unsettled = values.strict
    ? strictFailures(claims, study, profileName, {
      softwareAdapter: gpu.adapter.software,
    })
    : [];
  if (unsettled.length > 0) {
    console.log(
      `--strict: ${unsettled.length} asserted claim(s) did not pass: ${unsettled.join(", ")}`,
    );
  }
  Deno.exit((counts.fail ?? 0) + (counts.invalid ?? 0) + unsettled.length > 0 ? 1 : 0);
}
