/**
 * The op registry: for every op, its WGSL file and entry points, its
 * independent f64 CPU references (forward and backward) and the tolerances
 * its GPU results are held to. The mapped type makes `deno check` refuse an
 * op without any of these; tests/ops/registry_test.ts checks that every
 * entry point of every kernel file is claimed by exactly one op.
 *
 * Tolerances are |gpu - ref| <= atol + rtol * |ref| per element, chosen from
 * f32 rounding of the op's arithmetic (k-term sums grow like sqrt(k) eps).
 * @module
 */

import type { KERNEL_SOURCES } from "../../kernels/sources.ts";
import { adamwRef } from "../ref/adamw.ts";
import {
  appendTokenBackwardRef,
  appendTokenRef,
  concatTokensBackwardRef,
  concatTokensRef,
  sliceTokensBackwardRef,
  sliceTokensRef,
} from "../ref/tokens.ts";
import { layerNormBackwardRef, layerNormRef } from "../ref/layernorm.ts";
import { batchNormBackwardRef, batchNormRef } from "../ref/batchnorm.ts";
import {
  gatherTokensBackwardRef,
  gatherTokensRef,
  maskFromBooleanRef,
  patchifyRef,
  randomMaskingRef,
  unpatchifyRef,
  unshuffleTokensBackwardRef,
  unshuffleTokensRef,
} from "../ref/patch.ts";
import { attentionBackwardRef, attentionRef } from "../ref/attention.ts";
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
import {
  crossEntropyRowsBackwardRef,
  crossEntropyRowsRef,
  mseBackwardRef,
  mseRef,
} from "../ref/loss.ts";
import { matmulBackwardRef, matmulRef } from "../ref/matmul.ts";
import { sumAxisBackwardRef, sumAxisRef } from "../ref/reduce.ts";
import { softmaxBackwardRef, softmaxRef } from "../ref/softmax.ts";
import {
  concatChannelsBackwardRef,
  concatChannelsRef,
  conv2dBackwardRef,
  conv2dRef,
  maxPool2dBackwardRef,
  maxPool2dRef,
  sigmoidBackwardRef,
  sigmoidRef,
} from "../ref/conv.ts";
import {
  centerUpdateRef,
  clipGradNormRef,
  emaRef,
  l2NormalizeBackwardRef,
  l2NormalizeRef,
  softCrossEntropyBackwardRef,
  softCrossEntropyRef,
} from "../ref/dino.ts";

/** Element-wise closeness bound: |gpu - ref| <= atol + rtol * |ref|. */
export interface Tolerance {
  atol: number;
  rtol: number;
}

/** Everything the audit needs to know about one op. */
export interface OpAudit<F, B> {
  /** The WGSL file under kernels/. */
  kernel: keyof typeof KERNEL_SOURCES;
  /** Its entry points that this op launches (forward and backward). */
  entries: readonly string[];
  /** f64 plain-loop references, written independently of the WGSL. */
  reference: { forward: F; backward: B };
  tolerance: { forward: Tolerance; backward: Tolerance };
}

/** Names of the registered ops. */
export type OpName =
  | "matmul"
  | "sum"
  | "add"
  | "mul"
  | "biasAdd"
  | "relu"
  | "gelu"
  | "dropout"
  | "softmax"
  | "crossEntropy"
  | "mse"
  | "adamw"
  | "appendToken"
  | "sliceTokens"
  | "concatTokens"
  | "layerNorm"
  | "batchNorm1d"
  | "patchify"
  | "unpatchify"
  | "randomMasking"
  | "gatherTokens"
  | "unshuffleTokens"
  | "attention"
  | "conv2d"
  | "maxPool2d"
  | "concatChannels"
  | "sigmoid"
  // DINO (issue 8)
  | "ema"
  | "l2Normalize"
  | "softCrossEntropy"
  | "clipGradNorm";

