/**
 * Layer normalization over the last axis with affine weight and bias, over
 * kernels/layernorm.wgsl (PyTorch's `nn.LayerNorm`, eps 1e-5, biased variance).
 *
 * Derivative, per row with xhat = (x - mean) rstd and g = weight * dy:
 *   dx      = rstd (g - mean_c(g) - xhat mean_c(g xhat))
 *   dweight = sum over rows of dy xhat,   dbias = sum over rows of dy.
 * The backward is one pass over the rows (dx plus per-block partial sums of
 * dweight and dbias) and a small pass that sums the blocks: no atomics, and
 * the summation order is fixed, so gradients replay bit for bit.
 *
 * @module
 */

import { KERNEL_SOURCES } from "../../kernels/sources.ts";
import type { KernelSpec } from "../gpu/device.ts";
import { gradOf, record } from "../tape.ts";
import { empty, type Tensor } from "../tensor.ts";
import { dtypeIs, grid1d, OpError, sameDevice } from "./_check.ts";
import { stageDistinct } from "./_stage.ts";
import { layerNormBackwardRef, layerNormRef } from "../ref/layernorm.ts";
import type { OpDeclarations } from "./_op.ts";

const PARAMS = {
  rows: "u32",
  cols: "u32",
  rows_per_block: "u32",
  blocks: "u32",
  eps: "f32",
} as const;
const FORWARD = {
  source: KERNEL_SOURCES["layernorm.wgsl"],
  entry: "layernorm_forward",
  params: PARAMS,
  workgroup: [64],
} as const satisfies KernelSpec<typeof PARAMS>;
const BACKWARD = { ...FORWARD, entry: "layernorm_backward" } as const;
const FORWARD_ROWS = { ...FORWARD, entry: "layernorm_forward_rows" } as const;
const BACKWARD_ROWS = { ...FORWARD, entry: "layernorm_backward_rows" } as const;
const BACKWARD_PARTIAL_COLS = { ...FORWARD, entry: "layernorm_backward_partial_cols" } as const;
const FORWARD_ROWS_TEX = { ...FORWARD, entry: "layernorm_forward_rows_tex" } as const;
const BACKWARD_ROWS_TEX = { ...FORWARD, entry: "layernorm_backward_rows_tex" } as const;
const BACKWARD_PARTIAL_COLS_TEX = {
  ...FORWARD,
  entry: "layernorm_backward_partial_cols_tex",
} as const;
/**
 * Rows up to this width get one invocation each (no barriers: on llvmpipe 2.6x
 * the forward and backward of a row per 64-thread workgroup at 2080x256, whose
 * two tree reductions cost 16 barriers a row); wider rows keep a workgroup.
 */
export const LAYERNORM_ROW_PER_THREAD_MAX_COLS = 1024;
/** Which kernels layerNorm launches; "auto" picks by width (benchmarks force one). */
export const LAYERNORM_KERNELS = { mode: "auto" as "auto" | "rows" | "workgroup" };
const BACKWARD_PARAMS = {
  ...FORWARD,
  entry: "layernorm_backward_params",
  workgroup: [256],
} as const;

/** LayerNorm: kernels, f64 references and tolerances. */
export const LAYERNORM_OPS = {
  layerNorm: {
    kind: "differentiable",
    kernels: [
      FORWARD,
      BACKWARD,
      BACKWARD_PARAMS,
      FORWARD_ROWS,
      BACKWARD_ROWS,
      BACKWARD_PARTIAL_COLS,
      FORWARD_ROWS_TEX,
      BACKWARD_ROWS_TEX,
      BACKWARD_PARTIAL_COLS_TEX,
    ],
    reference: { forward: layerNormRef, backward: layerNormBackwardRef },
    // y is O(1) whatever the input scale: mean/var sums of ~256 terms plus
    // inverseSqrt (2 ulp) give ~1e-6 relative; dweight/dbias sum up to ~33k rows
    // of O(1) terms (error ~ sqrt(rows) eps |sum|), hence the looser backward atol.
    tolerance: { forward: { atol: 1e-5, rtol: 1e-5 }, backward: { atol: 1e-4, rtol: 1e-4 } },
    test: "layernorm_test.ts",
  },
} as const satisfies OpDeclarations;

/**
 * Rows per backward block: at least 16 (so a block amortises its partial
 * rows), and enough that there are at most ~1024 blocks, which bounds both
 * the partial buffer and the trip count of the params pass (llvmpipe stops
 * shader loops after 65535 iterations).
 */
export function layerNormRowsPerBlock(rows: number): number {
  return Math.max(16, Math.ceil(rows / 1024));
}

