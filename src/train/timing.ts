/**
 * The paper's Table 2 measure: seconds to run a model over a whole split
 * without gradients, at a fixed batch size, for ViT-Lite classification and
 * for MAE reconstruction (encoder on the kept 25% of patches, then decoder),
 * and for SMAE's reconstruction next to MAE's.
 * @module
 */

import type { Batch, ImageDataset } from "../data/mod.ts";
import { evalLoader } from "./data.ts";
import type { Gpu } from "../gpu/device.ts";
import { Classifier } from "../models/classifier.ts";
import { Mae } from "../models/mae.ts";
import { Critic, SMAE_DEFAULTS, smaeTerms } from "../models/smae.ts";
import { squeezeNetSpecs } from "../models/squeezenet.ts";
import { imagePatches } from "../models/vit.ts";
import { DropoutContext } from "../nn.ts";
import { Rng } from "../rng.ts";
import { noGradAsync } from "../tape.ts";
import { type Tensor, tensor, tidy } from "../tensor.ts";
import type { MaeRunConfig, TrainConfig } from "./config.ts";

/** Seconds over the split for each task, and their ratio. */
export interface InferenceTimes {
  classify_s: number;
  reconstruct_s: number;
  recon_over_classify: number;
  images: number;
  batch: number;
  /** Timed repetitions (times are medians over them; ratios medians of per-repetition ratios). */
  repetitions: number;
}

/** The split's batches, in order, as the evaluation reads them. */
async function batchesOf(c: TrainConfig, ds: ImageDataset): Promise<Batch[]> {
  const loader = evalLoader(c, ds);
  const batches: Batch[] = [];
  for await (const b of loader.epoch(0)) batches.push(b);
  return batches;
}

/** How many timed repetitions {@link timeTasks} runs. */
export interface Repetitions {
  /** At least this many (default 6); the count is rounded up to whole rotations of the tasks. */
  min: number;
  /** And until every task has run this many seconds in all (default 0.5)... */
  seconds: number;
  /** ...but at most this many (default 40). */
  max: number;
}

const REPEATS: Repetitions = { min: 6, seconds: 0.5, max: 40 };

