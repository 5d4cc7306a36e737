/**
 * The one training loop behind `deno task train`. A mode is a
 * {@link TrainTask} (src/train/tasks/): what it trains, its step's loss, its
 * evaluation and its own checkpoint state. The loop owns everything else:
 * the seeded data order, the learning-rate schedule, one AdamW (or Adam) per
 * trainable store, exact resume, metrics.jsonl and the progress line, loss
 * read-backs queued to once per log interval, atomic safetensors checkpoints
 * and their cadence, the NaN/Inf replay that names the step and the op,
 * `stopAfterSteps` and summary.json.
 *
 * Determinism: one seed drives init, data order (per epoch), masking and
 * dropout (per global step), and augmentation (per epoch and index), so a
 * run resumed from a checkpoint replays the same steps as one that never
 * stopped. The GPU kernels use no atomics, so results are bitwise repeatable
 * on one adapter.
 * @module
 */

import {
  type AugmentSpec,
  type Batch,
  BatchLoader,
  type ImageDataset,
  writeFileAtomic,
} from "../data/mod.ts";
import type { Gpu } from "../gpu/device.ts";
import { AdamW } from "../optim.ts";
import type { ParamStore } from "../params.ts";
import { backward, clearTape, noGradAsync, setOpTrace } from "../tape.ts";
import { keep, type Tensor, tidyAsync } from "../tensor.ts";
import { modelOf, type TrainConfig } from "./config.ts";
import { encodeSafetensors, type NamedArray, readCheckpoint } from "./safetensors.ts";
import { sealCheckpoint } from "../params.ts";
import { learningRate } from "./schedule.ts";

/** Run options that are not part of the config. */
export interface TrainOptions {
  /** Output directory (checkpoint.safetensors, metrics.jsonl, summary.json). */
  out: string;
  /** Dataset root override. */
  data?: string;
  /** Continue from `out`/checkpoint.safetensors. */
  resume?: boolean;
  /** Device (default: the process-wide one). */
  gpu?: Gpu;
  /** Stop (as if killed) after this many global steps, once the checkpoint is written. For tests. */
  stopAfterSteps?: number;
  /** No progress line (metrics and summary are still written). */
  quiet?: boolean;
  /** Training/eval datasets, when the caller already has them (tests, repro). */
  splits?: { train: ImageDataset; eval: ImageDataset };
}

/** What a finished run reports (also written to `out`/summary.json). */
export interface TrainSummary {
  mode: TrainConfig["mode"];
  seed: number;
  steps: number;
  epochs: number;
  /** Mean training loss over the last epoch. */
  finalLoss: number;
  /** Evaluation on the held-out split: top-1 accuracy (classifiers) or masked-patch MSE (MAE). */
  eval: Record<string, number>;
  imagesPerSecond: number;
  seconds: number;
  /** Median wall time of the epochs this run trained (the per-epoch speed claims). */
  epochSecondsMedian?: number;
  /** Trainable and total parameter counts. */
  params: { trainable: number; total: number };
  checkpoint: string;
  /** Adapter that ran it. */
  adapter: string;
  /** Mode dino: whether the teacher's output collapsed (see src/train/tasks/dino.ts). */
  collapse?: "none" | "one-hot" | "uniform";
}

/** A run stopped by a non-finite loss. */
export class NonFiniteLossError extends Error {
  /** `step` is the global step; `op` the first op whose output was not finite (when found). */
  constructor(readonly step: number, readonly op: string | null, readonly checkpoint: string) {
    super(
      `loss became non-finite at step ${step}` +
        (op ? `; first non-finite output from op '${op}'` : "") +
        `; the state before that step is saved in ${checkpoint}`,
    );
    this.name = "NonFiniteLossError";
  }
}

/** Where a training step stands. */
export interface StepAt {
  /** Global step (0-based). */
  step: number;
  epoch: number;
  /** Steps of the whole run. */
  total: number;
}

