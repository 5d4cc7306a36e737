/**
 * BatchNorm1d without affine parameters (the paper's classification head),
 * over kernels/batchnorm.wgsl, with PyTorch's semantics: training mode
 * normalizes with the batch mean and biased variance and updates the running
 * statistics (unbiased variance) in place; eval mode uses the running ones.
 *
 * Derivative, per channel with xhat = (x - mean) rstd:
 *   training: dx = rstd (dy - mean_n(dy) - xhat mean_n(dy xhat))
 *   eval:     dx = dy rstd, rstd = 1 / sqrt(running_var + eps) at forward time.
 *
 * @module
 */

import { KERNEL_SOURCES } from "../../kernels/sources.ts";
import type { KernelSpec } from "../gpu/device.ts";
import { gradOf, record } from "../tape.ts";
import { empty, type Tensor } from "../tensor.ts";
import { dtypeIs, grid1d, OpError, rankIs, sameDevice } from "./_check.ts";
import { batchNormBackwardRef, batchNormRef } from "../ref/batchnorm.ts";
import type { OpDeclarations } from "./_op.ts";

const PARAMS = {
  n: "u32",
  channels: "u32",
  training: "u32",
  momentum: "f32",
  eps: "f32",
} as const;
const STATS = {
  source: KERNEL_SOURCES["batchnorm.wgsl"],
  entry: "batchnorm_stats",
  params: PARAMS,
  workgroup: [64],
} as const satisfies KernelSpec<typeof PARAMS>;
const FORWARD = { ...STATS, entry: "batchnorm_forward", workgroup: [256] } as const;
const BACKWARD = { ...STATS, entry: "batchnorm_backward" } as const;

/** BatchNorm1d: kernels, f64 references and tolerances. */
export const BATCHNORM_OPS = {
  batchNorm1d: {
    kind: "differentiable",
    kernels: [STATS, FORWARD, BACKWARD],
    reference: { forward: batchNormRef, backward: batchNormBackwardRef },
    // Like layerNorm: y and the running stats are O(1) results of N-term sums
    // (N ~ 128); dx adds two N-term means.
    tolerance: { forward: { atol: 1e-5, rtol: 1e-5 }, backward: { atol: 1e-5, rtol: 1e-4 } },
    test: "batchnorm_test.ts",
  },
} as const satisfies OpDeclarations;

/** The running statistics a BatchNorm1d layer owns: (C) f32 tensors, updated in place. */
export interface BatchNormState {
  runningMean: Tensor;
  runningVar: Tensor;
}

/**
 * BatchNorm1d of `x` (N, C) without affine. In `training` mode it needs
 * N > 1 (as PyTorch) and updates `state` in place (recorded on the GPU
 * queue, ordered with everything else): running = (1 - momentum) running +
 * momentum batch, with the unbiased batch variance for runningVar.
 */
export function batchNorm1d(
  x: Tensor,
  state: BatchNormState,
  training: boolean,
  momentum = 0.1,
  eps = 1e-5,
): Tensor {
  const op = "batchNorm1d";
  const { runningMean, runningVar } = state;
  sameDevice(op, x, runningMean, runningVar);
  for (const t of [x, runningMean, runningVar]) dtypeIs(op, t, "f32");
  rankIs(op, x, 2);
  const [n, channels] = x.shape;
  for (const t of [runningMean, runningVar]) {
    if (t.shape.length !== 1 || t.shape[0] !== channels) {
      throw new OpError(op, `running statistic ${t.describe()} must have shape [${channels}]`);
    }
  }
  if (training && n <= 1) {
    throw new OpError(
      op,
      `expected more than 1 value per channel when training, got input ${x.describe()}`,
    );
  }
  if (!(eps > 0)) throw new OpError(op, `eps must be positive, got ${eps}`);
  if (!(momentum >= 0 && momentum <= 1)) {
    throw new OpError(op, `momentum ${momentum} is not in [0, 1]`);
  }
  if (channels > 65535) throw new OpError(op, `${x.describe()}: at most 65535 channels`);
  if (n > 64 * 65535) throw new OpError(op, `${x.describe()}: at most ${64 * 65535} rows`);
  const params = { n, channels, training: training ? 1 : 0, momentum, eps };
  const gpu = x.gpu;
  const mean = empty(gpu, [channels]);
  const rstd = empty(gpu, [channels]);
  gpu.dispatch(
    STATS,
    params,
    [x.binding, runningMean.binding, runningVar.binding, mean.binding, rstd.binding],
    [channels],
  );
  const y = empty(gpu, x.shape);
  gpu.dispatch(
    FORWARD,
    params,
    [x.binding, mean.binding, rstd.binding, y.binding],
    grid1d(Math.ceil(x.size / 256)),
  );
  // saves: mean and rstd per channel (batch or running, as used), and x
  return record(op, y, [x], (g) => {
    gpu.dispatch(
      BACKWARD,
      params,
      [x.binding, mean.binding, rstd.binding, g.binding, gradOf(x).binding],
      [channels],
    );
  });
}
