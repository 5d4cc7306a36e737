import assert from "node:assert/strict";
import { buildBatch } from "../../src/data/batch_loader.ts";
import {
  adjustBrightness,
  adjustContrast,
  adjustHue,
  adjustSaturation,
  dinoAugment,
  gaussianBlurInPlace,
  grayscaleInPlace,
  solarizeInPlace,
} from "../../src/data/dino_augment.ts";
import { Rng } from "../../src/rng.ts";

const noise = (seed: number, n: number) => {
  const r = new Rng(seed);
  return Uint8Array.from({ length: n }, () => r.int(256));
};

Deno.test("grayscaleInPlace() gives three equal channels (the PIL luma) and leaves 1-channel images alone", () => {
  const img = noise(1, 16 * 3);
  const orig = img.slice();
  grayscaleInPlace(img, 3);
  for (let o = 0; o < img.length; o += 3) {
    assert.equal(img[o], img[o + 1]);
    assert.equal(img[o], img[o + 2]);
    const want = 0.299 * orig[o] + 0.587 * orig[o + 1] + 0.114 * orig[o + 2];
    assert.ok(Math.abs(img[o] - want) <= 1, `luma ${img[o]} vs ${want}`);
  }
  const gray = noise(2, 20), g0 = gray.slice();
  grayscaleInPlace(gray, 1);
  assert.deepEqual(gray, g0);
});

Deno.test("solarizeInPlace() inverts exactly the values at or above 128", () => {
  const img = Uint8Array.from({ length: 256 }, (_, i) => i);
  solarizeInPlace(img);
  for (let v = 0; v < 256; v++) assert.equal(img[v], v >= 128 ? 255 - v : v);
});

Deno.test("colour jitter ops: factor 1 is the identity, brightness 0 is black, contrast 0 is flat, saturation 0 is gray", () => {
  const src = noise(3, 64 * 3);
  for (const f of [adjustBrightness, adjustContrast, adjustSaturation]) {
    const img = src.slice();
    f(img, 3, 1);
    assert.deepEqual(img, src, f.name);
  }
  const black = src.slice();
  adjustBrightness(black, 3, 0);
  assert.ok(black.every((v) => v === 0));
  const flat = src.slice();
  adjustContrast(flat, 3, 0);
  assert.ok(flat.every((v) => v === flat[0]), "contrast 0: every value the mean gray");
  const sat = src.slice(), gray = src.slice();
  adjustSaturation(sat, 3, 0);
  grayscaleInPlace(gray, 3);
  assert.deepEqual(sat, gray);
  // One channel: saturation and hue have nothing to act on.
  const one = noise(4, 50), o0 = one.slice();
  adjustSaturation(one, 1, 0);
  adjustHue(one, 1, 0.1);
  assert.deepEqual(one, o0);
});

Deno.test("adjustHue() rotates hue: a third of a turn takes red to green, no shift is the identity (up to rounding)", () => {
  const red = Uint8Array.from([255, 0, 0, 200, 10, 10]);
  adjustHue(red, 3, 1 / 3);
  assert.deepEqual([...red], [0, 255, 0, 10, 200, 10]);
  const src = noise(5, 30 * 3), img = src.slice();
  adjustHue(img, 3, 0);
  for (let i = 0; i < img.length; i++) assert.ok(Math.abs(img[i] - src[i]) <= 1);
});

Deno.test("gaussianBlurInPlace() keeps a flat image flat and smooths a checkerboard toward its mean", () => {
  const flat = new Uint8Array(9 * 7 * 3).fill(77);
  gaussianBlurInPlace(flat, 9, 7, 3, 1.3);
  assert.ok(flat.every((v) => v === 77));
  const h = 16, w = 16;
  const board = Uint8Array.from(
    { length: h * w },
    (_, i) => ((i % w) + Math.floor(i / w)) % 2 ? 255 : 0,
  );
  const src = board.slice(), sigma = 2.0, r = Math.ceil(3 * sigma);
  gaussianBlurInPlace(board, h, w, 1, sigma);
  // Independent check: the direct 2-D convolution with the same truncation and clamped edges.
  const clamp = (v: number, n: number) => Math.min(n - 1, Math.max(0, v));
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let num = 0, den = 0;
      for (let dy = -r; dy <= r; dy++) {
        for (let dx = -r; dx <= r; dx++) {
          const k = Math.exp(-(dx * dx + dy * dy) / (2 * sigma * sigma));
          num += k * src[clamp(y + dy, h) * w + clamp(x + dx, w)];
          den += k;
        }
      }
      assert.ok(Math.abs(board[y * w + x] - num / den) <= 1, `(${x}, ${y})`);
      if (x >= r && y >= r && x < w - r && y < h - r) {
        assert.ok(Math.abs(board[y * w + x] - 127.5) < 10, "interior is near the mean");
      }
    }
  }
});

