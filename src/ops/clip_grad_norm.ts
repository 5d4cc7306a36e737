/**
 * Global gradient-norm clipping, kernels/clip_grad_norm.wgsl: three
 * dispatches over a whole ParamStore's gradient (partial sums of squares, the
 * factor, the scaling) with no readback. The launcher is
 * {@link GradClipper.clip} in src/optim.ts, which owns the partial-sum and
 * state buffers; this module declares the kernels, the f64 reference and the
 * tolerance.
 * @module
 */

import { KERNEL_SOURCES } from "../../kernels/sources.ts";
import type { KernelSpec } from "../gpu/device.ts";
import { clipGradNormRef } from "../ref/clip_grad_norm.ts";
import type { OpDeclarations } from "./_op.ts";

const PARAMS = { n: "u32", groups: "u32", max_norm: "f32" } as const;

/** Sums of squares per workgroup: bindings (grads, partial), grid (groups). */
export const CLIP_GRAD_NORM_PARTIAL = {
  source: KERNEL_SOURCES["clip_grad_norm.wgsl"],
  entry: "clip_grad_norm_partial",
  params: PARAMS,
  workgroup: [64],
} as const satisfies KernelSpec<typeof PARAMS>;
/** The norm and the factor: bindings (partial, state), grid (1). */
export const CLIP_GRAD_NORM_FACTOR = {
  ...CLIP_GRAD_NORM_PARTIAL,
  entry: "clip_grad_norm_factor",
} as const;
/** The scaling: bindings (state, grads), grid1d(ceil(n / 256)). */
export const CLIP_GRAD_NORM_APPLY = {
  ...CLIP_GRAD_NORM_PARTIAL,
  entry: "clip_grad_norm_apply",
  workgroup: [256],
} as const;

/** Clipping is an update of the gradient, not differentiated. */
export const CLIP_GRAD_NORM_OPS = {
  clipGradNorm: {
    kind: "update",
    kernels: [CLIP_GRAD_NORM_PARTIAL, CLIP_GRAD_NORM_FACTOR, CLIP_GRAD_NORM_APPLY],
    reference: { update: clipGradNormRef },
    // an n-term sum of squares, then one product per element
    tolerance: { update: { atol: 1e-6, rtol: 1e-5 } },
    test: "dino_ops_test.ts",
  },
} as const satisfies OpDeclarations;
