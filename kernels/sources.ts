/**
 * The WGSL sources, imported as text so that they ship with the module graph
 * (no file reads at run time). Add a line here when adding a kernel file.
 * @module
 */
import matmul from "./matmul.wgsl" with { type: "text" };
import reduce from "./reduce.wgsl" with { type: "text" };
import elementwise from "./elementwise.wgsl" with { type: "text" };
import softmax from "./softmax.wgsl" with { type: "text" };
import cross_entropy from "./cross_entropy.wgsl" with { type: "text" };
import mse from "./mse.wgsl" with { type: "text" };
import adamw from "./adamw.wgsl" with { type: "text" };
import tokens from "./tokens.wgsl" with { type: "text" };
import layernorm from "./layernorm.wgsl" with { type: "text" };
import patch from "./patch.wgsl" with { type: "text" };
import batchnorm from "./batchnorm.wgsl" with { type: "text" };
import attention from "./attention.wgsl" with { type: "text" };
import conv2d from "./conv2d.wgsl" with { type: "text" };
import pool from "./pool.wgsl" with { type: "text" };
import concat from "./concat.wgsl" with { type: "text" };
import activation from "./activation.wgsl" with { type: "text" };

/** Kernel file name → WGSL source. */
export const KERNEL_SOURCES = {
  "matmul.wgsl": matmul,
  "reduce.wgsl": reduce,
  "elementwise.wgsl": elementwise,
  "softmax.wgsl": softmax,
  "cross_entropy.wgsl": cross_entropy,
  "mse.wgsl": mse,
  "adamw.wgsl": adamw,
  "tokens.wgsl": tokens,
  "layernorm.wgsl": layernorm,
  "patch.wgsl": patch,
  "batchnorm.wgsl": batchnorm,
  "attention.wgsl": attention,
  "conv2d.wgsl": conv2d,
  "pool.wgsl": pool,
  "concat.wgsl": concat,
  "activation.wgsl": activation,
} as const;