/** What a task's step recorded on the tape. */
export interface StepOutput {
  loss: Tensor;
  /** Scalars read back with the loss and handed to {@link TrainTask.logged} (DINO: the teacher's entropy). */
  scalars?: Record<string, Tensor>;
  /** Runs between backward and the optimizer (DINO: gradient clipping, the frozen last layer). */
  beforeUpdate?: () => void;
  /** Runs after the optimizer (DINO: the teacher's EMA and the centre). */
  afterUpdate?: () => void;
}

/** A checkpoint's tensors and metadata, as a task reads its own state from them. */
export interface CheckpointContents {
  tensors: Map<string, NamedArray>;
  metadata: Record<string, string>;
  /** The file, for errors. */
  path: string;
}

/** One mode of training, as the loop drives it. */
export interface TrainTask {
  /** The stores a checkpoint holds, each under a name prefix ("" for the plain names). */
  readonly saved: readonly (readonly [prefix: string, store: ParamStore])[];
  /** The stores that train: one optimizer each, in this order. */
  readonly trainable: readonly ParamStore[];
  /** The training loader's augmentation. */
  readonly augment: AugmentSpec | null;
  /** Said when a checkpoint does not fit (e.g. "another model or config?"). */
  readonly checkpointHint: string;
  /** The run's first line; the loop's default names the parameter and step counts. */
  describe?(totalSteps: number, trainImages: number): string;
  /** Images one batch holds (default: its rows; DINO's rows are two views of each). */
  images?(batch: Batch): number;
  /** The step's forward and loss, recorded on the tape (async only for read-backs, as SMAE's calibration). */
  forward(batch: Batch, at: StepAt): StepOutput | Promise<StepOutput>;
  /**
   * Where the learning-rate warmup starts, as a fraction of the peak (default
   * 1/3, PyTorch LinearLR's, which the authors' configs keep; DINO: 0).
   */
  readonly warmupStartFactor?: number;
  /** Weight decay of a step, when scheduled (DINO); otherwise the config's throughout. */
  weightDecay?(at: StepAt): number;
  /** Read once per log interval, before its losses; logged on the interval's last line. */
  readInterval?(): Promise<Record<string, number>>;
  /** The metric fields of one logged step from its read-back scalars (default: none). */
  logged?(scalars: Record<string, number>): Record<string, number>;
  /** Held-out evaluation. */
  evaluate(ds: ImageDataset): Promise<Record<string, number>>;
  /** Checkpoint tensors and metadata beyond the saved stores and the optimizers. */
  saveState?(): Promise<{ tensors?: Map<string, NamedArray>; metadata?: Record<string, string> }>;
  /** Restores what {@link saveState} wrote. */
  loadState?(ckpt: CheckpointContents): void;
  /** Fields summary.json adds after the loop's. */
  summary?(): Partial<TrainSummary>;
  /** Frees the task's GPU state. */
  destroy(): void;
}

/** Builds a fresh task (the NaN replay builds a second one). */
export type TaskFactory = (c: TrainConfig, gpu: Gpu, train: ImageDataset) => Promise<TrainTask>;

const CHECKPOINT = "checkpoint.safetensors";

/** A task with its optimizers: what a checkpoint saves and restores. */
interface Run {
  task: TrainTask;
  optims: AdamW[];
  step: number;
  /** The current epoch's loss so far (sum and count of its steps) and the last finished epoch's mean. */
  epochLoss: { sum: number; steps: number; last: number };
}

/** The task and one AdamW per trainable store (Adam: `optim.name: adam`, weight decay 0). */
async function setup(
  c: TrainConfig,
  gpu: Gpu,
  train: ImageDataset,
  make: TaskFactory,
): Promise<Run> {
  const task = await make(c, gpu, train);
  const optims = task.trainable.map((s) =>
    new AdamW(s, {
      lr: c.optim.lr,
      beta1: c.optim.betas[0],
      beta2: c.optim.betas[1],
      weightDecay: c.optim.name === "adam" ? 0 : c.optim.weightDecay,
    })
  );
  return { task, optims, step: 0, epochLoss: { sum: 0, steps: 0, last: NaN } };
}

