/**
 * Row-wise L2 normalisation over kernels/l2_normalize.wgsl: y = x / max(||x||, eps)
 * per row of the last axis. DINO's head applies it to the bottleneck features
 * and, as weight normalisation with the gain fixed at 1 (w = v / ||v||), to
 * each output row of its last layer.
 * Derivative: dx = (dy - y (y . dy)) / ||x|| per row (dy / eps where the norm
 * is clamped); saves y and the row norms.
 * @module
 */

import { KERNEL_SOURCES } from "../../kernels/sources.ts";
import type { KernelSpec } from "../gpu/device.ts";
import { gradOf, record } from "../tape.ts";
import { empty, type Tensor } from "../tensor.ts";
import { dtypeIs, grid1d, OpError, sameDevice } from "./_check.ts";
import { l2NormalizeBackwardRef, l2NormalizeRef } from "../ref/l2_normalize.ts";
import type { OpDeclarations } from "./_op.ts";

const PARAMS = { rows: "u32", cols: "u32", eps: "f32" } as const;
const FORWARD = {
  source: KERNEL_SOURCES["l2_normalize.wgsl"],
  entry: "l2_normalize_forward",
  params: PARAMS,
  workgroup: [64],
} as const satisfies KernelSpec<typeof PARAMS>;
const BACKWARD = { ...FORWARD, entry: "l2_normalize_backward" } as const;

/** L2 normalisation: kernels, f64 references and tolerances. */
export const L2_NORMALIZE_OPS = {
  l2Normalize: {
    kind: "differentiable",
    kernels: [FORWARD, BACKWARD],
    reference: { forward: l2NormalizeRef, backward: l2NormalizeBackwardRef },
    // y is O(1) after a cols-term sum of squares and a sqrt; dx adds a cols-term dot.
    tolerance: { forward: { atol: 1e-6, rtol: 1e-5 }, backward: { atol: 1e-5, rtol: 1e-4 } },
    test: "dino_ops_test.ts",
  },
} as const satisfies OpDeclarations;

/** Each row of `x` (any rank >= 1, rows along the last axis) scaled to unit norm. */
export function l2Normalize(x: Tensor, eps = 1e-12): Tensor {
  const op = "l2Normalize";
  sameDevice(op, x);
  dtypeIs(op, x, "f32");
  if (!(eps > 0)) throw new OpError(op, `eps ${eps} must be positive`);
  const cols = x.shape.at(-1) ?? 1;
  const rows = cols === 0 ? 0 : x.size / cols;
  const gpu = x.gpu;
  const y = empty(gpu, x.shape);
  const norm = empty(gpu, [rows]);
  gpu.dispatch(FORWARD, { rows, cols, eps }, [x.binding, y.binding, norm.binding], grid1d(rows));
  // saves: y, norm
  return record(op, y, [x], (g) => {
    gpu.dispatch(
      BACKWARD,
      { rows, cols, eps },
      [y.binding, norm.binding, g.binding, gradOf(x).binding],
      grid1d(rows),
    );
  });
}
