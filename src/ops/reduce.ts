/**
 * Sum and mean over one axis, over kernels/reduce.wgsl.
 *
 * Derivative: y[o, i] = s * sum_a x[o, a, i]  =>  dx[o, a, i] = s * dy[o, i]
 * (a broadcast back along the reduced axis).
 *
 * @module
 */

import { KERNEL_SOURCES } from "../../kernels/sources.ts";
import type { Gpu, KernelSpec } from "../gpu/device.ts";
import { gradOf, record } from "../tape.ts";
import { empty, type Tensor } from "../tensor.ts";
import { dtypeIs, grid1d, OpError, sameDevice } from "./_check.ts";
import { sumAxisBackwardRef, sumAxisRef } from "../ref/reduce.ts";
import { type OpDeclarations, POINTWISE } from "./_op.ts";

const PARAMS = { outer: "u32", axis: "u32", inner: "u32", scale: "f32", beta: "f32" } as const;
const FORWARD = {
  source: KERNEL_SOURCES["reduce.wgsl"],
  entry: "sum_axis_forward",
  params: PARAMS,
  workgroup: [256],
} as const satisfies KernelSpec<typeof PARAMS>;
const BLOCK_PARAMS = {
  outer: "u32",
  axis: "u32",
  inner: "u32",
  rows_per_block: "u32",
  blocks: "u32",
} as const;
const BLOCKS = {
  ...FORWARD,
  entry: "sum_axis_blocks",
  params: BLOCK_PARAMS,
} as const satisfies KernelSpec<typeof BLOCK_PARAMS>;
const BACKWARD = { ...FORWARD, entry: "sum_axis_backward" } as const;

/** Sum over an axis (mean is the same kernels with scale 1 / n). */
export const REDUCE_OPS = {
  sum: {
    kind: "differentiable",
    kernels: [FORWARD, BLOCKS, BACKWARD],
    reference: { forward: sumAxisRef, backward: sumAxisBackwardRef },
    tolerance: { forward: { atol: 1e-5, rtol: 1e-5 }, backward: POINTWISE },
    test: "reduce_test.ts",
  },
} as const satisfies OpDeclarations;

/** Axes longer than this use one workgroup per output (see reduce.wgsl). */
const WIDE_AXIS = 1024;

type View = { outer: number; axis: number; inner: number };

function view(shape: readonly number[], axis: number): View {
  const prod = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
  return {
    outer: prod(shape.slice(0, axis)),
    axis: shape[axis],
    inner: prod(shape.slice(axis + 1)),
  };
}

/** dst (outer, inner) = scale * sum over the middle axis of src + beta * dst. */
export function sumAxisInto(
  gpu: Gpu,
  src: Tensor,
  dst: Tensor,
  v: View,
  scale: number,
  beta: number,
) {
  if (v.axis <= WIDE_AXIS) {
    const groups = grid1d(Math.ceil((v.outer * v.inner) / 256));
    gpu.dispatch(FORWARD, { ...v, scale, beta }, [src.binding, dst.binding], groups);
    return;
  }
  // Long axis: sums of blocks of rows, then a short sum over the blocks (each
  // loop stays far below llvmpipe's 65535 iterations).
  const rows_per_block = Math.max(64, Math.ceil(v.axis / WIDE_AXIS));
  const blocks = Math.ceil(v.axis / rows_per_block);
  const part = empty(gpu, [v.outer, blocks, v.inner]);
  gpu.dispatch(
    BLOCKS,
    { ...v, rows_per_block, blocks },
    [src.binding, part.binding],
    grid1d(Math.ceil((v.outer * blocks * v.inner) / 256)),
  );
  const groups = grid1d(Math.ceil((v.outer * v.inner) / 256));
  gpu.dispatch(
    FORWARD,
    { outer: v.outer, axis: blocks, inner: v.inner, scale, beta },
    [part.binding, dst.binding],
    groups,
  );
  part.dispose(); // later dispatches are ordered after these, so reuse is safe
}

export function broadcastAxisInto(gpu: Gpu, src: Tensor, dst: Tensor, v: View, scale: number) {
  const groups = grid1d(Math.ceil((v.outer * v.axis * v.inner) / 256));
  gpu.dispatch(BACKWARD, { ...v, scale, beta: 1 }, [src.binding, dst.binding], groups);
}

/** Adds the column sums of `g` (viewed as (rows, n)) into `dst` (n): a bias gradient. */
export function sumRowsInto(gpu: Gpu, g: Tensor, dst: Tensor, n: number): void {
  sumAxisInto(gpu, g, dst, { outer: 1, axis: g.size / n, inner: n }, 1, 1);
}

function reduceOp(op: "sum" | "mean", x: Tensor, axis: number, keepDims: boolean): Tensor {
  sameDevice(op, x);
  dtypeIs(op, x, "f32");
  const rank = x.shape.length;
  const ax = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(ax) || ax < 0 || ax >= rank) {
    throw new OpError(op, `axis ${axis} is out of range for ${x.describe()}`);
  }
  const v = view(x.shape, ax);
  if (op === "mean" && v.axis === 0) {
    throw new OpError(op, `mean over an empty axis of ${x.describe()}`);
  }
  const scale = op === "mean" ? 1 / v.axis : 1;
  const shape = keepDims
    ? x.shape.map((d, i) => (i === ax ? 1 : d))
    : x.shape.filter((_, i) => i !== ax);
  const gpu = x.gpu;
  const out = empty(gpu, shape);
  sumAxisInto(gpu, x, out, v, scale, 0);
  // saves: nothing (only the view geometry)
  return record(op, out, [x], (g) => broadcastAxisInto(gpu, g, gradOf(x), v, scale));
}

/** Sum over `axis` (negative counts from the end). */
export function sum(x: Tensor, axis = -1, keepDims = false): Tensor {
  return reduceOp("sum", x, axis, keepDims);
}

/** Mean over `axis` (negative counts from the end). */
export function mean(x: Tensor, axis = -1, keepDims = false): Tensor {
  return reduceOp("mean", x, axis, keepDims);
}

/** Sum of every element, as a one-element tensor. */
export function sumAll(x: Tensor): Tensor {
  return sum(x.reshape([x.size]), 0);
}

/** Mean of every element, as a one-element tensor. */
export function meanAll(x: Tensor): Tensor {
  return mean(x.reshape([x.size]), 0);
}
