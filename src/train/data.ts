/**
 * The datasets a training config names, loaded and brought to the model's
 * input size, with seeded subsets for CPU-scale runs.
 * @module
 */

import {
  type AugmentSpec,
  BatchLoader,
  cropFlipAugment,
  CUB_TRAIN_AUGMENT,
  FINETUNE_AUGMENT,
  fitDataset,
  type ImageDataset,
  imageOffsets,
  loadCub,
  loadMnistIdx,
  loadTinyImageNet,
} from "../data/mod.ts";
import { Rng } from "../rng.ts";
import type { TrainConfig } from "./config.ts";

/** A seeded subset of `n` images (all when n is 0 or not smaller), in dataset order. */
export function subset(ds: ImageDataset, n: number, seed: number): ImageDataset {
  if (n <= 0 || n >= ds.count) return ds;
  const pick = Array.from(
    new Rng(seed).fork(`subset:${ds.split}`).permutation(ds.count).subarray(0, n),
  ).sort((a, b) => a - b);
  const off = imageOffsets(ds);
  const images = new Uint8Array(pick.reduce((a, src) => a + off[src + 1] - off[src], 0));
  const labels = new Int32Array(n);
  const sizes = ds.sizes ? new Uint16Array(2 * n) : undefined;
  let o = 0;
  pick.forEach((src, i) => {
    images.set(ds.images.subarray(off[src], off[src + 1]), o);
    o += off[src + 1] - off[src];
    labels[i] = ds.labels[src];
    if (sizes) sizes.set(ds.sizes!.subarray(2 * src, 2 * src + 2), 2 * i);
  });
  return { ...ds, count: n, images, labels, ...(sizes ? { sizes } : {}) };
}

/** Training and evaluation splits of a config, at the model's size and channels. */
export async function loadSplits(
  c: TrainConfig,
  root?: string,
): Promise<{ train: ImageDataset; eval: ImageDataset }> {
  const dir = root ?? c.data.root;
  const size = c.encoder.imageSize;
  const channels = c.encoder.channels as 1 | 3;
  let train: ImageDataset, evalSet: ImageDataset;
  switch (c.data.dataset) {
    case "fashion-mnist":
      [train, evalSet] = await Promise.all(
        ["train", "test"].map((s) => loadMnistIdx(s as "train" | "test", dir ? { dir } : {})),
      );
      break;
    case "tiny-imagenet":
      [train, evalSet] = await Promise.all(
        ["train", "val"].map((s) =>
          loadTinyImageNet(s as "train" | "val", dir ? { root: dir } : {})
        ),
      );
      break;
    case "cub":
      [train, evalSet] = await Promise.all(
        ["train", "test"].map((s) =>
          loadCub(s as "train" | "test", {
            ...(dir ? { root: dir } : {}),
            size,
            // Training crops come from the whole photo (src/data/cub.ts).
            whole: s === "train" && c.data.augment === "cub",
          })
        ),
      );
      break;
  }
  // Variable-size images are brought to `size` by the augmentation's crop.
  const fit = (ds: ImageDataset) =>
    ds.sizes || (ds.height === size && ds.width === size && ds.channels === channels)
      ? ds
      : fitDataset(ds, { size, mode: c.data.fit, channels });
  return {
    train: fit(subset(train, c.data.trainLimit, c.seed)),
    eval: fit(subset(evalSet, c.data.evalLimit, c.seed)),
  };
}

/** The negative control's training set: the same images with labels permuted (seeded). */
export function shuffleLabels(ds: ImageDataset, seed: number): ImageDataset {
  const perm = new Rng(seed).fork("shuffle-labels").permutation(ds.count);
  return { ...ds, labels: Int32Array.from(perm, (i) => ds.labels[i]) };
}

/** The evaluation loader of a config: every image of `ds`, in order, normalised as in training. */
export function evalLoader(c: TrainConfig, ds: ImageDataset): BatchLoader {
  return new BatchLoader(ds, {
    batchSize: c.optim.batchSize,
    seed: c.seed,
    shuffle: false,
    normalize: c.data.normalize,
  });
}

/** The training augmentation `data.augment` names (none: null; dino: its own task builds it). */
export function augmentFor(c: TrainConfig): AugmentSpec | null {
  return c.data.augment === "finetune"
    ? FINETUNE_AUGMENT
    : c.data.augment === "cropflip"
    ? cropFlipAugment(c.encoder.imageSize)
    : c.data.augment === "cub"
    ? CUB_TRAIN_AUGMENT
    : null;
}
