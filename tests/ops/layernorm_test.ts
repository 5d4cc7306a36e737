import { assertClose, dot, finiteDifference } from "../../src/audit.ts";
import { layerNorm } from "../../src/ops/layernorm.ts";
import { OPS } from "../../src/ops/registry.ts";
import type { Gpu } from "../../src/gpu/device.ts";
import { backward } from "../../src/tape.ts";
import { tensor, tidy } from "../../src/tensor.ts";
import { assert, assertThrows } from "../_assert.ts";
import { gpuTest, gradData, leaf, rand } from "../_helpers.ts";

const { forward: ref, backward: refBack } = OPS.layerNorm.reference;
const tol = OPS.layerNorm.tolerance;

Deno.test("layerNormBackwardRef() agrees with finite differences in f64 for x, weight and bias", () => {
  const cols = 7, rows = 3;
  const x = rand(1, rows * cols, -2, 2),
    w = rand(2, cols),
    b = rand(3, cols),
    dy = rand(4, rows * cols);
  const g = refBack(x, w, dy, cols);
  const fx = finiteDifference((v) => dot(ref(v, w, b, cols).y, dy), x);
  const fw = finiteDifference((v) => dot(ref(x, v, b, cols).y, dy), w);
  const fb = finiteDifference((v) => dot(ref(x, w, v, cols).y, dy), b);
  const t = { atol: 1e-8, rtol: 1e-6 };
  assertClose(g.dx, fx, t, "dx");
  assertClose(g.dweight, fw, t, "dweight");
  assertClose(g.dbias, fb, t, "dbias");
});

/** Runs forward and backward on the GPU and checks all four results against the reference. */
async function check(gpu: Gpu, X: Float32Array, rows: number, cols: number, label: string) {
  const W = rand(rows + 11, cols, 0.5, 1.5),
    B = rand(rows + 12, cols),
    DY = rand(cols + 13, rows * cols);
  const x = leaf(gpu, X, [rows, cols]), w = leaf(gpu, W, [cols]), b = leaf(gpu, B, [cols]);
  const y = tidy(() => {
    const out = layerNorm(x, w, b);
    backward(out, tensor(gpu, DY, out.shape));
    return out;
  });
  const Y = await y.read();
  assert.ok(Y.every(Number.isFinite), `${label}: finite`);
  assertClose(Y, ref(X, W, B, cols).y, tol.forward, `layerNorm ${label}`);
  const g = refBack(X, W, DY, cols);
  assertClose(await gradData(x), g.dx, tol.backward, `dx ${label}`);
  assertClose(await gradData(w), g.dweight, tol.backward, `dweight ${label}`);
  assertClose(await gradData(b), g.dbias, tol.backward, `dbias ${label}`);
  for (const t of [y, x, w, b]) t.dispose();
}

gpuTest(
  "layerNorm() matches the f64 reference on round and odd shapes, forward and backward",
  async (gpu) => {
    // Widths up to LAYERNORM_ROW_PER_THREAD_MAX_COLS take the row-per-invocation
    // kernels, wider ones (1031, 1500) the row-per-workgroup kernels.
    const shapes = [
      [1, 1],
      [1, 256],
      [3, 37],
      [5, 53],
      [65, 48],
      [130, 128],
      [17, 300],
      [
        128 * 65,
        256,
      ],
      [3, 1031],
      [40, 1500],
      [1, 1024],
    ];
    for (const [rows, cols] of shapes) {
      await check(gpu, rand(rows * 31 + cols, rows * cols, -3, 3), rows, cols, `${rows}x${cols}`);
    }
  },
);

gpuTest(
  "layerNorm() gives weight and bias gradients when x needs none, on every kernel path",
  async (gpu) => {
    // Rows from storage, rows from textures (whole vec4 rows), a workgroup per row.
    for (const [rows, cols] of [[37, 53], [37, 52], [9, 1031]]) {
      const X = rand(rows, rows * cols, -3, 3), W = rand(rows + 1, cols, 0.5, 1.5);
      const B = rand(rows + 2, cols), DY = rand(rows + 3, rows * cols);
      const x = tensor(gpu, X, [rows, cols]), w = leaf(gpu, W, [cols]), b = leaf(gpu, B, [cols]);
      tidy(() => backward(layerNorm(x, w, b), tensor(gpu, DY, [rows, cols])));
      const g = refBack(X, W, DY, cols);
      assertClose(await gradData(w), g.dweight, tol.backward, `dweight ${rows}x${cols}`);
      assertClose(await gradData(b), g.dbias, tol.backward, `dbias ${rows}x${cols}`);
      assert.equal(x.grad, null, `x ${rows}x${cols} gets no gradient`);
      for (const t of [x, w, b]) t.dispose();
    }
  },
);

