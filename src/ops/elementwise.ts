/**
 * Pointwise ops over kernels/elementwise.wgsl: add, sub, mul, scale, biasAdd,
 * relu, gelu (tanh form) and dropout (counter-based mask, replayable from its
 * key). Derivatives are stated above each op.
 * @module
 */

import { KERNEL_SOURCES } from "../../kernels/sources.ts";
import type { KernelSpec, ParamLayout, ParamValues } from "../gpu/device.ts";
import {
  axpbyRef,
  biasAddBackwardRef,
  biasAddRef,
  dropoutRef,
  geluBackwardRef,
  geluRef,
  mulRef,
  reluBackwardRef,
  reluRef,
} from "../ref/elementwise.ts";
import { gradOf, record } from "../tape.ts";
import { empty, type Tensor } from "../tensor.ts";
import { dtypeIs, grid1d, OpError, sameDevice, sameShape } from "./_check.ts";
import { EXACT, type OpDeclarations, POINTWISE } from "./_op.ts";
import { sumRowsInto } from "./reduce.ts";

const SOURCE = KERNEL_SOURCES["elementwise.wgsl"];
const AFFINE = { n: "u32", alpha: "f32", beta: "f32" } as const;
const COUNT = { n: "u32" } as const;
const BIAS_ADD = { n: "u32", cols: "u32" } as const;
const DROPOUT = {
  n: "u32",
  scale: "f32",
  seed: "u32",
  stream: "u32",
  threshold: "u32",
} as const;

function spec<L extends ParamLayout>(entry: string, params: L): KernelSpec<L> {
  return { source: SOURCE, entry, params, workgroup: [256] };
}
/** A scalar kernel and its vec4 twin (same bindings viewed as vec4f), used when sizes allow. */
interface Pair<L extends ParamLayout> {
  scalar: KernelSpec<L>;
  vec4: KernelSpec<L>;
}
function pair<L extends ParamLayout>(entry: string, params: L): Pair<L> {
  return { scalar: spec(entry, params), vec4: spec(`${entry}_vec4`, params) };
}
const ADD_FORWARD = pair("add_forward", AFFINE);
const ADD_BACKWARD = pair("add_backward", AFFINE);
const SCALE_FORWARD = pair("scale_forward", AFFINE);
const MUL_FORWARD = pair("mul_forward", COUNT);
const MUL_BACKWARD = pair("mul_backward", COUNT);
const BIAS_ADD_FORWARD = pair("bias_add_forward", BIAS_ADD);
const RELU_FORWARD = pair("relu_forward", COUNT);
const RELU_BACKWARD = pair("relu_backward", COUNT);
const GELU_FORWARD = pair("gelu_forward", COUNT);
const GELU_BACKWARD = pair("gelu_backward", COUNT);
const DROPOUT_FORWARD = pair("dropout_forward", DROPOUT);
const DROPOUT_BACKWARD = pair("dropout_backward", DROPOUT);
const both = <L extends ParamLayout>(...pairs: Pair<L>[]) =>
  pairs.flatMap((p) => [p.scalar, p.vec4]);

/** The pointwise ops: kernels, f64 references and tolerances. */
export const ELEMENTWISE_OPS = {
  add: {
    kind: "differentiable",
    kernels: [...both<typeof AFFINE>(ADD_FORWARD, ADD_BACKWARD, SCALE_FORWARD)],
    // add, sub and scale are one rule, alpha a + beta b; being linear, its
    // backward is the same rule applied to dy (da = alpha dy).
    reference: { forward: axpbyRef, backward: axpbyRef },
    tolerance: { forward: POINTWISE, backward: POINTWISE },
    test: "elementwise_test.ts",
  },
  mul: {
    kind: "differentiable",
    kernels: both(MUL_FORWARD, MUL_BACKWARD),
    // bilinear: da = dy * b is the forward rule applied to (dy, b)
    reference: { forward: mulRef, backward: mulRef },
    tolerance: { forward: POINTWISE, backward: POINTWISE },
    test: "elementwise_test.ts",
  },
  biasAdd: {
    kind: "differentiable",
    kernels: both(BIAS_ADD_FORWARD), // backward: add_backward and reduce's column sums
    reference: { forward: biasAddRef, backward: biasAddBackwardRef },
    tolerance: { forward: POINTWISE, backward: { atol: 1e-5, rtol: 1e-5 } },
    test: "elementwise_test.ts",
  },
  relu: {
    kind: "differentiable",
    kernels: both(RELU_FORWARD, RELU_BACKWARD),
    reference: { forward: reluRef, backward: reluBackwardRef },
    tolerance: { forward: EXACT, backward: EXACT },
    test: "elementwise_test.ts",
  },
  gelu: {
    kind: "differentiable",
    kernels: both(GELU_FORWARD, GELU_BACKWARD),
    reference: { forward: geluRef, backward: geluBackwardRef },
    // tanh in WGSL is allowed a few ulp more than correctly rounded
    tolerance: { forward: { atol: 2e-6, rtol: 2e-5 }, backward: { atol: 5e-6, rtol: 5e-5 } },
    test: "elementwise_test.ts",
  },
  dropout: {
    kind: "differentiable",
    kernels: both(DROPOUT_FORWARD, DROPOUT_BACKWARD),
    // Linear in x with the same mask: dx = dropout(dy) under the same key. The
    // mask is integer arithmetic and must agree exactly; kept values are x / (1 - p).
    reference: { forward: dropoutRef, backward: dropoutRef },
    tolerance: { forward: POINTWISE, backward: POINTWISE },
    test: "elementwise_test.ts",
  },
} as const satisfies OpDeclarations;

