/**
 * The paper's Table 2 measure: seconds to run a model over a whole split
 * without gradients, at a fixed batch size, for ViT-Lite classification and
 * for MAE reconstruction (encoder on the kept 25% of patches, then decoder).
 * @module
 */

import { type Batch, BatchLoader, type ImageDataset } from "../data/mod.ts";
import type { Gpu } from "../gpu/device.ts";
import { Classifier } from "../models/classifier.ts";
import { Mae } from "../models/mae.ts";
import { DropoutContext } from "../nn.ts";
import { Rng } from "../rng.ts";
import { noGradAsync } from "../tape.ts";
import { tensor, tidy } from "../tensor.ts";
import type { TrainConfig } from "./config.ts";

/** Seconds over the split for each task, and their ratio. */
export interface InferenceTimes {
  classify_s: number;
  reconstruct_s: number;
  recon_over_classify: number;
  images: number;
  batch: number;
}

/** Times classification and reconstruction over `ds` (weights do not matter for speed). */
export async function inferenceTimes(
  c: TrainConfig,
  ds: ImageDataset,
  gpu: Gpu,
): Promise<InferenceTimes> {
  const mae = new Mae(gpu, { ...c.model, encoder: c.model }, c.seed);
  const clf = new Classifier(gpu, c.model, Math.max(2, ds.classes.length), c.seed, mae.encoder);
  const loader = new BatchLoader(ds, {
    batchSize: c.optim.batchSize,
    seed: c.seed,
    shuffle: false,
    normalize: c.data.normalize,
  });
  const drop = new DropoutContext(false, 0, c.seed, 0);
  const batches: Batch[] = [];
  for await (const b of loader.epoch(0)) batches.push(b);
  const run = async (task: "classify" | "reconstruct") => {
    const t0 = performance.now();
    await noGradAsync(async () => {
      for (const [i, b] of batches.entries()) {
        tidy(() => {
          const images = tensor(gpu, b.images, b.shape);
          if (task === "classify") clf.forward(images, drop);
          else mae.forward(images, mae.sampleMasking(new Rng(c.seed).fork(i), b.shape[0]), drop);
        });
      }
      await gpu.sync();
    });
    return (performance.now() - t0) / 1000;
  };
  await run("classify"); // compile pipelines, warm the pool
  await run("reconstruct");
  const classify_s = await run("classify");
  const reconstruct_s = await run("reconstruct");
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