gpuTest(
  "layerNorm()'s row kernels from staged textures give the storage kernels' results bit for bit",
  async (gpu) => {
    const saved = gpu.textureOperands;
    try {
      // Whole vec4 rows (the textured kernels) with extreme rows among them, and one width
      // that is not (storage either way).
      for (const [rows, cols] of [[6, 52], [700, 64], [129, 32], [5, 54]]) {
        const X = rand(rows + cols, rows * cols, -3, 3);
        for (let c = 0; c < cols; c++) {
          X[c] = -7e5; // constant and large
          X[cols + c] = 1e4 + X[cols + c]; // large offset, spread ~1
        }
        const W = rand(rows + 1, cols, 0.5, 1.5), B = rand(rows + 2, cols);
        const DY = rand(rows + 3, rows * cols);
        const run = async (textures: boolean) => {
          gpu.textureOperands = textures;
          const x = leaf(gpu, X, [rows, cols]), w = leaf(gpu, W, [cols]), b = leaf(gpu, B, [cols]);
          if (!gpu.startProfile()) throw new Error("the adapter cannot time kernels");
          const y = tidy(() => {
            const out = layerNorm(x, w, b);
            backward(out, tensor(gpu, DY, out.shape));
            return out;
          });
          const kernels = (await gpu.stopProfile()).map((r) => r.entry);
          const got = [await y.read(), await gradData(x), await gradData(w), await gradData(b)];
          for (const t of [y, x, w, b]) t.dispose();
          return { kernels, got };
        };
        const tex = await run(true), storage = await run(false);
        const label = `${rows}x${cols}`;
        const whole = cols % 4 === 0;
        assert.equal(tex.kernels.includes("layernorm_forward_rows_tex"), whole, label);
        assert.equal(tex.kernels.includes("layernorm_backward_rows_tex"), whole, label);
        assert.equal(tex.kernels.includes("layernorm_backward_partial_cols_tex"), whole, label);
        assert.ok(!storage.kernels.some((k) => k.endsWith("_tex")), label);
        ["y", "dx", "dweight", "dbias"].forEach((name, i) =>
          assert.deepEqual(tex.got[i], storage.got[i], `${name} ${label}`)
        );
        // And both against the f64 reference.
        assertClose(tex.got[0], ref(X, W, B, cols).y, tol.forward, `y ${label}`);
        assertClose(tex.got[1], refBack(X, W, DY, cols).dx, tol.backward, `dx ${label}`);
      }
    } finally {
      gpu.textureOperands = saved;
    }
  },
);

gpuTest(
  "layerNorm() handles the MAE decoder's largest shape (128 * 257 rows of 48)",
  async (gpu) => {
    const rows = 128 * 257, cols = 48;
    await check(gpu, rand(5, rows * cols, -2, 2), rows, cols, `${rows}x${cols}`);
  },
);

gpuTest(
  "layerNorm() gives y = bias on constant rows and keeps its digits on large offsets",
  async (gpu) => {
    const rows = 6, cols = 53;
    const X = rand(9, rows * cols, -1, 1);
    for (let c = 0; c < cols; c++) {
      X[c] = 0.1; // constant row: var 0, xhat 0
      X[cols + c] = -7e5; // constant and large
      X[2 * cols + c] = 1e4 + X[2 * cols + c]; // large offset, spread ~1
      X[3 * cols + c] = 3e3 * X[3 * cols + c]; // large spread
      X[4 * cols + c] = 1e-4 * X[4 * cols + c]; // spread well under sqrt(eps)
    }
    await check(gpu, X, rows, cols, "extreme rows");
  },
);

gpuTest("layerNorm() names the op and the shapes when arguments do not fit", (gpu) => {
  const x = tensor(gpu, rand(1, 12), [3, 4]);
  const w4 = tensor(gpu, rand(2, 4), [4]), w5 = tensor(gpu, rand(3, 5), [5]);
  assertThrows(() => layerNorm(x, w5, w4), "layerNorm: tensor[5] f32 must have shape [4]");
  assertThrows(() => layerNorm(x, w4, w4, 0), "layerNorm: eps must be positive");
  assertThrows(
    () => layerNorm(tensor(gpu, [1, 2], [2], "i32"), w4, w4),
    "layerNorm: tensor[2] i32 must be f32",
  );
});