/** Reference signatures per op (the type that makes a missing rule an error). */
export interface OpReferences {
  matmul: [typeof matmulRef, typeof matmulBackwardRef];
  sum: [typeof sumAxisRef, typeof sumAxisBackwardRef];
  add: [typeof axpbyRef, typeof axpbyRef];
  mul: [typeof mulRef, typeof mulRef];
  biasAdd: [typeof biasAddRef, typeof biasAddBackwardRef];
  relu: [typeof reluRef, typeof reluBackwardRef];
  gelu: [typeof geluRef, typeof geluBackwardRef];
  dropout: [typeof dropoutRef, typeof dropoutRef];
  softmax: [typeof softmaxRef, typeof softmaxBackwardRef];
  crossEntropy: [typeof crossEntropyRowsRef, typeof crossEntropyRowsBackwardRef];
  mse: [typeof mseRef, typeof mseBackwardRef];
  adamw: [typeof adamwRef, typeof adamwRef];
  appendToken: [typeof appendTokenRef, typeof appendTokenBackwardRef];
  sliceTokens: [typeof sliceTokensRef, typeof sliceTokensBackwardRef];
  concatTokens: [typeof concatTokensRef, typeof concatTokensBackwardRef];
  layerNorm: [typeof layerNormRef, typeof layerNormBackwardRef];
  batchNorm1d: [typeof batchNormRef, typeof batchNormBackwardRef];
  patchify: [typeof patchifyRef, typeof unpatchifyRef];
  unpatchify: [typeof unpatchifyRef, typeof patchifyRef];
  randomMasking: [typeof randomMaskingRef, typeof maskFromBooleanRef];
  gatherTokens: [typeof gatherTokensRef, typeof gatherTokensBackwardRef];
  unshuffleTokens: [typeof unshuffleTokensRef, typeof unshuffleTokensBackwardRef];
  attention: [typeof attentionRef, typeof attentionBackwardRef];
  conv2d: [typeof conv2dRef, typeof conv2dBackwardRef];
  maxPool2d: [typeof maxPool2dRef, typeof maxPool2dBackwardRef];
  concatChannels: [typeof concatChannelsRef, typeof concatChannelsBackwardRef];
  sigmoid: [typeof sigmoidRef, typeof sigmoidBackwardRef];
  // DINO (issue 8)
  ema: [typeof emaRef, typeof centerUpdateRef];
  l2Normalize: [typeof l2NormalizeRef, typeof l2NormalizeBackwardRef];
  softCrossEntropy: [typeof softCrossEntropyRef, typeof softCrossEntropyBackwardRef];
  clipGradNorm: [typeof clipGradNormRef, typeof clipGradNormRef];
}

const exact: Tolerance = { atol: 0, rtol: 0 };
const pointwise: Tolerance = { atol: 1e-6, rtol: 1e-5 };

