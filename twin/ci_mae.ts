/**
 * `deno task twin --experiment ci-mae`: the `ci` profile's MAE pre-training
 * and fine-tuning (experiments pretrain-mae-random and finetune-mae-random of
 * repro/profiles/ci.yaml), whole, in the harness and in its PyTorch twin
 * (twin/ci_mae.py), per seed, and their final metrics side by side: the
 * held-out masked-patch MSE ratio (MSE over the zero predictor's) after
 * pre-training and the top-1 accuracy after fine-tuning, on the profile's
 * eval subset.
 *
 * The harness side is the real thing: {@link experimentConfig} builds each
 * config as the repro runner does, and {@link train} (what `deno task train`
 * and the runner call) trains it through the one training loop. The twin gets
 * the same validated configs, the harness's seeded data subset (the images
 * and labels {@link loadSplits} returns, written out, not re-drawn), the
 * harness's initial parameters (the MAE and the fine-tuning head its seed
 * draws) and the same epochs, batch size, optimizer and schedule. Data order,
 * masks and dropout come from each side's own RNG, so the numbers are
 * compared as measurements (agreement in distribution), never asserted equal.
 *
 * Deterministic parts are checked: the learning rate of every epoch must be
 * the same on both sides, and the twin evaluates the harness's fine-tuned
 * checkpoint with its own data pipeline and forward pass (the same accuracy,
 * up to near-ties, says both read the same eval images the same way).
 * @module
 */

import { writeFileAtomic } from "../src/data/mod.ts";
import type { Gpu } from "../src/gpu/device.ts";
import { Classifier } from "../src/models/classifier.ts";
import { experimentConfig } from "../src/repro/experiments.ts";
import { flopsPerImage, formatDuration, kindOf, modelShape } from "../src/repro/estimate.ts";
import { loadProfile, type Profile, scaleStage } from "../src/repro/profiles.ts";
import type { TrainConfig } from "../src/train/config.ts";
import { loadSplits } from "../src/train/data.ts";
import { encodeSafetensors, type NamedArray } from "../src/train/safetensors.ts";
import { buildMae } from "../src/train/tasks/mae.ts";
import { train } from "../src/train/trainer.ts";
import { twinPython } from "./python.ts";

/** The whole-run comparisons `deno task twin --experiment` knows. */
export const TWIN_EXPERIMENTS = ["ci-mae"] as const;

const PRETRAIN = "pretrain-mae-random";
const FINETUNE = "finetune-mae-random";

/** Options of {@link ciMaeCompare}. */
export interface CiMaeOptions {
  /** Seeds 1..seeds (as `deno task repro:… --seeds N`). */
  seeds: number;
  /** Scales every epoch count of both stages (scaleStage; at least 1 epoch); 1: the profile's. */
  epochsScale?: number;
  /** Test-only: smaller train / eval subsets than the profile's (still the harness's seeded subset). */
  trainLimit?: number;
  evalLimit?: number;
  /** Working directory (kept); default a temporary one, removed at the end. */
  dir?: string;
  /**
   * Test-only: a deliberately wrong twin (CI_TWIN_FAULT of ci_mae.py):
   * "unit-scale" normalises by x / 255 instead of the batch's mean and std.
   */
  fault?: "" | "unit-scale";
  /** Progress lines (default: stderr). */
  log?: (line: string) => void;
}

/** One side's final numbers for one seed. */
export interface SideResult {
  /** Held-out masked-patch MSE / the zero predictor's, after pre-training. */
  mseRatio: number;
  /** Held-out top-1 accuracy after fine-tuning. */
  accuracy: number;
  /** Mean training loss of the last epoch, per stage. */
  pretrainLoss: number;
  finetuneLoss: number;
  /** Learning rate of every epoch, per stage. */
  lr: { pretrain: number[]; finetune: number[] };
  seconds: number;
}

/** Both sides for one seed. */
export interface SeedResult {
  seed: number;
  harness: SideResult;
  twin: SideResult;
  /** The twin's accuracy for the harness's fine-tuned checkpoint (its own pipeline). */
  twinOnHarnessCheckpoint: number;
}

