/**
 * What the cost model (src/repro/estimate.ts) needs from the world: each
 * experiment's workload (its edited stage config and its datasets' sizes)
 * and, per model shape, a training rate measured on this adapter with a few
 * steps on synthetic images. Rates are cached per adapter and shape in a
 * JSON file (default .cache/calibration.json), so a second plan is instant.
 * @module
 */

import { exists, type ImageDataset, writeFileAtomic } from "../data/mod.ts";
import type { Gpu } from "../gpu/device.ts";
import { Rng } from "../rng.ts";
import { configFromLayers, modelOf, type TrainConfig } from "../train/config.ts";
import { train } from "../train/trainer.ts";
import type { DagNode } from "./dag.ts";
import {
  DATASET_SIZES,
  flopsPerImage,
  kindOf,
  MODEL_KINDS,
  type ModelKind,
  modelShape,
  stepsPerEpoch,
  type Workload,
} from "./estimate.ts";
import { checkpointPlaceholder, experimentConfig, type Plan, planFor } from "./experiments.ts";
import type { Profile, Stage } from "./profiles.ts";

/** The calibration key of a config: what changes a training step's cost, masking ratio aside. */
export function shapeKey(c: TrainConfig): string {
  const m = modelShape(c);
  const kind = kindOf(c.mode);
  const parts: (string | number)[] = [
    kind,
    `${m.imageSize}x${m.imageSize}x${m.channels}`,
    // The critic is a SqueezeNet: the ViT fields do not shape it.
    ...(kind === "critic" ? [] : [`p${m.patch}w${m.width}d${m.depth}h${m.heads}m${m.mlp}`]),
    `b${c.optim.batchSize}`,
    `aug-${c.data.augment}`,
  ];
  if (kind === "mae" || kind === "smae") {
    parts.push(`dec${m.decoderWidth}d${m.decoderDepth}m${m.decoderMlp}`);
  }
  if (c.mode === "dino") parts.push(`head${c.dino.hidden}-${c.dino.bottleneck}-${c.dino.outDim}`);
  return parts.join(" ");
}

/** Counts a Tiny ImageNet-layout root's train and val images. */
async function countTin(root: string): Promise<{ train: number; eval: number }> {
  let train = 0;
  for await (const cls of Deno.readDir(`${root}/train`)) {
    if (!cls.isDirectory) continue;
    for await (const f of Deno.readDir(`${root}/train/${cls.name}/images`)) if (f.isFile) train++;
  }
  let val = 0;
  for await (const f of Deno.readDir(`${root}/val/images`)) if (f.isFile) val++;
  return { train, eval: val };
}

/** Counts a CUB-200-2011 root's train and test images (train_test_split.txt). */
async function countCub(root: string): Promise<{ train: number; eval: number }> {
  const lines = (await Deno.readTextFile(`${root}/train_test_split.txt`)).split("\n")
    .map((l) => l.trim().split(/\s+/)).filter((l) => l.length === 2);
  const train = lines.filter((l) => l[1] === "1").length;
  return { train, eval: lines.length - train };
}

/**
 * Train and evaluation images of a config: its limits where set, else the
 * dataset's size: counted under `root` when one is pinned (the smoke
 * profile's fixtures), else the full dataset's known size.
 */
export async function imagesOf(
  c: TrainConfig,
  root?: string,
): Promise<{ train: number; eval: number }> {
  let size = DATASET_SIZES[c.data.dataset];
  if (root && c.data.dataset !== "fashion-mnist") {
    if (!(await exists(root))) throw new Error(`dataset root ${root} does not exist`);
    size = c.data.dataset === "cub" ? await countCub(root) : await countTin(root);
  }
  const pick = (limit: number, n: number) => (limit > 0 ? Math.min(limit, n) : n);
  return { train: pick(c.data.trainLimit, size.train), eval: pick(c.data.evalLimit, size.eval) };
}

/** A copy of a profile stage's validated config; throws naming the profile file and stage. */
export function stageCopy(p: Profile, stage: Stage): TrainConfig {
  const c = p.stages[stage];
  if (!c) throw new Error(`${p.file}: profile ${p.name} has no stage '${stage}'`);
  return structuredClone(c);
}

/** The config an experiment trains (its stage, its overlay, checkpoints as placeholders). */
function configOf(id: string, p: Profile): { config: TrainConfig; data: "tin" | "cub" } | null {
  const plan = planFor(id, p);
  if (plan.kind === "notrun") return null;
  const seed = stageCopy(p, plan.stage).seed;
  const config = experimentConfig(p, id, seed, checkpointPlaceholder);
  return { config, data: plan.kind === "train" ? plan.data : "tin" };
}