function teardown(r: Run): void {
  for (const o of r.optims) o.destroy();
  r.task.destroy();
}

/** Serialises parameters, optimizer state, the task's state and progress. */
async function saveCheckpoint(path: string, c: TrainConfig, r: Run, epoch: number) {
  const tensors = new Map<string, NamedArray>();
  for (const [prefix, store] of r.task.saved) {
    for (const [name, data] of await store.read()) {
      tensors.set(prefix + name, { shape: [...store.get(name).shape], data });
    }
  }
  for (const [i, o] of r.optims.entries()) {
    const { m, v } = await o.state();
    tensors.set(`optim.${i}.m`, { shape: [m.length], data: m });
    tensors.set(`optim.${i}.v`, { shape: [v.length], data: v });
  }
  const extra = await r.task.saveState?.();
  for (const [name, t] of extra?.tensors ?? []) tensors.set(name, t);
  const metadata: Record<string, string> = {
    format: "smae-repro/1",
    mode: c.mode,
    config: JSON.stringify(c),
    seed: String(c.seed),
    step: String(r.step),
    epoch: String(epoch),
    optimizer_steps: JSON.stringify(r.optims.map((o) => o.step)),
    // A run resumed mid-epoch still averages all the epoch's steps (NaN is stored as null).
    epoch_loss: JSON.stringify(r.epochLoss),
    ...extra?.metadata,
  };
  // A checksum over the tensors and the model config: a flipped byte or another model is refused on load.
  await writeFileAtomic(
    path,
    encodeSafetensors(tensors, { ...metadata, ...sealCheckpoint(tensors, modelOf(c)) }),
  );
}

/** Settings a resumed run may change: where the data lives, the log and checkpoint intervals. */
const RESUMABLE = new Set(["data.root", "logEvery", "checkpointEvery"]);

/** The settings of `now` that differ from the checkpoint's `then`, as "field old (now new)". */
export function changedSettings(then: unknown, now: unknown, prefix = ""): string[] {
  const obj = (x: unknown): x is Record<string, unknown> =>
    typeof x === "object" && x !== null && !Array.isArray(x);
  if (obj(then) && obj(now)) {
    const keys = [...new Set([...Object.keys(then), ...Object.keys(now)])];
    return keys.flatMap((k) => changedSettings(then[k], now[k], prefix ? `${prefix}.${k}` : k));
  }
  if (RESUMABLE.has(prefix) || JSON.stringify(then) === JSON.stringify(now)) return [];
  // More epochs extend a run; fewer would end it before where it already is.
  if (prefix === "optim.epochs" && (now as number) > (then as number)) return [];
  const show = (x: unknown) => x === undefined ? "absent" : JSON.stringify(x);
  return [`${prefix} ${show(then)} (now ${show(now)})`];
}

