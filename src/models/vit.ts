/**
 * ViT-Lite (Hassani et al.) as the paper uses it: patch embedding by a linear
 * map of each p x p patch, fixed sinusoidal 1-D positions, pre-norm
 * transformer blocks with ReLU MLPs and dropout, a class token appended last
 * (the paper's code), and a final LayerNorm. ViT-Lite-7/4 is
 * {@link VIT_LITE_7_4}; smaller variants are just other configs.
 *
 * Dropout sites (rate `dropout`): after adding positions, after the attention
 * projection, after the MLP's hidden activation and after its output. The
 * fused attention kernel has no dropout on the attention weights.
 * @module
 */

import { attention } from "../ops/attention.ts";
import { add, biasAdd, relu } from "../ops/elementwise.ts";
import { layerNorm } from "../ops/layernorm.ts";
import { patchify } from "../ops/patch.ts";
import { sinusoidalPositions } from "../ops/posenc.ts";
import { appendToken } from "../ops/tokens.ts";
import { type DropoutContext, linear, type SpecList } from "../nn.ts";
import type { ParamStore } from "../params.ts";
import type { Rng } from "../rng.ts";
import { type Tensor, tensor } from "../tensor.ts";
import type { Gpu } from "../gpu/device.ts";

/** Shape of a ViT encoder. */
export interface VitConfig {
  /** Square input size in pixels (64 for Tiny ImageNet, 28 for Fashion-MNIST). */
  imageSize: number;
  channels: number;
  patch: number;
  width: number;
  depth: number;
  heads: number;
  /** Hidden width of each block's MLP. */
  mlp: number;
  dropout: number;
}

/** ViT-Lite-7/4 for 64x64 RGB: 256 patches of 48 values, width 256, 7 blocks. */
export const VIT_LITE_7_4: VitConfig = {
  imageSize: 64,
  channels: 3,
  patch: 4,
  width: 256,
  depth: 7,
  heads: 4,
  mlp: 512,
  dropout: 0.1,
};

/** Patches per image and values per patch. */
export function patchGeometry(c: VitConfig): { tokens: number; patchDim: number } {
  if (c.imageSize % c.patch !== 0) {
    throw new Error(`image ${c.imageSize} is not a multiple of patch ${c.patch}`);
  }
  const side = c.imageSize / c.patch;
  return { tokens: side * side, patchDim: c.patch * c.patch * c.channels };
}

/** Declares one pre-norm block's parameters under `prefix`. */
export function blockSpecs(
  list: SpecList,
  prefix: string,
  width: number,
  mlp: number,
  rng: Rng,
): void {
  list.layerNorm(`${prefix}.ln1`, width);
  // CCT's attention has no qkv bias; the output projection has one.
  list.linear(`${prefix}.qkv`, width, 3 * width, rng, false);
  list.linear(`${prefix}.proj`, width, width, rng);
  list.layerNorm(`${prefix}.ln2`, width);
  list.linear(`${prefix}.fc1`, width, mlp, rng);
  list.linear(`${prefix}.fc2`, mlp, width, rng);
}

/** Declares the encoder's parameters under `prefix` ("encoder"). */
export function vitSpecs(list: SpecList, c: VitConfig, rng: Rng, prefix = "encoder"): void {
  const { patchDim } = patchGeometry(c);
  list.linear(`${prefix}.embed`, patchDim, c.width, rng);
  list.token(`${prefix}.cls`, c.width, rng);
  for (let i = 0; i < c.depth; i++) blockSpecs(list, `${prefix}.blocks.${i}`, c.width, c.mlp, rng);
  list.layerNorm(`${prefix}.norm`, c.width);
}

/** The parameter count of a {@link VitConfig} by the architecture's formula. */
export function vitParamCount(c: VitConfig): number {
  const { patchDim } = patchGeometry(c);
  const w = c.width;
  const block = 2 * w + 3 * w * w + (w * w + w) + 2 * w + (w * c.mlp + c.mlp) + (c.mlp * w + w);
  return patchDim * w + w + w + c.depth * block + 2 * w;
}

/** One pre-norm transformer block: x + drop(proj(attn(ln1 x))), then x + drop(mlp(ln2 x)). */
export function block(
  p: ParamStore,
  prefix: string,
  x: Tensor,
  heads: number,
  drop: DropoutContext,
): Tensor {
  const g = (n: string) => p.get(`${prefix}.${n}`);
  const h = layerNorm(x, g("ln1.w"), g("ln1.b"));
  const a = linear(attention(linear(h, g("qkv.w")), heads), g("proj.w"), g("proj.b"));
  x = add(x, drop.apply(a));
  const m = layerNorm(x, g("ln2.w"), g("ln2.b"));
  const f = linear(drop.apply(relu(linear(m, g("fc1.w"), g("fc1.b")))), g("fc2.w"), g("fc2.b"));
  return add(x, drop.apply(f));
}

/** Fixed sinusoidal positions (tokens, width), uploaded once per model. */
export function positionTensor(gpu: Gpu, tokens: number, width: number): Tensor {
  return tensor(gpu, sinusoidalPositions(tokens, width), [tokens * width]);
}

/** Embeds patches (B, T, patchDim) and adds positions: (B, T, width). */
export function embedPatches(
  p: ParamStore,
  prefix: string,
  patches: Tensor,
  positions: Tensor,
): Tensor {
  const [B, T] = patches.shape;
  const e = linear(patches, p.get(`${prefix}.embed.w`), p.get(`${prefix}.embed.b`));
  return biasAdd(e.reshape([B, T * e.shape[2]]), positions).reshape(e.shape);
}

/**
 * Runs the encoder on embedded tokens (B, T', width) (all patches, or the
 * kept ones for MAE): appends the class token, applies the blocks and the
 * final norm. Returns (B, T' + 1, width) with the class token last.
 */
export function encodeTokens(
  p: ParamStore,
  c: VitConfig,
  tokens: Tensor,
  drop: DropoutContext,
  prefix = "encoder",
) {
  let x = appendToken(drop.apply(tokens), p.get(`${prefix}.cls`));
  for (let i = 0; i < c.depth; i++) x = block(p, `${prefix}.blocks.${i}`, x, c.heads, drop);
  return layerNorm(x, p.get(`${prefix}.norm.w`), p.get(`${prefix}.norm.b`));
}

/** Images (B, C, H, W) -> patches (B, T, patchDim) for this config. */
export function imagePatches(c: VitConfig, images: Tensor): Tensor {
  const [, C, H, W] = images.shape;
  if (C !== c.channels || H !== c.imageSize || W !== c.imageSize) {
    throw new Error(
      `images ${images.describe()} do not match the model (${c.channels}x${c.imageSize}x${c.imageSize})`,
    );
  }
  return patchify(images, c.patch);
}
