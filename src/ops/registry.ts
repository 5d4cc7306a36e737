/**
 * The op registry, gathered from the declarations that sit beside each op's
 * launcher (src/ops/<stem>.ts, shapes in _op.ts). `satisfies OpDeclarations`
 * there makes `deno check` refuse an op without its kernels, references,
 * tolerances or test; tests/ops/registry_test.ts checks that every entry
 * point of every kernel file is launched by exactly one op.
 * @module
 */

import type { OpDeclarations } from "./_op.ts";
import { ADAMW_OPS } from "./adamw.ts";
import { ATTENTION_OPS } from "./attention.ts";
import { BATCHNORM_OPS } from "./batchnorm.ts";
import { CLIP_GRAD_NORM_OPS } from "./clip_grad_norm.ts";
import { CONV_OPS } from "./conv.ts";
import { ELEMENTWISE_OPS } from "./elementwise.ts";
import { EMA_OPS } from "./ema.ts";
import { L2_NORMALIZE_OPS } from "./l2_normalize.ts";
import { LAYERNORM_OPS } from "./layernorm.ts";
import { LOSS_OPS } from "./loss.ts";
import { MATMUL_OPS } from "./matmul.ts";
import { PATCH_OPS } from "./patch.ts";
import { REDUCE_OPS } from "./reduce.ts";
import { SOFTMAX_OPS } from "./softmax.ts";
import { TOKENS_OPS } from "./tokens.ts";

export type { DifferentiableOp, ForwardOp, OpDeclaration, Tolerance, UpdateOp } from "./_op.ts";

/** Every op module's declarations, one object per module. */
export const OP_MODULES = {
  "matmul.ts": MATMUL_OPS,
  "reduce.ts": REDUCE_OPS,
  "elementwise.ts": ELEMENTWISE_OPS,
  "softmax.ts": SOFTMAX_OPS,
  "loss.ts": LOSS_OPS,
  "tokens.ts": TOKENS_OPS,
  "layernorm.ts": LAYERNORM_OPS,
  "batchnorm.ts": BATCHNORM_OPS,
  "patch.ts": PATCH_OPS,
  "attention.ts": ATTENTION_OPS,
  "conv.ts": CONV_OPS,
  "ema.ts": EMA_OPS,
  "l2_normalize.ts": L2_NORMALIZE_OPS,
  "adamw.ts": ADAMW_OPS,
  "clip_grad_norm.ts": CLIP_GRAD_NORM_OPS,
} as const;

type Modules = typeof OP_MODULES;
type Union<T> = T[keyof T];
/** Every declaration by op name, as one object type (the mapped registry type). */
type Merged = {
  [N in Union<{ [M in keyof Modules]: keyof Modules[M] }>]: Extract<
    Union<{ [M in keyof Modules]: Modules[M] }>,
    Record<N, unknown>
  >[N];
};

/** Names of the registered ops. */
export type OpName = keyof Merged;

/** The registry: every op's declaration by name (an op declared twice throws here). */
export const OPS: Merged = mergeDeclarations(OP_MODULES);

function mergeDeclarations(modules: Record<string, OpDeclarations>): Merged {
  const all: Record<string, unknown> = {};
  for (const [file, ops] of Object.entries(modules)) {
    for (const [name, op] of Object.entries(ops)) {
      if (name in all) throw new Error(`op '${name}' is declared twice (again in src/ops/${file})`);
      all[name] = op;
    }
  }
  return all as Merged;
}
