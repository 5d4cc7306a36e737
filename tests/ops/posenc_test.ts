import { sinusoidalPositions } from "../../src/ops/posenc.ts";
import { assert, assertThrows } from "../_assert.ts";

Deno.test("sinusoidalPositions() matches hand-computed values", () => {
  const D = 4;
  const pe = sinusoidalPositions(3, D);
  // pos 0: sin 0, cos 0, sin 0, cos 0
  assert.deepEqual([...pe.slice(0, 4)], [0, 1, 0, 1]);
  // pos 1: j = 0, 1 use 1 / 10000^0 = 1; j = 2, 3 use 1 / 10000^(2/4) = 0.01
  const want1 = [0.8414709848078965, 0.5403023058681398, 0.009999833334166664, 0.9999500004166653];
  const want2 = [0.9092974268256817, -0.4161468365471424, 0.019998666693333080, 0.9998000066665778];
  want1.forEach((v, j) => assert.equal(pe[D + j], Math.fround(v), `pe[1, ${j}]`));
  want2.forEach((v, j) => assert.equal(pe[2 * D + j], Math.fround(v), `pe[2, ${j}]`));
});

Deno.test("sinusoidalPositions() has the paper's shape, stays in [-1, 1] and handles odd widths", () => {
  const pe = sinusoidalPositions(257, 256);
  assert.equal(pe.length, 257 * 256);
  assert.ok(pe.every((v) => v >= -1 && v <= 1));
  // pe[256, 255]: angle 256 / 10000^(254/256)
  assert.equal(pe[256 * 256 + 255], Math.fround(Math.cos(256 / 10000 ** (254 / 256))));
  const odd = sinusoidalPositions(2, 3); // the last column is a sine of 1 / 10000^(2/3)
  assert.equal(odd[5], Math.fround(Math.sin(1 / 10000 ** (2 / 3))));
  assert.equal(sinusoidalPositions(0, 8).length, 0);
  assertThrows(() => sinusoidalPositions(2.5, 4), "bad size 2.5x4");
});
