import assert from "node:assert/strict";
import {
  applyRandAugmentOp,
  augmentImage,
  cropFlipAugment,
  FINETUNE_AUGMENT,
  hflipInPlace,
  RAND_AUGMENT_OPS,
  randAugmentMagnitude,
  sampleRandAugment,
  sampleResizedCrop,
} from "../../src/data/augment.ts";
import { Rng } from "../../src/rng.ts";

function rgb(h: number, w: number, f: (x: number, y: number, k: number) => number): Uint8Array {
  const a = new Uint8Array(h * w * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) for (let k = 0; k < 3; k++) a[(y * w + x) * 3 + k] = f(x, y, k);
  }
  return a;
}
const px = (
  img: Uint8Array,
  w: number,
  x: number,
  y: number,
) => [...img.subarray((y * w + x) * 3, (y * w + x) * 3 + 3)];

Deno.test("RandAugment has torchvision's 14 operations and its magnitudes at bin 9 of 31 for 64x64", () => {
  assert.equal(RAND_AUGMENT_OPS.length, 14);
  const m = (op: typeof RAND_AUGMENT_OPS[number]) => randAugmentMagnitude(op, 9, 64, 64);
  assert.ok(Math.abs(m("ShearX") - 0.09) < 1e-12);
  assert.equal(m("TranslateX"), 8); // int(150/331 * 64 * 9/30) = int(8.70)
  assert.ok(Math.abs(m("Rotate") - 9) < 1e-12);
  assert.ok(Math.abs(m("Brightness") - 0.27) < 1e-12);
  assert.equal(m("Posterize"), 7); // 8 - round(9 / 7.5)
  assert.ok(Math.abs(m("Solarize") - 178.5) < 1e-12);
  assert.equal(m("Equalize"), 0);
});

Deno.test("sampleResizedCrop() keeps area in [0.6, 1] and aspect ratio in [0.9, 1.1] up to pixel rounding", () => {
  const rng = new Rng(7);
  for (let t = 0; t < 2000; t++) {
    const [top, left, h, w] = sampleResizedCrop(64, 64, [0.6, 1], [0.9, 1.1], rng);
    assert.ok(top >= 0 && left >= 0 && top + h <= 64 && left + w <= 64);
    const area = (h * w) / 4096;
    assert.ok(area > 0.57 && area <= 1, `area ${area}`);
    assert.ok(w / h > 0.87 && w / h < 1.13, `ratio ${w / h}`);
  }
  // Impossible constraints fall back to the torchvision centre crop with the ratio clamped.
  assert.deepEqual(sampleResizedCrop(10, 40, [1, 1], [1, 1], new Rng(1)), [0, 15, 10, 10]);
});

Deno.test("augmentImage() with a full-image crop and no flip or RandAugment returns the image unchanged", () => {
  const src = rgb(64, 64, (x, y, k) => (x * 4 + y * 2 + k * 50) % 256);
  const out = new Uint8Array(src.length);
  augmentImage(
    { randomResizedCrop: { size: 64, scale: [1, 1], ratio: [1, 1] } },
    src,
    64,
    64,
    3,
    new Rng(1),
    out,
    0,
  );
  assert.deepEqual(out, src);
});

Deno.test("hflipInPlace() mirrors columns and is its own inverse", () => {
  const src = rgb(3, 5, (x, y, k) => x * 10 + y + k * 100);
  const img = src.slice();
  hflipInPlace(img, 3, 5, 3);
  assert.deepEqual(px(img, 5, 0, 1), px(src, 5, 4, 1));
  assert.deepEqual(px(img, 5, 2, 2), px(src, 5, 2, 2));
  hflipInPlace(img, 3, 5, 3);
  assert.deepEqual(img, src);
});

Deno.test("applyRandAugmentOp() matches hand-computed results for the photometric operations", () => {
  const tmp = new Uint8Array(64 * 64 * 3);
  const run = (op: typeof RAND_AUGMENT_OPS[number], mag: number, img: Uint8Array) => {
    applyRandAugmentOp(op, mag, img, tmp, 64, 64);
    return img;
  };
  assert.deepEqual(px(run("Brightness", 0.27, rgb(64, 64, () => 100)), 64, 5, 5), [127, 127, 127]);
  assert.deepEqual(
    px(run("Posterize", 7, rgb(64, 64, () => 0b10110111)), 64, 0, 0).map(Number),
    new Array(3).fill(0b10110110),
  );
  const sol = run("Solarize", 178.5, rgb(64, 64, (x) => (x < 32 ? 178 : 179)));
  assert.deepEqual([px(sol, 64, 0, 0)[0], px(sol, 64, 40, 0)[0]], [178, 76]);
  // AutoContrast stretches 50..150 to 0..255 per channel.
  const ac = run("AutoContrast", 0, rgb(64, 64, (x) => (x < 32 ? 50 : 150)));
  assert.deepEqual([px(ac, 64, 0, 0)[0], px(ac, 64, 63, 0)[0]], [0, 255]);
  // Equalize (PIL): two equal-sized levels 10 and 20 map to 0 and 255.
  const eq = run("Equalize", 0, rgb(64, 64, (x) => (x < 32 ? 10 : 20)));
  assert.deepEqual([px(eq, 64, 0, 0)[0], px(eq, 64, 63, 0)[0]], [0, 255]);
  // Color on a gray image and Contrast/Sharpness on a constant image change nothing.
  for (const op of ["Color", "Contrast", "Sharpness"] as const) {
    assert.ok(run(op, 0.27, rgb(64, 64, () => 90)).every((v) => v === 90), op);
  }
});

