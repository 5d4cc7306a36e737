import assert from "node:assert/strict";
import { CUB_CLASSES, CUB_PER_CLASS, cubImages } from "../../fixtures/generate.ts";
import { CUB_TRAIN_AUGMENT } from "../../src/data/augment.ts";
import { BatchLoader } from "../../src/data/batch_loader.ts";
import { decodeCache, encodeCache } from "../../src/data/cache.ts";
import { loadCub } from "../../src/data/cub.ts";
import {
  imageAt,
  type ImageDataset,
  imageShape,
  labelCounts,
} from "../../src/data/image_dataset.ts";
import { BILINEAR, resample } from "../../src/data/resize.ts";
import { subset } from "../../src/train/data.ts";
import { fixtureCopy, FIXTURES, meanAbsDiff } from "./_fixture_copy.ts";

const ROOT = `${FIXTURES}CUB_200_2011`;

Deno.test("loadCub() splits the fixture by train_test_split.txt with labels from image_class_labels.txt", async () => {
  const train = await loadCub("train", { root: ROOT, cacheDir: null });
  const test = await loadCub("test", { root: ROOT, cacheDir: null });
  const all = cubImages();
  assert.equal(train.count, all.filter((m) => m.train).length);
  assert.equal(test.count, all.filter((m) => !m.train).length);
  assert.equal(train.count + test.count, CUB_CLASSES.length * CUB_PER_CLASS);
  assert.deepEqual(train.classes, CUB_CLASSES);
  assert.deepEqual([...train.labels], all.filter((m) => m.train).map((m) => m.label));
  assert.deepEqual(labelCounts(test), new Array(CUB_CLASSES.length).fill(2));
  assert.deepEqual([train.height, train.width, train.channels], [64, 64, 3]);
});

/** torchvision Resize(64) written out: short side 64, long side int(64 * long / short), bilinear. */
function resize64(raster: Uint8Array, h: number, w: number): [Uint8Array, number, number] {
  const [rh, rw] = w <= h ? [Math.trunc((64 * h) / w), 64] : [64, Math.trunc((64 * w) / h)];
  return [resample(raster, h, w, 3, [0, 0, w, h], rh, rw, BILINEAR), rh, rw];
}

Deno.test("loadCub() test images are Resize(64) then CenterCrop(64), the crop offset rounded as Python does", async () => {
  const test = await loadCub("test", { root: ROOT, cacheDir: null });
  const metas = cubImages().filter((m) => !m.train);
  assert.ok(metas.some((m) => m.height !== m.width) && metas.every((m) => m.height !== 64));
  assert.ok(
    metas.some((m) => m.height === 72 && m.width === 96),
    "a photo with a half-pixel offset",
  );
  metas.forEach((m, i) => {
    const [big, rh, rw] = resize64(m.raster, m.height, m.width);
    // torchvision: int(round((85 - 64) / 2)) = round(10.5) = 10 (halves to even), not 11.
    const offsets: Record<string, [number, number]> = {
      "96x64": [16, 0],
      "64x96": [0, 16],
      "64x64": [0, 0],
      "64x85": [0, 10],
      "64x92": [0, 14],
    };
    const [top, left] = offsets[`${rh}x${rw}`];
    const want = new Uint8Array(64 * 64 * 3);
    for (let y = 0; y < 64; y++) {
      want.set(
        big.subarray(((top + y) * rw + left) * 3, ((top + y) * rw + left + 64) * 3),
        y * 192,
      );
    }
    const d = meanAbsDiff(imageAt(test, i), want);
    assert.ok(d < 3, `${m.path} (${m.height}x${m.width}): mean abs diff ${d} (JPEG noise only)`);
  });
});

Deno.test("loadCub({ whole: true }) keeps every training photo whole at short side 64, with its size", async () => {
  const train = await loadCub("train", { root: ROOT, cacheDir: null, whole: true });
  const metas = cubImages().filter((m) => m.train);
  assert.equal(train.count, metas.length);
  metas.forEach((m, i) => {
    const [big, rh, rw] = resize64(m.raster, m.height, m.width);
    assert.deepEqual(imageShape(train, i), [rh, rw], m.path);
    assert.equal(Math.min(rh, rw), 64);
    const d = meanAbsDiff(imageAt(train, i), big);
    assert.ok(d < 3, `${m.path}: mean abs diff ${d}`);
  });
  assert.ok(metas.some((m) => m.width > m.height) && metas.some((m) => m.height > m.width));
  assert.deepEqual([train.height, train.width], [96, 96]); // the largest of each side
  // A seeded subset keeps each picked photo with its own size.
  const sub = subset(train, 4, 7);
  assert.equal(sub.count, 4);
  for (let i = 0; i < 4; i++) {
    const j = metas.findIndex((_, k) =>
      imageAt(train, k).length === imageAt(sub, i).length &&
      imageAt(train, k).every((v, q) => v === imageAt(sub, i)[q])
    );
    assert.ok(j >= 0, `subset image ${i} is one of the photos`);
    assert.deepEqual(imageShape(sub, i), imageShape(train, j));
    assert.equal(sub.labels[i], train.labels[j]);
  }
});

