/**
 * Patches and MAE's patch shuffle, over kernels/patch.wgsl, plus BEiT's block
 * mask generator (CPU).
 *
 * - {@link patchify} / {@link unpatchify}: NCHW images <-> (B, T, p p C) patch
 *   vectors in MAE's (py, px, c) order. Each is a permutation, so the
 *   derivative of one is the other applied to the gradient.
 * - {@link randomMasking}: per-sample stable argsort of uniform noise (on the
 *   GPU, by counting smaller keys), giving {idsKeep, idsRestore, mask};
 *   {@link maskFromBoolean} gives the same for a given mask (block masking).
 * - {@link gatherTokens}: the encoder's kept tokens. Derivative: a scatter of
 *   dy back to the kept positions.
 * - {@link unshuffleTokens}: the decoder's full sequence, kept tokens back in
 *   place and the mask token elsewhere. Derivative: dencoded = dy at the kept
 *   positions; dmaskToken = the sum of dy over all masked positions.
 * - {@link blockMask}: BEiT's block-wise mask (CPU), fed to maskFromBoolean.
 *
 * @module
 */

import { KERNEL_SOURCES } from "../../kernels/sources.ts";
import type { Gpu, KernelSpec, ParamLayout } from "../gpu/device.ts";
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
import type { Rng } from "../rng.ts";
import { gradOf, record } from "../tape.ts";
import { empty, type Tensor } from "../tensor.ts";
import { dtypeIs, grid1d, OpError, rankIs, sameDevice } from "./_check.ts";
import { EXACT, type OpDeclarations } from "./_op.ts";

/** Uniform structs of kernels/patch.wgsl, one per family of entry points. */
const PATCH_GEOMETRY = {
  batch: "u32",
  channels: "u32",
  height: "u32",
  width: "u32",
  psize: "u32", // the patch side ("patch" is a reserved word in WGSL)
  tokens: "u32",
  dim: "u32",
} as const;
const MASKING = { tokens: "u32", keep: "u32" } as const;
const TOKEN_MOVE = { batch: "u32", tokens: "u32", keep: "u32", dim: "u32" } as const;
type Geometry = { [K in keyof typeof PATCH_GEOMETRY]: number };

function spec<L extends ParamLayout>(entry: string, params: L, workgroup = 256): KernelSpec<L> {
  return { source: KERNEL_SOURCES["patch.wgsl"], entry, params, workgroup: [workgroup] };
}
const PATCHIFY_FORWARD = spec("patchify_forward", PATCH_GEOMETRY);
const PATCHIFY_BACKWARD = spec("patchify_backward", PATCH_GEOMETRY);
const UNPATCHIFY_FORWARD = spec("unpatchify_forward", PATCH_GEOMETRY);
const UNPATCHIFY_BACKWARD = spec("unpatchify_backward", PATCH_GEOMETRY);
const RANDOM_MASKING = spec("random_masking_forward", MASKING);
const MASK_FROM_BOOLEAN = spec("mask_from_boolean_forward", MASKING);
const GATHER_FORWARD = spec("gather_tokens_forward", TOKEN_MOVE);
const GATHER_BACKWARD = spec("gather_tokens_backward", TOKEN_MOVE);
const UNSHUFFLE_FORWARD = spec("unshuffle_tokens_forward", TOKEN_MOVE);
const UNSHUFFLE_BACKWARD = spec("unshuffle_tokens_backward", TOKEN_MOVE);
const UNSHUFFLE_BACKWARD_TOKEN = spec("unshuffle_tokens_backward_token", TOKEN_MOVE, 64);

/**
 * Patches and the patch shuffle move values without arithmetic: results must
 * be bit-exact, except the mask token's gradient, a sum over masked positions.
 */