/** True when every binding can be read as vec4f: 16-byte aligned offsets and sizes. */
function vec4Ok(n: number, bindings: Tensor[]): boolean {
  return n % 4 === 0 && bindings.every((t) => t.offset % 16 === 0 && t.size % 4 === 0);
}

/** Whether launches may take the vec4 twins (tests switch it off to compare the two). */
export const ELEMENTWISE_VEC4 = { enabled: true };

function launch<L extends ParamLayout>(
  kernel: Pair<L>,
  params: ParamValues<L>,
  bindings: Tensor[],
  vec4 = true,
): void {
  // The vec4 twin reads one vec4 per thread, the scalar one four strided
  // floats: both cover 1024 elements per workgroup of 256.
  const useVec4 = vec4 && ELEMENTWISE_VEC4.enabled && vec4Ok(params.n, bindings);
  bindings[0].gpu.dispatch(
    useVec4 ? kernel.vec4 : kernel.scalar,
    params,
    bindings.map((t) => t.binding),
    grid1d(Math.ceil(params.n / 1024)),
  );
}

/** dst += alpha * src (same size): how backward passes accumulate gradients. */
export function accumulate(dst: Tensor, src: Tensor, alpha = 1): void {
  launch(ADD_BACKWARD, { n: dst.size, alpha, beta: 0 }, [src, dst]);
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
  launch(ADD_FORWARD, { n: a.size, alpha, beta }, [a, b, out]);
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
  const n = a.size;
  launch(MUL_FORWARD, { n }, [a, b, out]);
  return record("mul", out, [a, b], (g) => {
    if (a.requiresGrad) launch(MUL_BACKWARD, { n }, [g, b, gradOf(a)]);
    if (b.requiresGrad) launch(MUL_BACKWARD, { n }, [g, a, gradOf(b)]);
  });
}

/** alpha * x. d/dx = alpha; saves nothing. */
export function scale(x: Tensor, alpha: number): Tensor {
  sameDevice("scale", x);
  dtypeIs("scale", x, "f32");
  const out = empty(x.gpu, x.shape);
  launch(SCALE_FORWARD, { n: x.size, alpha, beta: 0 }, [x, out]);
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
  launch(BIAS_ADD_FORWARD, { n: x.size, cols: n }, [x, bias, out], n % 4 === 0);
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
  launch(RELU_FORWARD, { n: x.size }, [x, out]);
  return record("relu", out, [x], (g) => launch(RELU_BACKWARD, { n: x.size }, [x, g, gradOf(x)]));
}

/**
 * GELU, tanh form: 0.5 x (1 + tanh(s (x + 0.044715 x^3))), s = sqrt(2/pi).
 * dx = dy * (0.5 (1 + t) + 0.5 x (1 - t^2) s (1 + 3 * 0.044715 x^2)); saves x.
 */
export function gelu(x: Tensor): Tensor {
  unary("gelu", x);
  const out = empty(x.gpu, x.shape);
  launch(GELU_FORWARD, { n: x.size }, [x, out]);
  return record("gelu", out, [x], (g) => launch(GELU_BACKWARD, { n: x.size }, [x, g, gradOf(x)]));
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
  const params = {
    n: x.size,
    scale: 1 / (1 - rate),
    seed: key.seed >>> 0,
    stream: key.stream >>> 0,
    threshold: dropoutThreshold(rate),
  };
  const out = empty(x.gpu, x.shape);
  launch(DROPOUT_FORWARD, params, [x, out]);
  return record("dropout", out, [x], (g) => launch(DROPOUT_BACKWARD, params, [g, gradOf(x)]));
}
