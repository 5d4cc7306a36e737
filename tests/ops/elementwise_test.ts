import { assertClose, dot, finiteDifference } from "../../src/audit.ts";
import {
  add,
  biasAdd,
  dropout,
  dropoutThreshold,
  ELEMENTWISE_VEC4,
  gelu,
  mul,
  relu,
  scale,
  sub,
} from "../../src/ops/elementwise.ts";
import { OPS } from "../../src/ops/registry.ts";
import { hash3 } from "../../src/rng.ts";
import { backward } from "../../src/tape.ts";
import { type Tensor, tensor, tidy } from "../../src/tensor.ts";
import { assert, assertThrows } from "../_assert.ts";
import { gpuTest, gradData, leaf, rand } from "../_helpers.ts";

// Multiples of 4 take the vec4 kernels (4124 spans several workgroups), the rest the scalar ones.
const SIZES = [1, 7, 256, 1000, 37 * 53, 4 * 1031];
// Extreme values: zero, tiny, huge and both signs, so saturation paths run.
const EXTREME = [0, -0, 1e-30, -1e-30, 30, -30, 88, -88, 1e4, -1e4, 3.4e38, -3.4e38];

/** Runs y = op(inputs), back-propagates seed W, returns [y, grads...]. */
async function run(
  gpu: Parameters<Parameters<typeof gpuTest>[1]>[0],
  op: (...xs: Tensor[]) => Tensor,
  inputs: { data: Float32Array; shape: number[] }[],
  seed: Float32Array,
) {
  const leaves = inputs.map((x) => leaf(gpu, x.data, x.shape));
  const y = tidy(() => {
    const out = op(...leaves);
    backward(out, tensor(gpu, seed, out.shape));
    return out;
  });
  const result = [await y.read() as Float32Array, ...(await Promise.all(leaves.map(gradData)))];
  y.dispose();
  leaves.forEach((t) => t.dispose());
  return result;
}

Deno.test("the pointwise backward references agree with finite differences in f64", () => {
  const x = rand(1, 64, -3, 3).map((v) => (Math.abs(v) < 1e-3 ? 0.5 : v)); // keep off relu's kink
  const w = rand(2, 64);
  const t = { atol: 1e-7, rtol: 1e-6 };
  const r = OPS.relu.reference, g = OPS.gelu.reference;
  assertClose(r.backward(x, w), finiteDifference((v) => dot(r.forward(v), w), x), t, "relu");
  assertClose(g.backward(x, w), finiteDifference((v) => dot(g.forward(v), w), x), t, "gelu");
  const b = rand(3, 8), bref = OPS.biasAdd.reference;
  assertClose(
    bref.backward(w, 8),
    finiteDifference((v) => dot(bref.forward(x, v), w), b),
    t,
    "biasAdd",
  );
  const y = rand(4, 64);
  assertClose(
    OPS.mul.reference.backward(w, y),
    finiteDifference((v) => dot(OPS.mul.reference.forward(v, y), w), x),
    t,
    "mul",
  );
});

gpuTest(
  "add(), sub(), mul() and scale() match the f64 references forward and backward",
  async (gpu) => {
    const { forward: tf, backward: tb } = OPS.add.tolerance;
    for (const n of SIZES) {
      const a = rand(n, n), b = rand(n + 1, n), w = rand(n + 2, n);
      const [ys, ga, gb] = await run(
        gpu,
        sub,
        [{ data: a, shape: [n] }, { data: b, shape: [n] }],
        w,
      );
      assertClose(ys, OPS.add.reference.forward(a, b, 1, -1), tf, `sub n=${n}`);
      assertClose(ga, w, tb, `sub da n=${n}`);
      assertClose(gb, OPS.add.reference.backward(w, w, 0, -1), tb, `sub db n=${n}`);
      const [ya] = await run(gpu, add, [{ data: a, shape: [n] }, { data: b, shape: [n] }], w);
      assertClose(ya, OPS.add.reference.forward(a, b, 1, 1), tf, `add n=${n}`);
      const [yc, gc] = await run(gpu, (x) => scale(x, -2.5), [{ data: a, shape: [n] }], w);
      assertClose(yc, OPS.add.reference.forward(a, a, -2.5, 0), tf, `scale n=${n}`);
      assertClose(gc, OPS.add.reference.backward(w, w, -2.5, 0), tb, `scale dx n=${n}`);
      const [ym, gma, gmb] = await run(
        gpu,
        mul,
        [{ data: a, shape: [n] }, { data: b, shape: [n] }],
        w,
      );
      assertClose(ym, OPS.mul.reference.forward(a, b), OPS.mul.tolerance.forward, `mul n=${n}`);
      assertClose(
        gma,
        OPS.mul.reference.backward(w, b),
        OPS.mul.tolerance.backward,
        `mul da n=${n}`,
      );
      assertClose(
        gmb,
        OPS.mul.reference.backward(w, a),
        OPS.mul.tolerance.backward,
        `mul db n=${n}`,
      );
    }
  },
);

gpuTest("biasAdd() matches the f64 reference on odd shapes, forward and backward", async (gpu) => {
  for (const [rows, cols] of [[1, 1], [37, 53], [130, 256], [3, 4], [5, 6]]) {
    const x = rand(rows, rows * cols), b = rand(cols, cols), w = rand(3, rows * cols);
    const [y, gx, gb] = await run(gpu, biasAdd, [{ data: x, shape: [rows, cols] }, {
      data: b,
      shape: [cols],
    }], w);
    assertClose(
      y,
      OPS.biasAdd.reference.forward(x, b),
      OPS.biasAdd.tolerance.forward,
      `biasAdd ${rows}x${cols}`,
    );
    assertClose(gx, w, OPS.biasAdd.tolerance.backward, "biasAdd dx");
    assertClose(
      gb,
      OPS.biasAdd.reference.backward(w, cols),
      OPS.biasAdd.tolerance.backward,
      "biasAdd dbias",
    );
  }
});