/** Restores what {@link saveCheckpoint} wrote, after checking it was trained with `c`; returns the global step. */
async function loadCheckpoint(path: string, c: TrainConfig, r: Run): Promise<number> {
  const { tensors, metadata } = await readCheckpoint(path, "resume");
  if (metadata.config) {
    const changed = changedSettings(JSON.parse(metadata.config), JSON.parse(JSON.stringify(c)));
    if (changed.length) {
      throw new Error(
        `--resume: ${path} was trained with other settings: ${changed.join(", ")}; resume ` +
          `with its settings (only optim.epochs may grow), or start over with --overwrite`,
      );
    }
  }
  const hint = r.task.checkpointHint;
  for (const [prefix, store] of r.task.saved) {
    store.loadAll(
      (name) => tensors.get(name)?.data as Float32Array | undefined,
      `checkpoint ${path}`,
      hint,
      prefix,
    );
  }
  const steps = JSON.parse(metadata.optimizer_steps ?? "[]") as number[];
  for (const [i, o] of r.optims.entries()) {
    const [m, v] = [tensors.get(`optim.${i}.m`), tensors.get(`optim.${i}.v`)];
    if (!m || !v) throw new Error(`${path}: optimizer state optim.${i} is missing (${hint})`);
    o.load(
      { step: steps[i] ?? 0, m: m.data as Float32Array, v: v.data as Float32Array },
      `${path}: optimizer state optim.${i}`,
    );
  }
  r.task.loadState?.({ tensors, metadata, path });
  if (metadata.epoch_loss) {
    const { sum, steps, last } = JSON.parse(metadata.epoch_loss);
    r.epochLoss = { sum, steps, last: last ?? NaN };
  }
  return Number(metadata.step ?? 0);
}

/** Steps per epoch: full batches only (one, when the batch is larger than the set). */
function stepsPerEpochOf(c: TrainConfig, ds: ImageDataset): number {
  return c.optim.batchSize > ds.count ? 1 : Math.floor(ds.count / c.optim.batchSize);
}

/** The seeded training batch loader of a config, and its steps per epoch. */
function trainLoader(c: TrainConfig, ds: ImageDataset, augment: AugmentSpec | null) {
  const loader = new BatchLoader(ds, {
    batchSize: c.optim.batchSize,
    seed: c.seed,
    dropLast: ds.count >= c.optim.batchSize,
    augment,
    normalize: c.data.normalize,
  });
  return { loader, stepsPerEpoch: stepsPerEpochOf(c, ds) };
}

/**
 * One optimizer step: zeroed gradients, the task's forward, backward, the
 * task's pre-update hook, every optimizer, its post-update hook. Returns
 * the loss and the task's scalars, kept past the step.
 */
async function trainStep(
  c: TrainConfig,
  r: Run,
  batch: Batch,
  at: StepAt,
  lr: number,
): Promise<{ loss: Tensor; scalars: Record<string, Tensor> }> {
  const wd = c.optim.name === "adam" ? 0 : r.task.weightDecay?.(at);
  return await tidyAsync(async () => {
    for (const s of r.task.trainable) s.zeroGrad();
    const out = await r.task.forward(batch, at);
    backward(out.loss);
    out.beforeUpdate?.();
    for (const o of r.optims) o.update(lr, wd);
    out.afterUpdate?.();
    const scalars: Record<string, Tensor> = {};
    for (const [k, t] of Object.entries(out.scalars ?? {})) scalars[k] = keep(t);
    return { loss: keep(out.loss), scalars };
  });
}

function formatDuration(s: number): string {
  if (!Number.isFinite(s)) return "?";
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = Math.floor(s % 60);
  return h
    ? `${h}h${String(m).padStart(2, "0")}m`
    : m
    ? `${m}m${String(sec).padStart(2, "0")}s`
    : `${sec}s`;
}

const count = (ss: readonly ParamStore[]) => ss.reduce((a, s) => a + s.count, 0);

