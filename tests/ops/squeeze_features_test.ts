import { assertClose } from "../../src/audit.ts";
import type { Gpu } from "../../src/gpu/device.ts";
import {
  type ConvParams,
  type FireParams,
  SQUEEZE_FEATURE_SHAPES,
  type SqueezeFeatureParams,
  squeezeFeatures,
} from "../../src/models/squeeze_features.ts";
import {
  concatChannelsBackwardRef,
  concatChannelsRef,
  conv2dBackwardRef,
  conv2dRef,
  convOutSize,
  type ConvRefDims,
  maxPool2dBackwardRef,
  maxPool2dRef,
  poolOutSize,
} from "../../src/ref/conv.ts";
import { reluBackwardRef, reluRef } from "../../src/ref/elementwise.ts";
import { backward } from "../../src/tape.ts";
import { type Tensor, tensor, tidy } from "../../src/tensor.ts";
import { assert } from "../_assert.ts";
import { gpuTest, gradData, leaf, rand } from "../_helpers.ts";

/** An f64 activation (n, c, h, w) and the backward that maps its gradient to the input's. */
interface Act {
  v: Float64Array;
  shape: [number, number, number, number];
}
type Back = (g: Float64Array) => Float64Array;
type HostConv = { weight: Float32Array; bias: Float32Array };
type HostFire = { squeeze: HostConv; expand1x1: HostConv; expand3x3: HostConv };
type HostParams = { conv1: HostConv; fire1: HostFire; fire2: HostFire };

/** Conv + ReLU in f64, with its input gradient (and the weight gradient into `dw`). */
function convReluRef(
  x: Act,
  p: HostConv,
  stride: number,
  pad: number,
  back: Back[],
  dw?: Float64Array[],
): Act {
  const [n, c, h, w] = x.shape;
  const k = p.bias.length, kh = Math.round(Math.sqrt(p.weight.length / (k * c)));
  const d: ConvRefDims = {
    n,
    c,
    h,
    w,
    k,
    kh,
    kw: kh,
    strideH: stride,
    strideW: stride,
    padH: pad,
    padW: pad,
  };
  const { ho, wo } = convOutSize(d);
  const pre = conv2dRef(x.v, p.weight, p.bias, d);
  back.push((g) => {
    const r = conv2dBackwardRef(x.v, p.weight, reluBackwardRef(pre, g), d);
    dw?.push(r.dw);
    return r.dx;
  });
  return { v: reluRef(pre), shape: [n, k, ho, wo] };
}

/** Fire in f64; its backward sums the gradients of both expand branches into the squeeze output. */
function fireRef(x: Act, p: HostFire, back: Back[]): Act {
  const sq: Back[] = [], e1: Back[] = [], e3: Back[] = [];
  const s = convReluRef(x, p.squeeze, 1, 0, sq);
  const a = convReluRef(s, p.expand1x1, 1, 0, e1);
  const b = convReluRef(s, p.expand3x3, 1, 1, e3);
  const [n, ca, h, w] = a.shape;
  back.push((g) => {
    const { da, db } = concatChannelsBackwardRef(g, n, ca, h * w);
    const ds = e1[0](da);
    const ds3 = e3[0](db);
    for (let i = 0; i < ds.length; i++) ds[i] += ds3[i];
    return sq[0](ds);
  });
  return { v: concatChannelsRef(a.v, b.v, n, h * w), shape: [n, ca + b.shape[1], h, w] };
}

/** SqueezeNet 1.1 features[:5] in f64: output, dx for seed g, and dconv1.weight. */
function squeezeFeaturesRef(x: Act, p: HostParams, g: ArrayLike<number>) {
  const back: Back[] = [];
  const dw1: Float64Array[] = [];
  const c1 = convReluRef(x, p.conv1, 2, 0, back, dw1);
  const [n, c, h, w] = c1.shape;
  const pd = { n, c, h, w, kernel: 3, stride: 2, pad: 0, ceil: true };
  const { ho, wo } = poolOutSize(pd);
  back.push((gy) => maxPool2dBackwardRef(c1.v, gy, pd));
  const pooled: Act = { v: maxPool2dRef(c1.v, pd).y, shape: [n, c, ho, wo] };
  const out = fireRef(fireRef(pooled, p.fire1, back), p.fire2, back);
  let grad: Float64Array = Float64Array.from(g);
  for (let i = back.length - 1; i >= 0; i--) grad = back[i](grad);
  return { y: out, dx: grad, dw1: dw1[0] };
}