/** What {@link ciMaeCompare} measured. */
export interface CiMaeReport {
  experiment: "ci-mae";
  seeds: SeedResult[];
  /** What ran: epochs, images, batch sizes per stage. */
  setup: {
    pretrain: { epochs: number; batchSize: number; train: number; eval: number };
    finetune: { epochs: number; batchSize: number; train: number; eval: number };
    epochsScale: number;
  };
  torch: string;
}

/** The ci profile with its pretrain and finetune stages scaled and (tests) the subsets cut. */
export function ciProfile(p: Profile, o: Omit<CiMaeOptions, "seeds">): Profile {
  const raw = { ...p.raw };
  for (const stage of ["pretrain", "finetune"] as const) {
    let s = structuredClone(raw[stage]) as Record<string, unknown>;
    if (!s) throw new Error(`twin: profile ${p.name} (${p.file}) has no '${stage}' stage`);
    if (o.epochsScale !== undefined && o.epochsScale !== 1) s = scaleStage(s, o.epochsScale);
    const data = s.data as Record<string, unknown>;
    if (o.trainLimit) data.trainLimit = o.trainLimit;
    if (o.evalLimit) data.evalLimit = o.evalLimit;
    raw[stage] = s;
  }
  return { ...p, raw };
}

/** The learning rate of every epoch, from a run's metrics.jsonl (its first step's). */
async function epochLrs(dir: string): Promise<number[]> {
  const lrs: number[] = [];
  for (const line of (await Deno.readTextFile(`${dir}/metrics.jsonl`)).split("\n")) {
    if (!line.trim()) continue;
    const m = JSON.parse(line);
    if (m.type === "train" && lrs[m.epoch] === undefined) lrs[m.epoch] = m.lr;
  }
  return lrs;
}

function u8ToI32(u8: Uint8Array): Int32Array {
  return Int32Array.from(u8);
}

/** Runs twin/ci_mae.py on `dir`; its stderr lines go to `log`. */
async function runCiTwin(dir: string, log: (line: string) => void, fault = "") {
  const script = new URL("./ci_mae.py", import.meta.url).pathname;
  const child = new Deno.Command(twinPython(), {
    args: [script, dir],
    env: {
      OMP_WAIT_POLICY: "PASSIVE",
      OMP_NUM_THREADS: "2",
      TWIN_THREADS: "2",
      CI_TWIN_FAULT: fault,
    },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      const l = buf.slice(0, i);
      buf = buf.slice(i + 1);
      lines.push(l);
      if (l.startsWith("ci_mae.py: ") && !l.includes("Traceback")) log(`  twin: ${l.slice(11)}`);
    }
  }
  const status = await child.status;
  await child.stdout.cancel();
  if (!status.success) {
    throw new Error(
      `twin/ci_mae.py ${dir} failed (exit ${status.code}):\n${lines.concat(buf).join("\n")}`,
    );
  }
  return JSON.parse(await Deno.readTextFile(`${dir}/twin_result.json`));
}

/**
 * Remaining time: the harness's stages by their work (images x epochs x
 * FLOPs per image) at the speed it has shown, the twin's by its mean time
 * per seed so far (a quarter of the harness's until measured).
 */