/**
 * LayerNorm of `x` (..., cols) over its last axis: (x - mean) / sqrt(var + eps)
 * * weight + bias, with `weight` and `bias` of shape (cols).
 */
export function layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps = 1e-5): Tensor {
  const op = "layerNorm";
  sameDevice(op, x, weight, bias);
  for (const t of [x, weight, bias]) dtypeIs(op, t, "f32");
  const cols = x.shape.at(-1) ?? 0;
  if (x.shape.length === 0 || cols === 0) {
    throw new OpError(op, `x ${x.describe()} needs a non-empty last axis`);
  }
  for (const t of [weight, bias]) {
    if (t.shape.length !== 1 || t.shape[0] !== cols) {
      throw new OpError(op, `${t.describe()} must have shape [${cols}] to match x ${x.describe()}`);
    }
  }
  if (!(eps > 0)) throw new OpError(op, `eps must be positive, got ${eps}`);
  const rows = x.size / cols;
  const rows_per_block = layerNormRowsPerBlock(rows);
  const blocks = Math.ceil(rows / rows_per_block);
  const params = { rows, cols, rows_per_block, blocks, eps };
  const gpu = x.gpu;
  const y = empty(gpu, x.shape);
  const shift = empty(gpu, [rows]);
  const rstd = empty(gpu, [rows]);
  const mode = LAYERNORM_KERNELS.mode;
  const byRow = mode === "rows" || mode === "auto" && cols <= LAYERNORM_ROW_PER_THREAD_MAX_COLS;
  // Row kernels read their inputs from staged textures where the adapter prefers
  // them and rows are whole vec4s; where staging declines they read storage.
  const textured = byRow && cols % 4 === 0 && gpu.textureOperands;
  const rowGroups = grid1d(Math.ceil(rows / 64));
  // The textured kernels bind the same operands in the same order, x as a texture.
  const xStaged = textured ? stageDistinct(gpu, [x], 0) : null;
  const [xIn] = xStaged ?? [x.binding];
  gpu.dispatch(
    xStaged ? FORWARD_ROWS_TEX : byRow ? FORWARD_ROWS : FORWARD,
    params,
    [xIn, weight.binding, bias.binding, y.binding, shift.binding, rstd.binding],
    byRow ? rowGroups : grid1d(rows),
  );
  // saves: per row the shifted mean (mean - x[row, 0], see layernorm.wgsl) and rstd;
  // the inputs x and weight
  return record(op, y, [x, weight, bias], (g) => {
    // An input that needs no gradient gets a scratch target, released at once
    // (later dispatches are ordered after this one, so reuse is safe).
    const scratch: Tensor[] = [];
    const target = (t: Tensor, shape: readonly number[]) => {
      if (t.requiresGrad) return gradOf(t);
      const s = empty(gpu, shape);
      scratch.push(s);
      return s;
    };
    const partial = empty(gpu, [blocks, 2, cols]);
    scratch.push(partial);
    if (byRow) {
      // x and dy staged once serve both passes (nothing stages between them); the
      // textured kernels bind the same operands in the same order.
      const staged = textured ? stageDistinct(gpu, [x, g], 0) : null;
      const [xIn, gIn] = staged ?? [x.binding, g.binding];
      if (x.requiresGrad) {
        gpu.dispatch(
          staged ? BACKWARD_ROWS_TEX : BACKWARD_ROWS,
          params,
          [xIn, weight.binding, shift.binding, rstd.binding, gIn, gradOf(x).binding],
          rowGroups,
        );
      }
      if (weight.requiresGrad || bias.requiresGrad) {
        // The textured pass sums four columns per invocation.
        gpu.dispatch(
          staged ? BACKWARD_PARTIAL_COLS_TEX : BACKWARD_PARTIAL_COLS,
          params,
          [xIn, shift.binding, rstd.binding, gIn, partial.binding],
          [Math.ceil(cols / (staged ? 256 : 64)), blocks],
        );
      }
    } else {gpu.dispatch(BACKWARD, params, [
        x.binding,
        weight.binding,
        shift.binding,
        rstd.binding,
        g.binding,
        target(x, x.shape).binding,
        partial.binding,
      ], grid1d(blocks));}
    if (weight.requiresGrad || bias.requiresGrad) {
      gpu.dispatch(
        BACKWARD_PARAMS,
        params,
        [partial.binding, target(weight, [cols]).binding, target(bias, [cols]).binding],
        grid1d(Math.ceil((2 * cols) / 256)),
      );
    }
    for (const s of scratch) s.dispose();
  });
}
