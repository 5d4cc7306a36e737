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

/** Softmax: kernels, f64 references and tolerances. */
export const SOFTMAX_OPS = {
  softmax: {
    kind: "differentiable",
    kernels: [FORWARD, BACKWARD],
    reference: { forward: softmaxRef, backward: softmaxBackwardRef },
    tolerance: { forward: { atol: 1e-6, rtol: 1e-5 }, backward: { atol: 2e-6, rtol: 1e-4 } },
    test: "softmax_test.ts",
  },
} as const satisfies OpDeclarations;

/** Softmax over the last axis of `x` (any rank >= 1). */
export function softmax(x: Tensor): Tensor {
  sameDevice("softmax", x);
  dtypeIs("softmax", x, "f32");
  const cols = x.shape.at(-1) ?? 1;
  const rows = cols === 0 ? 0 : x.size / cols;
  const gpu = x.gpu;
  const y = empty(gpu, x.shape);
  gpu.dispatch(FORWARD, { rows, cols }, [x.binding, y.binding], grid1d(rows));
  // saves: y
  return record("softmax", y, [x], (g) => {
    gpu.dispatch(BACKWARD, { rows, cols }, [y.binding, g.binding, gradOf(x).binding], grid1d(rows));
  });
}