class Eta {
  #harnessWork = 0;
  #harnessMs = 0;
  #twinMs: number[] = [];
  constructor(readonly workPerSeed: number, readonly seeds: number) {}
  harnessDone(work: number, ms: number) {
    this.#harnessWork += work;
    this.#harnessMs += ms;
  }
  twinDone(ms: number) {
    this.#twinMs.push(ms);
  }
  /** Seconds left with `work` harness work and `twins` twin runs to go; null before any speed is known. */
  left(work: number, twins: number): number | null {
    if (!this.#harnessWork) return null;
    const h = work * this.#harnessMs / this.#harnessWork;
    const t = this.#twinMs.length
      ? twins * this.#twinMs.reduce((a, b) => a + b, 0) / this.#twinMs.length
      : twins * 0.25 * this.#harnessMs / this.#harnessWork * this.workPerSeed; // a guess until measured
    return (h + t) / 1000;
  }
}

/** Runs the harness and the twin for seeds 1..N and returns both sides' final metrics. */
export async function ciMaeCompare(gpu: Gpu, o: CiMaeOptions): Promise<CiMaeReport> {
  const log = o.log ?? ((l: string) => console.error(l));
  const scale = o.epochsScale ?? 1;
  const profile = ciProfile(await loadProfile("ci"), o);
  const root = o.dir ?? await Deno.makeTempDir({ prefix: "twin-ci-mae-" });
  const seeds = Array.from({ length: o.seeds }, (_, i) => i + 1);
  const configs = (seed: number, init: string): [TrainConfig, TrainConfig] => [
    experimentConfig(profile, PRETRAIN, seed, () => "<none>"),
    experimentConfig(profile, FINETUNE, seed, () => init),
  ];
  const [p0, f0] = configs(1, "<pretrain checkpoint>");
  // As the repro runner's progress: images x epochs x training FLOPs per image.
  const work = (c: TrainConfig) =>
    c.optim.epochs * c.data.trainLimit * flopsPerImage(kindOf(c.mode), modelShape(c));
  const eta = new Eta(work(p0) + work(f0), seeds.length);
  const t0 = performance.now();
  const progress = (seedIndex: number, what: string, workLeft: number, twinsLeft: number) => {
    const left = eta.left(workLeft, twinsLeft);
    log(
      `ci-mae: seed ${seeds[seedIndex]} (${seedIndex + 1} of ${seeds.length}): ${what}; ` +
        `${formatDuration((performance.now() - t0) / 1000)} so far, ` +
        (left === null
          ? "remaining time after the first stage"
          : `about ${formatDuration(left)} left`),
    );
  };
  const results: SeedResult[] = [];
  let torchVersion = "";
  try {
    for (const [si, seed] of seeds.entries()) {
      const dir = `${root}/seed${seed}`;
      await Deno.mkdir(dir, { recursive: true });
      const preDir = `${dir}/harness-pretrain`, ftDir = `${dir}/harness-finetune`;
      const [pre, ft] = configs(seed, `${preDir}/checkpoint.safetensors`);
      if (pre.mode !== "pretrain" || ft.mode !== "finetune") {
        throw new Error(
          `twin: ci-mae expects modes pretrain and finetune, got ${pre.mode}, ${ft.mode}`,
        );
      }
      const seedsLeft = seeds.length - si - 1;
      const perSeed = work(pre) + work(ft);

      // What the twin reads: the configs, the harness's subset, the harness's init.
      const splits = await loadSplits(pre);
      const data = new Map<string, NamedArray>();
      for (const [name, ds] of [["train", splits.train], ["eval", splits.eval]] as const) {
        if (ds.channels !== 1) {
          throw new Error(`twin: ci-mae twins 1-channel data, got ${ds.channels}`);
        }
        data.set(`${name}_images`, {
          shape: [ds.count, ds.height, ds.width],
          data: u8ToI32(ds.images),
        });
        data.set(`${name}_labels`, { shape: [ds.count], data: ds.labels });
      }
      await writeFileAtomic(`${dir}/data.safetensors`, encodeSafetensors(data));
      const init = new Map<string, NamedArray>();
      const mae = buildMae(pre, gpu);
      for (const s of mae.stores) {
        for (const [n, v] of await s.read()) init.set(n, { shape: [...s.get(n).shape], data: v });
      }
      mae.destroy();
      // The fine-tuning head as classifierTask draws it (its encoder comes from the checkpoint).
      const enc = Classifier.freshEncoder(gpu, ft.encoder, ft.seed);
      const clf = new Classifier(
        gpu,
        ft.encoder,
        splits.train.classes.length,
        ft.seed,
        enc,
        ft.encoder.pool,
      );
      for (const [n, v] of await clf.head.read()) {
        init.set(n, { shape: [...clf.head.get(n).shape], data: v });
      }
      clf.destroy();
      enc.destroy();
      await writeFileAtomic(`${dir}/init.safetensors`, encodeSafetensors(init));
      await writeFileAtomic(
        `${dir}/config.json`,
        new TextEncoder().encode(JSON.stringify({ seed, pretrain: pre, finetune: ft }, null, 2)),
      );

      // The harness: the real training loop, pre-training then fine-tuning from its checkpoint.
      progress(
        si,
        `harness pre-training, ${pre.optim.epochs} epochs`,
        perSeed * (seedsLeft + 1),
        seedsLeft + 1,
      );
      let t = performance.now();
      const hp = await train(pre, { out: preDir, gpu, quiet: true });
      eta.harnessDone(work(pre), performance.now() - t);
      progress(
        si,
        `harness fine-tuning, ${plural(ft.optim.epochs, "epoch")}`,
        work(ft) + perSeed * seedsLeft,
        seedsLeft + 1,
      );
      t = performance.now();
      const hf = await train(ft, { out: ftDir, gpu, quiet: true });
      eta.harnessDone(work(ft), performance.now() - t);
      const harnessSeconds = hp.seconds + hf.seconds;
      await Deno.copyFile(
        `${ftDir}/checkpoint.safetensors`,
        `${dir}/harness_finetune.safetensors`,
      );

      progress(si, "PyTorch twin, both stages", perSeed * seedsLeft, seedsLeft + 1);
      t = performance.now();
      const tw = await runCiTwin(dir, log, o.fault ?? "");
      eta.twinDone(performance.now() - t);
      torchVersion = tw.torch;
      const ev = hp.eval as Record<string, number>;
      results.push({
        seed,
        harness: {
          mseRatio: ev.mse / ev.mse_zero_predictor,
          accuracy: (hf.eval as Record<string, number>).accuracy,
          pretrainLoss: hp.finalLoss,
          finetuneLoss: hf.finalLoss,
          lr: { pretrain: await epochLrs(preDir), finetune: await epochLrs(ftDir) },
          seconds: harnessSeconds,
        },
        twin: {
          mseRatio: tw.pretrain.eval.mse_ratio,
          accuracy: tw.finetune.eval.accuracy,
          pretrainLoss: tw.pretrain.final_loss,
          finetuneLoss: tw.finetune.final_loss,
          lr: { pretrain: tw.pretrain.lr, finetune: tw.finetune.lr },
          seconds: (performance.now() - t) / 1000,
        },
        twinOnHarnessCheckpoint: tw.harness_checkpoint.accuracy,
      });
      const r = results.at(-1)!;
      log(
        `ci-mae: seed ${seed}: MSE ratio harness ${r.harness.mseRatio.toFixed(4)} twin ${
          r.twin.mseRatio.toFixed(4)
        }, accuracy harness ${pct(r.harness.accuracy)} twin ${pct(r.twin.accuracy)}`,
      );
    }
    const [p, f] = configs(1, "<pretrain checkpoint>");
    const side = (c: TrainConfig) => ({
      epochs: c.optim.epochs,
      batchSize: c.optim.batchSize,
      train: c.data.trainLimit,
      eval: c.data.evalLimit,
    });
    return {
      experiment: "ci-mae",
      seeds: results,
      setup: { pretrain: side(p), finetune: side(f), epochsScale: scale },
      torch: torchVersion,
    };
  } finally {
    if (!o.dir) await Deno.remove(root, { recursive: true });
  }
}

const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? "" : "s"}`;
const pct = (x: number) => `${(100 * x).toFixed(2)}%`;

/** Mean and sample standard deviation (0 for one value). */
export function meanSpread(xs: number[]): { mean: number; sd: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = xs.length > 1
    ? Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (xs.length - 1))
    : 0;
  return { mean, sd };
}

/** Largest relative difference between the two sides' per-epoch learning rates (Infinity if the epoch counts differ). */
export function lrMismatch(r: SeedResult): number {
  let worst = 0;
  for (const k of ["pretrain", "finetune"] as const) {
    const a = r.harness.lr[k], b = r.twin.lr[k];
    if (a.length !== b.length) return Infinity;
    a.forEach((x, i) =>
      worst = Math.max(worst, Math.abs(x - b[i]) / Math.max(Math.abs(b[i]), 1e-30))
    );
  }
  return worst;
}

/** The report as markdown: per seed and mean ± sample standard deviation, harness next to twin. */
export function formatCiMae(r: CiMaeReport): string {
  const s = r.setup;
  const row = (cells: string[]) => `| ${cells.join(" | ")} |`;
  const f4 = (x: number) => x.toFixed(4);
  const lines = [
    `ci-mae: the \`ci\` profile's ${PRETRAIN} (${s.pretrain.epochs} epochs, batch ${s.pretrain.batchSize}) ` +
    `then ${FINETUNE} (${s.finetune.epochs} epochs, batch ${s.finetune.batchSize}) on the harness's seeded ` +
    `Fashion-MNIST subset (${s.pretrain.train} train / ${s.pretrain.eval} eval images)` +
    (s.epochsScale !== 1 ? `, epochs scaled by ${s.epochsScale}` : "") +
    `, in the harness (WebGPU) and in its PyTorch twin (torch ${r.torch}), from the same initial ` +
    `parameters, with the same epochs, batch sizes, optimizer and schedule.`,
    "",
    "Measured, not asserted: the data order, the MAE masks and the dropout masks come from each " +
    "side's own RNG (the seed seeds both), so only agreement in distribution is expected. " +
    "MSE ratio: held-out masked-patch MSE over the zero predictor's, after pre-training (lower is " +
    "better). Accuracy: held-out top-1 after fine-tuning.",
    "",
    row([
      "seed",
      "MSE ratio, harness",
      "MSE ratio, twin",
      "accuracy, harness",
      "accuracy, twin",
      "last-epoch loss (pretrain / finetune), harness",
      "same, twin",
    ]),
    row(["---:", "---:", "---:", "---:", "---:", "---:", "---:"]),
    ...r.seeds.map((x) =>
      row([
        String(x.seed),
        f4(x.harness.mseRatio),
        f4(x.twin.mseRatio),
        pct(x.harness.accuracy),
        pct(x.twin.accuracy),
        `${f4(x.harness.pretrainLoss)} / ${f4(x.harness.finetuneLoss)}`,
        `${f4(x.twin.pretrainLoss)} / ${f4(x.twin.finetuneLoss)}`,
      ])
    ),
  ];
  const ms = (f: (x: SeedResult) => number, p: (v: number) => string) => {
    const { mean, sd } = meanSpread(r.seeds.map(f));
    return `${p(mean)} ± ${p(sd)}`;
  };
  const pp = (x: number) => `${(100 * x).toFixed(2)}%`;
  lines.push(
    row([
      `mean ± sd (${r.seeds.length} seed${r.seeds.length === 1 ? "" : "s"})`,
      ms((x) => x.harness.mseRatio, f4),
      ms((x) => x.twin.mseRatio, f4),
      ms((x) => x.harness.accuracy, pp),
      ms((x) => x.twin.accuracy, pp),
      "",
      "",
    ]),
    "",
    `sd: the sample standard deviation over seeds. Learning rate of every epoch, harness vs twin: ` +
      `largest relative difference ${Math.max(...r.seeds.map(lrMismatch)).toExponential(1)}. ` +
      `The twin's evaluation of the harness's fine-tuned checkpoint: ${
        r.seeds.map((x) =>
          `${pct(x.twinOnHarnessCheckpoint)} (harness: ${pct(x.harness.accuracy)})`
        )
          .join(", ")
      } per seed. Time per seed: harness ${
        formatDuration(meanSpread(r.seeds.map((x) => x.harness.seconds)).mean)
      }, twin ${formatDuration(meanSpread(r.seeds.map((x) => x.twin.seconds)).mean)}.`,
  );
  return lines.join("\n");
}
