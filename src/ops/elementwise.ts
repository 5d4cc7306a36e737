/**
 * Pointwise ops over kernels/elementwise.wgsl: add, sub, mul, scale, biasAdd,
 * relu, gelu (tanh form) and dropout (counter-based mask, replayable from its
 * key). Derivatives are stated above each op.
 * @module
 */

import type { Gpu, KernelSpec } from "../gpu/device.ts";
import { gradOf, record } from "../tape.ts";
import { empty, type Tensor } from "../tensor.ts";
import { dtypeIs, grid1d, OpError, sameDevice, sameShape } from "./_check.ts";
import { sumRowsInto } from "./reduce.ts";

const PARAMS = {
  n: "u32",
  cols: "u32",
  alpha: "f32",
  beta: "f32",
  seed: "u32",
  stream: "u32",
  threshold: "u32",
} as const;

/** Entry points of elementwise.wgsl; the registry checks that this list matches the file. */
export const ELEMENTWISE_ENTRIES = [
  "axpby_forward",
  "axpy_backward",
  "mul_forward",
  "mul_backward",
  "scale_forward",
  "bias_add_forward",
  "relu_forward",
  "relu_backward",
  "gelu_forward",
  "gelu_backward",
  "dropout_forward",
  "dropout_backward",
] as const;

type Entry = typeof ELEMENTWISE_ENTRIES[number];

function spec(entry: Entry): KernelSpec<typeof PARAMS> {
  return { file: "elementwise.wgsl", entry, params: PARAMS, workgroup: [256] };
}
const SPECS = Object.fromEntries(ELEMENTWISE_ENTRIES.map((e) => [e, spec(e)])) as Record<
  Entry,
  KernelSpec<typeof PARAMS>
>;

type Extra = Partial<
  { cols: number; alpha: number; beta: number; seed: number; stream: number; threshold: number }
>;

function launch(gpu: Gpu, entry: Entry, n: number, bindings: Tensor[], extra: Extra = {}): void {
  gpu.dispatch(
    SPECS[entry],
    { n, cols: 1, alpha: 1, beta: 0, seed: 0, stream: 0, threshold: 0, ...extra },
    bindings.map((t) => t.binding),
    grid1d(Math.ceil(n / 1024)), // 4 elements per thread, 256 threads
  );
}

/** dst += alpha * src (same size): how backward passes accumulate gradients. */
export function accumulate(dst: Tensor, src: Tensor, alpha = 1): void {
  launch(dst.gpu, "axpy_backward", dst.size, [src, dst], { alpha });
}

function binaryArgs(op: string, a: Tensor, b: Tensor): void {
  sameDevice(op, a, b);
  dtypeIs(op, a, "f32");
  dtypeIs(op, b, "f32");
  sameShape(op, a, b);
}

function axpby(op: string, a: Tensor, b: Tensor, alpha: number, beta: number): Tensor {
  binaryArgs(op, a, b);
  const out = empty(a.gpu, a.shape);
  launch(a.gpu, "axpby_forward", a.size, [a, b, out], { alpha, beta });
  // d/da = alpha, d/db = beta; saves nothing
  return record(op, out, [a, b], (g) => {
    if (a.requiresGrad) accumulate(gradOf(a), g, alpha);
    if (b.requiresGrad) accumulate(gradOf(b), g, beta);
  });
}

/** a + b (same shape). */
export function add(a: Tensor, b: Tensor): Tensor {
  return axpby("add", a, b, 1, 1);
}

/** a - b (same shape). */
export function sub(a: Tensor, b: Tensor): Tensor {
  return axpby("sub", a, b, 1, -1);
}

/** a * b elementwise (same shape). d/da = b, d/db = a; saves a and b. */
export function mul(a: Tensor, b: Tensor): Tensor {
  binaryArgs("mul", a, b);
  const out = empty(a.gpu, a.shape);
  launch(a.gpu, "mul_forward", a.size, [a, b, out]);
  return record("mul", out, [a, b], (g) => {
    if (a.requiresGrad) launch(a.gpu, "mul_backward", a.size, [g, b, gradOf(a)]);
    if (b.requiresGrad) launch(a.gpu, "mul_backward", a.size, [g, a, gradOf(b)]);
  });
}

