import { assertClose, dot, finiteDifference } from "../../src/audit.ts";
import { mean, sum, sumAll } from "../../src/ops/reduce.ts";
import { OPS } from "../../src/ops/registry.ts";
import { backward } from "../../src/tape.ts";
import { tensor, tidy } from "../../src/tensor.ts";
import { assert, assertThrows } from "../_assert.ts";
import { gpuTest, gradData, leaf, rand } from "../_helpers.ts";

const { forward: ref, backward: refBack } = OPS.sum.reference;
const tol = OPS.sum.tolerance;

Deno.test("sumAxisBackwardRef() agrees with finite differences in f64", () => {
  const x = rand(1, 2 * 3 * 4), w = rand(2, 2 * 4);
  const fd = finiteDifference((v) => dot(ref(v, 2, 3, 4, 0.5), w), x);
  assertClose(refBack(w, 2, 3, 4, 0.5), fd, { atol: 1e-8, rtol: 1e-7 }, "sum backward");
});

gpuTest(
  "sum() and mean() over every axis match the f64 reference, forward and backward",
  async (gpu) => {
    // Axes over 1024 (2000, 1500, 2081) are summed in blocks of rows, then over the blocks.
    for (
      const shape of [[1], [7], [37, 53], [3, 17, 29], [2, 1, 300], [3, 2000], [2, 1500, 5], [
        2081,
        3,
      ]]
    ) {
      for (let axis = 0; axis < shape.length; axis++) {
        for (const op of ["sum", "mean"] as const) {
          const n = shape.reduce((a, b) => a * b, 1);
          const outer = shape.slice(0, axis).reduce((a, b) => a * b, 1);
          const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
          const s = op === "mean" ? 1 / shape[axis] : 1;
          const X = rand(n, n), W = rand(n + 1, outer * inner);
          const x = leaf(gpu, X, shape);
          const y = tidy(() => {
            const out = (op === "sum" ? sum : mean)(x, axis);
            backward(out, tensor(gpu, W, out.shape));
            return out;
          });
          const label = `${op} [${shape}] axis ${axis}`;
          assert.deepEqual(y.shape, shape.filter((_, i) => i !== axis), label);
          assertClose(await y.read(), ref(X, outer, shape[axis], inner, s), tol.forward, label);
          assertClose(
            await gradData(x),
            refBack(W, outer, shape[axis], inner, s),
            tol.backward,
            `d ${label}`,
          );
          y.dispose();
          x.dispose();
        }
      }
    }
  },
);

gpuTest("sumAll() of a large vector is accurate to f32 summation error", async (gpu) => {
  const n = 100_003, X = rand(9, n);
  const y = sumAll(tensor(gpu, X, [n]));
  const want = ref(X, 1, n, 1)[0];
  assert.ok(Math.abs((await y.item()) - want) < 1e-3, `sum ${await y.item()} vs ${want}`);
});

gpuTest("sum() rejects an axis out of range, naming the op and the tensor", (gpu) => {
  assertThrows(
    () => sum(tensor(gpu, [1, 2], [2]), 1),
    "sum: axis 1 is out of range for tensor[2] f32",
  );
  assertThrows(() => mean(tensor(gpu, [1, 2], [2]), -2), "mean: axis -2 is out of range");
});