/** The registry. */
export const OPS: { [P in OpName]: OpAudit<OpReferences[P][0], OpReferences[P][1]> } = {
  matmul: {
    kernel: "matmul.wgsl",
    entries: ["matmul_forward", "matmul_vec4"],
    reference: { forward: matmulRef, backward: matmulBackwardRef },
    // k up to ~1000 terms of |x| <= 1: sum error ~ sqrt(k) * 6e-8 * k
    tolerance: { forward: { atol: 1e-4, rtol: 1e-4 }, backward: { atol: 2e-4, rtol: 1e-4 } },
  },
  sum: {
    kernel: "reduce.wgsl",
    entries: ["sum_axis_forward", "sum_axis_wide_forward", "sum_axis_backward"],
    reference: { forward: sumAxisRef, backward: sumAxisBackwardRef },
    tolerance: { forward: { atol: 1e-5, rtol: 1e-5 }, backward: pointwise },
  },
  add: {
    kernel: "elementwise.wgsl",
    entries: ["axpby_forward", "axpy_backward", "scale_forward"],
    // Backward of add/sub/scale is the same axpby rule with alpha = d/dx.
    reference: { forward: axpbyRef, backward: axpbyRef },
    tolerance: { forward: pointwise, backward: pointwise },
  },
  mul: {
    kernel: "elementwise.wgsl",
    entries: ["mul_forward", "mul_backward"],
    reference: { forward: mulRef, backward: mulRef },
    tolerance: { forward: pointwise, backward: pointwise },
  },
  biasAdd: {
    kernel: "elementwise.wgsl",
    entries: ["bias_add_forward"],
    reference: { forward: biasAddRef, backward: biasAddBackwardRef },
    tolerance: { forward: pointwise, backward: { atol: 1e-5, rtol: 1e-5 } },
  },
  relu: {
    kernel: "elementwise.wgsl",
    entries: ["relu_forward", "relu_backward"],
    reference: { forward: reluRef, backward: reluBackwardRef },
    tolerance: { forward: exact, backward: exact },
  },
  gelu: {
    kernel: "elementwise.wgsl",
    entries: ["gelu_forward", "gelu_backward"],
    reference: { forward: geluRef, backward: geluBackwardRef },
    // tanh in WGSL is allowed a few ulp more than correctly rounded
    tolerance: { forward: { atol: 2e-6, rtol: 2e-5 }, backward: { atol: 5e-6, rtol: 5e-5 } },
  },
  dropout: {
    kernel: "elementwise.wgsl",
    entries: ["dropout_forward", "dropout_backward"],
    // The mask is integer arithmetic and must agree exactly; kept values are x / (1 - p).
    reference: { forward: dropoutRef, backward: dropoutRef },
    tolerance: { forward: pointwise, backward: pointwise },
  },
  softmax: {
    kernel: "softmax.wgsl",
    entries: ["softmax_forward", "softmax_backward"],
    reference: { forward: softmaxRef, backward: softmaxBackwardRef },
    tolerance: { forward: { atol: 1e-6, rtol: 1e-5 }, backward: { atol: 2e-6, rtol: 1e-4 } },
  },
  crossEntropy: {
    kernel: "cross_entropy.wgsl",
    entries: ["cross_entropy_forward", "cross_entropy_backward"],
    reference: { forward: crossEntropyRowsRef, backward: crossEntropyRowsBackwardRef },
    tolerance: { forward: { atol: 1e-5, rtol: 1e-5 }, backward: { atol: 1e-6, rtol: 1e-4 } },
  },
  mse: {
    kernel: "mse.wgsl",
    entries: ["mse_forward", "mse_backward"],
    reference: { forward: mseRef, backward: mseBackwardRef },
    tolerance: { forward: { atol: 1e-6, rtol: 1e-5 }, backward: { atol: 1e-7, rtol: 1e-5 } },
  },
  appendToken: {
    kernel: "tokens.wgsl",
    entries: ["append_token_forward", "append_token_backward", "append_token_backward_token"],
    reference: { forward: appendTokenRef, backward: appendTokenBackwardRef },
    // pure copies, and a batch-length sum for the token's gradient
    tolerance: { forward: exact, backward: { atol: 1e-6, rtol: 1e-6 } },
  },
  sliceTokens: {
    kernel: "tokens.wgsl",
    entries: ["slice_tokens_forward", "slice_tokens_backward"],
    reference: { forward: sliceTokensRef, backward: sliceTokensBackwardRef },
    tolerance: { forward: exact, backward: exact },
  },
  concatTokens: {
    kernel: "tokens.wgsl",
    // backward: accumulating slices (slice_tokens_forward, claimed by sliceTokens)
    entries: ["concat_tokens_forward"],
    reference: { forward: concatTokensRef, backward: concatTokensBackwardRef },
    tolerance: { forward: exact, backward: exact },
  },
  adamw: {
    kernel: "adamw.wgsl",
    entries: ["adamw_step"],
    // The update has no backward; its "backward" slot audits the moments.
    reference: { forward: adamwRef, backward: adamwRef },
    tolerance: { forward: { atol: 1e-6, rtol: 1e-5 }, backward: { atol: 1e-7, rtol: 1e-5 } },
  },
  attention: {
    kernel: "attention.wgsl",
    entries: ["attention_forward", "attention_backward_query", "attention_backward_key"],
    reference: { forward: attentionRef, backward: attentionBackwardRef },
    // Unit-scale inputs, T <= 257: a convex combination of v after dh-term dots, measured
    // <= 2.1e-7 (forward) and 1.5e-7 (backward); large logits get a wider bound in the test.
    tolerance: { forward: { atol: 1e-6, rtol: 1e-5 }, backward: { atol: 1e-6, rtol: 1e-5 } },
  },
  layerNorm: {
    kernel: "layernorm.wgsl",
    entries: ["layernorm_forward", "layernorm_backward", "layernorm_backward_params"],
    reference: { forward: layerNormRef, backward: layerNormBackwardRef },
    // y is O(1) whatever the input scale: mean/var sums of ~256 terms plus
    // inverseSqrt (2 ulp) give ~1e-6 relative; dweight/dbias sum up to ~33k rows
    // of O(1) terms (error ~ sqrt(rows) eps |sum|), hence the looser backward atol.
    tolerance: { forward: { atol: 1e-5, rtol: 1e-5 }, backward: { atol: 1e-4, rtol: 1e-4 } },
  },
  batchNorm1d: {
    kernel: "batchnorm.wgsl",
    entries: ["batchnorm_stats", "batchnorm_forward", "batchnorm_backward"],
    reference: { forward: batchNormRef, backward: batchNormBackwardRef },
    // Like layerNorm: y and the running stats are O(1) results of N-term sums
    // (N ~ 128); dx adds two N-term means.
    tolerance: { forward: { atol: 1e-5, rtol: 1e-5 }, backward: { atol: 1e-5, rtol: 1e-4 } },
  },
  // Patches and the patch shuffle move values without arithmetic: results must
  // be bit-exact, except the mask token's gradient, a sum over masked positions.
  patchify: {
    kernel: "patch.wgsl",
    entries: ["patchify_forward", "patchify_backward"],
    // The derivative of a permutation is its inverse: the backward is unpatchify of dy.
    reference: { forward: patchifyRef, backward: unpatchifyRef },
    tolerance: { forward: exact, backward: exact },
  },
  unpatchify: {
    kernel: "patch.wgsl",
    entries: ["unpatchify_forward", "unpatchify_backward"],
    reference: { forward: unpatchifyRef, backward: patchifyRef },
    tolerance: { forward: exact, backward: exact },
  },
  randomMasking: {
    kernel: "patch.wgsl",
    entries: ["random_masking_forward", "mask_from_boolean_forward"],
    // Indices have no gradient; the backward slot audits the mask-driven variant.
    reference: { forward: randomMaskingRef, backward: maskFromBooleanRef },
    tolerance: { forward: exact, backward: exact },
  },
  gatherTokens: {
    kernel: "patch.wgsl",
    entries: ["gather_tokens_forward", "gather_tokens_backward"],
    reference: { forward: gatherTokensRef, backward: gatherTokensBackwardRef },
    tolerance: { forward: exact, backward: exact },
  },
  unshuffleTokens: {
    kernel: "patch.wgsl",
    entries: [
      "unshuffle_tokens_forward",
      "unshuffle_tokens_backward",
      "unshuffle_tokens_backward_token",
    ],
    reference: { forward: unshuffleTokensRef, backward: unshuffleTokensBackwardRef },
    // dmaskToken sums up to B (T - K) ~ 25k terms of |dy| <= 1.
    tolerance: { forward: exact, backward: { atol: 1e-4, rtol: 1e-5 } },
  },
  conv2d: {
    kernel: "conv2d.wgsl",
    entries: [
      "conv2d_forward",
      "conv2d_backward_input",
      "conv2d_backward_input_direct",
      "conv2d_backward_weight",
      "conv2d_backward_weight_reduce",
      "conv2d_backward_bias",
    ],
    reference: { forward: conv2dRef, backward: conv2dBackwardRef },
    // Forward sums c*kh*kw (<= ~1200) products of |v| <= 1, like matmul; the
    // weight gradient sums n*ho*wo (a few thousand in the tests) in split chunks.
    tolerance: { forward: { atol: 1e-4, rtol: 1e-4 }, backward: { atol: 2e-4, rtol: 2e-4 } },
  },
  maxPool2d: {
    kernel: "pool.wgsl",
    entries: ["maxpool_forward", "maxpool_backward"],
    reference: { forward: maxPool2dRef, backward: maxPool2dBackwardRef },
    // Selection, and at most kernel^2 copies of dy summed in a fixed order.
    tolerance: { forward: exact, backward: pointwise },
  },
  concatChannels: {
    kernel: "concat.wgsl",
    entries: ["concat_forward", "concat_backward"],
    reference: { forward: concatChannelsRef, backward: concatChannelsBackwardRef },
    tolerance: { forward: exact, backward: exact },
  },
  sigmoid: {
    kernel: "activation.wgsl",
    entries: ["sigmoid_forward", "sigmoid_backward"],
    reference: { forward: sigmoidRef, backward: sigmoidBackwardRef },
    // exp in WGSL may be a few ulp off correctly rounded
    tolerance: { forward: { atol: 1e-7, rtol: 2e-6 }, backward: { atol: 1e-7, rtol: 1e-5 } },
  },
  // --- DINO (issue 8) ---
  ema: {
    kernel: "ema.wgsl",
    entries: ["ema_update", "center_update"],
    // Updates without a backward: the forward slot audits the teacher's EMA,
    // the backward slot the centre's (an EMA of a rows-term batch mean).
    reference: { forward: emaRef, backward: centerUpdateRef },
    tolerance: { forward: pointwise, backward: { atol: 1e-6, rtol: 1e-5 } },
  },
  l2Normalize: {
    kernel: "l2_normalize.wgsl",
    entries: ["l2_normalize_forward", "l2_normalize_backward"],
    reference: { forward: l2NormalizeRef, backward: l2NormalizeBackwardRef },
    // y is O(1) after a cols-term sum of squares and a sqrt; dx adds a cols-term dot.
    tolerance: { forward: { atol: 1e-6, rtol: 1e-5 }, backward: { atol: 1e-5, rtol: 1e-4 } },
  },
  softCrossEntropy: {
    kernel: "soft_cross_entropy.wgsl",
    entries: ["soft_cross_entropy_forward", "soft_cross_entropy_backward"],
    reference: { forward: softCrossEntropyRef, backward: softCrossEntropyBackwardRef },
    // Like crossEntropy, plus a cols-term weighted sum (cols up to ~1024) and
    // the 1/t scale (t down to 0.02 multiplies the backward by 50).
    tolerance: { forward: { atol: 2e-5, rtol: 2e-5 }, backward: { atol: 1e-5, rtol: 1e-4 } },
  },
  clipGradNorm: {
    kernel: "grad_clip.wgsl",
    entries: ["grad_sq_partial", "grad_clip_factor", "grad_clip_apply"],
    // An update, no backward: both slots audit the clipped gradient (an
    // n-term sum of squares, then one product per element).
    reference: { forward: clipGradNormRef, backward: clipGradNormRef },
    tolerance: { forward: { atol: 1e-6, rtol: 1e-5 }, backward: { atol: 1e-6, rtol: 1e-5 } },
  },
};

/** Tolerance lookup by op name. */
export function tolerance(op: OpName, pass: "forward" | "backward"): Tolerance {
  return OPS[op].tolerance[pass];
}
