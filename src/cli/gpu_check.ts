/**
 * `deno task gpu-check [--quick] [--json FILE]`: is this adapter ready for
 * the paper, and how long will it take? Prints the adapter and its limits,
 * runs the kernel audit and the benchmark rows (with ViT-Lite-7/4 training
 * steps), trains one epoch of the `short` profile's MAE pre-training (Tiny
 * ImageNet when present, else the fixtures), times the same MAE step in
 * PyTorch when it is installed, and projects the `short` and `paper`
 * profiles' time over all studies from these measurements
 * (src/repro/estimate.ts). Exit 1 when the audit fails.
 * @module
 */

import { parseFlags } from "./_args.ts";
import type { BenchRow } from "../repro/results_page.ts";
import { defaultTinDir, exists, writeFileAtomic } from "../data/mod.ts";
import { type Gpu, openGpu } from "../gpu/device.ts";
import {
  calibrate,
  measureStepRate,
  shapeKey,
  SOFTWARE_CALIBRATION_BATCH,
  stageCopy,
} from "../repro/calibrate.ts";
import { deriveRates, flopsPerImage, formatDuration, modelShape } from "../repro/estimate.ts";
import { loadPlan, type PlanJson, planJson } from "../repro/planner.ts";
import { loadProfile, type ProfileName, PROFILES } from "../repro/profiles.ts";
import type { TrainConfig } from "../train/config.ts";
import { loadSplits } from "../train/data.ts";

const HELP = `usage: deno task gpu-check [--quick] [--json FILE] [options]

Checks this WebGPU adapter for the paper's runs and projects their time:
  1. the adapter and its limits
  2. the kernel audit (deno task audit, or the tests under tests/ops/)
  3. the benchmark rows (deno task bench --json), with ViT-Lite-7/4 training steps
  4. one epoch of the short profile's MAE pre-training on Tiny ImageNet
     ($TIN_DIR or data/tiny-imagenet-200; the fixtures when absent), in images/s
  5. the same MAE step in PyTorch, when /usr/bin/python3 has torch (CUDA, else 2 CPU threads)
  6. the projected time of the short and paper profiles over all studies
     (deno task repro:plan), from calibrated rates where cached (measured
     here without --quick) and these measurements otherwise
Prints a summary; --json FILE also writes the whole report (atomically).
Exit 1 when the audit fails.

options:
  --quick            fewer bench rows (matmul, train), shorter timing, a few steps of the epoch,
                     no calibration (projections from this run's measurements only)
  --json FILE        write the report as JSON
  --shards N         jobs per level in the projections (default 4)
  --audit-op NAME    audit one op only (e.g. softmax); --no-audit skips it
  --bench-only LIST  bench names (deno task bench --help); --no-bench skips the bench
  --train-batch N    batch of the bench's training steps (default 128)
  --epoch-steps N    train N+1 steps instead of the epoch (default: the epoch; 3 with --quick)
  --epoch-batch N    batch of the epoch (default: the profile's, 128)
  --epoch-profile P  whose MAE pre-training stage the epoch trains (default short; smoke
                     is a tiny model, for tests)
  --torch-steps N    timed PyTorch steps (default 5); --no-torch skips PyTorch
  --cache FILE       calibration cache (default .cache/calibration.json)
  -h, --help         this text`;

const ROOT = new URL("../../", import.meta.url).pathname;

