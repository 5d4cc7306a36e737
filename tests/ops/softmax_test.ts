import { assertClose, dot, finiteDifference } from "../../src/audit.ts";
import { OPS } from "../../src/ops/registry.ts";
import { ROW_THREAD_MAX_COLS, softmax, softmaxKernel } from "../../src/ops/softmax.ts";
import { backward } from "../../src/tape.ts";
import { tensor, tidy } from "../../src/tensor.ts";
import { assert } from "../_assert.ts";
import { gpuTest, gradData, leaf, rand } from "../_helpers.ts";

const { forward: ref, backward: refBack } = OPS.softmax.reference;
const tol = OPS.softmax.tolerance;

Deno.test("softmaxBackwardRef() agrees with finite differences in f64", () => {
  const x = rand(1, 3 * 7, -3, 3), w = rand(2, 21);
  const fd = finiteDifference((v) => dot(ref(v, 7), w), x);
  assertClose(refBack(ref(x, 7), w, 7), fd, { atol: 1e-8, rtol: 1e-6 }, "softmax backward");
});

gpuTest(
  "softmax() matches the f64 reference on odd widths and extreme logits, in both forms",
  async (gpu) => {
    for (const [rows, cols] of [[1, 1], [3, 7], [37, 53], [130, 65], [5, 257], [2, 1000]]) {
      const X = rand(rows * cols, rows * cols, -5, 5);
      // Row 0 gets extreme logits: huge, tiny and equal values must not overflow.
      for (let c = 0; c < cols; c++) X[c] = [80, -80, 3e4, -3e4, 0][c % 5];
      const W = rand(cols, rows * cols);
      for (const kernel of ["rows", "workgroup"] as const) {
        const label = `${rows}x${cols} ${kernel}`;
        const x = leaf(gpu, X, [rows, cols]);
        const y = tidy(() => {
          const out = softmax(x, kernel);
          backward(out, tensor(gpu, W, out.shape));
          return out;
        });
        const Y = await y.read();
        assertClose(Y, ref(X, cols), tol.forward, `softmax ${label}`);
        assert.ok(Y.every(Number.isFinite), `finite ${label}`);
        assertClose(
          await gradData(x),
          refBack(ref(X, cols), W, cols),
          tol.backward,
          `dsoftmax ${label}`,
        );
        y.dispose();
        x.dispose();
      }
    }
  },
);

Deno.test("softmaxKernel() gives short rows a thread each and long rows a workgroup", () => {
  assert.equal(softmaxKernel(33280, 65), "rows");
  assert.equal(softmaxKernel(64, ROW_THREAD_MAX_COLS), "rows");
  assert.equal(softmaxKernel(64, ROW_THREAD_MAX_COLS + 1), "workgroup");
  assert.equal(softmaxKernel(1, 3), "rows");
  assert.equal(softmaxKernel(2, 5000), "workgroup");
});
