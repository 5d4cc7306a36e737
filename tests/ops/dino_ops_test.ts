import { assertClose, dot, finiteDifference } from "../../src/audit.ts";
import { centerUpdate, emaUpdate } from "../../src/ops/ema.ts";
import { l2Normalize } from "../../src/ops/l2_normalize.ts";
import { softCrossEntropyRows } from "../../src/ops/loss.ts";
import { OPS } from "../../src/ops/registry.ts";
import { GradClipper } from "../../src/optim.ts";
import { ParamStore } from "../../src/params.ts";
import { backward } from "../../src/tape.ts";
import { tensor, tidy } from "../../src/tensor.ts";
import { assert, assertThrows } from "../_assert.ts";
import { gpuTest, gradData, leaf, rand } from "../_helpers.ts";

const specsOf = (seed: number, sizes: number[][]) =>
  sizes.map((shape, i) => ({
    name: `p${i}`,
    shape,
    init: rand(seed + i, shape.reduce((a, b) => a * b, 1), -2, 2),
    decay: i % 2 === 0,
  }));

gpuTest(
  "emaUpdate() moves a whole teacher store toward the student in one dispatch, as the f64 reference",
  async (gpu) => {
    for (const sizes of [[[1]], [[37, 3], [5], [1, 1, 65]], [[64, 64], [128]]]) {
      const t = new ParamStore(gpu, specsOf(1, sizes));
      const s = new ParamStore(gpu, specsOf(100, sizes));
      const flat = (st: ParamStore) => st.specs.flatMap((x) => [...x.init]);
      let want: Float64Array = Float64Array.from(flat(t));
      for (const m of [0.9995, 0.5, 0, 1]) {
        const before = gpu.dispatches;
        emaUpdate(t, s, m);
        assert.equal(gpu.dispatches - before, 1, "one dispatch for every parameter");
        want = OPS.emaUpdate.reference.update(want, flat(s), m);
      }
      const got = await t.read();
      assertClose(
        t.specs.flatMap((x) => [...got.get(x.name)!]),
        want,
        OPS.emaUpdate.tolerance.update,
        `ema ${JSON.stringify(sizes)}`,
      );
      t.destroy();
      s.destroy();
    }
  },
);

gpuTest("emaUpdate() refuses stores of different layouts and momenta outside [0, 1]", (gpu) => {
  const a = new ParamStore(gpu, specsOf(1, [[3, 3]]));
  const b = new ParamStore(gpu, specsOf(1, [[9]]));
  assertThrows(() => emaUpdate(a, b, 0.9), "different layouts");
  assertThrows(() => emaUpdate(a, a, 1.5), "momentum 1.5");
  a.destroy();
  b.destroy();
});

gpuTest(
  "centerUpdate() is an EMA of the batch mean, as the f64 reference, on odd and round shapes",
  async (gpu) => {
    for (const [rows, cols] of [[1, 1], [7, 13], [64, 1024], [33, 257]]) {
      const C0 = rand(cols, cols), X = rand(rows * cols + 1, rows * cols, -30, 30);
      const c = tensor(gpu, C0, [cols]);
      centerUpdate(c, tensor(gpu, X, [rows, cols]), 0.9);
      assertClose(
        await c.read(),
        OPS.centerUpdate.reference.update(C0, X, cols, 0.9),
        OPS.centerUpdate.tolerance.update,
        `centre ${rows}x${cols}`,
      );
      c.dispose();
    }
    assertThrows(
      () => centerUpdate(tensor(gpu, [1, 2], [2]), tensor(gpu, [1, 2, 3], [1, 3]), 0.9),
      "must have 3 values",
    );
  },
);

Deno.test("l2NormalizeBackwardRef() agrees with finite differences in f64", () => {
  const x = rand(3, 4 * 9, -2, 2), w = rand(4, 36);
  const fd = finiteDifference((v) => dot(OPS.l2Normalize.reference.forward(v, 9, 1e-12), w), x);
  assertClose(
    OPS.l2Normalize.reference.backward(x, w, 9, 1e-12),
    fd,
    { atol: 1e-8, rtol: 1e-6 },
    "l2Normalize backward",
  );
});

gpuTest(
  "l2Normalize() matches the f64 reference forward and backward, zero rows included",
  async (gpu) => {
    const { forward: ref, backward: refBack } = OPS.l2Normalize.reference;
    const tol = OPS.l2Normalize.tolerance;
    for (const [rows, cols] of [[1, 1], [3, 7], [37, 128], [1024, 128], [2, 300]]) {
      const X = rand(rows + cols, rows * cols, -3, 3);
      for (let c = 0; c < cols; c++) X[c] = 0; // a zero row: clamped by eps, no NaN
      if (rows > 2) { for (let c = 0; c < cols; c++) X[cols + c] *= 1e4; }
      const W = rand(cols, rows * cols);
      const x = leaf(gpu, X, [rows, cols]);
      const y = tidy(() => {
        const out = l2Normalize(x, 1e-12);
        backward(out, tensor(gpu, W, out.shape));
        return out;
      });
      const Y = await y.read();
      assert.ok(Y.every(Number.isFinite));
      assertClose(Y, ref(X, cols, 1e-12), tol.forward, `l2Normalize ${rows}x${cols}`);
      // The zero row's gradient is dy / eps (huge); compare the others.
      const G = await gradData(x), R = refBack(X, W, cols, 1e-12);
      assertClose(G.slice(cols), R.slice(cols), tol.backward, `dl2Normalize ${rows}x${cols}`);
      y.dispose();
      x.dispose();
    }
  },
);