export const PATCH_OPS = {
  patchify: {
    kind: "differentiable",
    kernels: [PATCHIFY_FORWARD, PATCHIFY_BACKWARD],
    // The derivative of a permutation is its inverse: the backward is unpatchify of dy.
    reference: { forward: patchifyRef, backward: unpatchifyRef },
    tolerance: { forward: EXACT, backward: EXACT },
    test: "patch_test.ts",
  },
  unpatchify: {
    kind: "differentiable",
    kernels: [UNPATCHIFY_FORWARD, UNPATCHIFY_BACKWARD],
    reference: { forward: unpatchifyRef, backward: patchifyRef },
    tolerance: { forward: EXACT, backward: EXACT },
    test: "patch_test.ts",
  },
  randomMasking: {
    kind: "forward", // indices carry no gradient
    kernels: [RANDOM_MASKING],
    reference: { forward: randomMaskingRef },
    tolerance: { forward: EXACT },
    test: "patch_test.ts",
  },
  maskFromBoolean: {
    kind: "forward",
    kernels: [MASK_FROM_BOOLEAN],
    reference: { forward: maskFromBooleanRef },
    tolerance: { forward: EXACT },
    test: "patch_test.ts",
  },
  gatherTokens: {
    kind: "differentiable",
    kernels: [GATHER_FORWARD, GATHER_BACKWARD],
    reference: { forward: gatherTokensRef, backward: gatherTokensBackwardRef },
    tolerance: { forward: EXACT, backward: EXACT },
    test: "patch_test.ts",
  },
  unshuffleTokens: {
    kind: "differentiable",
    kernels: [UNSHUFFLE_FORWARD, UNSHUFFLE_BACKWARD, UNSHUFFLE_BACKWARD_TOKEN],
    reference: { forward: unshuffleTokensRef, backward: unshuffleTokensBackwardRef },
    // dmaskToken sums up to B (T - K) ~ 25k terms of |dy| <= 1.
    tolerance: { forward: EXACT, backward: { atol: 1e-4, rtol: 1e-5 } },
    test: "patch_test.ts",
  },
} as const satisfies OpDeclarations;

/** llvmpipe stops shader loops after 65535 trips; the token-gradient pass strides by 64. */
const MAX_TOKEN_ROWS = 64 * 65535;

function elementwise(n: number): [number, number] {
  return grid1d(Math.ceil(n / 256));
}

function patchSizes(
  op: string,
  batch: number,
  c: number,
  h: number,
  w: number,
  p: number,
): Geometry {
  if (!Number.isInteger(p) || p < 1 || h % p !== 0 || w % p !== 0) {
    throw new OpError(op, `patch size ${p} must divide the image size ${h}x${w}`);
  }
  return {
    batch,
    channels: c,
    height: h,
    width: w,
    psize: p,
    tokens: (h / p) * (w / p),
    dim: p * p * c,
  };
}

/** (B, C, H, W) images -> (B, (H/p)(W/p), p p C) patches, patch vectors in (py, px, c) order. */
export function patchify(images: Tensor, p: number): Tensor {
  const op = "patchify";
  sameDevice(op, images);
  dtypeIs(op, images, "f32");
  rankIs(op, images, 4);
  const [B, C, H, W] = images.shape;
  const s = patchSizes(op, B, C, H, W, p);
  const gpu = images.gpu;
  const out = empty(gpu, [B, s.tokens, s.dim]);
  gpu.dispatch(PATCHIFY_FORWARD, s, [images.binding, out.binding], elementwise(out.size));
  // saves: nothing (a permutation)
  return record(op, out, [images], (g) => {
    gpu.dispatch(PATCHIFY_BACKWARD, s, [g.binding, gradOf(images).binding], elementwise(out.size));
  });
}

/** (B, T, p p C) patches -> (B, C, H, W) images: the inverse of {@link patchify}. */
export function unpatchify(
  patches: Tensor,
  p: number,
  image: readonly [channels: number, height: number, width: number],
): Tensor {
  const op = "unpatchify";
  sameDevice(op, patches);
  dtypeIs(op, patches, "f32");
  rankIs(op, patches, 3);
  const [C, H, W] = image;
  const B = patches.shape[0];
  const s = patchSizes(op, B, C, H, W, p);
  if (patches.shape[1] !== s.tokens || patches.shape[2] !== s.dim) {
    throw new OpError(
      op,
      `${patches.describe()} must be [${B},${s.tokens},${s.dim}] for ${C}x${H}x${W} images ` +
        `in ${p}x${p} patches`,
    );
  }
  const gpu = patches.gpu;
  const out = empty(gpu, [B, C, H, W]);
  gpu.dispatch(UNPATCHIFY_FORWARD, s, [patches.binding, out.binding], elementwise(out.size));
  // saves: nothing (a permutation)
  return record(op, out, [patches], (g) => {
    gpu.dispatch(
      UNPATCHIFY_BACKWARD,
      s,
      [g.binding, gradOf(patches).binding],
      elementwise(out.size),
    );
  });
}

