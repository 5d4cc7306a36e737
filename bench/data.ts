/**
 * Data-loader throughput in images/s: batches of 128 built by BatchLoader
 * (float32 NCHW, as uploaded to the GPU) with and without the fine-tune
 * augmentation, in the main thread and with two web workers; plus JPEG
 * decode speed (the one-time cache build). Inputs: the TIN fixture tiled to
 * 4,096 images of 64x64, and the real Fashion-MNIST padded to 64x64x3.
 *
 * Run: `deno run -A bench/data.ts` (JSON lines on stdout).
 *
 * @module
 */

import { type BenchRow, row } from "./_report.ts";
import { BatchLoader, type BatchLoaderOptions } from "../src/data/batch_loader.ts";
import { FINETUNE_AUGMENT } from "../src/data/augment.ts";
import type { ImageDataset } from "../src/data/image_dataset.ts";
import { loadMnistIdx } from "../src/data/idx.ts";
import { fitDataset } from "../src/data/resize.ts";
import { indexTinyImageNet, loadTinyImageNet } from "../src/data/tiny_imagenet.ts";
import { decodeJpeg } from "../src/data/jpeg.ts";

const FIXTURE = new URL("../fixtures/tiny-imagenet-200", import.meta.url).pathname;

function tile(ds: ImageDataset, count: number): ImageDataset {
  const sz = ds.height * ds.width * ds.channels;
  const images = new Uint8Array(count * sz), labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    images.set(ds.images.subarray((i % ds.count) * sz, (i % ds.count + 1) * sz), i * sz);
    labels[i] = ds.labels[i % ds.count];
  }
  return { ...ds, count, images, labels };
}

async function loaderRate(
  ds: ImageDataset,
  opts: BatchLoaderOptions,
  minMs = 1500,
): Promise<number> {
  const loader = new BatchLoader(ds, opts);
  let images = 0, epoch = 0, t0 = 0, seen = 0;
  const warmup = 4 * Math.max(1, opts.workers ?? 1); // JIT and worker start-up
  outer: for (;;) {
    for await (const b of loader.epoch(epoch++)) {
      if (++seen === warmup) t0 = performance.now();
      else if (seen > warmup) {
        images += b.shape[0];
        if (performance.now() - t0 >= minMs) break outer;
      }
    }
  }
  const rate = images / ((performance.now() - t0) / 1000);
  loader.close();
  return rate;
}

/** Loader and decode throughput rows (unit images/s, no peer). */
export async function benchData(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const tin = tile(await loadTinyImageNet("train", { root: FIXTURE, cacheDir: null }), 4096);
  const base = { batchSize: 128, seed: 42 };
  const shape = "4096x64x64x3 b128";
  rows.push(
    row(
      "loader tin64 no-aug f32 batch-std",
      shape,
      await loaderRate(tin, { ...base, normalize: "batch" }),
      null,
      "images/s",
    ),
  );
  rows.push(
    row(
      "loader tin64 flip+rrc+randaug(2,9) f32 imagenet",
      shape,
      await loaderRate(tin, { ...base, augment: FINETUNE_AUGMENT, normalize: "imagenet" }),
      null,
      "images/s",
    ),
  );
  rows.push(
    row(
      "loader tin64 flip+rrc+randaug(2,9) f32 imagenet, 2 workers",
      shape,
      await loaderRate(tin, {
        ...base,
        augment: FINETUNE_AUGMENT,
        normalize: "imagenet",
        workers: 2,
      }),
      null,
      "images/s",
    ),
  );
  const fm = fitDataset(await loadMnistIdx("train"), { size: 64, mode: "pad", channels: 3 });
  const fshape = "60000x64x64x3 (28x28 padded) b128";
  rows.push(
    row(
      "loader fashion-mnist64 no-aug f32 batch-std",
      fshape,
      await loaderRate(fm, { ...base, normalize: "batch" }),
      null,
      "images/s",
    ),
  );
  rows.push(
    row(
      "loader fashion-mnist64 flip+rrc+randaug(2,9) f32, 2 workers",
      fshape,
      await loaderRate(fm, {
        ...base,
        augment: FINETUNE_AUGMENT,
        normalize: "imagenet",
        workers: 2,
      }),
      null,
      "images/s",
    ),
  );
  const idx = await indexTinyImageNet(FIXTURE, "train");
  const bytes = await Promise.all(idx.files.map((f) => Deno.readFile(f)));
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < 1000) {
    for (let i = 0; i < bytes.length; i++, n++) decodeJpeg(bytes[i], idx.files[i]);
  }
  rows.push(
    row(
      "jpeg decode 64x64 (cache build)",
      "tin fixture",
      n / ((performance.now() - t0) / 1000),
      null,
      "images/s",
    ),
  );
  return rows;
}

if (import.meta.main) {
  for (const r of await benchData()) console.log(JSON.stringify(r));
}
