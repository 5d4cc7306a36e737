import assert from "node:assert/strict";
import { FINETUNE_AUGMENT } from "../../src/data/augment.ts";
import { type Batch, BatchLoader } from "../../src/data/batch_loader.ts";
import type { ImageDataset } from "../../src/data/image_dataset.ts";
import { loadTinyImageNet } from "../../src/data/tiny_imagenet.ts";
import { FIXTURES } from "./_fixture_copy.ts";

function toy(n = 50, h = 4, w = 3, c = 3): ImageDataset {
  const images = new Uint8Array(n * h * w * c);
  for (let i = 0; i < images.length; i++) images[i] = (i * 31 + 7) % 256;
  return {
    name: "toy",
    split: "train",
    count: n,
    height: h,
    width: w,
    channels: c,
    images,
    labels: Int32Array.from({ length: n }, (_, i) => i % 5),
    classes: ["a", "b", "c", "d", "e"],
  };
}

async function collect(loader: BatchLoader, epoch: number): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of loader.epoch(epoch)) out.push(b);
  return out;
}

Deno.test("BatchLoader replays the same order for the same seed and a different order per epoch", () => {
  const ds = toy();
  const a = new BatchLoader(ds, { batchSize: 8, seed: 42 });
  const b = new BatchLoader(ds, { batchSize: 8, seed: 42 });
  assert.deepEqual(a.order(0), b.order(0));
  assert.notDeepEqual(a.order(0), a.order(1));
  assert.notDeepEqual(a.order(0), new BatchLoader(ds, { batchSize: 8, seed: 43 }).order(0));
  assert.deepEqual([...a.order(3)].sort((x, y) => x - y), Array.from({ length: 50 }, (_, i) => i));
});

Deno.test("BatchLoader.epoch() covers every image once, with a partial last batch unless dropLast", async () => {
  const ds = toy();
  const batches = await collect(new BatchLoader(ds, { batchSize: 8, seed: 1 }), 0);
  assert.deepEqual(batches.map((b) => b.shape[0]), [8, 8, 8, 8, 8, 8, 2]);
  const seen = batches.flatMap((b) => [...b.indices]).sort((x, y) => x - y);
  assert.deepEqual(seen, Array.from({ length: 50 }, (_, i) => i));
  for (const b of batches) b.indices.forEach((i, j) => assert.equal(b.labels[j], ds.labels[i]));
  const dropped = await collect(new BatchLoader(ds, { batchSize: 8, seed: 1, dropLast: true }), 0);
  assert.equal(dropped.length, 6);
});

Deno.test("BatchLoader emits float32 NCHW scaled to [0, 1] or the raw uint8 NHWC pixels", () => {
  const ds = toy();
  const f = new BatchLoader(ds, { batchSize: 4, seed: 9 }).batch(0, 0);
  const u = new BatchLoader(ds, { batchSize: 4, seed: 9, format: "u8-nhwc" }).batch(0, 0);
  assert.ok(f.images instanceof Float32Array && u.images instanceof Uint8Array);
  assert.deepEqual(f.shape, [4, 3, 4, 3]);
  // Image j=2, channel 1, row 3, column 2.
  const i = f.indices[2];
  const v = ds.images[i * 36 + (3 * 3 + 2) * 3 + 1];
  assert.equal(f.images[2 * 36 + 1 * 12 + 3 * 3 + 2], Math.fround(v / 255));
  assert.equal(u.images[2 * 36 + (3 * 3 + 2) * 3 + 1], v);
});

Deno.test("BatchLoader normalizes per batch to mean 0 and std 1, and by ImageNet and CUB statistics", () => {
  const ds = toy();
  const b = new BatchLoader(ds, { batchSize: 16, seed: 2, normalize: "batch" }).batch(0, 0)
    .images as Float32Array;
  const mean = b.reduce((s, x) => s + x, 0) / b.length;
  const std = Math.sqrt(b.reduce((s, x) => s + (x - mean) ** 2, 0) / (b.length - 1));
  assert.ok(Math.abs(mean) < 1e-5 && Math.abs(std - 1) < 1e-4, `mean ${mean} std ${std}`);
  const img =
    new BatchLoader(ds, { batchSize: 1, seed: 2, normalize: "imagenet", shuffle: false }).batch(
      0,
      0,
    ).images;
  // Pixel 0 of image 0: (7, 38, 69) in RGB; channel planes are 12 apart.
  assert.ok(Math.abs(img[0] - (7 / 255 - 0.485) / 0.229) < 1e-5);
  assert.ok(Math.abs(img[12] - (38 / 255 - 0.456) / 0.224) < 1e-5);
  const cub =
    new BatchLoader(ds, { batchSize: 1, seed: 2, normalize: "cub", shuffle: false }).batch(0, 0)
      .images;
  assert.ok(Math.abs(cub[24] - (69 / 255 - 0.408) / 0.5) < 1e-5);
});

Deno.test("BatchLoader augmentation replays per image whatever the batch size, and differs across epochs", async () => {
  const ds = await loadTinyImageNet("train", {
    root: `${FIXTURES}tiny-imagenet-200`,
    cacheDir: null,
  });
  const opts = { seed: 42, augment: FINETUNE_AUGMENT, normalize: "imagenet" as const };
  const big = new BatchLoader(ds, { ...opts, batchSize: 16 }).batch(0, 0);
  const again = new BatchLoader(ds, { ...opts, batchSize: 16 }).batch(0, 0);
  assert.deepEqual(big.images, again.images);
  const small = new BatchLoader(ds, { ...opts, batchSize: 4 }).batch(0, 1); // images 4..7 of the same order
  assert.deepEqual(small.indices, big.indices.subarray(4, 8));
  assert.deepEqual(small.images, big.images.subarray(4 * 12288, 8 * 12288));
  const loader = new BatchLoader(ds, { ...opts, batchSize: 16, shuffle: false });
  assert.notDeepEqual(loader.batch(0, 0).images, loader.batch(1, 0).images);
});

Deno.test("BatchLoader with web workers yields exactly the batches of the main thread", async () => {
  const ds = await loadTinyImageNet("train", {
    root: `${FIXTURES}tiny-imagenet-200`,
    cacheDir: null,
  });
  const opts = { seed: 7, batchSize: 12, augment: FINETUNE_AUGMENT, normalize: "batch" as const };
  const main = await collect(new BatchLoader(ds, opts), 2);
  const pooled = new BatchLoader(ds, { ...opts, workers: 2 });
  try {
    const viaWorkers = await collect(pooled, 2);
    assert.equal(viaWorkers.length, main.length);
    viaWorkers.forEach((b, k) => {
      assert.deepEqual(b.indices, main[k].indices);
      assert.deepEqual(b.labels, main[k].labels);
      assert.deepEqual(b.images, main[k].images);
    });
  } finally {
    pooled.close();
  }
});

Deno.test("BatchLoader.epoch() builds the next batches while the consumer is busy (prefetch)", async () => {
  const ds = toy(64);
  let built = 0;
  class Counting extends BatchLoader {
    override batch(epoch: number, step: number, order?: Uint32Array) {
      built++;
      return super.batch(epoch, step, order);
    }
  }
  const loader = new Counting(ds, { batchSize: 8, seed: 3, prefetch: 2 });
  const it = loader.epoch(0);
  await it.next();
  // Stand-in for awaiting the GPU: the loader's macrotasks run meanwhile.
  await new Promise((r) => setTimeout(r, 20));
  assert.ok(built >= 3, `only ${built} batches built while the consumer waited`);
  await it.return(undefined);
});