/** Index tensors describing one masking of a batch of token sequences. */
export interface Masking {
  /** (B, K) i32: original positions of the kept tokens (encoder input order). */
  idsKeep: Tensor;
  /** (B, T) i32: rank of each token in the shuffled order; < K means kept. */
  idsRestore: Tensor;
  /** (B, T) f32: 1 = masked, 0 = kept, in original order (the MAE loss weight). */
  mask: Tensor;
}

/** Tokens kept when masking `ratio` of `tokens`: exactly Math.round(ratio * tokens) are masked. */
export function keptTokens(tokens: number, ratio: number): number {
  return tokens - Math.round(ratio * tokens);
}

function maskingOutputs(gpu: Gpu, batch: number, tokens: number, keep: number): Masking {
  return {
    idsKeep: empty(gpu, [batch, keep], "i32"),
    idsRestore: empty(gpu, [batch, tokens], "i32"),
    mask: empty(gpu, [batch, tokens]),
  };
}

function checkRows(op: string, t: Tensor): [number, number] {
  sameDevice(op, t);
  dtypeIs(op, t, "f32");
  rankIs(op, t, 2);
  const [B, T] = t.shape;
  if (B > 65535) throw new OpError(op, `${t.describe()}: at most 65535 samples per call`);
  return [B, T];
}

/**
 * MAE's random masking from per-sample noise (B, T) (uniform, e.g. from a
 * forked {@link Rng}, uploaded): the stable ascending argsort of each row
 * decides the order; the first K = T - round(ratio T) are kept. Equal noise
 * values are ordered by position. Indices carry no gradient.
 */
export function randomMasking(noise: Tensor, ratio: number): Masking {
  const op = "randomMasking";
  const [B, T] = checkRows(op, noise);
  if (!(ratio >= 0 && ratio <= 1)) throw new OpError(op, `ratio ${ratio} is not in [0, 1]`);
  const keep = keptTokens(T, ratio);
  const out = maskingOutputs(noise.gpu, B, T, keep);
  noise.gpu.dispatch(
    RANDOM_MASKING,
    { tokens: T, keep },
    [noise.binding, out.idsKeep.binding, out.idsRestore.binding, out.mask.binding],
    [Math.ceil(T / 256), B],
  );
  return out;
}

/**
 * The same outputs as {@link randomMasking} for a given mask (B, T) f32
 * (nonzero = masked) with exactly `keep` zeros per row: kept tokens in
 * ascending position, then masked ones. The GPU cannot throw, so a row with
 * another count gets idsRestore = idsKeep = -1, which gatherTokens and
 * unshuffleTokens turn into NaN rather than a silent wrong answer.
 */
export function maskFromBoolean(mask: Tensor, keep: number): Masking {
  const op = "maskFromBoolean";
  const [B, T] = checkRows(op, mask);
  if (!Number.isInteger(keep) || keep < 0 || keep > T) {
    throw new OpError(op, `keep ${keep} is not a count of tokens in ${mask.describe()}`);
  }
  const out = maskingOutputs(mask.gpu, B, T, keep);
  mask.gpu.dispatch(
    MASK_FROM_BOOLEAN,
    { tokens: T, keep },
    [mask.binding, out.idsKeep.binding, out.idsRestore.binding, out.mask.binding],
    [Math.ceil(T / 256), B],
  );
  return out;
}

/**
 * The kept tokens of `x` (B, T, D): out[b, k] = x[b, idsKeep[b, k]], (B, K, D).
 * idsKeep must hold distinct positions per row (as the masking ops give): the
 * backward scatters without atomics.
 */
export function gatherTokens(x: Tensor, idsKeep: Tensor): Tensor {
  const op = "gatherTokens";
  sameDevice(op, x, idsKeep);
  dtypeIs(op, x, "f32");
  dtypeIs(op, idsKeep, "i32");
  rankIs(op, x, 3);
  rankIs(op, idsKeep, 2);
  const [B, T, D] = x.shape;
  if (idsKeep.shape[0] !== B || idsKeep.shape[1] > T) {
    throw new OpError(op, `ids ${idsKeep.describe()} do not index tokens of ${x.describe()}`);
  }
  const K = idsKeep.shape[1];
  const s = { batch: B, tokens: T, keep: K, dim: D };
  const gpu = x.gpu;
  const out = empty(gpu, [B, K, D]);
  gpu.dispatch(GATHER_FORWARD, s, [x.binding, idsKeep.binding, out.binding], elementwise(out.size));
  // saves: idsKeep
  return record(op, out, [x], (g) => {
    gpu.dispatch(
      GATHER_BACKWARD,
      s,
      [idsKeep.binding, g.binding, gradOf(x).binding],
      elementwise(out.size),
    );
  });
}

