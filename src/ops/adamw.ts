/**
 * AdamW's kernel, kernels/adamw.wgsl: one dispatch updates every parameter
 * of a ParamStore. The launcher is {@link AdamW.update} in src/optim.ts,
 * which owns the moment buffers; this module declares the kernel, its f64
 * reference and its tolerances.
 * @module
 */

import { KERNEL_SOURCES } from "../../kernels/sources.ts";
import type { KernelSpec } from "../gpu/device.ts";
import { adamwRef } from "../ref/adamw.ts";
import type { OpDeclarations } from "./_op.ts";

const PARAMS = {
  n: "u32",
  lr: "f32",
  beta1: "f32",
  beta2: "f32",
  eps: "f32",
  wd: "f32",
  bc1: "f32",
  bc2: "f32",
} as const;

/** One AdamW step: bindings (grads, decay bitmask, params, m, v), grid1d(ceil(n / 256)). */
export const ADAMW_STEP = {
  source: KERNEL_SOURCES["adamw.wgsl"],
  entry: "adamw_step",
  params: PARAMS,
  workgroup: [256],
} as const satisfies KernelSpec<typeof PARAMS>;

/** The optimizer step: an update, audited on the parameters and on the moments it keeps. */
export const ADAMW_OPS = {
  adamw: {
    kind: "update",
    kernels: [ADAMW_STEP],
    reference: { update: adamwRef },
    tolerance: { update: { atol: 1e-6, rtol: 1e-5 }, moments: { atol: 1e-7, rtol: 1e-5 } },
    test: "optim_test.ts",
  },
} as const satisfies OpDeclarations;