/** Trains one config with `make`'s task to the end (or to `stopAfterSteps`) and returns the summary. */
export async function runTraining(
  c: TrainConfig,
  opts: TrainOptions & { gpu: Gpu; splits: { train: ImageDataset; eval: ImageDataset } },
  make: TaskFactory,
): Promise<TrainSummary> {
  const { gpu, splits } = opts;
  const t0 = performance.now();
  const run = await setup(c, gpu, splits.train, make);
  const { task } = run;
  const ckpt = `${opts.out}/${CHECKPOINT}`;
  const metricsPath = `${opts.out}/metrics.jsonl`;
  const summaryPath = `${opts.out}/summary.json`;
  const stepsPerEpoch = stepsPerEpochOf(c, splits.train);
  const totalSteps = stepsPerEpoch * c.optim.epochs;
  if (opts.resume) {
    try {
      run.step = await loadCheckpoint(ckpt, c, run);
    } catch (e) {
      teardown(run);
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      throw new Error(`--resume: no checkpoint at ${ckpt}`);
    }
    const done = run.step >= totalSteps ? await finishedSummary(summaryPath, run.step) : null;
    if (done) {
      if (!opts.quiet) console.error(`${c.mode}: ${opts.out} is finished (${run.step} steps)`);
      teardown(run);
      return done;
    }
    // Drop metric lines past the checkpoint: they are recomputed identically.
    await truncateMetrics(metricsPath, run.step, stepsPerEpoch);
  } else {
    await Deno.writeTextFile(metricsPath, "");
    await saveCheckpoint(ckpt, c, run, 0); // step 0: NaN replays always have a start
  }
  const { loader } = trainLoader(c, splits.train, task.augment);
  const allStores = task.saved.map(([, s]) => s);
  if (!opts.quiet) {
    console.error(
      task.describe?.(totalSteps, splits.train.count) ??
        `${c.mode}: ${count(allStores)} parameters (${count(task.trainable)} trainable), ` +
          `${totalSteps} steps of ${c.optim.batchSize} on ${splits.train.count} images`,
    );
  }
  const progress = !opts.quiet && Deno.stderr.isTerminal();
  const write = (line: Record<string, unknown>) =>
    Deno.writeTextFile(metricsPath, JSON.stringify(line) + "\n", { append: true });

  let images = 0;
  const tRun = performance.now();
  type Pending = {
    step: number;
    epoch: number;
    lr: number;
    loss: Tensor;
    scalars: Record<string, Tensor>;
  };
  const pending: Pending[] = [];
  const dispose = (p: Pending) => {
    p.loss.dispose();
    for (const t of Object.values(p.scalars)) t.dispose();
  };

  const flushLosses = async () => {
    if (pending.length === 0) return;
    const interval = await task.readInterval?.();
    const last = pending.at(-1);
    for (const p of pending.splice(0)) {
      const v = await p.loss.item();
      const scalars: Record<string, number> = {};
      for (const [k, t] of Object.entries(p.scalars)) scalars[k] = await t.item();
      dispose(p);
      if (!Number.isFinite(v)) {
        for (const q of pending.splice(0)) dispose(q);
        loader.close?.();
        teardown(run);
        throw await diagnose(c, opts, gpu, splits.train, make, p.step);
      }
      run.epochLoss.sum += v;
      run.epochLoss.steps++;
      const rate = images / ((performance.now() - tRun) / 1000);
      await write({
        type: "train",
        step: p.step,
        epoch: p.epoch,
        loss: v,
        lr: p.lr,
        ...task.logged?.(scalars),
        // Per-interval read-backs (no per-step readback): only the interval's last step carries them.
        ...(p === last ? interval : {}),
        images_per_s: rate,
      });
      if (
        !progress && !opts.quiet && (p.step + 1) % Math.max(1, Math.round(totalSteps / 10)) === 0
      ) {
        // Not a terminal (CI logs): one line per tenth of the run instead of a live bar.
        console.error(
          `${c.mode}: step ${p.step + 1}/${totalSteps} loss ${v.toFixed(4)} ${
            rate.toFixed(1)
          } img/s`,
        );
      }
      if (progress) {
        const done = p.step + 1;
        const eta = (totalSteps - done) * ((performance.now() - tRun) / 1000) /
          Math.max(1, done - startStep);
        const bar = "#".repeat(Math.round(20 * done / totalSteps)).padEnd(20, ".");
        const line =
          `${c.mode} [${bar}] step ${done}/${totalSteps} epoch ${p.epoch + 1}/${c.optim.epochs} ` +
          `loss ${v.toFixed(4)} ${rate.toFixed(1)} img/s ETA ${formatDuration(eta)}`;
        Deno.stderr.writeSync(new TextEncoder().encode(`\r${line}`));
      }
    }
  };

  const epochSeconds: number[] = [];
  let tEpoch = performance.now();
  /** Flushes the epoch's losses and logs their mean and the epoch's wall time. */
  const endEpoch = async (epoch: number) => {
    await flushLosses();
    const { sum, steps } = run.epochLoss;
    run.epochLoss.last = steps ? sum / steps : NaN;
    const seconds = (performance.now() - tEpoch) / 1000;
    epochSeconds.push(seconds);
    await write({ type: "epoch", epoch, loss: run.epochLoss.last, seconds });
  };

  const startStep = run.step;
  let stopped = false;
  for (
    let epoch = Math.floor(run.step / stepsPerEpoch);
    epoch < c.optim.epochs && !stopped;
    epoch++
  ) {
    let inEpoch = 0;
    tEpoch = performance.now();
    // A resumed epoch keeps the sums of its steps before the checkpoint.
    if (epoch * stepsPerEpoch >= run.step) run.epochLoss = { ...run.epochLoss, sum: 0, steps: 0 };
    for await (const batch of loader.epoch(epoch)) {
      if (inEpoch >= stepsPerEpoch) break;
      if (epoch * stepsPerEpoch + inEpoch < run.step) {
        inEpoch++; // resumed: replay the data order without training
        continue;
      }
      const step = run.step;
      const lr = learningRate(
        { ...c.optim, warmupStartFactor: task.warmupStartFactor },
        epoch,
        inEpoch,
        stepsPerEpoch,
      );
      const out = await trainStep(c, run, batch, { step, epoch, total: totalSteps }, lr);
      pending.push({ step, epoch, lr, ...out });
      images += task.images?.(batch) ?? batch.shape[0];
      run.step++;
      inEpoch++;
      if (run.step % c.logEvery === 0) await flushLosses();
      // The epoch's line goes before any checkpoint at its end: a resume keeps it.
      if (inEpoch === stepsPerEpoch) await endEpoch(epoch);
      if (run.step % c.checkpointEvery === 0) {
        await flushLosses();
        await saveCheckpoint(ckpt, c, run, epoch);
      }
      if (
        opts.stopAfterSteps !== undefined && run.step >= opts.stopAfterSteps &&
        run.step < totalSteps
      ) {
        await flushLosses();
        await saveCheckpoint(ckpt, c, run, epoch);
        stopped = true;
        break;
      }
    }
    if (!stopped && inEpoch < stepsPerEpoch) await endEpoch(epoch); // a short epoch
  }
  if (progress) Deno.stderr.writeSync(new TextEncoder().encode("\n"));
  loader.close?.();
  const lastEpoch = Math.max(0, Math.ceil(run.step / stepsPerEpoch) - 1);
  await saveCheckpoint(ckpt, c, run, lastEpoch);
  const evalMetrics = stopped ? {} : await task.evaluate(splits.eval);
  if (!stopped) await write({ type: "eval", ...evalMetrics });
  const summary: TrainSummary = {
    mode: c.mode,
    seed: c.seed,
    steps: run.step,
    epochs: c.optim.epochs,
    finalLoss: run.epochLoss.last,
    eval: evalMetrics,
    imagesPerSecond: images / ((performance.now() - tRun) / 1000),
    seconds: (performance.now() - t0) / 1000,
    epochSecondsMedian: median(epochSeconds),
    params: { trainable: count(task.trainable), total: count(allStores) },
    checkpoint: ckpt,
    adapter: gpu.adapter.description,
    ...task.summary?.(),
  };
  await writeFileAtomic(
    summaryPath,
    new TextEncoder().encode(JSON.stringify(summary, null, 2) + "\n"),
  );
  teardown(run);
  return summary;
}