/** The report --json writes. */
export interface GpuCheckReport {
  version: 1;
  started: string;
  seconds: number;
  quick: boolean;
  adapter: {
    description: string;
    vendor: string;
    architecture: string;
    software: boolean;
    backend: string;
    features: string[];
    limits: Record<string, number>;
  };
  audit:
    | { command: string; ok: boolean; passed: number; failed: number; seconds: number }
    | null;
  bench: {
    command: string;
    ok: boolean;
    rows: BenchRow[];
    /** The bench's ViT-Lite-7/4 MAE and fine-tuning steps, images/s, when it ran them. */
    trainSteps: { batch: number; mae: number | null; finetune: number | null };
  } | null;
  epoch: {
    dataset: string;
    root: string;
    fixtures: boolean;
    images: number;
    batch: number;
    steps: number;
    imagesPerSecond: number;
    shape: string;
    /** The profile whose pre-training stage ran (short unless --epoch-profile). */
    profile: string;
    flopsPerImage: number;
  };
  torch: {
    available: boolean;
    device?: string;
    batch?: number;
    imagesPerSecond?: number;
    /** Our MAE step's images/s (bench) over PyTorch's at the same batch. */
    oursOverTorch?: number | null;
    error?: string;
  };
  projections: Record<"short" | "paper", {
    shards: number;
    serialSeconds: number;
    wallSeconds: number;
    levels: { level: number; wallSeconds: number; serialSeconds: number }[];
    rates: PlanJson["rates"];
  }>;
}

