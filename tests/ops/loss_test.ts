import { assertClose, dot, finiteDifference } from "../../src/audit.ts";
import { crossEntropy, crossEntropyRows, mse } from "../../src/ops/loss.ts";
import { OPS } from "../../src/ops/registry.ts";
import { Rng } from "../../src/rng.ts";
import { backward } from "../../src/tape.ts";
import { tensor, tidy } from "../../src/tensor.ts";
import { assert, assertThrows } from "../_assert.ts";
import { gpuTest, gradData, leaf, rand } from "../_helpers.ts";

const ce = OPS.crossEntropy, ms = OPS.mse;

function labelsFor(seed: number, rows: number, cols: number): Int32Array {
  const r = new Rng(seed);
  return Int32Array.from({ length: rows }, () => r.int(cols));
}

Deno.test("the loss backward references agree with finite differences in f64", () => {
  const x = rand(1, 4 * 5, -3, 3), y = labelsFor(2, 4, 5), w = rand(3, 4);
  const fd = finiteDifference((v) => dot(ce.reference.forward(v, y, 5), w), x);
  assertClose(ce.reference.backward(x, y, w, 5), fd, { atol: 1e-8, rtol: 1e-6 }, "cross-entropy");
  const t = rand(4, 20), mask = [1, 0, 1, 1];
  const fm = finiteDifference((v) => 0.7 * ms.reference.forward(v, t, 5, mask), x);
  assertClose(ms.reference.backward(x, t, 5, 0.7, mask), fm, { atol: 1e-8, rtol: 1e-6 }, "mse");
});

gpuTest(
  "crossEntropyRows() matches the f64 reference, extreme logits included, forward and backward",
  async (gpu) => {
    for (const [rows, cols] of [[1, 1], [1, 10], [37, 53], [128, 200], [3, 1000]]) {
      const X = rand(rows + cols, rows * cols, -4, 4);
      for (let c = 0; c < cols; c++) X[c] = [60, -60, 1e4, -1e4][c % 4];
      const Y = labelsFor(rows, rows, cols), W = rand(7, rows);
      const x = leaf(gpu, X, [rows, cols]);
      const loss = tidy(() => {
        const l = crossEntropyRows(x, tensor(gpu, Y, [rows], "i32"));
        backward(l, tensor(gpu, W, [rows]));
        return l;
      });
      const label = `ce ${rows}x${cols}`;
      assertClose(await loss.read(), ce.reference.forward(X, Y, cols), ce.tolerance.forward, label);
      assertClose(
        await gradData(x),
        ce.reference.backward(X, Y, W, cols),
        ce.tolerance.backward,
        `d ${label}`,
      );
      loss.dispose();
      x.dispose();
    }
  },
);

gpuTest("crossEntropy() gives NaN for an out-of-range label and checks shapes", async (gpu) => {
  const x = tensor(gpu, rand(1, 6), [2, 3]);
  const l = crossEntropy(x, tensor(gpu, [0, 3], [2], "i32"));
  assert.ok(Number.isNaN(await l.item()), "label 3 of 3 classes is NaN, not a silent number");
  assertThrows(() => crossEntropy(x, tensor(gpu, [0, 1, 2], [3], "i32")), "one entry per row");
  assertThrows(
    () => crossEntropy(x, tensor(gpu, [0, 1], [2])),
    "crossEntropy: tensor[2] f32 must be i32",
  );
});

gpuTest(
  "mse() with and without a row mask matches the f64 reference, forward and backward",
  async (gpu) => {
    for (const [rows, cols] of [[1, 1], [7, 48], [256, 48], [1000, 3]]) {
      const P = rand(rows, rows * cols), T = rand(rows + 1, rows * cols);
      const r = new Rng(rows);
      const M = Float32Array.from({ length: rows }, () => (r.float() < 0.75 ? 1 : 0));
      for (const mask of [undefined, M]) {
        const p = leaf(gpu, P, [rows, cols]), t = leaf(gpu, T, [rows, cols]);
        const loss = tidy(() => {
          const l = mse(p, t, mask && tensor(gpu, mask, [rows]));
          backward(l, tensor(gpu, [0.7], [1]));
          return l;
        });
        const label = `mse ${rows}x${cols} ${mask ? "masked" : "plain"}`;
        assertClose(
          [await loss.item()],
          [ms.reference.forward(P, T, cols, mask)],
          ms.tolerance.forward,
          label,
        );
        const dp = ms.reference.backward(P, T, cols, 0.7, mask);
        assertClose(await gradData(p), dp, ms.tolerance.backward, `dpred ${label}`);
        assertClose(
          await gradData(t),
          dp.map((v) => -v),
          ms.tolerance.backward,
          `dtarget ${label}`,
        );
        loss.dispose();
        p.dispose();
        t.dispose();
      }
    }
  },
);

gpuTest("mse() is 0 with zero gradient when the mask selects nothing", async (gpu) => {
  const p = leaf(gpu, rand(1, 12), [4, 3]);
  const loss = tidy(() => {
    const l = mse(p, tensor(gpu, rand(2, 12), [4, 3]), tensor(gpu, [0, 0, 0, 0], [4]));
    backward(l);
    return l;
  });
  assert.equal(await loss.item(), 0);
  assert.ok((await gradData(p)).every((v) => v === 0));
  assertThrows(
    () => mse(p, p, tensor(gpu, [1, 1], [2])),
    "mse: mask tensor[2] f32 must have one weight per row (4)",
  );
});