/** The summary of a run that finished at `step`, if summary.json says so. */
async function finishedSummary(path: string, step: number): Promise<TrainSummary | null> {
  try {
    const s = JSON.parse(await Deno.readTextFile(path)) as TrainSummary;
    return s.steps === step && Object.keys(s.eval ?? {}).length > 0 ? s : null;
  } catch {
    return null;
  }
}

/**
 * Keeps the metric lines from before global step `step` (a resumed run
 * recomputes the rest): train lines of earlier steps and epoch lines of
 * epochs that ended by then. A cut-off last line (a kill mid-write) is
 * dropped with a warning; any other unreadable line is an error naming it.
 */
export async function truncateMetrics(
  path: string,
  step: number,
  stepsPerEpoch: number,
): Promise<void> {
  let text = "";
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    throw e;
  }
  const lines = text.split("\n");
  const keepLines: string[] = [];
  for (const [i, l] of lines.entries()) {
    if (!l) continue;
    let r;
    try {
      r = JSON.parse(l);
    } catch {
      if (i === lines.length - 1) {
        console.error(`warning: ${path}: dropping the cut-off last line ${JSON.stringify(l)}`);
        continue;
      }
      throw new Error(`${path}:${i + 1}: not a JSON line: ${l.slice(0, 80)}`);
    }
    const keepIt = r.type === "train"
      ? r.step < step
      : r.type === "epoch" && (r.epoch + 1) * stepsPerEpoch <= step;
    if (keepIt) keepLines.push(l);
  }
  await writeFileAtomic(path, new TextEncoder().encode(keepLines.map((l) => l + "\n").join("")));
}