Deno.test("DINO batches: two views per image, view-major, deterministic per (seed, epoch, index), 1 or 3 channels", () => {
  for (const [size, c] of [[28, 1], [16, 3]]) {
    const count = 6, pixels = noise(6, count * size * size * c);
    const recipe = {
      count,
      height: size,
      width: size,
      channels: c,
      batchSize: 4,
      seed: 42,
      format: "u8-nhwc" as const,
      augment: { dino: dinoAugment(size) },
      normalize: "none" as const,
    };
    const labels = Int32Array.from({ length: count }, (_, i) => i % 3);
    const idx = Uint32Array.from([5, 0, 3, 2]);
    const a = buildBatch(recipe, pixels, labels, idx, 1, 0);
    const b = buildBatch(recipe, pixels, labels, idx, 1, 7);
    assert.deepEqual(a.shape, [8, c, size, size]);
    assert.deepEqual(a.images, b.images, "same seed, epoch and indices: same views");
    assert.deepEqual([...a.labels], [2, 0, 0, 2, 2, 0, 0, 2]);
    const sz = size * size * c;
    const view = (batch: typeof a, k: number) => batch.images.slice(k * sz, (k + 1) * sz);
    assert.notDeepEqual(view(a, 0), view(a, 4), "view 1 and view 2 of an image differ");
    // A sample's views depend on its index only, not on its batch.
    const alone = buildBatch(recipe, pixels, labels, Uint32Array.from([3]), 1, 0);
    assert.deepEqual(view(alone, 0), view(a, 2));
    assert.deepEqual(view(alone, 1), view(a, 6));
    const other = buildBatch(recipe, pixels, labels, idx, 2, 0);
    assert.notDeepEqual(other.images, a.images, "another epoch draws other views");
  }
});

Deno.test("DINO local crops: N per image at the local size, crop-major, deterministic per seed, the global views unchanged", () => {
  for (const [size, c, local] of [[28, 1, 12], [16, 3, 8]]) {
    const count = 6, pixels = noise(7, count * size * size * c), nl = 3;
    const recipe = (augment: ReturnType<typeof dinoAugment>, seed = 42) => ({
      count,
      height: size,
      width: size,
      channels: c,
      batchSize: 4,
      seed,
      format: "u8-nhwc" as const,
      augment: { dino: augment },
      normalize: "none" as const,
    });
    const spec = dinoAugment(size, { crops: nl, size: local });
    assert.deepEqual(spec.localScale, [0.05, 0.4], "DINO's local scale by default");
    const labels = Int32Array.from({ length: count }, (_, i) => i % 3);
    const idx = Uint32Array.from([5, 0, 3, 2]);
    const a = buildBatch(recipe(spec), pixels, labels, idx, 1, 0);
    const b = buildBatch(recipe(spec), pixels, labels, idx, 1, 3);
    assert.ok(a.local, "local crops present");
    assert.deepEqual(a.local!.shape, [nl * 4, c, local, local]);
    assert.equal(a.local!.images.length, nl * 4 * local * local * c);
    assert.deepEqual(a.local!.images, b.local!.images, "same seed, epoch, indices: same crops");
    // The global views do not depend on whether local crops are drawn.
    const plain = buildBatch(recipe(dinoAugment(size)), pixels, labels, idx, 1, 0);
    assert.equal(plain.local, undefined);
    assert.deepEqual(a.images, plain.images);
    const sz = local * local * c;
    const crop = (batch: typeof a, k: number) => batch.local!.images.slice(k * sz, (k + 1) * sz);
    // Crop-major: crop k of the image in batch slot j is local row k * n + j; it replays alone.
    const alone = buildBatch(recipe(spec), pixels, labels, Uint32Array.from([3]), 1, 0);
    for (let k = 0; k < nl; k++) assert.deepEqual(crop(alone, k), crop(a, k * 4 + 2), `crop ${k}`);
    assert.notDeepEqual(crop(a, 0), crop(a, 4), "two crops of one image differ");
    const other = buildBatch(recipe(spec, 43), pixels, labels, idx, 1, 0);
    assert.notDeepEqual(other.local!.images, a.local!.images, "another seed draws other crops");
    // Float layout: the same shape, normalized.
    const f = buildBatch({ ...recipe(spec), format: "f32-nchw" }, pixels, labels, idx, 1, 0);
    assert.deepEqual(f.local!.shape, a.local!.shape);
    assert.ok(f.local!.images instanceof Float32Array);
  }
});