let seed = 1000;
function hostConv(s: { weight: readonly number[]; bias: readonly number[] }): HostConv {
  const [k, c, kh, kw] = s.weight;
  // He-uniform, so activations stay O(1) through the stack.
  const a = Math.sqrt(6 / (c * kh * kw));
  return { weight: rand(seed++, k * c * kh * kw, -a, a), bias: rand(seed++, k, -0.1, 0.1) };
}
function hostFire(s: typeof SQUEEZE_FEATURE_SHAPES.fire1): HostFire {
  return {
    squeeze: hostConv(s.squeeze),
    expand1x1: hostConv(s.expand1x1),
    expand3x3: hostConv(s.expand3x3),
  };
}

function upload(gpu: Gpu, h: HostConv, shape: readonly number[]): ConvParams {
  return { weight: leaf(gpu, h.weight, shape), bias: leaf(gpu, h.bias, [h.bias.length]) };
}
function uploadFire(gpu: Gpu, h: HostFire, s: typeof SQUEEZE_FEATURE_SHAPES.fire1): FireParams {
  return {
    squeeze: upload(gpu, h.squeeze, s.squeeze.weight),
    expand1x1: upload(gpu, h.expand1x1, s.expand1x1.weight),
    expand3x3: upload(gpu, h.expand3x3, s.expand3x3.weight),
  };
}

gpuTest(
  "squeezeFeatures() (SqueezeNet 1.1 features[:5]) matches the f64 composition forward and backward on 2x3x64x64",
  async (gpu) => {
    const S = SQUEEZE_FEATURE_SHAPES;
    const host: HostParams = {
      conv1: hostConv(S.conv1),
      fire1: hostFire(S.fire1),
      fire2: hostFire(S.fire2),
    };
    const N = 2, X = rand(7, N * 3 * 64 * 64);
    const G = rand(8, N * 128 * 15 * 15);
    const want = squeezeFeaturesRef({ v: Float64Array.from(X), shape: [N, 3, 64, 64] }, host, G);
    assert.deepEqual(want.y.shape, [N, 128, 15, 15]);

    const params: SqueezeFeatureParams = {
      conv1: upload(gpu, host.conv1, S.conv1.weight),
      fire1: uploadFire(gpu, host.fire1, S.fire1),
      fire2: uploadFire(gpu, host.fire2, S.fire2),
    };
    const x = leaf(gpu, X, [N, 3, 64, 64]);
    const y = tidy(() => {
      const out = squeezeFeatures(x, params);
      backward(out, tensor(gpu, G, out.shape));
      return out;
    });
    assert.deepEqual(y.shape, [N, 128, 15, 15]);
    // Five conv layers deep, each summing <= 1152 f32 products of O(1) values.
    // Measured max |gpu - f64|: features 1.4e-6 (|y| <= 3.6), dx 2.3e-6, dconv1
    // 7.8e-6 (|dw| <= 26, a sum over 2 * 31 * 31 pixels); bounds keep ~10x headroom.
    // (f32 vs f64 could flip a ReLU or a max at a near tie; these seeds do not.)
    const tol = { atol: 2e-5, rtol: 2e-5 };
    assertClose(await y.read(), want.y.v, tol, "features");
    assertClose(await gradData(x), want.dx, tol, "dx");
    assertClose(
      await gradData(params.conv1.weight),
      want.dw1,
      { atol: 1e-4, rtol: 2e-5 },
      "dconv1",
    );
    const all: Tensor[] = [x, y, params.conv1.weight, params.conv1.bias];
    for (const f of [params.fire1, params.fire2]) {
      for (const c of [f.squeeze, f.expand1x1, f.expand3x3]) all.push(c.weight, c.bias);
    }
    for (const t of all) t.dispose();
  },
);