/**
 * Replays the run from the last checkpoint up to the failing step, traces
 * that step's ops, and returns the error naming the first non-finite op. The
 * replay is exact because every step is a function of the seed and the step.
 */
async function diagnose(
  c: TrainConfig,
  opts: TrainOptions,
  gpu: Gpu,
  train: ImageDataset,
  make: TaskFactory,
  failing: number,
): Promise<NonFiniteLossError> {
  clearTape();
  const ckpt = `${opts.out}/${CHECKPOINT}`;
  const before = `${opts.out}/before-nonfinite-step-${failing}.safetensors`;
  const run = await setup(c, gpu, train, make);
  // Checkpoints are written only after the losses before them were checked,
  // so the latest one is from before the failing step.
  run.step = await loadCheckpoint(ckpt, c, run);
  const { loader, stepsPerEpoch } = trainLoader(c, train, run.task.augment);
  const total = stepsPerEpoch * c.optim.epochs;
  let culprit: string | null = null;
  outer: for (let epoch = Math.floor(run.step / stepsPerEpoch);; epoch++) {
    let inEpoch = 0;
    for await (const batch of loader.epoch(epoch)) {
      const step = epoch * stepsPerEpoch + inEpoch++;
      if (step < run.step) continue;
      const at = { step, epoch, total };
      if (step === failing) {
        run.step = step;
        await saveCheckpoint(before, c, run, epoch);
        const outs: [string, Tensor][] = [];
        setOpTrace((op, out) => outs.push([op, keep(out)]));
        try {
          await noGradAsync(() => tidyAsync(async () => (await run.task.forward(batch, at)).loss));
        } finally {
          setOpTrace(null);
        }
        for (const [op, t] of outs) {
          if (!culprit && t.dtype === "f32" && !(await t.read()).every(Number.isFinite)) {
            culprit = op;
          }
          t.dispose();
        }
        break outer;
      }
      const lr = learningRate(
        { ...c.optim, warmupStartFactor: run.task.warmupStartFactor },
        epoch,
        inEpoch - 1,
        stepsPerEpoch,
      );
      const out = await trainStep(c, run, batch, at, lr);
      out.loss.dispose();
      for (const t of Object.values(out.scalars)) t.dispose();
      if (inEpoch >= stepsPerEpoch) break;
    }
  }
  loader.close?.();
  teardown(run);
  return new NonFiniteLossError(failing, culprit, before);
}

function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b), m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
