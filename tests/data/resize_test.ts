import assert from "node:assert/strict";
import { cubicKernel, resample, resizeShortCenterCrop } from "../../src/data/resize.ts";

/** A gray h x w image whose value is `f(x, y)`. */
function gray(h: number, w: number, f: (x: number, y: number) => number): Uint8Array {
  const a = new Uint8Array(h * w);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) a[y * w + x] = f(x, y);
  return a;
}

Deno.test("cubicKernel() is 1 at 0, 0 at the other integers and -0.0625 at 1.5 (a = -0.5)", () => {
  assert.equal(cubicKernel(0), 1);
  for (const x of [1, 2, -1, -2, 3]) assert.equal(cubicKernel(x) + 0, 0);
  assert.equal(cubicKernel(1.5), -0.0625);
  assert.equal(cubicKernel(0.5), 0.5625);
});

Deno.test("resizeShortCenterCrop() copies the central columns exactly when the short side already fits", () => {
  const src = gray(64, 100, (x, y) => (x * 3 + y * 5) % 256);
  const out = resizeShortCenterCrop(src, 64, 100, 1, 64);
  // left = round((100 - 64) / 2) = 18
  for (let y = 0; y < 64; y++) {
    for (let x = 0; x < 64; x++) assert.equal(out[y * 64 + x], src[y * 100 + x + 18]);
  }
});

Deno.test("resample() keeps a linear ramp linear when upsampling 2x and when downsampling 4x", () => {
  // Cubic convolution reproduces linear functions; check away from the borders.
  const up = resample(gray(4, 16, (x) => 10 * x + 5), 4, 16, 1, [0, 0, 16, 4], 4, 32);
  for (let i = 4; i < 28; i++) {
    const u = (i + 0.5) / 2 - 0.5; // output centre in source pixel-index coordinates
    assert.equal(up[i], Math.round(10 * u + 5), `upsampled column ${i}`);
  }
  const down = resample(gray(4, 200, (x) => x + 20), 4, 200, 1, [0, 0, 200, 4], 4, 50);
  for (let i = 3; i < 47; i++) {
    assert.equal(down[i], Math.round(4 * i + 1.5 + 20), `downsampled column ${i}`);
  }
});

Deno.test("resample() of a crop box reads only inside the box for a constant region", () => {
  // Left half 10, right half 200; a box well inside the right half must give 200 everywhere.
  const src = gray(40, 40, (x) => (x < 20 ? 10 : 200));
  const out = resample(src, 40, 40, 1, [26, 5, 36, 35], 16, 16);
  assert.ok(out.every((v) => v === 200));
});