/** The median of `xs` (mean of the middle two for an even count). */
export function median(xs: number[]): number {
  if (xs.length === 0) throw new Error("median of no values");
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Per task, the seconds of each timed repetition over the whole split. */
export type TaskSamples<K extends string> = Record<K, number[]>;

/**
 * Times each task over all batches without gradients, after one untimed
 * pass per task (pipeline compilation, pool warm-up). Within a repetition
 * the tasks take turns batch by batch, starting with a different task each
 * repetition, so a slow phase of a busy machine falls on all tasks alike;
 * callers report medians over repetitions, which one stalled repetition
 * does not move.
 */
export async function timeTasks<K extends string>(
  gpu: Gpu,
  batches: Batch[],
  tasks: Record<K, (images: Tensor, i: number) => void>,
  reps: Repetitions = REPEATS,
): Promise<TaskSamples<K>> {
  const names = Object.keys(tasks) as K[];
  const samples = Object.fromEntries(names.map((k) => [k, [] as number[]])) as TaskSamples<K>;
  // The upload is timed with the task, as when a split is evaluated.
  const run = async (k: K, i: number) => {
    await noGradAsync(async () => {
      tidy(() => tasks[k](tensor(gpu, batches[i].images, batches[i].shape), i));
      await gpu.sync();
    });
  };
  for (const k of names) for (let i = 0; i < batches.length; i++) await run(k, i);
  const spent = () => Math.min(...names.map((k) => samples[k].reduce((a, x) => a + x, 0)));
  // Whole rounds of the rotation, so that every task leads (and follows each other) equally often.
  const more = (r: number) =>
    r % names.length !== 0 || (r < reps.max && (r < reps.min || spent() < reps.seconds));
  for (let r = 0; more(r); r++) {
    const order = names.map((_, j) => names[(j + r) % names.length]);
    const took = new Map<K, number>(names.map((k) => [k, 0]));
    for (let i = 0; i < batches.length; i++) {
      for (const k of order) {
        const t0 = performance.now();
        await run(k, i);
        took.set(k, took.get(k)! + (performance.now() - t0) / 1000);
      }
    }
    for (const k of names) samples[k].push(took.get(k)!);
  }
  return samples;
}

/** The median over repetitions of a / b, each repetition's pair taken together. */
export function medianRatio(a: number[], b: number[]): number {
  return median(a.map((x, i) => x / b[i]));
}

/** The timing stage as an MAE config: its encoder, decoder and masking are what is timed. */
function maeStage(c: TrainConfig): MaeRunConfig {
  if (c.mode !== "pretrain" && c.mode !== "smae") {
    throw new Error(`timing: needs a stage of mode pretrain or smae (an MAE), got ${c.mode}`);
  }
  return c;
}

/** Times classification and reconstruction over `ds` (weights do not matter for speed). */
export async function inferenceTimes(
  config: TrainConfig,
  ds: ImageDataset,
  gpu: Gpu,
): Promise<InferenceTimes> {
  const c = maeStage(config);
  const mae = new Mae(gpu, { ...c.mae, encoder: c.encoder }, c.seed);
  const clf = new Classifier(gpu, c.encoder, Math.max(2, ds.classes.length), c.seed, mae.encoder);
  const drop = new DropoutContext(false, 0, c.seed, 0);
  const masking = (i: number, n: number) => mae.sampleMasking(new Rng(c.seed).fork(i), n);
  const t = await timeTasks(gpu, await batchesOf(c, ds), {
    classify: (images) => clf.forward(images, drop),
    reconstruct: (images, i) => mae.forward(images, masking(i, images.shape[0]), drop),
  });
  clf.destroy();
  mae.destroy();
  return {
    classify_s: median(t.classify),
    reconstruct_s: median(t.reconstruct),
    recon_over_classify: medianRatio(t.reconstruct, t.classify),
    images: ds.count,
    batch: c.optim.batchSize,
    repetitions: t.classify.length,
  };
}

/** SMAE's Table 2 row next to MAE's, and what the perceptual term adds to a training loss. */
export interface SmaeTimes {
  mae_reconstruct_s: number;
  smae_reconstruct_s: number;
  /** Table 2's comparison: SMAE / MAE reconstruction time. */
  smae_over_mae: number;
  /** Forward pass plus loss without gradients: MAE's masked MSE, SMAE's pixel + perceptual terms. */
  mae_loss_s: number;
  smae_loss_s: number;
  smae_loss_over_mae_loss: number;
  images: number;
  batch: number;
  /** Timed repetitions (times are medians over them; ratios medians of per-repetition ratios). */
  repetitions: number;
}

/**
 * Times MAE and SMAE reconstruction over `ds` (Table 2). At inference an SMAE
 * is the MAE network (the critic only enters the training loss), so the
 * reconstruction ratio checks that nothing else runs; the loss timings show
 * what the frozen critic costs per training forward. Both sides use the
 * timing stage's masking; the critic has random weights (speed only).
 */
export async function smaeTimes(
  config: TrainConfig,
  ds: ImageDataset,
  gpu: Gpu,
): Promise<SmaeTimes> {
  const c = maeStage(config);
  // A pretrain stage has no smae section: the paper's scaling (speed alike but for the sigmoid).
  const scaling = c.mode === "smae" ? c.smae.scaling : SMAE_DEFAULTS.scaling;
  const mae = new Mae(gpu, { ...c.mae, encoder: c.encoder }, c.seed);
  const values = new Map(
    squeezeNetSpecs(c.encoder.channels, 1, c.seed, true).map((s) => [s.name, s.init]),
  );
  const critic = Critic.fromValues(gpu, c.encoder.channels, values, scaling === "code");
  const drop = new DropoutContext(false, 0, c.seed, 0);
  const masking = (i: number, n: number) => mae.sampleMasking(new Rng(c.seed).fork(i), n);
  const reconstruct = (images: Tensor, i: number) => {
    const patches = imagePatches(c.encoder, images);
    return { patches, pred: mae.reconstruct(patches, masking(i, images.shape[0]), drop) };
  };
  // Each compared pair is timed on its own, so neither side runs after the critic more often.
  const batches = await batchesOf(c, ds);
  const t = {
    ...await timeTasks(gpu, batches, {
      mae_reconstruct: (images, i) => reconstruct(images, i),
      smae_reconstruct: (images, i) => reconstruct(images, i),
    }),
    ...await timeTasks(gpu, batches, {
      mae_loss: (images, i) => mae.forward(images, masking(i, images.shape[0]), drop),
      smae_loss: (images, i) => {
        const { patches, pred } = reconstruct(images, i);
        smaeTerms(critic, c.encoder, images, pred, mae.target(patches));
      },
    }),
  };
  critic.destroy();
  mae.destroy();
  return {
    mae_reconstruct_s: median(t.mae_reconstruct),
    smae_reconstruct_s: median(t.smae_reconstruct),
    smae_over_mae: medianRatio(t.smae_reconstruct, t.mae_reconstruct),
    mae_loss_s: median(t.mae_loss),
    smae_loss_s: median(t.smae_loss),
    smae_loss_over_mae_loss: medianRatio(t.smae_loss, t.mae_loss),
    images: ds.count,
    batch: c.optim.batchSize,
    repetitions: t.mae_reconstruct.length,
  };
}