/**
 * The decoder's full sequence (B, T, D) from the encoded kept tokens
 * `encoded` (B, K, D) and a learned `maskToken` (D): position t holds
 * encoded[b, idsRestore[b, t]] when that is < K, else the mask token.
 */
export function unshuffleTokens(encoded: Tensor, maskToken: Tensor, idsRestore: Tensor): Tensor {
  const op = "unshuffleTokens";
  sameDevice(op, encoded, maskToken, idsRestore);
  dtypeIs(op, encoded, "f32");
  dtypeIs(op, maskToken, "f32");
  dtypeIs(op, idsRestore, "i32");
  rankIs(op, encoded, 3);
  rankIs(op, idsRestore, 2);
  const [B, K, D] = encoded.shape;
  const T = idsRestore.shape[1];
  if (idsRestore.shape[0] !== B || K > T) {
    throw new OpError(
      op,
      `ids ${idsRestore.describe()} do not restore ${encoded.describe()} (batch, keep <= tokens)`,
    );
  }
  if (maskToken.size !== D) {
    throw new OpError(op, `mask token ${maskToken.describe()} must have ${D} elements`);
  }
  if (B * T > MAX_TOKEN_ROWS) {
    throw new OpError(op, `${idsRestore.describe()}: at most ${MAX_TOKEN_ROWS} tokens per call`);
  }
  const s = { batch: B, tokens: T, keep: K, dim: D };
  const gpu = encoded.gpu;
  const out = empty(gpu, [B, T, D]);
  gpu.dispatch(
    UNSHUFFLE_FORWARD,
    s,
    [encoded.binding, maskToken.binding, idsRestore.binding, out.binding],
    elementwise(out.size),
  );
  // saves: idsRestore
  return record(op, out, [encoded, maskToken], (g) => {
    if (encoded.requiresGrad) {
      gpu.dispatch(
        UNSHUFFLE_BACKWARD,
        s,
        [idsRestore.binding, g.binding, gradOf(encoded).binding],
        elementwise(out.size),
      );
    }
    if (maskToken.requiresGrad) {
      gpu.dispatch(
        UNSHUFFLE_BACKWARD_TOKEN,
        s,
        [idsRestore.binding, g.binding, gradOf(maskToken).binding],
        [D],
      );
    }
  });
}

/** Options of {@link blockMask}; defaults are the paper's (BEiT's) values. */
export interface BlockMaskOptions {
  /** Smallest block area tried (BEiT: 16). */
  minNumPatches?: number;
  /** Largest block area tried (BEiT: the target count). */
  maxNumPatches?: number;
  /** Aspect ratio h / w is log-uniform in [minAspect, maxAspect] (0.3, 1 / 0.3). */
  minAspect?: number;
  maxAspect?: number;
}

/** One rectangle placed by {@link blockMaskTrace}. */
export interface PlacedBlock {
  top: number;
  left: number;
  h: number;
  w: number;
  /** Patches it masked that were not masked before (>= 1). */
  added: number;
}

/** A block mask and how it was built (for tests and inspection). */
export interface BlockMaskTrace {
  /** (gridH * gridW) row-major, 1 = masked. */
  mask: Uint8Array;
  blocks: PlacedBlock[];
  /** Patches added by the top-up after BEiT's loop gave up (usually 0). */
  toppedUp: number;
}

