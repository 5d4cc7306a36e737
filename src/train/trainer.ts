/**
 * The training loop behind `deno task train`: pretrain (MAE), probe,
 * finetune and scratch, with the paper's schedule, seeded determinism,
 * atomic safetensors checkpoints, exact resume, JSON-lines metrics, a
 * progress line, and NaN/Inf detection that names the step and the op.
 *
 * Determinism: one seed drives init, data order (per epoch), masking and
 * dropout (per global step), and augmentation (per epoch and index), so a
 * run resumed from a checkpoint replays the same steps as one that never
 * stopped. The GPU kernels use no atomics, so results are bitwise repeatable
 * on one adapter.
 * @module
 */

import {
  BatchLoader,
  CUB_TRAIN_AUGMENT,
  FINETUNE_AUGMENT,
  type ImageDataset,
  writeFileAtomic,
} from "../data/mod.ts";
import { type Gpu, openGpu } from "../gpu/device.ts";
import { Classifier } from "../models/classifier.ts";
import { Mae } from "../models/mae.ts";
import { Critic, LossBalance, smaeTerms } from "../models/smae.ts";
import { SqueezeNet } from "../models/squeezenet.ts";
import { imagePatches } from "../models/vit.ts";
import { DropoutContext } from "../nn.ts";
import { crossEntropy, mse } from "../ops/loss.ts";
import { AdamW } from "../optim.ts";
import type { ParamStore } from "../params.ts";
import { Rng } from "../rng.ts";
import { backward, clearTape, noGrad, noGradAsync, setOpTrace } from "../tape.ts";
import { keep, type Tensor, tensor, tidy, tidyAsync } from "../tensor.ts";
import type { TrainConfig } from "./config.ts";
import { evalLoader, loadSplits, shuffleLabels } from "./data.ts";
import { decodeSafetensors, encodeSafetensors, type NamedArray } from "./safetensors.ts";
import { learningRate } from "./schedule.ts";
import { trainDino } from "./dino.ts";

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
  /** Median wall time of the epochs this run trained (pretrain and classifier modes). */
  epochSecondsMedian?: number;
  /** Trainable and total parameter counts. */
  params: { trainable: number; total: number };
  checkpoint: string;
  /** Adapter that ran it. */
  adapter: string;
  /** Mode dino: whether the teacher's output collapsed (see src/train/dino.ts). */
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

/** The SMAE additions to an MAE: the frozen critic and the loss scaling. */
interface SmaeParts {
  critic: Critic;
  balance: LossBalance;
}

type Model =
  | { kind: "mae"; mae: Mae; smae?: SmaeParts }
  | { kind: "clf"; clf: Classifier }
  | { kind: "critic"; net: SqueezeNet };

interface RunState {
  step: number;
  model: Model;
  trainable: ParamStore[];
  optims: AdamW[];
}

const CHECKPOINT = "checkpoint.safetensors";

/** Reads a safetensors checkpoint, naming the file and its role when it cannot be read. */
async function readCheckpoint(file: string, role: string) {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(file);
  } catch (e) {
    throw new Error(`${role} checkpoint ${file} cannot be read (${(e as Error).message})`);
  }
  return decodeSafetensors(bytes, file);
}

/** The frozen SMAE critic from a checkpoint written by mode `critic`. */
async function loadCritic(c: TrainConfig, gpu: Gpu): Promise<Critic> {
  const file = c.critic!;
  const { tensors } = await readCheckpoint(file, "critic");
  const values = new Map<string, Float32Array>();
  for (const [name, t] of tensors) values.set(name, t.data as Float32Array);
  return Critic.fromValues(gpu, c.model.channels, values, c.smae.scaling === "code", file);
}

