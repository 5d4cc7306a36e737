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
}

/** The split's batches, in order, as the evaluation reads them. */
async function batchesOf(c: TrainConfig, ds: ImageDataset): Promise<Batch[]> {
  const loader = evalLoader(c, ds);
  const batches: Batch[] = [];
  for await (const b of loader.epoch(0)) batches.push(b);
  return batches;
}

/**
 * Seconds for each task over all batches without gradients, after one
 * untimed pass per task (pipeline compilation, pool warm-up); the passes
 * alternate so that a slow phase of a noisy machine hits both tasks.
 */
async function timeTasks<K extends string>(
  gpu: Gpu,
  batches: Batch[],
  tasks: Record<K, (images: Tensor, i: number) => void>,
  repeats = 1,
): Promise<Record<K, number>> {
  const names = Object.keys(tasks) as K[];
  const total = Object.fromEntries(names.map((k) => [k, 0])) as Record<K, number>;
  for (let r = -1; r < repeats; r++) {
    for (const k of names) {
      const t0 = performance.now();
      await noGradAsync(async () => {
        for (const [i, b] of batches.entries()) {
          tidy(() => tasks[k](tensor(gpu, b.images, b.shape), i));
        }
        await gpu.sync();
      });
      if (r >= 0) total[k] += (performance.now() - t0) / 1000 / repeats;
    }
  }
  return total;
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
  const classify_s = t.classify, reconstruct_s = t.reconstruct;
  clf.destroy();
  mae.destroy();
  return {
    classify_s,
    reconstruct_s,
    recon_over_classify: reconstruct_s / classify_s,
    images: ds.count,
    batch: c.optim.batchSize,
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
  const t = await timeTasks(gpu, await batchesOf(c, ds), {
    mae_reconstruct: (images, i) => reconstruct(images, i),
    smae_reconstruct: (images, i) => reconstruct(images, i),
    mae_loss: (images, i) => mae.forward(images, masking(i, images.shape[0]), drop),
    smae_loss: (images, i) => {
      const { patches, pred } = reconstruct(images, i);
      smaeTerms(critic, c.encoder, images, pred, mae.target(patches));
    },
  }, 2);
  critic.destroy();
  mae.destroy();
  return {
    mae_reconstruct_s: t.mae_reconstruct,
    smae_reconstruct_s: t.smae_reconstruct,
    smae_over_mae: t.smae_reconstruct / t.mae_reconstruct,
    mae_loss_s: t.mae_loss,
    smae_loss_s: t.smae_loss,
    smae_loss_over_mae_loss: t.smae_loss / t.mae_loss,
    images: ds.count,
    batch: c.optim.batchSize,
  };
}
