/**
 * Softmax over the last axis, over kernels/softmax.wgsl.
 * Derivative: dx = y * (dy - sum(dy * y)) per row; saves y (the output).
 * @module
 */

import { KERNEL_SOURCES } from "../../kernels/sources.ts";
import type { KernelSpec } from "../gpu/device.ts";
import { gradOf, record } from "../tape.ts";
import { empty, type Tensor } from "../tensor.ts";
import { dtypeIs, grid1d, sameDevice } from "./_check.ts";
import { softmaxBackwardRef, softmaxRef } from "../ref/softmax.ts";
import type { OpDeclarations } from "./_op.ts";

const PARAMS = { rows: "u32", cols: "u32" } as const;
const FORWARD = {
  source: KERNEL_SOURCES["softmax.wgsl"],
  entry: "softmax_forward",
  params: PARAMS,
  workgroup: [64],
} as const satisfies KernelSpec<typeof PARAMS>;
const BACKWARD = { ...FORWARD, entry: "softmax_backward" } as const;
const ROWS_FORWARD = { ...FORWARD, entry: "softmax_rows_forward" } as const;
const ROWS_BACKWARD = { ...FORWARD, entry: "softmax_rows_backward" } as const;

/**
 * Rows up to this long run one per thread (no barriers); longer rows get a
 * workgroup each. Measured on llvmpipe (deno task bench --only softmax, and
 * both forms forced): a thread per row was 1.2-9x faster from 64 to 33280
 * rows of 65 to 1024 columns.
 */
export const ROW_THREAD_MAX_COLS = 1024;

/** Which kernels a (rows, cols) softmax runs on: "rows" (a thread per row) or "workgroup". */
export function softmaxKernel(rows: number, cols: number): "rows" | "workgroup" {
  return cols <= ROW_THREAD_MAX_COLS && rows >= 1 ? "rows" : "workgroup";
}

/** Softmax: kernels, f64 references and tolerances. */
export const SOFTMAX_OPS = {
  softmax: {
    kind: "differentiable",
    kernels: [FORWARD, BACKWARD, ROWS_FORWARD, ROWS_BACKWARD],
    reference: { forward: softmaxRef, backward: softmaxBackwardRef },
    tolerance: { forward: { atol: 1e-6, rtol: 1e-5 }, backward: { atol: 2e-6, rtol: 1e-4 } },
    test: "softmax_test.ts",
  },
} as const satisfies OpDeclarations;

/**
 * Softmax over the last axis of `x` (any rank >= 1). `kernel` forces one
 * form (tests and benchmarks); by default {@link softmaxKernel} picks it.
 */
export function softmax(x: Tensor, kernel?: "rows" | "workgroup"): Tensor {
  sameDevice("softmax", x);
  dtypeIs("softmax", x, "f32");
  const cols = x.shape.at(-1) ?? 1;
  const rows = cols === 0 ? 0 : x.size / cols;
  const gpu = x.gpu;
  const y = empty(gpu, x.shape);
  const perThread = (kernel ?? softmaxKernel(rows, cols)) === "rows";
  const [forward, back] = perThread ? [ROWS_FORWARD, ROWS_BACKWARD] : [FORWARD, BACKWARD];
  const groups = grid1d(perThread ? Math.ceil(rows / 64) : rows);
  gpu.dispatch(forward, { rows, cols }, [x.binding, y.binding], groups);
  // saves: y
  return record("softmax", y, [x], (g) => {
    gpu.dispatch(back, { rows, cols }, [y.binding, g.binding, gradOf(x).binding], groups);
  });
}
