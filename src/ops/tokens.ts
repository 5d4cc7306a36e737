/**
 * Token moves over kernels/tokens.wgsl: append a learned token to every
 * sequence (the class token, last as in the paper's code) and slice a range
 * of tokens (read the class token back, drop it from the decoder output).
 *
 * Derivatives: appending routes dy[:, :T] to x and sums dy[:, T] over the
 * batch into the token; slicing scatters dy back into its range.
 * @module
 */

import { KERNEL_SOURCES } from "../../kernels/sources.ts";
import type { KernelSpec, ParamLayout } from "../gpu/device.ts";
import { gradOf, record } from "../tape.ts";
import { empty, type Tensor } from "../tensor.ts";
import { dtypeIs, grid1d, OpError, rankIs, sameDevice } from "./_check.ts";
import {
  appendTokenBackwardRef,
  appendTokenRef,
  concatTokensBackwardRef,
  concatTokensRef,
  sliceTokensBackwardRef,
  sliceTokensRef,
} from "../ref/tokens.ts";
import { EXACT, type OpDeclarations } from "./_op.ts";

const APPEND_PARAMS = { batch: "u32", tokens: "u32", dim: "u32" } as const;
const SLICE_PARAMS = {
  batch: "u32",
  tokens: "u32",
  dim: "u32",
  start: "u32",
  len: "u32",
  accumulate: "u32",
} as const;
const CONCAT_PARAMS = { batch: "u32", tokens: "u32", dim: "u32", len: "u32" } as const;
function spec<L extends ParamLayout>(entry: string, params: L): KernelSpec<L> {
  return { source: KERNEL_SOURCES["tokens.wgsl"], entry, params, workgroup: [256] };
}
const APPEND = spec("append_token_forward", APPEND_PARAMS);
const APPEND_BACK = spec("append_token_backward", APPEND_PARAMS);
const APPEND_BACK_TOKEN = spec("append_token_backward_token", APPEND_PARAMS);
const SLICE = spec("slice_tokens_forward", SLICE_PARAMS);
const SLICE_BACK = spec("slice_tokens_backward", SLICE_PARAMS);
const CONCAT = spec("concat_tokens_forward", CONCAT_PARAMS);

/** The token moves: kernels, f64 references and tolerances. */
export const TOKENS_OPS = {
  appendToken: {
    kind: "differentiable",
    kernels: [APPEND, APPEND_BACK, APPEND_BACK_TOKEN],
    reference: { forward: appendTokenRef, backward: appendTokenBackwardRef },
    // pure copies, and a batch-length sum for the token's gradient
    tolerance: { forward: EXACT, backward: { atol: 1e-6, rtol: 1e-6 } },
    test: "tokens_test.ts",
  },
  sliceTokens: {
    kind: "differentiable",
    kernels: [SLICE, SLICE_BACK],
    reference: { forward: sliceTokensRef, backward: sliceTokensBackwardRef },
    tolerance: { forward: EXACT, backward: EXACT },
    test: "tokens_test.ts",
  },
  concatTokens: {
    kind: "differentiable",
    // backward: accumulating slices (slice_tokens_forward, owned by sliceTokens)
    kernels: [CONCAT],
    reference: { forward: concatTokensRef, backward: concatTokensBackwardRef },
    tolerance: { forward: EXACT, backward: EXACT },
    test: "tokens_test.ts",
  },
} as const satisfies OpDeclarations;

const groups = (n: number) => grid1d(Math.ceil(n / 256));

/** (B, T, D) and a token (D) -> (B, T + 1, D) with the token last. */
export function appendToken(x: Tensor, token: Tensor): Tensor {
  const op = "appendToken";
  sameDevice(op, x, token);
  dtypeIs(op, x, "f32");
  dtypeIs(op, token, "f32");
  rankIs(op, x, 3);
  const [batch, tokens, dim] = x.shape;
  if (token.size !== dim) {
    throw new OpError(op, `token ${token.describe()} must have ${dim} values for ${x.describe()}`);
  }
  const gpu = x.gpu;
  const p = { batch, tokens, dim };
  const out = empty(gpu, [batch, tokens + 1, dim]);
  gpu.dispatch(APPEND, p, [x.binding, token.binding, out.binding], groups(out.size));
  // saves: nothing
  return record(op, out, [x, token], (g) => {
    if (x.requiresGrad) {
      gpu.dispatch(APPEND_BACK, p, [g.binding, gradOf(x).binding], groups(x.size));
    }
    if (token.requiresGrad) {
      gpu.dispatch(APPEND_BACK_TOKEN, p, [g.binding, gradOf(token).binding], groups(dim));
    }
  });
}

/** Tokens [start, start + len) of x (B, T, D) -> (B, len, D). */
export function sliceTokens(x: Tensor, start: number, len: number): Tensor {
  const op = "sliceTokens";
  sameDevice(op, x);
  dtypeIs(op, x, "f32");
  rankIs(op, x, 3);
  const [batch, tokens, dim] = x.shape;
  if (
    !(Number.isInteger(start) && Number.isInteger(len) && start >= 0 && len >= 0 &&
      start + len <= tokens)
  ) {
    throw new OpError(
      op,
      `range [${start}, ${start + len}) is outside the ${tokens} tokens of ${x.describe()}`,
    );
  }
  const gpu = x.gpu;
  const p = { batch, tokens, dim, start, len, accumulate: 0 };
  const out = empty(gpu, [batch, len, dim]);
  gpu.dispatch(SLICE, p, [x.binding, out.binding], groups(out.size));
  // saves: nothing
  return record(
    op,
    out,
    [x],
    (g) => gpu.dispatch(SLICE_BACK, p, [g.binding, gradOf(x).binding], groups(g.size)),
  );
}

/**
 * Concatenates a (B, T, D) and b (B, L, D) along the token axis -> (B, T + L, D).
 * Derivative: da = dy[:, :T], db = dy[:, T:] (accumulating slices).
 */
export function concatTokens(a: Tensor, b: Tensor): Tensor {
  const op = "concatTokens";
  sameDevice(op, a, b);
  dtypeIs(op, a, "f32");
  dtypeIs(op, b, "f32");
  rankIs(op, a, 3);
  rankIs(op, b, 3);
  const [batch, tokens, dim] = a.shape;
  if (b.shape[0] !== batch || b.shape[2] !== dim) {
    throw new OpError(op, `${a.describe()} and ${b.describe()} differ in batch or token width`);
  }
  const len = b.shape[1];
  const gpu = a.gpu;
  const out = empty(gpu, [batch, tokens + len, dim]);
  const p = { batch, tokens, dim, len };
  gpu.dispatch(CONCAT, p, [a.binding, b.binding, out.binding], groups(out.size));
  // saves: nothing
  return record(op, out, [a, b], (g) => {
    const total = tokens + len;
    if (a.requiresGrad) {
      const q = { batch, tokens: total, dim, start: 0, len: tokens, accumulate: 1 };
      gpu.dispatch(SLICE, q, [g.binding, gradOf(a).binding], groups(a.size));
    }
    if (b.requiresGrad) {
      const q = { batch, tokens: total, dim, start: tokens, len, accumulate: 1 };
      gpu.dispatch(SLICE, q, [g.binding, gradOf(b).binding], groups(b.size));
    }
  });
}
