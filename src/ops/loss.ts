/**
 * Losses: softmax cross-entropy with integer labels (kernels/cross_entropy.wgsl),
 * with a soft target and a temperature (kernels/soft_cross_entropy.wgsl, DINO)
 * and mean-squared error with an optional per-row mask (kernels/mse.wgsl).
 * @module
 */

import { KERNEL_SOURCES } from "../../kernels/sources.ts";
import type { KernelSpec } from "../gpu/device.ts";
import { gradOf, record } from "../tape.ts";
import { empty, type Tensor } from "../tensor.ts";
import { dtypeIs, grid1d, OpError, sameDevice, sameShape } from "./_check.ts";
import { meanAll } from "./reduce.ts";
import {
  crossEntropyRowsBackwardRef,
  crossEntropyRowsRef,
  mseBackwardRef,
  mseRef,
  softCrossEntropyBackwardRef,
  softCrossEntropyRef,
} from "../ref/loss.ts";
import type { OpDeclarations } from "./_op.ts";

const CE_PARAMS = { rows: "u32", cols: "u32" } as const;
const CE_FORWARD = {
  source: KERNEL_SOURCES["cross_entropy.wgsl"],
  entry: "cross_entropy_forward",
  params: CE_PARAMS,
  workgroup: [64],
} as const satisfies KernelSpec<typeof CE_PARAMS>;
const CE_BACKWARD = { ...CE_FORWARD, entry: "cross_entropy_backward", workgroup: [256] } as const;

/**
 * Per-row cross-entropy of `logits` (rows, classes) against `labels` (rows)
 * i32. A label outside [0, classes) yields NaN for its row.
 * Derivative: dlogits = dloss * (softmax(logits) - onehot(label)); saves the
 * per-row log-sum-exp.
 */
export function crossEntropyRows(logits: Tensor, labels: Tensor): Tensor {
  const op = "crossEntropy";
  sameDevice(op, logits, labels);
  dtypeIs(op, logits, "f32");
  dtypeIs(op, labels, "i32");
  if (logits.shape.length !== 2) {
    throw new OpError(op, `logits ${logits.describe()} must be (rows, classes)`);
  }
  const [rows, cols] = logits.shape;
  if (labels.size !== rows) {
    throw new OpError(
      op,
      `labels ${labels.describe()} must have one entry per row of ${logits.describe()}`,
    );
  }
  const gpu = logits.gpu;
  const loss = empty(gpu, [rows]);
  const lse = empty(gpu, [rows, 2]);
  gpu.dispatch(CE_FORWARD, { rows, cols }, [
    logits.binding,
    labels.binding,
    loss.binding,
    lse.binding,
  ], grid1d(rows));
  // saves: lse = (row max, log sum exp) per row, and the inputs
  return record(op, loss, [logits], (g) => {
    gpu.dispatch(
      CE_BACKWARD,
      { rows, cols },
      [logits.binding, labels.binding, lse.binding, g.binding, gradOf(logits).binding],
      grid1d(Math.ceil((rows * cols) / 256)),
    );
  });
}

/** Mean cross-entropy over the rows: the classification loss. */
export function crossEntropy(logits: Tensor, labels: Tensor): Tensor {
  return meanAll(crossEntropyRows(logits, labels));
}

const MSE_PARAMS = { rows: "u32", cols: "u32", has_mask: "u32", sign: "f32" } as const;
const MSE_FORWARD = {
  source: KERNEL_SOURCES["mse.wgsl"],
  entry: "mse_forward",
  params: MSE_PARAMS,
  workgroup: [256],
} as const satisfies KernelSpec<typeof MSE_PARAMS>;
const MSE_BACKWARD = { ...MSE_FORWARD, entry: "mse_backward" } as const;

/**
 * Mean-squared error between `pred` and `target` (..., cols), averaged over
 * columns, then over rows weighted by `mask` (rows) when given (MAE: 1 for
 * masked patches). Returns a one-element tensor; 0 when the mask is all 0.
 * Derivative: dpred = g m_r 2 (pred - target) / (cols sum m) = -dtarget.
 */
export function mse(pred: Tensor, target: Tensor, mask?: Tensor): Tensor {
  const op = "mse";
  sameDevice(op, pred, target, ...(mask ? [mask] : []));
  dtypeIs(op, pred, "f32");
  dtypeIs(op, target, "f32");
  sameShape(op, pred, target);
  const cols = pred.shape.at(-1) ?? 1;
  const rows = cols === 0 ? 0 : pred.size / cols;
  if (mask) {
    dtypeIs(op, mask, "f32");
    if (mask.size !== rows) {
      throw new OpError(
        op,
        `mask ${mask.describe()} must have one weight per row (${rows}) of ${pred.describe()}`,
      );
    }
  }
  const gpu = pred.gpu;
  const loss = empty(gpu, [1]);
  const msum = empty(gpu, [1]);
  const has_mask = mask ? 1 : 0;
  const m = mask ?? pred;
  gpu.dispatch(
    MSE_FORWARD,
    { rows, cols, has_mask, sign: 1 },
    [pred.binding, target.binding, m.binding, loss.binding, msum.binding],
    [1],
  );
  // saves: msum (and the inputs)
  return record(op, loss, [pred, target], (g) => {
    const grid = grid1d(Math.ceil((rows * cols) / 256));
    for (const [t, sign] of [[pred, 1], [target, -1]] as const) {
      if (!t.requiresGrad) continue;
      gpu.dispatch(
        MSE_BACKWARD,
        { rows, cols, has_mask, sign },
        [pred.binding, target.binding, m.binding, g.binding, msum.binding, gradOf(t).binding],
        grid,
      );
    }
  });
}

