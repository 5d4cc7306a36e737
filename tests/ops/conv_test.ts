import { assertClose, dot, finiteDifference } from "../../src/audit.ts";
import {
  concatChannels,
  conv2d,
  type Conv2dOptions,
  im2colSuits,
  maxPool2d,
  type Pair,
  sigmoid,
  weightGradSlices,
} from "../../src/ops/conv.ts";
import { OPS } from "../../src/ops/registry.ts";
import {
  convOutSize,
  type ConvRefDims,
  poolOutSize,
  type PoolRefDims,
} from "../../src/ref/conv.ts";
import { backward } from "../../src/tape.ts";
import { tensor, tidy } from "../../src/tensor.ts";
import { assert, assertThrows } from "../_assert.ts";
import { gpuTest, gradData, leaf, rand } from "../_helpers.ts";

const conv = OPS.conv2d;
const pool = OPS.maxPool2d;
const cat = OPS.concatChannels;
const sig = OPS.sigmoid;
const fdTol = { atol: 1e-8, rtol: 1e-6 };

function dims(
  n: number,
  c: number,
  h: number,
  w: number,
  k: number,
  kh: number,
  kw: number,
  stride: Pair,
  pad: Pair,
): ConvRefDims {
  const [strideH, strideW] = typeof stride === "number" ? [stride, stride] : stride;
  const [padH, padW] = typeof pad === "number" ? [pad, pad] : pad;
  return { n, c, h, w, k, kh, kw, strideH, strideW, padH, padW };
}

Deno.test("conv2dBackwardRef() agrees with central finite differences in f64", () => {
  const d = dims(2, 2, 5, 4, 3, 3, 2, [2, 1], [1, 0]);
  const { ho, wo } = convOutSize(d);
  const x = rand(1, 2 * 2 * 5 * 4), wt = rand(2, 3 * 2 * 3 * 2), b = rand(3, 3);
  const g = rand(4, 2 * 3 * ho * wo);
  const { dx, dw, dbias } = conv.reference.backward(x, wt, g, d);
  const f = conv.reference.forward;
  assertClose(dx, finiteDifference((v) => dot(f(v, wt, b, d), g), x), fdTol, "dx");
  assertClose(dw, finiteDifference((v) => dot(f(x, v, b, d), g), wt), fdTol, "dw");
  assertClose(dbias, finiteDifference((v) => dot(f(x, wt, v, d), g), b), fdTol, "dbias");
});

Deno.test("maxPool2dBackwardRef(), concatChannelsBackwardRef() and sigmoidBackwardRef() agree with finite differences", () => {
  const d: PoolRefDims = { n: 2, c: 2, h: 7, w: 6, kernel: 3, stride: 2, pad: 1, ceil: true };
  const { ho, wo } = poolOutSize(d);
  const x = rand(5, 2 * 2 * 7 * 6), g = rand(6, 2 * 2 * ho * wo);
  const fp = (v: Float64Array) => dot(pool.reference.forward(v, d).y, g);
  assertClose(pool.reference.backward(x, g, d), finiteDifference(fp, x), fdTol, "dpool");

  const a = rand(7, 2 * 3 * 4), b = rand(8, 2 * 2 * 4), gc = rand(9, 2 * 5 * 4);
  const { da, db } = cat.reference.backward(gc, 2, 3, 4);
  const fc = cat.reference.forward;
  assertClose(da, finiteDifference((v) => dot(fc(v, b, 2, 4), gc), a), fdTol, "dconcat a");
  assertClose(db, finiteDifference((v) => dot(fc(a, v, 2, 4), gc), b), fdTol, "dconcat b");

  const s = rand(10, 9, -6, 6), gs = rand(11, 9);
  const fs = (v: Float64Array) => dot(sig.reference.forward(v), gs);
  assertClose(
    sig.reference.backward(sig.reference.forward(s), gs),
    finiteDifference(fs, s),
    fdTol,
    "dsigmoid",
  );
});