Deno.test("whole CUB photos survive the cache: sizes and pixels read back, a size change is a different payload", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const a = await loadCub("train", { root: ROOT, cacheDir: dir, whole: true });
    const b = await loadCub("train", { root: ROOT, cacheDir: dir, whole: true });
    assert.deepEqual([...b.sizes!], [...a.sizes!]);
    assert.deepEqual(b.images, a.images);
    const sq = await loadCub("train", { root: ROOT, cacheDir: dir });
    assert.equal(sq.sizes, undefined);
    assert.deepEqual([sq.height, sq.width], [64, 64]);
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names.sort(), [
      "cub-200-2011-train-short64-bilinear-center64.u8cache",
      "cub-200-2011-train-short64-bilinear.u8cache",
    ]);
    // Same pixels with two images' sizes swapped (a corrupt header) must not verify.
    const swapped = { ...a, sizes: Uint16Array.from(a.sizes!) };
    const k = [...Array(a.count).keys()].find((i) => a.sizes![2 * i] !== a.sizes![2 * i + 1])!;
    [swapped.sizes[2 * k], swapped.sizes[2 * k + 1]] = [a.sizes![2 * k + 1], a.sizes![2 * k]];
    const bytes = encodeCache(a, "v", "c");
    const other = encodeCache(swapped, "v", "c");
    assert.notDeepEqual(bytes, other);
    assert.deepEqual([...decodeCache(other, "x").sizes!], [...swapped.sizes]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("CUB training crops reach the sides of a wide photo that its centre square leaves out", () => {
  // 64 x 128: red left quarter, green middle half, blue right quarter.
  const h = 64, w = 128, img = new Uint8Array(h * w * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) img[(y * w + x) * 3 + (x < 32 ? 0 : x < 96 ? 1 : 2)] = 255;
  }
  const ds: ImageDataset = {
    name: "wide",
    split: "train",
    count: 1,
    height: h,
    width: w,
    channels: 3,
    images: img,
    labels: new Int32Array([0]),
    classes: ["a"],
    sizes: new Uint16Array([h, w]),
  };
  // The crop and flip only: RandAugment would change the colours this test reads.
  const crops = { ...CUB_TRAIN_AUGMENT, randAugment: undefined };
  const loader = new BatchLoader(ds, { batchSize: 1, seed: 3, format: "u8-nhwc", augment: crops });
  let red = 0, blue = 0;
  for (let e = 0; e < 40; e++) {
    const b = loader.batch(e, 0);
    assert.deepEqual(b.shape, [1, 3, 64, 64]);
    const px = b.images as Uint8Array;
    for (let p = 0; p < 64 * 64; p++) {
      if (px[3 * p] > 200) red++;
      if (px[3 * p + 2] > 200) blue++;
    }
  }
  assert.ok(red > 0 && blue > 0, `red ${red}, blue ${blue} pixels over 40 crops`);
  // Without a crop there is no one batch shape: refused, naming the reason.
  const plain = new BatchLoader(ds, { batchSize: 1, seed: 3 });
  assert.throws(() => plain.batch(0, 0), /varying size need a RandomResizedCrop/);
});

Deno.test("loadCub() names the file and id when a label line is missing", async () => {
  const root = await fixtureCopy("CUB_200_2011");
  try {
    const f = `${root}/image_class_labels.txt`;
    const text = await Deno.readTextFile(f);
    await Deno.writeTextFile(f, text.split("\n").filter((l) => !l.startsWith("7 ")).join("\n"));
    await assert.rejects(
      () => loadCub("train", { root, cacheDir: null }),
      (e: Error) => e.message === `${f}: no label line for image id 7`,
    );
    await Deno.remove(`${root}/train_test_split.txt`);
    await assert.rejects(
      () => loadCub("train", { root, cacheDir: null }),
      /train_test_split\.txt: missing/,
    );
    await assert.rejects(
      () => loadCub("train", { root: `${root}/images`, cacheDir: null }),
      /images\/classes\.txt: missing .*wrong dataset layout/,
    );
  } finally {
    await Deno.remove(root.slice(0, root.lastIndexOf("/")), { recursive: true });
  }
});