Deno.test("applyRandAugmentOp() translates, shears and rotates with nearest sampling and black fill", () => {
  const tmp = new Uint8Array(64 * 64 * 3);
  const src = rgb(64, 64, (x, y, k) => (x + 3 * y + k) % 200 + 1); // never 0, so fill is visible
  const t = src.slice();
  applyRandAugmentOp("TranslateX", 8, t, tmp, 64, 64);
  assert.deepEqual(px(t, 64, 20, 10), px(src, 64, 12, 10));
  assert.deepEqual(px(t, 64, 3, 10), [0, 0, 0]);
  const s = src.slice();
  applyRandAugmentOp("ShearX", 0.5, s, tmp, 64, 64);
  // Output (x, y) reads input x' = floor(x + 0.5 + 0.5 * (y + 0.5)): (10, 20) -> (20, 20).
  assert.deepEqual(px(s, 64, 10, 20), px(src, 64, 20, 20));
  const r = rgb(4, 4, (x, y, k) => 10 * y + x + k + 1);
  applyRandAugmentOp("Rotate", 90, r, new Uint8Array(48), 4, 4);
  const r0 = rgb(4, 4, (x, y, k) => 10 * y + x + k + 1);
  // Counter-clockwise: the right column becomes the top row.
  for (let x = 0; x < 4; x++) assert.deepEqual(px(r, 4, x, 0), px(r0, 4, 3, x));
});

Deno.test("sampleRandAugment() replays the same ops and signs from the same seed", () => {
  const a = sampleRandAugment(2, 9, 64, 64, new Rng(99));
  const b = sampleRandAugment(2, 9, 64, 64, new Rng(99));
  assert.deepEqual(a, b);
  const seen = new Set<string>();
  const rng = new Rng(5);
  for (let i = 0; i < 500; i++) {
    for (const [op] of sampleRandAugment(2, 9, 64, 64, rng)) seen.add(op);
  }
  assert.equal(seen.size, 14, "all 14 operations get drawn");
});

Deno.test("augmentImage() is replayable: same seed same output, different seed different output", () => {
  const src = rgb(64, 64, (x, y, k) => ((x ^ y) * 5 + k * 40) % 256);
  const go = (seed: number) => {
    const out = new Uint8Array(src.length);
    augmentImage(FINETUNE_AUGMENT, src, 64, 64, 3, new Rng(seed), out, 0);
    return out;
  };
  assert.deepEqual(go(3), go(3));
  assert.notDeepEqual(go(3), go(4));
});

Deno.test("cropFlipAugment() crops at the model's size and flips, keeping a ramp monotone in every row", () => {
  assert.deepEqual(cropFlipAugment(28), {
    randomResizedCrop: { size: 28, scale: [0.6, 1], ratio: [0.9, 1.1] },
    hflip: true,
  });
  // A gray 28x28 horizontal ramp: a crop of it resampled is still a ramp (the
  // same way up, or mirrored), and covers at least sqrt(0.6 * 0.9) of its width.
  const w = 28;
  const src = new Uint8Array(w * w);
  for (let y = 0; y < w; y++) for (let x = 0; x < w; x++) src[y * w + x] = x * 9;
  const dirs = new Set<string>();
  for (let seed = 0; seed < 40; seed++) {
    const out = new Uint8Array(w * w);
    augmentImage(cropFlipAugment(w), src, w, w, 1, new Rng(seed), out, 0);
    const row = [...out.subarray(5 * w, 6 * w)];
    const up = row.every((v, i) => i === 0 || v >= row[i - 1]);
    const down = row.every((v, i) => i === 0 || v <= row[i - 1]);
    assert.ok(up || down, `seed ${seed}: row 5 is not monotone: ${row}`);
    dirs.add(up ? "up" : "down");
    for (let y = 0; y < w; y++) {
      // Up to 1 apart: the vertical pass of the resampling rounds again.
      const d = Math.max(...row.map((v, x) => Math.abs(out[y * w + x] - v)));
      assert.ok(d <= 1, `seed ${seed}: row ${y} differs from row 5 by ${d}`);
    }
    const span = Math.abs(row[w - 1] - row[0]);
    assert.ok(span >= 0.7 * 27 * 9 - 9 && span <= 27 * 9, `seed ${seed}: span ${span}`);
  }
  assert.deepEqual([...dirs].sort(), ["down", "up"], "both ways up in 40 seeds");
});