type ConvCase = [
  n: number,
  c: number,
  h: number,
  w: number,
  k: number,
  kh: number,
  kw: number,
  stride: Pair,
  pad: Pair,
];
const CASES: ConvCase[] = [
  [2, 3, 13, 11, 5, 3, 3, 1, 1], // odd channels and sizes, "same" padding
  [2, 3, 13, 11, 7, 3, 3, 2, 0], // stride 2, no padding
  [1, 4, 8, 8, 6, 1, 1, 1, 0], // 1x1
  [2, 5, 9, 10, 3, 3, 2, [2, 1], [1, 0]], // non-square kernel, stride and padding per axis
  [1, 70, 6, 5, 65, 3, 3, 1, 1], // more than one 64-wide tile of channels and filters
  [2, 16, 15, 15, 64, 3, 3, 1, 1], // a Fire expand3x3
  [3, 3, 33, 33, 64, 3, 3, 2, 0], // weight gradient split over several chunks
  [1, 2, 3, 3, 2, 5, 5, 1, 1], // kernel as large as the padded input: 1x1 output
  [8, 4, 7, 6, 8, 3, 3, 1, 1], // 8 images: the im2col weight gradient in 4 slices of 2
  [6, 4, 5, 5, 4, 3, 3, 1, 0], // 6 images: 3 slices of 2
];

/**
 * The ways a convolution runs: implicit GEMM with either input-gradient
 * kernel, and im2col with its weight gradient summed over the default slices
 * of the batch (on a software adapter up to 4) or over single images (the
 * hardware default), set per case below.
 */
const IMPL_OPTIONS = {
  "implicit gemm": { impl: "implicit", inputGrad: "gemm" },
  "implicit direct": { impl: "implicit", inputGrad: "direct" },
  im2col: { impl: "im2col" },
  "im2col per image": { impl: "im2col" },
} as const satisfies Record<string, Conv2dOptions>;
const IMPLS = Object.keys(IMPL_OPTIONS) as (keyof typeof IMPL_OPTIONS)[];

gpuTest(
  "conv2d() forward and backward (implicit GEMM with GEMM or direct input gradient, and im2col on matmul_vec4) match the f64 reference on odd, strided, padded and non-square cases",
  async (gpu) => {
    for (const [i, [n, c, h, w, k, kh, kw, stride, pad]] of CASES.entries()) {
      const d = dims(n, c, h, w, k, kh, kw, stride, pad);
      const { ho, wo } = convOutSize(d);
      const X = rand(100 + i, n * c * h * w), Wt = rand(200 + i, k * c * kh * kw);
      const B = rand(300 + i, k), G = rand(400 + i, n * k * ho * wo);
      const withBias = i % 3 !== 2;
      for (const form of IMPLS) {
        const x = leaf(gpu, X, [n, c, h, w]);
        const wt = leaf(gpu, Wt, [k, c, kh, kw]);
        const b = leaf(gpu, B, [k]);
        const y = tidy(() => {
          const out = conv2d(x, wt, {
            stride,
            padding: pad,
            ...IMPL_OPTIONS[form],
            ...(form === "im2col per image" ? { weightSlices: n } : {}),
            ...(withBias ? { bias: b } : {}),
          });
          backward(out, tensor(gpu, G, out.shape));
          return out;
        });
        const label = `conv ${n}x${c}x${h}x${w} k${k} ${kh}x${kw} s${stride} p${pad} ${form}`;
        assert.deepEqual(y.shape, [n, k, ho, wo]);
        assertClose(
          await y.read(),
          conv.reference.forward(X, Wt, withBias ? B : null, d),
          conv.tolerance.forward,
          label,
        );
        const want = conv.reference.backward(X, Wt, G, d);
        assertClose(await gradData(x), want.dx, conv.tolerance.backward, `dx ${label}`);
        assertClose(await gradData(wt), want.dw, conv.tolerance.backward, `dw ${label}`);
        if (withBias) {
          assertClose(await gradData(b), want.dbias, conv.tolerance.backward, `db ${label}`);
        }
        for (const t of [x, wt, b, y]) t.dispose();
      }
    }
  },
);

Deno.test("weightGradSlices() splits a batch per image on hardware, in at most 4 whole slices on a CPU", () => {
  for (const [n, want] of [[32, 4], [128, 4], [6, 3], [9, 3], [5, 1], [2, 2], [1, 1]]) {
    assert.equal(weightGradSlices(n, true), want, `n ${n}`);
    assert.equal(weightGradSlices(n, false), n, `n ${n} on hardware`);
  }
});