async function spawn(
  args: string[],
  opts: { cmd?: string; env?: Record<string, string> } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(opts.cmd ?? Deno.execPath(), {
    args,
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp", ...opts.env },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Deno's test summary "ok | 3 passed | 0 failed" (colours stripped). */
export function parseTestSummary(text: string): { passed: number; failed: number } | null {
  // deno-lint-ignore no-control-regex
  const plain = text.replace(/\x1b\[[0-9;]*m/g, "");
  const m = /(?:^|\n)(?:ok|FAILED) \| (\d+) passed(?: \(\d+ steps?\))? \| (\d+) failed/.exec(plain);
  return m ? { passed: Number(m[1]), failed: Number(m[2]) } : null;
}

/** The kernel audit: the `audit` task when deno.json has one, else the tests under tests/ops/. */
async function runAudit(op: string | null): Promise<NonNullable<GpuCheckReport["audit"]>> {
  const t0 = performance.now();
  const tasks = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)).tasks ?? {};
  if (tasks.audit) {
    const file = await Deno.makeTempFile({ suffix: ".json" });
    const args = ["task", "audit", "--json", file, ...(op ? ["--op", op] : [])];
    const r = await spawn(args);
    let passed = 0, failed = 0;
    try {
      const j = JSON.parse(await Deno.readTextFile(file));
      passed = Number(j.passed ?? 0);
      failed = Number(j.failed ?? 0);
    } catch {
      failed = Math.max(1, failed); // no report: count the audit as failed
    }
    await Deno.remove(file).catch(() => {});
    return {
      command: `deno ${args.join(" ")}`,
      ok: r.code === 0 && failed === 0,
      passed,
      failed,
      seconds: (performance.now() - t0) / 1000,
    };
  }
  const args = ["test", "-A", "--parallel=false", op ? `tests/ops/${op}_test.ts` : "tests/ops/"];
  const r = await spawn(args);
  const s = parseTestSummary(r.stdout + r.stderr) ?? { passed: 0, failed: 1 };
  return {
    command: `deno ${args.join(" ")}`,
    ok: r.code === 0 && s.failed === 0,
    ...s,
    seconds: (performance.now() - t0) / 1000,
  };
}

/** The bench's JSON rows (lines that parse as rows; others are logs). */
export function parseBenchRows(text: string): BenchRow[] {
  const rows: BenchRow[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const r = JSON.parse(line);
      if (typeof r.name === "string" && typeof r.ours === "number") rows.push(r);
    } catch {
      // not a row
    }
  }
  return rows;
}

async function runBench(
  only: string | null,
  quick: boolean,
  batch: number,
): Promise<NonNullable<GpuCheckReport["bench"]>> {
  const args = ["run", "-A", "bench/kernels.ts", "--json", "--train-batch", String(batch)];
  if (quick) args.push("--quick");
  const pick = only ?? (quick ? "matmul,train" : null);
  if (pick) args.push("--only", pick);
  const r = await spawn(args);
  const rows = parseBenchRows(r.stdout);
  const rate = (name: string) => rows.find((x) => x.name === name)?.ours ?? null;
  return {
    command: `deno ${args.join(" ")}`,
    ok: r.code === 0,
    rows,
    trainSteps: { batch, mae: rate("mae-pretrain-step"), finetune: rate("finetune-step") },
  };
}

/** The short profile's MAE pre-training on TIN (or the fixtures): `steps` + 1 steps, or an epoch. */
async function runEpoch(
  gpu: Gpu,
  steps: number | null,
  batch: number | null,
  profile: ProfileName,
): Promise<GpuCheckReport["epoch"]> {
  const c: TrainConfig = stageCopy(await loadProfile(profile), "pretrain");
  if (batch) c.optim.batchSize = batch;
  const tin = Deno.env.get("TIN_DIR") ?? defaultTinDir();
  const fixtures = !(await exists(`${tin}/wnids.txt`));
  const root = fixtures ? `${ROOT}fixtures/tiny-imagenet-200` : tin;
  const splits = await loadSplits(c, root);
  const perEpoch = splits.train.count >= c.optim.batchSize
    ? Math.floor(splits.train.count / c.optim.batchSize)
    : 1;
  const timed = steps ?? Math.max(1, perEpoch - 1);
  const out = await Deno.makeTempDir({ prefix: "gpu-check-epoch-" });
  try {
    const rate = await measureStepRate(c, gpu, timed, out, splits);
    return {
      dataset: c.data.dataset,
      root,
      fixtures,
      images: splits.train.count,
      batch: c.optim.batchSize,
      steps: timed + 1,
      imagesPerSecond: rate,
      shape: shapeKey(c),
      profile,
      flopsPerImage: flopsPerImage("mae", modelShape(c)),
    };
  } finally {
    await Deno.remove(out, { recursive: true }).catch(() => {});
  }
}

/** The PyTorch MAE step (bench/torch_step.py), when /usr/bin/python3 can import torch. */
async function runTorch(batch: number, steps: number): Promise<GpuCheckReport["torch"]> {
  const python = "/usr/bin/python3";
  try {
    const probe = await spawn(["-c", "import torch"], { cmd: python });
    if (probe.code !== 0) return { available: false, error: "torch does not import" };
  } catch (e) {
    return { available: false, error: `${python}: ${(e as Error).message}` };
  }
  const r = await spawn(
    ["bench/torch_step.py", "--batch", String(batch), "--steps", String(steps), "--threads", "2"],
    { cmd: python },
  );
  const line = r.stdout.trim().split("\n").pop() ?? "";
  try {
    const j = JSON.parse(line);
    return { available: true, device: j.device, batch: j.batch, imagesPerSecond: j.images_per_s };
  } catch {
    return {
      available: true,
      error: `bench/torch_step.py exited ${r.code}: ${r.stderr.trim().split("\n").pop()}`,
    };
  }
}

/** Projected time of a profile over all studies: calibrated rates where known, else derived. */
async function project(
  name: "short" | "paper",
  gpu: Gpu,
  shards: number,
  measured: { key: string; rate: number; flops: number; label: string }[],
  cacheFile: string,
  measure: boolean,
  log: (l: string) => void,
): Promise<GpuCheckReport["projections"]["short"]> {
  const profile = await loadProfile(name);
  const plan = await loadPlan("all", profile);
  const cal = await calibrate(profile, plan.work, {
    gpu,
    cacheFile,
    cachedOnly: !measure,
    batch: gpu.adapter.software ? SOFTWARE_CALIBRATION_BATCH : undefined,
    log,
  });
  const sources = new Map<string, string>();
  for (const k of cal.rates.keys()) {
    sources.set(k, cal.measured.includes(k) ? "calibrated now" : "calibration cache");
  }
  const known = new Map(cal.rates);
  for (const m of measured) {
    if ([...plan.work.values()].some((w) => w.rateKey === m.key)) {
      known.set(m.key, m.rate);
      sources.set(m.key, m.label);
    }
  }
  const { rates, derived } = deriveRates(
    plan.work,
    known,
    measured.map((m) => ({ label: m.label, imagesPerSecond: m.rate, flopsPerImage: m.flops })),
  );
  for (const k of derived) sources.set(k, "derived from this run's FLOP/s");
  const j = planJson(plan, shards, rates, sources, gpu.adapter.description);
  return {
    shards,
    serialSeconds: j.serialSeconds!,
    wallSeconds: j.wallSeconds!,
    levels: j.levels.map((l) => ({
      level: l.level,
      wallSeconds: l.wallSeconds!,
      serialSeconds: l.serialSeconds!,
    })),
    rates: j.rates,
  };
}

function positiveInt(v: string | undefined, flag: string): number | null {
  if (v === undefined) return null;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`gpu-check: ${flag} must be a positive integer, got '${v}'`);
    Deno.exit(2);
  }
  return n;
}