/** The workload of every experiment of a plan under `p`. */
export async function workloadsOf(
  dag: DagNode[],
  p: Profile,
): Promise<Map<string, Workload>> {
  const out = new Map<string, Workload>();
  for (const n of dag) {
    const got = configOf(n.id, p);
    if (!got) {
      out.set(n.id, {
        id: n.id,
        kind: "notrun",
        model: "mae",
        rateKey: "-",
        mode: "pretrain",
        trainImages: 0,
        evalImages: 0,
        epochs: 0,
        batchSize: 0,
        costFactor: 0,
        flopsPerImage: 0,
      });
      continue;
    }
    const { config: c, data } = got;
    const plan = planFor(n.id, p) as Exclude<Plan, { kind: "notrun" }>;
    const base = stageCopy(p, plan.stage);
    const images = await imagesOf(c, p.roots[data]);
    const kind = kindOf(c.mode);
    const flops = flopsPerImage(kind, modelShape(c));
    const timing = n.kind === "timing";
    // A timing run does forward passes of the classifier and the MAE: priced against the MAE step.
    const timingFlops = flopsPerImage("probe", modelShape(c)) +
      flopsPerImage("mae", modelShape(c)) / 3;
    out.set(n.id, {
      id: n.id,
      kind: timing ? "timing" : "train",
      model: kind,
      rateKey: shapeKey(c),
      mode: c.mode,
      trainImages: images.train,
      evalImages: images.eval,
      epochs: c.optim.epochs,
      batchSize: c.optim.batchSize,
      costFactor: timing ? timingFlops / flops : flops / flopsPerImage(kind, modelShape(base)),
      flopsPerImage: timing ? timingFlops : flops,
    });
  }
  return out;
}

/** One cached calibration. */
export interface Calibration {
  adapter: string;
  shape: string;
  imagesPerSecond: number;
  /** Timed steps (after one untimed step). */
  steps: number;
  /** The batch it measured at (the stage's unless calibrated with another). */
  batch: number;
  measuredAt: string;
}

interface CacheFile {
  version: 1;
  entries: Record<string, Calibration>;
}

async function readCache(file: string): Promise<CacheFile> {
  try {
    const raw = JSON.parse(await Deno.readTextFile(file)) as CacheFile;
    if (raw.version === 1 && raw.entries && typeof raw.entries === "object") return raw;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound) && !(e instanceof SyntaxError)) throw e;
  }
  return { version: 1, entries: {} };
}

/** Cache entry name: the adapter and the shape. */
export function cacheEntry(adapter: string, shape: string): string {
  return `${adapter} | ${shape}`;
}

/** A seeded synthetic dataset of `count` images at the config's size, `classes` classes. */
function synthetic(c: TrainConfig, count: number, classes: number): ImageDataset {
  const s = c.encoder.imageSize, ch = c.encoder.channels;
  const rng = new Rng(c.seed).fork("calibration");
  const images = new Uint8Array(count * s * s * ch);
  for (let i = 0; i < images.length; i++) images[i] = rng.int(256);
  return {
    name: "synthetic",
    split: "train",
    count,
    height: s,
    width: s,
    channels: ch,
    images,
    labels: Int32Array.from({ length: count }, (_, i) => i % classes),
    classes: Array.from({ length: classes }, (_, i) => `c${i}`),
  };
}

/**
 * Trains `steps + 1` steps of `c` through the public `train()` entry
 * (reading the loss back after every step) on `splits`, or on synthetic
 * images when none are given, and returns the images per second of the last
 * `steps`, read from the run's metrics (the first step compiles the
 * pipelines and is not timed). The one place that depends on the trainer's
 * interface and its metrics.jsonl lines.
 */
export async function measureStepRate(
  c: TrainConfig,
  gpu: Gpu,
  steps: number,
  out: string,
  splits?: { train: ImageDataset; eval: ImageDataset },
): Promise<number> {
  const batch = c.optim.batchSize;
  const cfg: TrainConfig = structuredClone(c);
  cfg.logEvery = 1;
  cfg.checkpointEvery = 1_000_000;
  if ("shuffleLabels" in cfg.data) cfg.data.shuffleLabels = false;
  const classes = c.data.dataset === "fashion-mnist" ? 10 : 200;
  const ds = splits?.train ?? synthetic(cfg, batch * (steps + 1), classes);
  // A set smaller than the batch is one (smaller) step an epoch.
  const perStep = Math.min(batch, ds.count);
  cfg.optim.epochs = Math.ceil((steps + 1) / stepsPerEpoch(ds.count, batch));
  await train(cfg, {
    out,
    gpu,
    quiet: true,
    stopAfterSteps: steps + 1,
    splits: splits ?? { train: ds, eval: { ...ds, split: "eval" } },
  });
  const file = `${out}/metrics.jsonl`;
  const lines = (await Deno.readTextFile(file)).split("\n").filter((l) => l.trim())
    .map((l) => JSON.parse(l) as { type?: string; step?: number; images_per_s?: number })
    .filter((l) => l.type === "train");
  if (lines.length < 2 || lines.some((l) => typeof l.images_per_s !== "number")) {
    throw new Error(`${file}: expected ${steps + 1} train lines with images_per_s`);
  }
  // Each line's rate is cumulative since the first step began: its end time is images / rate.
  const end = (i: number) => ((i + 1) * perStep) / lines[i].images_per_s!;
  const last = lines.length - 1;
  return (last * perStep) / (end(last) - end(0));
}