gpuTest(
  "conv2d() takes the im2col form only where all three products run on matmul_vec4 and the patches fit one binding",
  (gpu) => {
    const fire = { n: 32, c: 16, k: 64, kh: 3, kw: 3, ho: 15, wo: 15 };
    assert.ok(im2colSuits(gpu, fire), "a Fire expand3x3");
    assert.ok(
      im2colSuits(gpu, { ...fire, c: 3, ho: 31, wo: 31 }),
      "conv1: 27 patch values padded to 28",
    );
    assert.ok(!im2colSuits(gpu, { ...fire, k: 10 }), "10 filters: the forward product is not vec4");
    // 128 images of 2^12 pixels, 16 * 9 values each: 302 MB of patches.
    const limit = gpu.device.limits.maxStorageBufferBindingSize;
    const big = { ...fire, n: 128, ho: 64, wo: 64 };
    assert.equal(
      im2colSuits(gpu, big),
      128 * 4096 * 144 * 4 <= limit,
      "patches over the binding limit",
    );
    // The sliced weight gradients: per image (hardware), 128 x 256 filters x 2304 patch
    // values is 302 MB; in 4 slices (software) 9.4 MB.
    const wide = { ...fire, n: 128, c: 256, k: 256, ho: 2, wo: 2 };
    const slices = weightGradSlices(128, gpu.adapter.software);
    assert.equal(slices, gpu.adapter.software ? 4 : 128);
    assert.equal(im2colSuits(gpu, wide), slices * 256 * 2304 * 4 <= limit, "weight gradients");
  },
);

gpuTest(
  "conv2d() backward adds into existing gradients instead of overwriting them",
  async (gpu) => {
    const d = dims(1, 3, 6, 5, 4, 3, 3, 1, 1);
    const X = rand(1, 90), Wt = rand(2, 108), G = rand(3, 4 * 6 * 5);
    const want = conv.reference.backward(X, Wt, G, d);
    for (const form of IMPLS) {
      const x = leaf(gpu, X, [1, 3, 6, 5]), wt = leaf(gpu, Wt, [4, 3, 3, 3]);
      for (let rep = 0; rep < 2; rep++) {
        tidy(() =>
          backward(
            conv2d(x, wt, { padding: 1, ...IMPL_OPTIONS[form] }),
            tensor(gpu, G, [1, 4, 6, 5]),
          )
        );
      }
      const twice = (v: number) => 2 * v;
      assertClose(
        await gradData(x),
        want.dx.map(twice),
        conv.tolerance.backward,
        `dx twice ${form}`,
      );
      assertClose(
        await gradData(wt),
        want.dw.map(twice),
        conv.tolerance.backward,
        `dw twice ${form}`,
      );
      x.dispose();
      wt.dispose();
    }
  },
);

type PoolCase = [
  n: number,
  c: number,
  h: number,
  w: number,
  kernel: number,
  stride: number,
  pad: number,
  ceil: boolean,
  ho: number,
  wo: number,
];
const POOLS: PoolCase[] = [
  [2, 3, 31, 31, 3, 2, 0, true, 15, 15],
  [2, 3, 32, 32, 3, 2, 0, true, 16, 16],
  [1, 2, 7, 7, 3, 2, 0, true, 3, 3],
  [1, 2, 8, 9, 3, 2, 0, true, 4, 4],
  [1, 2, 8, 9, 3, 2, 0, false, 3, 4],
  [2, 5, 5, 6, 2, 2, 1, true, 3, 4], // ceil mode drops the window starting in the far padding
  [1, 3, 13, 11, 3, 1, 1, false, 13, 11],
];

gpuTest(
  "maxPool2d() matches PyTorch's output sizes and the f64 reference, ties going to the first maximum",
  async (gpu) => {
    for (const [i, [n, c, h, w, kernel, stride, pad, ceil, ho, wo]] of POOLS.entries()) {
      const d: PoolRefDims = { n, c, h, w, kernel, stride, pad, ceil };
      assert.deepEqual(poolOutSize(d), { ho, wo });
      // Quantised values make ties common, so the tie rule is exercised.
      const X = rand(500 + i, n * c * h * w).map((v) => Math.round(v * 3) / 3);
      const G = rand(600 + i, n * c * ho * wo);
      const x = leaf(gpu, X, [n, c, h, w]);
      const y = tidy(() => {
        const out = maxPool2d(x, kernel, { stride, padding: pad, ceilMode: ceil });
        backward(out, tensor(gpu, G, out.shape));
        return out;
      });
      const label = `maxpool ${n}x${c}x${h}x${w} k${kernel} s${stride} p${pad} ceil ${ceil}`;
      assert.deepEqual(y.shape, [n, c, ho, wo], label);
      assertClose(await y.read(), pool.reference.forward(X, d).y, pool.tolerance.forward, label);
      assertClose(
        await gradData(x),
        pool.reference.backward(X, G, d),
        pool.tolerance.backward,
        `d${label}`,
      );
      x.dispose();
      y.dispose();
    }
  },
);