/** The readable summary of a report. */
export function summary(r: GpuCheckReport): string {
  const a = r.adapter;
  const lines = [
    `adapter: ${a.description} (${a.software ? "software rasterizer" : "hardware"}, ${
      [a.vendor, a.architecture].filter((x) => x.trim()).join(" ") || "unknown vendor"
    }, backend ${a.backend})`,
    `limits: ${Object.entries(a.limits).map(([k, v]) => `${k} ${v}`).join(", ")}`,
    `features: ${a.features.join(", ") || "-"}`,
    r.audit
      ? `audit: ${r.audit.passed} passed, ${r.audit.failed} failed (${r.audit.command}, ${
        formatDuration(r.audit.seconds)
      })`
      : "audit: skipped",
  ];
  if (r.bench) {
    lines.push(`bench: ${r.bench.rows.length} rows${r.bench.ok ? "" : " (bench exited non-zero)"}`);
    for (const b of r.bench.rows) {
      lines.push(
        `  ${b.name.padEnd(28)} ${b.shape.padEnd(28)} ${b.ours.toFixed(2).padStart(10)} ${
          b.unit.padEnd(9)
        }${b.ratio === null ? "" : ` ${b.ratio.toFixed(2)}x tfjs`}`,
      );
    }
  } else lines.push("bench: skipped");
  const e = r.epoch;
  lines.push(
    `epoch: ${e.profile}-profile MAE on ${
      e.fixtures ? "the fixtures" : "Tiny ImageNet"
    } (${e.images} images, batch ${e.batch}, ${e.steps} steps): ${
      e.imagesPerSecond.toFixed(1)
    } images/s`,
  );
  const t = r.torch;
  lines.push(
    !t.available
      ? `pytorch: not available (${t.error})`
      : t.error
      ? `pytorch: ${t.error}`
      : `pytorch: ${t.imagesPerSecond!.toFixed(2)} images/s on ${t.device} at batch ${t.batch}` +
        (t.oursOverTorch ? `; ours / PyTorch = ${t.oursOverTorch.toFixed(2)}` : ""),
  );
  for (const name of ["short", "paper"] as const) {
    const p = r.projections[name];
    lines.push(
      `projected ${name}: ${formatDuration(p.wallSeconds)} with ${p.shards} shards per level (${
        p.levels.map((l) => `level ${l.level} ${formatDuration(l.wallSeconds)}`).join(", ")
      }); ${formatDuration(p.serialSeconds)} on one device`,
    );
  }
  return lines.join("\n");
}

