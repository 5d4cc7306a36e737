import { assertClose, dot, finiteDifference } from "../../src/audit.ts";
import { batchNorm1d } from "../../src/ops/batchnorm.ts";
import { OPS } from "../../src/ops/registry.ts";
import { backward } from "../../src/tape.ts";
import { tensor, tidy } from "../../src/tensor.ts";
import { assert, assertThrows } from "../_assert.ts";
import { gpuTest, gradData, leaf, rand } from "../_helpers.ts";

const { forward: ref, backward: refBack } = OPS.batchNorm1d.reference;
const tol = OPS.batchNorm1d.tolerance;

Deno.test("batchNormBackwardRef() agrees with finite differences in f64, training and eval", () => {
  const n = 5, c = 3;
  const x = rand(1, n * c, -2, 2), dy = rand(2, n * c), rm = rand(3, c), rv = rand(4, c, 0.5, 2);
  for (const training of [true, false]) {
    const fd = finiteDifference((v) => dot(ref(v, c, rm, rv, training).y, dy), x);
    assertClose(refBack(x, dy, c, rv, training), fd, { atol: 1e-8, rtol: 1e-6 }, `${training}`);
  }
});

gpuTest(
  "batchNorm1d() matches the f64 reference in training and eval mode, running statistics included",
  async (gpu) => {
    for (const [n, c] of [[128, 256], [2, 1], [3, 37], [130, 5], [1, 7], [200, 48]]) {
      for (const training of n > 1 ? [true, false] : [false]) {
        const label = `${n}x${c} ${training ? "training" : "eval"}`;
        const X = rand(n * c + 1, n * c, -3, 3), DY = rand(n + c, n * c);
        for (let i = 0; i < n; i++) X[i * c] = 1e3 + X[i * c] * 1e-3; // offset column, tiny spread
        if (c > 1) { for (let i = 0; i < n; i++) X[i * c + 1] = 0.25; // constant column: var 0
         }
        const RM = rand(5, c), RV = rand(6, c, 0.5, 2);
        const state = { runningMean: tensor(gpu, RM, [c]), runningVar: tensor(gpu, RV, [c]) };
        const x = leaf(gpu, X, [n, c]);
        const y = tidy(() => {
          const out = batchNorm1d(x, state, training);
          backward(out, tensor(gpu, DY, out.shape));
          return out;
        });
        const want = ref(X, c, RM, RV, training);
        const Y = await y.read();
        assert.ok(Y.every(Number.isFinite), `${label}: finite`);
        // The offset column's f32 batch mean is off by ~1e-4 of a spread of 1e-3:
        // compare it against a looser bound, the rest against the registry's.
        const loose = { atol: 0.05, rtol: 0 };
        const cols = (a: ArrayLike<number>, keep: (j: number) => boolean) =>
          Array.from(a).filter((_, i) => keep(i % c));
        assertClose(cols(Y, (j) => j > 0), cols(want.y, (j) => j > 0), tol.forward, `y ${label}`);
        assertClose(
          cols(Y, (j) => j === 0),
          cols(want.y, (j) => j === 0),
          loose,
          `y[:, 0] ${label}`,
        );
        assertClose(
          await state.runningMean.read(),
          want.runningMean,
          tol.forward,
          `running mean ${label}`,
        );
        assertClose(
          await state.runningVar.read(),
          want.runningVar,
          tol.forward,
          `running var ${label}`,
        );
        const dx = await gradData(x), wantDx = refBack(X, DY, c, RV, training);
        assertClose(
          cols(dx, (j) => j > 0),
          cols(wantDx, (j) => j > 0),
          tol.backward,
          `dx ${label}`,
        );
        for (const t of [x, y, state.runningMean, state.runningVar]) t.dispose();
      }
    }
  },
);

gpuTest(
  "batchNorm1d() refuses one sample per channel in training, as PyTorch, and bad shapes",
  (gpu) => {
    const state = { runningMean: tensor(gpu, [0, 0], [2]), runningVar: tensor(gpu, [1, 1], [2]) };
    const one = tensor(gpu, [1, 2], [1, 2]);
    assertThrows(
      () => batchNorm1d(one, state, true),
      "batchNorm1d: expected more than 1 value per channel when training, got input tensor[1,2] f32",
    );
    batchNorm1d(one, state, false); // eval is fine with one sample
    assertThrows(
      () => batchNorm1d(tensor(gpu, rand(1, 6), [2, 3]), state, true),
      "batchNorm1d: running statistic tensor[2] f32 must have shape [3]",
    );
    assertThrows(() => batchNorm1d(tensor(gpu, rand(1, 4), [4]), state, true), "must have rank 2");
  },
);
