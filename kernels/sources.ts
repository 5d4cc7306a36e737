/**
 * The WGSL sources, imported as text so that they ship with the module graph
 * (no file reads at run time). Add a line here when adding a kernel file;
 * an op's KernelSpecs take their `source` from {@link KERNEL_SOURCES}.
 * A line `//#include NAME` pastes a shared snippet (WGSL has no includes).
 * @module
 */
import workgroupReduce from "./_workgroup_reduce.wgsl" with { type: "text" };
import matmulBlocks from "./_matmul_blocks.wgsl" with { type: "text" };
import stagedTexel from "./_staged_texel.wgsl" with { type: "text" };
import matmul from "./matmul.wgsl" with { type: "text" };
import matmul_tex from "./matmul_tex.wgsl" with { type: "text" };
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
import attention_heads from "./attention_heads.wgsl" with { type: "text" };
import conv2d from "./conv2d.wgsl" with { type: "text" };
import im2col from "./im2col.wgsl" with { type: "text" };
import max_pool2d from "./max_pool2d.wgsl" with { type: "text" };
import concat_channels from "./concat_channels.wgsl" with { type: "text" };
import sigmoid from "./sigmoid.wgsl" with { type: "text" };
import ema from "./ema.wgsl" with { type: "text" };
import l2_normalize from "./l2_normalize.wgsl" with { type: "text" };
import soft_cross_entropy from "./soft_cross_entropy.wgsl" with { type: "text" };
import clip_grad_norm from "./clip_grad_norm.wgsl" with { type: "text" };

const SNIPPETS: Record<string, string> = {
  "_workgroup_reduce.wgsl": workgroupReduce,
  "_matmul_blocks.wgsl": matmulBlocks,
  "_staged_texel.wgsl": stagedTexel,
};

/** Replaces each `//#include NAME` line with that snippet (throws naming an unknown one). */
export function withIncludes(source: string): string {
  return source.replace(/^\/\/#include (\S+)$/gm, (_, name: string) => {
    const snippet = SNIPPETS[name];
    if (snippet === undefined) throw new Error(`unknown WGSL include '${name}'`);
    return snippet;
  });
}

/** Kernel file name → WGSL source (includes resolved). */
export const KERNEL_SOURCES = {
  "matmul.wgsl": withIncludes(matmul),
  "matmul_tex.wgsl": withIncludes(matmul_tex),
  "reduce.wgsl": withIncludes(reduce),
  "elementwise.wgsl": withIncludes(elementwise),
  "softmax.wgsl": withIncludes(softmax),
  "cross_entropy.wgsl": withIncludes(cross_entropy),
  "mse.wgsl": withIncludes(mse),
  "adamw.wgsl": withIncludes(adamw),
  "tokens.wgsl": withIncludes(tokens),
  "layernorm.wgsl": withIncludes(layernorm),
  "patch.wgsl": withIncludes(patch),
  "batchnorm.wgsl": withIncludes(batchnorm),
  "attention.wgsl": withIncludes(attention),
  "attention_heads.wgsl": withIncludes(attention_heads),
  "conv2d.wgsl": withIncludes(conv2d),
  "im2col.wgsl": withIncludes(im2col),
  "max_pool2d.wgsl": withIncludes(max_pool2d),
  "concat_channels.wgsl": withIncludes(concat_channels),
  "sigmoid.wgsl": withIncludes(sigmoid),
  "ema.wgsl": withIncludes(ema),
  "l2_normalize.wgsl": withIncludes(l2_normalize),
  "soft_cross_entropy.wgsl": withIncludes(soft_cross_entropy),
  "clip_grad_norm.wgsl": withIncludes(clip_grad_norm),
} as const;