/** alpha * x. d/dx = alpha; saves nothing. */
export function scale(x: Tensor, alpha: number): Tensor {
  sameDevice("scale", x);
  dtypeIs("scale", x, "f32");
  const out = empty(x.gpu, x.shape);
  launch(x.gpu, "scale_forward", x.size, [x, out], { alpha });
  return record("scale", out, [x], (g) => accumulate(gradOf(x), g, alpha));
}

/**
 * x + bias broadcast over rows: x is (..., n), bias is (n).
 * dx = dy; dbias = column sums of dy; saves nothing.
 */
export function biasAdd(x: Tensor, bias: Tensor): Tensor {
  sameDevice("biasAdd", x, bias);
  dtypeIs("biasAdd", x, "f32");
  dtypeIs("biasAdd", bias, "f32");
  const n = x.shape.at(-1) ?? 1;
  if (bias.size !== n) {
    throw new OpError(
      "biasAdd",
      `bias ${bias.describe()} must have ${n} elements for ${x.describe()}`,
    );
  }
  const out = empty(x.gpu, x.shape);
  launch(x.gpu, "bias_add_forward", x.size, [x, bias, out], { cols: n });
  return record("biasAdd", out, [x, bias], (g) => {
    if (x.requiresGrad) accumulate(gradOf(x), g);
    if (bias.requiresGrad) sumRowsInto(x.gpu, g, gradOf(bias), n);
  });
}

function unary(op: string, x: Tensor): void {
  sameDevice(op, x);
  dtypeIs(op, x, "f32");
}

/** max(x, 0). dx = dy * [x > 0]; saves x. */
export function relu(x: Tensor): Tensor {
  unary("relu", x);
  const out = empty(x.gpu, x.shape);
  launch(x.gpu, "relu_forward", x.size, [x, out]);
  return record("relu", out, [x], (g) => launch(x.gpu, "relu_backward", x.size, [x, g, gradOf(x)]));
}

/**
 * GELU, tanh form: 0.5 x (1 + tanh(s (x + 0.044715 x^3))), s = sqrt(2/pi).
 * dx = dy * (0.5 (1 + t) + 0.5 x (1 - t^2) s (1 + 3 * 0.044715 x^2)); saves x.
 */
export function gelu(x: Tensor): Tensor {
  unary("gelu", x);
  const out = empty(x.gpu, x.shape);
  launch(x.gpu, "gelu_forward", x.size, [x, out]);
  return record("gelu", out, [x], (g) => launch(x.gpu, "gelu_backward", x.size, [x, g, gradOf(x)]));
}

/** Key of a dropout mask: replaying the same key gives the same mask. */
export interface DropoutKey {
  /** Run seed. */
  seed: number;
  /** Distinct per call site and step, e.g. step * 64 + layer. */
  stream: number;
}

/** The u32 threshold below which a hash drops its element: floor(rate * 2^32). */
export function dropoutThreshold(rate: number): number {
  return Math.min(0xffffffff, Math.floor(rate * 4294967296));
}

/**
 * Inverted dropout: keeps x[i] / (1 - rate) where hash3(seed, stream, i) >=
 * rate * 2^32, else 0. rate 0 returns x itself. dx = dy * same mask; saves the
 * key only (the mask is recomputed).
 */
export function dropout(x: Tensor, rate: number, key: DropoutKey): Tensor {
  unary("dropout", x);
  if (!(rate >= 0 && rate < 1)) throw new OpError("dropout", `rate ${rate} must be in [0, 1)`);
  if (rate === 0) return x;
  const extra = {
    alpha: 1 / (1 - rate),
    seed: key.seed >>> 0,
    stream: key.stream >>> 0,
    threshold: dropoutThreshold(rate),
  };
  const out = empty(x.gpu, x.shape);
  launch(x.gpu, "dropout_forward", x.size, [x, out], extra);
  return record(
    "dropout",
    out,
    [x],
    (g) => launch(x.gpu, "dropout_backward", x.size, [g, gradOf(x)], extra),
  );
}