if (import.meta.main) {
  const t0 = performance.now();
  const { values } = parseFlags(
    "gpu-check",
    Deno.args,
    {
      quick: { type: "boolean", default: false },
      json: { type: "string" },
      shards: { type: "string", default: "4" },
      "audit-op": { type: "string" },
      "no-audit": { type: "boolean", default: false },
      "bench-only": { type: "string" },
      "no-bench": { type: "boolean", default: false },
      "train-batch": { type: "string", default: "128" },
      "epoch-steps": { type: "string" },
      "epoch-batch": { type: "string" },
      "epoch-profile": { type: "string", default: "short" },
      "torch-steps": { type: "string", default: "5" },
      "no-torch": { type: "boolean", default: false },
      cache: { type: "string", default: ".cache/calibration.json" },
    },
    HELP,
    false,
  );
  const shards = positiveInt(values.shards, "--shards")!;
  const trainBatch = positiveInt(values["train-batch"], "--train-batch")!;
  const epochSteps = positiveInt(values["epoch-steps"], "--epoch-steps") ??
    (values.quick ? 3 : null);
  const epochBatch = positiveInt(values["epoch-batch"], "--epoch-batch");
  const torchSteps = positiveInt(values["torch-steps"], "--torch-steps")!;
  const log = (l: string) => console.error(`gpu-check: ${l}`);
  const gpu = await openGpu().catch((e) => {
    console.error(`gpu-check: ${(e as Error).message}`);
    Deno.exit(1);
  });
  const limits: Record<string, number> = {};
  for (
    const k of [
      "maxBufferSize",
      "maxStorageBufferBindingSize",
      "maxComputeWorkgroupStorageSize",
      "maxComputeInvocationsPerWorkgroup",
      "maxComputeWorkgroupSizeX",
      "maxComputeWorkgroupsPerDimension",
      "maxStorageBuffersPerShaderStage",
    ] as const
  ) limits[k] = gpu.device.limits[k];
  const adapter = { ...gpu.adapter, features: [...gpu.device.features].sort(), limits };
  log(`adapter ${adapter.description}`);

  log("kernel audit");
  const audit = values["no-audit"] ? null : await runAudit(values["audit-op"] ?? null);
  log("bench");
  const bench = values["no-bench"]
    ? null
    : await runBench(values["bench-only"] ?? null, values.quick, trainBatch);
  log("MAE pre-training epoch");
  const epochProfile = values["epoch-profile"] as ProfileName;
  if (!PROFILES.includes(epochProfile)) {
    console.error(`gpu-check: unknown --epoch-profile '${epochProfile}' (${PROFILES.join(", ")})`);
    Deno.exit(2);
  }
  const epoch = await runEpoch(gpu, epochSteps, epochBatch, epochProfile);
  log("PyTorch step");
  const torch: GpuCheckReport["torch"] = values["no-torch"]
    ? { available: false, error: "skipped (--no-torch)" }
    : await runTorch(trainBatch, torchSteps);
  if (torch.imagesPerSecond && bench?.trainSteps.mae) {
    torch.oursOverTorch = bench.trainSteps.mae / torch.imagesPerSecond;
  }

  // The measurements that feed the projections, each with the FLOPs per image of what it ran.
  const short = await loadProfile("short");
  const epochCfg = stageCopy(short, "pretrain");
  const measured = [{
    key: epoch.shape,
    rate: epoch.imagesPerSecond,
    flops: epoch.flopsPerImage,
    label: "measured (epoch)",
  }];
  if (bench?.trainSteps.mae) {
    const mae = { ...epochCfg, optim: { ...epochCfg.optim, batchSize: trainBatch } };
    measured.push({
      key: shapeKey(mae),
      rate: bench.trainSteps.mae,
      flops: flopsPerImage("mae", modelShape(mae)),
      label: "measured (bench)",
    });
  }
  if (bench?.trainSteps.finetune) {
    const ft = stageCopy(short, "finetune");
    ft.optim.batchSize = trainBatch;
    ft.data.augment = "none";
    measured.push({
      key: shapeKey(ft),
      rate: bench.trainSteps.finetune,
      flops: flopsPerImage("classifier", modelShape(ft)),
      label: "measured (bench)",
    });
  }
  log("projections");
  const projections = {} as GpuCheckReport["projections"];
  for (const name of ["short", "paper"] as const) {
    projections[name] = await project(
      name,
      gpu,
      shards,
      measured,
      values.cache!,
      !values.quick,
      log,
    );
  }
  const report: GpuCheckReport = {
    version: 1,
    started: new Date(Date.now() - (performance.now() - t0)).toISOString(),
    seconds: (performance.now() - t0) / 1000,
    quick: values.quick,
    adapter,
    audit,
    bench,
    epoch,
    torch,
    projections,
  };
  if (values.json) {
    await writeFileAtomic(
      values.json,
      new TextEncoder().encode(JSON.stringify(report, null, 2) + "\n"),
    );
  }
  console.log(summary(report));
  Deno.exit(audit && !audit.ok ? 1 : 0);
}