/** Builds the model for a config (loading `init` for probe/finetune, the critic for smae). */
async function buildModel(c: TrainConfig, gpu: Gpu, classes: number): Promise<Model> {
  if (c.mode === "pretrain" || c.mode === "smae") {
    const mae = new Mae(gpu, { ...c.model, encoder: c.model }, c.seed);
    if (c.mode === "pretrain") return { kind: "mae", mae };
    return {
      kind: "mae",
      mae,
      smae: { critic: await loadCritic(c, gpu), balance: new LossBalance(c.smae) },
    };
  }
  if (c.mode === "critic") {
    return { kind: "critic", net: new SqueezeNet(gpu, c.model.channels, classes, c.seed) };
  }
  if (c.mode === "scratch") {
    return {
      kind: "clf",
      clf: new Classifier(gpu, c.model, classes, c.seed, undefined, c.model.pool),
    };
  }
  const enc = Classifier.freshEncoder(gpu, c.model, c.seed);
  const file = c.init!;
  const { tensors } = await readCheckpoint(file, "init");
  enc.loadAll(
    (name) => tensors.get(name)?.data as Float32Array | undefined,
    `init checkpoint ${file}`,
    "was it a pretrain of this model?",
  );
  return { kind: "clf", clf: new Classifier(gpu, c.model, classes, c.seed, enc, c.model.pool) };
}

/** The stores a checkpoint holds (the SMAE critic is not one: it stays in its own file). */
function storesOf(m: Model): ParamStore[] {
  return m.kind === "mae" ? m.mae.stores : m.kind === "critic" ? [m.net.store] : m.clf.stores;
}