/**
 * The calibration batch on a software adapter: a CPU's images/s hardly
 * depends on the batch, and the paper's shapes take minutes a step at 128.
 */
export const SOFTWARE_CALIBRATION_BATCH = 8;

/** Options of {@link calibrate}. */
export interface CalibrateOptions {
  gpu: Gpu;
  /** Cache file (default .cache/calibration.json). */
  cacheFile?: string;
  /** Measure again even when cached. */
  recalibrate?: boolean;
  /** Timed steps per shape (default 2). */
  steps?: number;
  /** Only read the cache: measure nothing (default false). */
  cachedOnly?: boolean;
  /**
   * Measure at this batch instead of each stage's (a CPU's images/s hardly
   * depends on it; a GPU's does). The entry records the batch it measured,
   * and only an entry of the same batch is reused.
   */
  batch?: number;
  log?: (line: string) => void;
}

/**
 * Training rates (images/s) on `opts.gpu` of every shape the workloads
 * name, measured where not cached. Probes and classifiers start from a
 * one-step MAE checkpoint of their model; SMAE from a one-step critic.
 */
export async function calibrate(
  p: Profile,
  work: Map<string, Workload>,
  opts: CalibrateOptions,
): Promise<{ rates: Map<string, number>; measured: string[] }> {
  const cacheFile = opts.cacheFile ?? ".cache/calibration.json";
  const steps = opts.steps ?? 2;
  const log = opts.log ?? (() => {});
  const adapter = opts.gpu.adapter.description;
  const cache = await readCache(cacheFile);
  // The stage config of each shape (experiments' edits do not change shapes).
  const shapes = new Map<string, TrainConfig>();
  for (const stage of Object.keys(p.stages) as Stage[]) {
    const c = stageCopy(p, stage);
    const key = shapeKey(c);
    if ([...work.values()].some((w) => w.rateKey === key) && !shapes.has(key)) shapes.set(key, c);
  }
  const order = (c: TrainConfig) => MODEL_KINDS.indexOf(kindOf(c.mode));
  const todo = [...shapes.entries()].sort((a, b) => order(a[1]) - order(b[1]));
  const rates = new Map<string, number>();
  const measured: string[] = [];
  const tmp = await Deno.makeTempDir({ prefix: "calibration-" });
  const helpers = new Map<string, string>();
  /** A one-step checkpoint of `mode` for `c`'s model, made once per model. */
  const helper = async (c: TrainConfig, mode: "pretrain" | "critic"): Promise<string> => {
    const k = `${mode} ${JSON.stringify(modelOf(c))}`;
    const known = helpers.get(k);
    if (known) return known;
    // The same encoder (for the critic: image size and channels) in the helper's mode.
    const { imageSize, channels, dropout } = c.encoder;
    const vit = c.mode === "critic" ? {} : { ...c.encoder, pool: undefined };
    const h = configFromLayers(
      [{
        from: "",
        value: {
          mode,
          seed: c.seed,
          data: { ...c.data, augment: "none", shuffleLabels: undefined },
          optim: c.optim,
          encoder: mode === "critic" ? { imageSize, channels, dropout } : vit,
        },
      }],
      `calibration helper (${mode})`,
      false,
    );
    const dir = `${tmp}/${mode}-${helpers.size}`;
    await measureStepRate(h, opts.gpu, 1, dir);
    helpers.set(k, `${dir}/checkpoint.safetensors`);
    return `${dir}/checkpoint.safetensors`;
  };
  try {
    for (const [key, c] of todo) {
      const entry = cacheEntry(adapter, key);
      const hit = cache.entries[entry];
      const batch = opts.batch ?? c.optim.batchSize;
      if (hit && hit.batch === batch && !opts.recalibrate) {
        rates.set(key, hit.imagesPerSecond);
        continue;
      }
      if (opts.cachedOnly) continue;
      c.optim.batchSize = batch; // before the helpers: they train at the same batch
      const kind: ModelKind = kindOf(c.mode);
      if (kind === "probe" || kind === "classifier") {
        if (c.mode === "probe" || c.mode === "finetune") c.init = await helper(c, "pretrain");
      }
      if (c.mode === "smae") c.critic = await helper(c, "critic");
      log(`calibrating ${key} (${steps} steps after one untimed, batch ${batch})`);
      const rate = await measureStepRate(c, opts.gpu, steps, `${tmp}/${measured.length}`);
      rates.set(key, rate);
      measured.push(key);
      cache.entries[entry] = {
        adapter,
        shape: key,
        imagesPerSecond: rate,
        steps,
        batch,
        measuredAt: new Date().toISOString(),
      };
      // Written after every shape: an interrupted calibration keeps what it measured.
      const dir = cacheFile.includes("/") ? cacheFile.slice(0, cacheFile.lastIndexOf("/")) : ".";
      await Deno.mkdir(dir, { recursive: true });
      await writeFileAtomic(
        cacheFile,
        new TextEncoder().encode(JSON.stringify(cache, null, 2) + "\n"),
      );
    }
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
  return { rates, measured };
}