Deno.test("softCrossEntropyBackwardRef() agrees with finite differences in f64", () => {
  for (const t of [1, 0.1]) {
    const x = rand(5, 3 * 11, -1, 1), q = rand(6, 33, 0, 1), w = rand(7, 3);
    const fd = finiteDifference(
      (v) => dot(OPS.softCrossEntropy.reference.forward(v, q, 11, t), w),
      x,
    );
    assertClose(
      OPS.softCrossEntropy.reference.backward(x, q, w, 11, t),
      fd,
      { atol: 1e-7, rtol: 1e-6 },
      `soft CE backward t=${t}`,
    );
  }
});

gpuTest(
  "softCrossEntropyRows() matches the f64 reference on odd widths, temperatures and large logits",
  async (gpu) => {
    const { forward: ref, backward: refBack } = OPS.softCrossEntropy.reference;
    const tol = OPS.softCrossEntropy.tolerance;
    for (
      const [rows, cols, t] of [[1, 1, 1], [3, 7, 0.1], [37, 53, 0.04], [16, 1024, 0.1], [
        5,
        257,
        1,
      ]]
    ) {
      const X = rand(rows * cols, rows * cols, -1, 1);
      X[0] = 40; // a dominant logit (at t = 0.04: 1000)
      // Targets: per-row probabilities (the teacher's softmax), one row unnormalised.
      const Q = rand(cols + 1, rows * cols, 0, 1);
      for (let r = 1; r < rows; r++) {
        let s = 0;
        for (let c = 0; c < cols; c++) s += Q[r * cols + c];
        for (let c = 0; c < cols; c++) Q[r * cols + c] /= s;
      }
      const D = rand(rows, rows, -1, 1);
      const x = leaf(gpu, X, [rows, cols]);
      const loss = tidy(() => {
        const out = softCrossEntropyRows(x, tensor(gpu, Q, [rows, cols]), t);
        backward(out, tensor(gpu, D, [rows]));
        return out;
      });
      assertClose(await loss.read(), ref(X, Q, cols, t), tol.forward, `soft CE ${rows}x${cols}`);
      assertClose(
        await gradData(x),
        refBack(X, Q, D, cols, t),
        tol.backward,
        `dsoft CE ${rows}x${cols} t=${t}`,
      );
      loss.dispose();
      x.dispose();
    }
  },
);

gpuTest(
  "softCrossEntropyRows() of softmax(x) against itself is the entropy, log K when uniform",
  async (gpu) => {
    const K = 1024;
    const loss = tidy(() => {
      const z = tensor(gpu, new Float32Array(2 * K), [2, K]);
      const q = tensor(gpu, new Float32Array(2 * K).fill(1 / K), [2, K]);
      return softCrossEntropyRows(z, q, 1);
    });
    const v = await loss.read();
    assertClose(v, [Math.log(K), Math.log(K)], { atol: 1e-5, rtol: 1e-6 }, "uniform entropy");
    loss.dispose();
  },
);

gpuTest(
  "GradClipper clips a store's gradient to the global norm on the GPU, as the f64 reference",
  async (gpu) => {
    const { update: ref } = OPS.clipGradNorm.reference;
    const tol = OPS.clipGradNorm.tolerance;
    for (
      const [sizes, scale, maxNorm] of [
        [[[1]], 10, 3],
        [[[37, 3], [5], [1, 1, 65]], 1, 3],
        [[[300, 257], [129]], 0.001, 3], // below the bound: unchanged (factor 1)
        [[[4096, 33]], 2, 1],
      ] as [number[][], number, number][]
    ) {
      const store = new ParamStore(gpu, specsOf(7, sizes));
      const grads = store.specs.map((s, i) => rand(50 + i, s.init.length, -scale, scale));
      store.specs.forEach((s, i) => gpu.upload(store.get(s.name).grad!.binding, grads[i]));
      const clipper = new GradClipper(store, maxNorm);
      const before = gpu.dispatches;
      clipper.clip();
      assert.equal(gpu.dispatches - before, 3, "three dispatches, no readback");
      const flat = grads.flatMap((g) => [...g]);
      const want = ref(flat, maxNorm);
      const parts: Float32Array[] = [];
      for (const s of store.specs) parts.push(await store.get(s.name).grad!.read() as Float32Array);
      const got = parts.flatMap((g) => [...g]);
      assertClose(got, want.grad, tol.update, `clipped grads ${JSON.stringify(sizes)}`);
      const st = await clipper.read();
      assertClose([st.norm, st.factor], [want.norm, want.factor], tol.update, "norm and factor");
      clipper.destroy();
      store.destroy();
    }
  },
);