/** Serialises parameters, optimizer moments, BN statistics and progress. */
async function saveCheckpoint(
  path: string,
  c: TrainConfig,
  s: RunState,
  epoch: number,
): Promise<void> {
  const gpu = s.trainable[0].gpu;
  const tensors = new Map<string, NamedArray>();
  for (const store of storesOf(s.model)) {
    for (const [name, data] of await store.read()) {
      tensors.set(name, { shape: [...store.get(name).shape], data });
    }
  }
  for (let i = 0; i < s.optims.length; i++) {
    const o = s.optims[i];
    const n = o.store.length;
    for (const [k, buf] of [["m", o.m], ["v", o.v]] as const) {
      const data = new Float32Array(await gpu.download({ buffer: buf, offset: 0, size: n * 4 }));
      tensors.set(`optim.${i}.${k}`, { shape: [n], data });
    }
  }
  if (s.model.kind === "clf") {
    const bn = s.model.clf.bn;
    tensors.set("bn.running_mean", {
      shape: [...bn.runningMean.shape],
      data: await bn.runningMean.read() as Float32Array,
    });
    tensors.set("bn.running_var", {
      shape: [...bn.runningVar.shape],
      data: await bn.runningVar.read() as Float32Array,
    });
  }
  const metadata: Record<string, string> = {
    format: "smae-repro/1",
    mode: c.mode,
    config: JSON.stringify(c),
    seed: String(c.seed),
    step: String(s.step),
    epoch: String(epoch),
    optimizer_steps: JSON.stringify(s.optims.map((o) => o.step)),
  };
  if (s.model.kind === "mae" && s.model.smae) {
    metadata.smae_loss_balance = JSON.stringify(s.model.smae.balance.state());
  }
  await writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

/** Restores what {@link saveCheckpoint} wrote; returns the global step. */
async function loadCheckpoint(path: string, s: RunState): Promise<number> {
  const { tensors, metadata } = decodeSafetensors(await Deno.readFile(path), path);
  for (const store of storesOf(s.model)) {
    store.loadAll(
      (name) => tensors.get(name)?.data as Float32Array | undefined,
      `checkpoint ${path}`,
      "another model or config?",
    );
  }
  const steps = JSON.parse(metadata.optimizer_steps ?? "[]") as number[];
  if (s.model.kind === "mae" && s.model.smae && metadata.smae_loss_balance) {
    s.model.smae.balance.load(JSON.parse(metadata.smae_loss_balance));
  }
  s.optims.forEach((o, i) => {
    for (const [k, buf] of [["m", o.m], ["v", o.v]] as const) {
      const t = tensors.get(`optim.${i}.${k}`);
      if (!t || t.data.length !== o.store.length) {
        throw new Error(`${path}: optimizer state optim.${i}.${k} is missing or mis-sized`);
      }
      o.store.gpu.upload({ buffer: buf, offset: 0, size: t.data.byteLength }, t.data);
    }
    o.step = steps[i] ?? 0;
  });
  if (s.model.kind === "clf") {
    const bn = s.model.clf.bn;
    for (
      const [name, t] of [["bn.running_mean", bn.runningMean], [
        "bn.running_var",
        bn.runningVar,
      ]] as const
    ) {
      const v = tensors.get(name);
      if (v) t.gpu.upload(t.binding, v.data);
    }
  }
  return Number(metadata.step ?? 0);
}

/** Class scores of a classifier-like model. */
function logitsOf(m: Model, images: Tensor, drop: DropoutContext): Tensor {
  if (m.kind === "critic") return m.net.forward(images, drop);
  if (m.kind === "clf") return m.clf.forward(images, drop);
  throw new Error("an MAE has no class scores");
}

/**
 * One training step's forward and loss (recorded on the tape). Async only
 * for SMAE's calibrating steps, which read their two loss terms back.
 */
async function stepLoss(
  c: TrainConfig,
  m: Model,
  images: Tensor,
  labels: Tensor,
  step: number,
): Promise<Tensor> {
  const rate = c.mode === "probe" ? 0 : c.model.dropout;
  const drop = new DropoutContext(true, rate, c.seed, step);
  if (m.kind !== "mae") return crossEntropy(logitsOf(m, images, drop), labels);
  const masking = m.mae.sampleMasking(new Rng(c.seed).fork("mask").fork(step), images.shape[0]);
  if (!m.smae) return m.mae.forward(images, masking, drop).loss;
  const patches = imagePatches(c.model, images);
  const pred = m.mae.reconstruct(patches, masking, drop);
  const terms = smaeTerms(m.smae.critic, c.model, images, pred, m.mae.target(patches));
  const { balance } = m.smae;
  if (balance.calibrating) {
    balance.calibrate(await terms.pixel.item(), await terms.perceptual.item());
  }
  return balance.combine(terms);
}

/** Held-out evaluation: accuracy for classifiers, masked-patch MSE (and the zero predictor's) for MAE. */
export async function evaluate(
  c: TrainConfig,
  m: Model,
  ds: ImageDataset,
  gpu: Gpu,
): Promise<Record<string, number>> {
  const loader = evalLoader(c, ds);
  let correct = 0, seen = 0, mseSum = 0, zero = 0, batches = 0, allSum = 0, percSum = 0;
  const t0 = performance.now();
  for await (const b of loader.epoch(0)) {
    const [n] = b.shape;
    const drop = new DropoutContext(false, 0, c.seed, 0);
    if (m.kind === "mae") {
      const masking = m.mae.sampleMasking(new Rng(c.seed).fork("eval-mask").fork(batches), n);
      const smae = m.smae;
      const outs = noGrad(() =>
        tidy(() => {
          const images = tensor(gpu, b.images, b.shape);
          const out = m.mae.forward(images, masking, drop);
          // The trivial predictor: every pixel at the (standardised) mean, 0.
          const [B, T, P] = out.target.shape;
          const zeros = tensor(gpu, new Float32Array(out.target.size), [B * T, P]);
          const zeroLoss = mse(zeros, out.target.reshape([B * T, P]), out.mask.reshape([B * T]));
          if (!smae) return [out.loss, zeroLoss];
          const t = smaeTerms(smae.critic, c.model, images, out.pred, out.target);
          return [out.loss, zeroLoss, t.pixel, t.perceptual];
        })
      );
      const v: number[] = [];
      for (const t of outs) {
        v.push(await t.item());
        t.dispose();
      }
      mseSum += v[0] * n;
      zero += v[1] * n;
      if (smae) {
        allSum += v[2] * n;
        percSum += v[3] * n;
      }
    } else {
      const logits = noGrad(() => tidy(() => logitsOf(m, tensor(gpu, b.images, b.shape), drop)));
      const v = await logits.read() as Float32Array;
      logits.dispose();
      const k = v.length / n;
      for (let i = 0; i < n; i++) {
        let best = 0;
        for (let j = 1; j < k; j++) if (v[i * k + j] > v[i * k + best]) best = j;
        if (best === b.labels[i]) correct++;
      }
    }
    seen += n;
    batches++;
  }
  const seconds = (performance.now() - t0) / 1000;
  if (m.kind === "mae") {
    const base = { mse: mseSum / seen, mse_zero_predictor: zero / seen, seconds, images: seen };
    // SMAE: also its own terms, unscaled: MSE over all patches and the perceptual MSE.
    return m.smae ? { ...base, mse_all: allSum / seen, perceptual: percSum / seen } : base;
  }
  return { accuracy: correct / seen, seconds, images: seen };
}

function augmentFor(c: TrainConfig) {
  return c.data.augment === "finetune"
    ? FINETUNE_AUGMENT
    : c.data.augment === "cub"
    ? CUB_TRAIN_AUGMENT
    : null;
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

/** The model for a config, which of its stores train, and one AdamW per trainable store. */
async function setup(c: TrainConfig, gpu: Gpu, classes: number): Promise<RunState> {
  const model = await buildModel(c, gpu, classes);
  if (model.kind === "clf") model.clf.setEncoderTrainable(c.mode !== "probe");
  const trainable = model.kind === "mae"
    ? model.mae.stores
    : model.kind === "critic"
    ? [model.net.store]
    : c.mode === "probe"
    ? [model.clf.head]
    : model.clf.stores;
  const optims = trainable.map((s) =>
    new AdamW(s, {
      lr: c.optim.lr,
      beta1: c.optim.betas[0],
      beta2: c.optim.betas[1],
      weightDecay: c.optim.name === "adam" ? 0 : c.optim.weightDecay,
    })
  );
  return { step: 0, model, trainable, optims };
}

/** Frees a run's GPU state (the classifier's encoder too: each run builds its own). */
function teardown(s: RunState): void {
  for (const o of s.optims) o.destroy();
  if (s.model.kind === "mae") {
    s.model.mae.destroy();
    s.model.smae?.critic.destroy();
  } else if (s.model.kind === "critic") s.model.net.destroy();
  else {
    s.model.clf.destroy();
    s.model.clf.encoder.destroy();
  }
}

/** The seeded training batch loader of a config, and its steps per epoch (full batches). */
function trainLoader(c: TrainConfig, ds: ImageDataset) {
  const loader = new BatchLoader(ds, {
    batchSize: c.optim.batchSize,
    seed: c.seed,
    dropLast: ds.count >= c.optim.batchSize,
    augment: augmentFor(c),
    normalize: c.data.normalize,
  });
  const stepsPerEpoch = c.optim.batchSize > ds.count ? 1 : Math.floor(ds.count / c.optim.batchSize);
  return { loader, stepsPerEpoch };
}

/** Trains one config to the end (or to `stopAfterSteps`) and returns the summary. */
export async function train(c: TrainConfig, opts: TrainOptions): Promise<TrainSummary> {
  if (c.mode === "dino") return await trainDino(c, opts); // its own loop: src/train/dino.ts
  const gpu = opts.gpu ?? await openGpu();
  const t0 = performance.now();
  await Deno.mkdir(opts.out, { recursive: true });
  const loaded = opts.splits ?? await loadSplits(c, opts.data);
  const splits = c.data.shuffleLabels
    ? { ...loaded, train: shuffleLabels(loaded.train, c.seed) }
    : loaded;
  const classes = splits.train.classes.length;
  const state = await setup(c, gpu, classes);
  const { model, trainable, optims } = state;
  const ckpt = `${opts.out}/${CHECKPOINT}`;
  const metricsPath = `${opts.out}/metrics.jsonl`;
  if (opts.resume) {
    try {
      state.step = await loadCheckpoint(ckpt, state);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      throw new Error(`--resume: no checkpoint at ${ckpt}`);
    }
    // Drop metric lines past the checkpoint: they are recomputed identically.
    await truncateMetrics(metricsPath, state.step);
  } else {
    await Deno.writeTextFile(metricsPath, "");
    await saveCheckpoint(ckpt, c, state, 0); // step 0: NaN replays always have a start
  }
  const { loader, stepsPerEpoch } = trainLoader(c, splits.train);
  const totalSteps = stepsPerEpoch * c.optim.epochs;
  const count = (ss: ParamStore[]) => ss.reduce((a, s) => a + s.count, 0);
  if (!opts.quiet) {
    console.error(
      `${c.mode}: ${count(storesOf(model))} parameters (${count(trainable)} trainable), ` +
        `${totalSteps} steps of ${c.optim.batchSize} on ${splits.train.count} images`,
    );
  }
  const progress = !opts.quiet && Deno.stderr.isTerminal();
  const write = (line: Record<string, unknown>) =>
    Deno.writeTextFile(metricsPath, JSON.stringify(line) + "\n", { append: true });

  let epochLoss = 0, epochSteps = 0, lastEpochLoss = NaN, images = 0;
  const tRun = performance.now();
  const pending: { step: number; loss: Tensor; epoch: number; lr: number }[] = [];

  const flushLosses = async () => {
    for (const p of pending.splice(0)) {
      const v = await p.loss.item();
      p.loss.dispose();
      if (!Number.isFinite(v)) {
        for (const q of pending.splice(0)) q.loss.dispose();
        loader.close?.();
        teardown(state);
        throw await diagnose(c, opts, gpu, splits, p.step);
      }
      epochLoss += v;
      epochSteps++;
      const rate = images / ((performance.now() - tRun) / 1000);
      await write({
        type: "train",
        step: p.step,
        epoch: p.epoch,
        loss: v,
        lr: p.lr,
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

  const startStep = state.step;
  let stopped = false;
  const epochSeconds: number[] = [];
  for (
    let epoch = Math.floor(state.step / stepsPerEpoch);
    epoch < c.optim.epochs && !stopped;
    epoch++
  ) {
    const tEpoch = performance.now();
    let inEpoch = 0;
    epochLoss = 0;
    epochSteps = 0;
    for await (const batch of loader.epoch(epoch)) {
      if (inEpoch >= stepsPerEpoch) break;
      if (epoch * stepsPerEpoch + inEpoch < state.step) {
        inEpoch++; // resumed: replay the data order without training
        continue;
      }
      const step = state.step;
      const lr = learningRate({ ...c.optim }, epoch, inEpoch, stepsPerEpoch);
      const loss = await tidyAsync(async () => {
        for (const s of trainable) s.zeroGrad();
        const l = await stepLoss(
          c,
          model,
          tensor(gpu, batch.images, batch.shape),
          tensor(gpu, batch.labels, [batch.labels.length], "i32"),
          step,
        );
        backward(l);
        for (const o of optims) o.update(lr);
        return keep(l);
      });
      pending.push({ step, loss, epoch, lr });
      images += batch.shape[0];
      state.step++;
      inEpoch++;
      if (state.step % c.logEvery === 0) await flushLosses();
      if (state.step % c.checkpointEvery === 0) {
        await flushLosses();
        await saveCheckpoint(ckpt, c, state, epoch);
      }
      if (opts.stopAfterSteps !== undefined && state.step >= opts.stopAfterSteps) {
        await flushLosses();
        await saveCheckpoint(ckpt, c, state, epoch);
        stopped = true;
        break;
      }
    }
    await flushLosses();
    if (!stopped) {
      lastEpochLoss = epochSteps ? epochLoss / epochSteps : NaN;
      const seconds = (performance.now() - tEpoch) / 1000;
      epochSeconds.push(seconds);
      await write({ type: "epoch", epoch, loss: lastEpochLoss, seconds });
    }
  }
  if (progress) Deno.stderr.writeSync(new TextEncoder().encode("\n"));
  loader.close?.();
  const lastEpoch = Math.max(0, Math.ceil(state.step / stepsPerEpoch) - 1);
  await saveCheckpoint(ckpt, c, state, lastEpoch);
  const evalMetrics = stopped ? {} : await evaluate(c, model, splits.eval, gpu);
  if (!stopped) await write({ type: "eval", ...evalMetrics });
  const seconds = (performance.now() - t0) / 1000;
  const summary: TrainSummary = {
    mode: c.mode,
    seed: c.seed,
    steps: state.step,
    epochs: c.optim.epochs,
    finalLoss: lastEpochLoss,
    eval: evalMetrics,
    imagesPerSecond: images / ((performance.now() - tRun) / 1000),
    seconds,
    epochSecondsMedian: median(epochSeconds),
    params: { trainable: count(trainable), total: count(storesOf(model)) },
    checkpoint: ckpt,
    adapter: gpu.adapter.description,
  };
  await writeFileAtomic(
    `${opts.out}/summary.json`,
    new TextEncoder().encode(JSON.stringify(summary, null, 2) + "\n"),
  );
  teardown(state);
  return summary;
}

/** Drops the metric lines of steps at or past `step` (a resumed run recomputes them). */
export async function truncateMetrics(path: string, step: number): Promise<void> {
  let text = "";
  try {
    text = await Deno.readTextFile(path);
  } catch {
    return;
  }
  const keepLines = text.split("\n").filter((l) => {
    if (!l) return false;
    const r = JSON.parse(l);
    return r.type === "train" ? r.step < step : r.type === "epoch" ? true : false;
  });
  await Deno.writeTextFile(path, keepLines.map((l) => l + "\n").join(""));
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
  splits: { train: ImageDataset; eval: ImageDataset },
  failing: number,
): Promise<NonFiniteLossError> {
  clearTape();
  const ckpt = `${opts.out}/${CHECKPOINT}`;
  const before = `${opts.out}/before-nonfinite-step-${failing}.safetensors`;
  const state = await setup(c, gpu, splits.train.classes.length);
  const { model, trainable, optims } = state;
  // Checkpoints are written only after the losses before them were checked,
  // so the latest one is from before the failing step.
  state.step = await loadCheckpoint(ckpt, state);
  const { loader, stepsPerEpoch } = trainLoader(c, splits.train);
  let culprit: string | null = null;
  outer: for (let epoch = Math.floor(state.step / stepsPerEpoch);; epoch++) {
    let inEpoch = 0;
    for await (const batch of loader.epoch(epoch)) {
      const step = epoch * stepsPerEpoch + inEpoch++;
      if (step < state.step) continue;
      const images = () => tensor(gpu, batch.images, batch.shape);
      const labels = () => tensor(gpu, batch.labels, [batch.labels.length], "i32");
      if (step === failing) {
        state.step = step;
        await saveCheckpoint(before, c, state, epoch);
        const outs: [string, Tensor][] = [];
        setOpTrace((op, out) => outs.push([op, keep(out)]));
        try {
          await noGradAsync(() => tidyAsync(() => stepLoss(c, model, images(), labels(), step)));
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
      const lr = learningRate({ ...c.optim }, epoch, inEpoch - 1, stepsPerEpoch);
      await tidyAsync(async () => {
        for (const s of trainable) s.zeroGrad();
        backward(await stepLoss(c, model, images(), labels(), step));
        for (const o of optims) o.update(lr);
      });
      if (inEpoch >= stepsPerEpoch) break;
    }
  }
  loader.close?.();
  teardown(state);
  return new NonFiniteLossError(failing, culprit, before);
}

function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b), m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