const SCE_PARAMS = { rows: "u32", cols: "u32", inv_t: "f32" } as const;
const SCE_FORWARD = {
  source: KERNEL_SOURCES["soft_cross_entropy.wgsl"],
  entry: "soft_cross_entropy_forward",
  params: SCE_PARAMS,
  workgroup: [64],
} as const satisfies KernelSpec<typeof SCE_PARAMS>;
const SCE_BACKWARD = {
  ...SCE_FORWARD,
  entry: "soft_cross_entropy_backward",
  workgroup: [256],
} as const;

/** The losses: kernels, f64 references and tolerances. */
export const LOSS_OPS = {
  crossEntropy: {
    kind: "differentiable",
    kernels: [CE_FORWARD, CE_BACKWARD],
    reference: { forward: crossEntropyRowsRef, backward: crossEntropyRowsBackwardRef },
    tolerance: { forward: { atol: 1e-5, rtol: 1e-5 }, backward: { atol: 1e-6, rtol: 1e-4 } },
    test: "loss_test.ts",
  },
  mse: {
    kind: "differentiable",
    kernels: [MSE_FORWARD, MSE_BACKWARD],
    reference: { forward: mseRef, backward: mseBackwardRef },
    tolerance: { forward: { atol: 1e-6, rtol: 1e-5 }, backward: { atol: 1e-7, rtol: 1e-5 } },
    test: "loss_test.ts",
  },
  softCrossEntropy: {
    kind: "differentiable",
    kernels: [SCE_FORWARD, SCE_BACKWARD],
    reference: { forward: softCrossEntropyRef, backward: softCrossEntropyBackwardRef },
    // Like crossEntropy, plus a cols-term weighted sum (cols up to ~1024) and
    // the 1/t scale (t down to 0.02 multiplies the backward by 50).
    tolerance: { forward: { atol: 2e-5, rtol: 2e-5 }, backward: { atol: 1e-5, rtol: 1e-4 } },
    test: "dino_ops_test.ts",
  },
} as const satisfies OpDeclarations;

/**
 * Per-row cross-entropy of `logits / temperature` (rows, cols) against the
 * soft target `target` (rows, cols): -sum_c target_c log softmax(logits / t)_c.
 * DINO's loss, and the entropy of softmax(x) when target = softmax(x), t = 1.
 * Derivative: dlogits = dloss (softmax(logits / t) sum(target) - target) / t;
 * the target gets no gradient (DINO stops it at the teacher). Saves the
 * per-row max, log-sum-exp and target sum.
 */
export function softCrossEntropyRows(logits: Tensor, target: Tensor, temperature = 1): Tensor {
  const op = "softCrossEntropy";
  sameDevice(op, logits, target);
  dtypeIs(op, logits, "f32");
  dtypeIs(op, target, "f32");
  sameShape(op, logits, target);
  if (logits.shape.length !== 2) {
    throw new OpError(op, `logits ${logits.describe()} must be (rows, classes)`);
  }
  if (!(temperature > 0)) throw new OpError(op, `temperature ${temperature} must be positive`);
  const [rows, cols] = logits.shape;
  const inv_t = 1 / temperature;
  const gpu = logits.gpu;
  const loss = empty(gpu, [rows]);
  const stats = empty(gpu, [rows, 3]);
  gpu.dispatch(SCE_FORWARD, { rows, cols, inv_t }, [
    logits.binding,
    target.binding,
    loss.binding,
    stats.binding,
  ], grid1d(rows));
  // saves: stats = (max, log sum exp, target sum) per row, and the inputs
  return record(op, loss, [logits], (g) => {
    gpu.dispatch(
      SCE_BACKWARD,
      { rows, cols, inv_t },
      [logits.binding, target.binding, stats.binding, g.binding, gradOf(logits).binding],
      grid1d(Math.ceil((rows * cols) / 256)),
    );
  });
}

/** Mean over the rows of {@link softCrossEntropyRows}. */
export function softCrossEntropy(logits: Tensor, target: Tensor, temperature = 1): Tensor {
  return meanAll(softCrossEntropyRows(logits, target, temperature));
}