gpuTest("relu() and gelu() match the f64 references, including extreme inputs", async (gpu) => {
  for (const n of SIZES) {
    const x = rand(n, n, -4, 4);
    x.set(EXTREME.slice(0, Math.min(n, EXTREME.length)));
    const w = rand(n + 9, n);
    for (const name of ["relu", "gelu"] as const) {
      const op = name === "relu" ? relu : gelu;
      const [y, gx] = await run(gpu, op, [{ data: x, shape: [n] }], w);
      const r = OPS[name].reference, t = OPS[name].tolerance;
      assertClose(y, r.forward(x), t.forward, `${name} n=${n}`);
      assertClose(gx, r.backward(x, w), t.backward, `${name} dx n=${n}`);
    }
  }
});

gpuTest(
  "dropout() replays exactly from its key, matches the reference mask and drops about the rate",
  async (gpu) => {
    const n = 20000, rate = 0.3;
    const x = rand(5, n, 0.5, 1.5), w = rand(6, n);
    const key = { seed: 42, stream: 7 };
    const [y1, g1] = await run(gpu, (t) => dropout(t, rate, key), [{ data: x, shape: [n] }], w);
    const [y2] = await run(gpu, (t) => dropout(t, rate, key), [{ data: x, shape: [n] }], w);
    const [y3] = await run(gpu, (t) => dropout(t, rate, { seed: 42, stream: 8 }), [{
      data: x,
      shape: [n],
    }], w);
    assert.deepEqual(y1, y2, "same key, same output");
    assert.notDeepEqual(y1, y3, "another stream, another mask");
    const tol = OPS.dropout.tolerance;
    assertClose(y1, OPS.dropout.reference.forward(x, rate, 42, 7), tol.forward, "dropout forward");
    assertClose(
      g1,
      OPS.dropout.reference.backward(w, rate, 42, 7),
      tol.backward,
      "dropout backward",
    );
    const dropped = y1.filter((v) => v === 0).length / n;
    assert.ok(Math.abs(dropped - rate) < 0.015, `dropped fraction ${dropped}`);
    // The WGSL hash and the TypeScript one agree bit for bit (threshold is a u32 compare).
    const thr = dropoutThreshold(rate);
    for (let i = 0; i < 50; i++) assert.equal(y1[i] === 0, hash3(42, 7, i) < thr);
  },
);

gpuTest("elementwise ops reject mismatched shapes and bad rates, naming the op", (gpu) => {
  const a = tensor(gpu, [1, 2, 3], [3]), b = tensor(gpu, [1, 2], [2]);
  assertThrows(() => add(a, b), "add: shapes differ: tensor[3] f32 vs tensor[2] f32");
  assertThrows(
    () => biasAdd(tensor(gpu, [1, 2, 3, 4], [2, 2]), a),
    "biasAdd: bias tensor[3] f32 must have 2 elements",
  );
  assertThrows(() => dropout(a, 1, { seed: 1, stream: 1 }), "dropout: rate 1 must be in [0, 1)");
  assertThrows(() => relu(tensor(gpu, [1], [1], "i32")), "relu: tensor[1] i32 must be f32");
});

gpuTest(
  "the vec4 kernels give the scalar kernels' results bit for bit, forward and backward",
  async (gpu) => {
    const n = 4 * 1031, rows = 31, cols = 4 * 33;
    const x = rand(11, n), y = rand(12, n), w = rand(13, n);
    x.set(EXTREME, 0);
    const bias = rand(14, cols);
    const cases: [string, (...t: Tensor[]) => Tensor, { data: Float32Array; shape: number[] }[]][] =
      [
        ["add", add, [{ data: x, shape: [n] }, { data: y, shape: [n] }]],
        ["sub", sub, [{ data: x, shape: [n] }, { data: y, shape: [n] }]],
        ["scale", (t) => scale(t, 0.3), [{ data: x, shape: [n] }]],
        ["mul", mul, [{ data: x, shape: [n] }, { data: y, shape: [n] }]],
        ["relu", relu, [{ data: x, shape: [n] }]],
        ["gelu", gelu, [{ data: x, shape: [n] }]],
        ["dropout", (t) => dropout(t, 0.3, { seed: 5, stream: 9 }), [{ data: x, shape: [n] }]],
        ["biasAdd", biasAdd, [{ data: x.subarray(0, rows * cols), shape: [rows, cols] }, {
          data: bias,
          shape: [cols],
        }]],
      ];
    try {
      for (const [name, op, inputs] of cases) {
        const seed = w.subarray(0, inputs[0].data.length);
        ELEMENTWISE_VEC4.enabled = false;
        const scalar = await run(gpu, op, inputs, seed);
        ELEMENTWISE_VEC4.enabled = true;
        const vec4 = await run(gpu, op, inputs, seed);
        scalar.forEach((s, i) => {
          const a = new Uint32Array(vec4[i].buffer), b = new Uint32Array(s.buffer);
          const at = b.findIndex((bits, j) => bits !== a[j]);
          assert.equal(at, -1, `${name} output ${i} [${at}]: vec4 ${vec4[i][at]}, scalar ${s[at]}`);
        });
      }
    } finally {
      ELEMENTWISE_VEC4.enabled = true;
    }
  },
);