gpuTest("concatChannels() stacks channels and splits the gradient back", async (gpu) => {
  for (const [n, ca, cb, h, w] of [[2, 3, 5, 7, 9], [1, 64, 64, 15, 15], [3, 1, 1, 1, 1]]) {
    const A = rand(n + ca, n * ca * h * w), B = rand(cb + h, n * cb * h * w);
    const G = rand(w, n * (ca + cb) * h * w);
    const a = leaf(gpu, A, [n, ca, h, w]), b = leaf(gpu, B, [n, cb, h, w]);
    const y = tidy(() => {
      const out = concatChannels(a, b);
      backward(out, tensor(gpu, G, out.shape));
      return out;
    });
    assert.deepEqual(y.shape, [n, ca + cb, h, w]);
    assertClose(
      await y.read(),
      cat.reference.forward(A, B, n, h * w),
      cat.tolerance.forward,
      "concat",
    );
    const { da, db } = cat.reference.backward(G, n, ca, h * w);
    assertClose(await gradData(a), da, cat.tolerance.backward, "dconcat a");
    assertClose(await gradData(b), db, cat.tolerance.backward, "dconcat b");
    for (const t of [a, b, y]) t.dispose();
  }
});

gpuTest("sigmoid() matches the f64 reference and stays finite for extreme inputs", async (gpu) => {
  const X = rand(1, 1000, -8, 8);
  [-1e4, -100, -88, -30, -1e-8, 0, 1e-8, 30, 88, 100, 1e4].forEach((v, i) => (X[i] = v));
  const G = rand(2, 1000);
  const x = leaf(gpu, X, [10, 100]);
  const y = tidy(() => {
    const out = sigmoid(x);
    backward(out, tensor(gpu, G, out.shape));
    return out;
  });
  const Y = await y.read();
  assert.ok(Y.every(Number.isFinite), "finite");
  const want = sig.reference.forward(X);
  assertClose(Y, want, sig.tolerance.forward, "sigmoid");
  assertClose(
    await gradData(x),
    sig.reference.backward(want, G),
    sig.tolerance.backward,
    "dsigmoid",
  );
  x.dispose();
  y.dispose();
});

gpuTest("the conv ops reject bad inputs with errors naming the op and the shapes", (gpu) => {
  tidy(() => {
    const x = tensor(gpu, rand(1, 2 * 3 * 5 * 5), [2, 3, 5, 5]);
    const w4 = tensor(gpu, rand(2, 4 * 4 * 9), [4, 4, 3, 3]);
    const w3 = tensor(gpu, rand(3, 4 * 3 * 9), [4, 3, 3, 3]);
    assertThrows(
      () => conv2d(x, w4),
      "conv2d: channel mismatch: x tensor[2,3,5,5] f32, weight tensor[4,4,3,3]",
    );
    const big = tensor(gpu, rand(4, 4 * 3 * 64), [4, 3, 8, 8]);
    assertThrows(
      () => conv2d(x, big, { padding: 1 }),
      "conv2d: kernel 8x8 does not fit the padded input 7x7",
    );
    const xi = tensor(gpu, new Int32Array(150), [2, 3, 5, 5], "i32");
    assertThrows(() => conv2d(xi, w3), "conv2d: tensor[2,3,5,5] i32 must be f32");
    assertThrows(
      () => conv2d(x, w3, { impl: "im2col", weightSlices: 3 }),
      "conv2d: weightSlices 3 must divide the batch 2",
    );
    assertThrows(() => conv2d(x, w3, { bias: tensor(gpu, [1, 2], [2]) }), "must have 4 elements");
    assertThrows(() => conv2d(x, w3, { stride: 0 }), "conv2d: stride 0");
    assertThrows(
      () => conv2d(x.reshape([6, 5, 5]), w3),
      "conv2d: tensor[6,5,5] f32 must have rank 4",
    );
    assertThrows(() => maxPool2d(x, 7), "maxPool2d: kernel does not fit");
    assertThrows(() => maxPool2d(x, 3, { padding: 2 }), "maxPool2d: padding must be");
    assertThrows(() => maxPool2d(xi, 3), "maxPool2d: tensor[2,3,5,5] i32 must be f32");
    const other = tensor(gpu, rand(5, 2 * 3 * 4 * 5), [2, 3, 4, 5]);
    assertThrows(() => concatChannels(x, other), "concatChannels: batch or spatial sizes differ");
    assertThrows(() => sigmoid(xi), "sigmoid: tensor[2,3,5,5] i32 must be f32");
  });
});