/**
 * BEiT's MaskingGenerator (beit/masking_generator.py) on a seeded {@link Rng}:
 * while fewer than `numMasked` patches are masked, up to 10 attempts draw a
 * target area uniform in [minNumPatches, min(remaining, maxNumPatches)] and a
 * log-uniform aspect ratio r, set h = round(sqrt(area r)), w = round(sqrt(area / r)),
 * require h < gridH and w < gridW, place the block uniformly, and accept it
 * when it masks between 1 and `remaining` new patches (so it never overshoots).
 *
 * BEiT stops short when 10 attempts in a row add nothing. Here the count is
 * made exact by a deterministic top-up instead: repeated raster-order passes
 * mask unmasked patches 4-adjacent to a masked one (growing existing blocks,
 * so no new isolated patches appear), falling back to raster order on an
 * empty mask. It never trims. With the paper's settings (16x16 grid, 128
 * masked, min 16) BEiT falls short on about a third of masks (measured over
 * 2000 seeds: mean top-up 1.6 patches, at most 8), because a block must add at
 * most the few patches still missing; 99% of masked patches lie in 4-connected
 * components of at least 16 patches.
 */
export function blockMaskTrace(
  rng: Rng,
  gridH: number,
  gridW: number,
  numMasked: number,
  options: BlockMaskOptions = {},
): BlockMaskTrace {
  const total = gridH * gridW;
  if (!Number.isInteger(numMasked) || numMasked < 0 || numMasked > total) {
    throw new RangeError(`blockMask: cannot mask ${numMasked} of ${gridH}x${gridW} patches`);
  }
  const minNum = options.minNumPatches ?? 16;
  const maxNum = options.maxNumPatches ?? numMasked;
  const minAspect = options.minAspect ?? 0.3;
  const maxAspect = options.maxAspect ?? 1 / minAspect;
  const logAspect = [Math.log(minAspect), Math.log(maxAspect)];
  const mask = new Uint8Array(total);
  const blocks: PlacedBlock[] = [];
  let count = 0;
  while (count < numMasked) {
    const maxPatches = Math.min(numMasked - count, maxNum);
    let added = 0;
    for (let attempt = 0; attempt < 10 && added === 0; attempt++) {
      const area = rng.uniform(minNum, maxPatches);
      const aspect = Math.exp(rng.uniform(logAspect[0], logAspect[1]));
      const h = Math.round(Math.sqrt(area * aspect));
      const w = Math.round(Math.sqrt(area / aspect));
      if (w >= gridW || h >= gridH) continue;
      const top = rng.int(gridH - h + 1), left = rng.int(gridW - w + 1);
      let already = 0;
      for (let i = top; i < top + h; i++) {
        for (let j = left; j < left + w; j++) already += mask[i * gridW + j];
      }
      const fresh = h * w - already;
      if (fresh > 0 && fresh <= maxPatches) {
        for (let i = top; i < top + h; i++) mask.fill(1, i * gridW + left, i * gridW + left + w);
        added = fresh;
        blocks.push({ top, left, h, w, added });
      }
    }
    if (added === 0) break;
    count += added;
  }
  const before = count;
  while (count < numMasked) {
    let grew = 0;
    for (let i = 0; i < total && count < numMasked; i++) {
      if (mask[i]) continue;
      const y = Math.floor(i / gridW), x = i % gridW;
      const near = (y > 0 && mask[i - gridW] === 1) || (y + 1 < gridH && mask[i + gridW] === 1) ||
        (x > 0 && mask[i - 1] === 1) || (x + 1 < gridW && mask[i + 1] === 1);
      // mark with 2 so that this pass grows only from the mask as it was
      if (near || count === 0) {
        mask[i] = 2;
        count++;
        grew++;
      }
    }
    for (let i = 0; i < total; i++) if (mask[i] === 2) mask[i] = 1;
    if (grew === 0) break;
  }
  return { mask, blocks, toppedUp: count - before };
}

/** BEiT-style block mask with exactly `numMasked` masked patches; see {@link blockMaskTrace}. */
export function blockMask(
  rng: Rng,
  gridH: number,
  gridW: number,
  numMasked: number,
  options: BlockMaskOptions = {},
): Uint8Array {
  return blockMaskTrace(rng, gridH, gridW, numMasked, options).mask;
}

/** `batch` block masks as one (B, gridH * gridW) f32 array (1 = masked) for {@link maskFromBoolean}. */
export function blockMaskBatch(
  rng: Rng,
  batch: number,
  gridH: number,
  gridW: number,
  numMasked: number,
  options: BlockMaskOptions = {},
): Float32Array {
  const T = gridH * gridW;
  const out = new Float32Array(batch * T);
  for (let b = 0; b < batch; b++) out.set(blockMask(rng, gridH, gridW, numMasked, options), b * T);
  return out;
}
