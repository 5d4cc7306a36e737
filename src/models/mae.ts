/**
 * MAE (He et al.) at the paper's small scale: the ViT encoder sees only the
 * kept patches (patch shuffle), a 2-block decoder at width 128 gets them back
 * in place with a learned mask token for the rest, and a linear head predicts
 * each patch's pixels. The loss is MSE on the masked patches (raw pixels, or
 * per-patch normalised pixels as an option); SMAE reuses `reconstruct` with a
 * loss over all patches.
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import { biasAdd } from "../ops/elementwise.ts";
import { layerNorm } from "../ops/layernorm.ts";
import { mse } from "../ops/loss.ts";
import {
  blockMaskBatch,
  gatherTokens,
  keptTokens,
  maskFromBoolean,
  type Masking,
  randomMasking,
  unshuffleTokens,
} from "../ops/patch.ts";
import { concatTokens, sliceTokens } from "../ops/tokens.ts";
import { type DropoutContext, linear, SpecList } from "../nn.ts";
import { ParamStore } from "../params.ts";
import { Rng } from "../rng.ts";
import { noGrad } from "../tape.ts";
import { type Tensor, tensor } from "../tensor.ts";
import {
  block,
  blockSpecs,
  embedPatches,
  encodeTokens,
  imagePatches,
  patchGeometry,
  positionTensor,
  type VitConfig,
  vitSpecs,
} from "./vit.ts";

/** Masking strategies of the paper. */
export type MaskingKind = "random" | "block";

/** MAE shape and objective. */
export interface MaeConfig {
  encoder: VitConfig;
  decoderWidth: number;
  decoderDepth: number;
  decoderHeads: number;
  decoderMlp: number;
  /** Fraction of patches masked (0.75 random, 0.5 block in the paper). */
  maskRatio: number;
  masking: MaskingKind;
  /** Target = per-patch normalised pixels (MAE's option; worse for the paper's authors). */
  normPixLoss: boolean;
}

/** The decoder of the paper: 2 blocks, width 128, MLP 256, 4 heads. */
export const MAE_DECODER = {
  decoderWidth: 128,
  decoderDepth: 2,
  decoderHeads: 4,
  decoderMlp: 256,
} as const;

/** Everything one forward pass produces. */
export interface MaeOutput {
  /** Masked-patch MSE (scalar). */
  loss: Tensor;
  /** Predicted patches (B, T, patchDim). */
  pred: Tensor;
  /** The target patches (B, T, patchDim) (normalised when normPixLoss). */
  target: Tensor;
  /** (B, T) f32, 1 = masked. */
  mask: Tensor;
}

/** An MAE: encoder and decoder parameters in two stores (the encoder is reused downstream). */
export class Mae {
  readonly encoder: ParamStore;
  readonly decoder: ParamStore;
  readonly tokens: number;
  readonly patchDim: number;
  #encPos: Tensor;
  #decPos: Tensor;

  /** Declares and initialises the parameters from `seed` (the paper's init). */
  constructor(readonly gpu: Gpu, readonly config: MaeConfig, seed: number) {
    const rng = new Rng(seed).fork("init");
    const { tokens, patchDim } = patchGeometry(config.encoder);
    this.tokens = tokens;
    this.patchDim = patchDim;
    const enc = new SpecList();
    vitSpecs(enc, config.encoder, rng.fork("encoder"));
    this.encoder = new ParamStore(gpu, enc.specs);
    const dec = new SpecList();
    const d = config.decoderWidth;
    const drng = rng.fork("decoder");
    dec.linear("decoder.embed", config.encoder.width, d, drng);
    dec.token("decoder.mask", d, drng);
    for (let i = 0; i < config.decoderDepth; i++) {
      blockSpecs(dec, `decoder.blocks.${i}`, d, config.decoderMlp, drng);
    }
    dec.layerNorm("decoder.norm", d);
    dec.linear("decoder.head", d, patchDim, drng);
    this.decoder = new ParamStore(gpu, dec.specs);
    this.#encPos = positionTensor(gpu, tokens, config.encoder.width);
    this.#decPos = positionTensor(gpu, tokens, d);
  }

  /** Draws this step's masking for a batch of `batch` images from `rng`. */
  sampleMasking(rng: Rng, batch: number): Masking {
    const T = this.tokens;
    const side = Math.sqrt(T);
    if (this.config.masking === "block") {
      const masked = T - keptTokens(T, this.config.maskRatio);
      const m = blockMaskBatch(rng, batch, side, side, masked);
      return maskFromBoolean(tensor(this.gpu, m, [batch, T]), T - masked);
    }
    return randomMasking(
      tensor(this.gpu, rng.uniformArray(batch * T), [batch, T]),
      this.config.maskRatio,
    );
  }

  /** Encoder + decoder: predicted patches (B, T, patchDim) for the given masking. */
  reconstruct(patches: Tensor, masking: Masking, drop: DropoutContext): Tensor {
    const c = this.config;
    const [B, T] = patches.shape;
    const K = masking.idsKeep.shape[1];
    const kept = gatherTokens(
      embedPatches(this.encoder, "encoder", patches, this.#encPos),
      masking.idsKeep,
    );
    const enc = encodeTokens(this.encoder, c.encoder, kept, drop);
    const g = (n: string) => this.decoder.get(`decoder.${n}`);
    const d = linear(enc, g("embed.w"), g("embed.b"));
    const full = unshuffleTokens(sliceTokens(d, 0, K), g("mask"), masking.idsRestore);
    const placed = biasAdd(full.reshape([B, T * c.decoderWidth]), this.#decPos).reshape(full.shape);
    let x = concatTokens(placed, sliceTokens(d, K, 1));
    for (let i = 0; i < c.decoderDepth; i++) {
      x = block(this.decoder, `decoder.blocks.${i}`, x, c.decoderHeads, drop);
    }
    x = layerNorm(x, g("norm.w"), g("norm.b"));
    return sliceTokens(linear(x, g("head.w"), g("head.b")), 0, T);
  }

  /** The reconstruction target for `patches` (normalised per patch when configured). */
  target(patches: Tensor): Tensor {
    if (!this.config.normPixLoss) return patches;
    return noGrad(() => {
      const P = this.patchDim;
      const ones = tensor(this.gpu, new Float32Array(P).fill(1), [P]);
      const zeros = tensor(this.gpu, new Float32Array(P), [P]);
      return layerNorm(patches, ones, zeros, 1e-6);
    });
  }

  /** Forward pass and loss on images (B, C, H, W). */
  forward(images: Tensor, masking: Masking, drop: DropoutContext): MaeOutput {
    const patches = imagePatches(this.config.encoder, images);
    const [B, T, P] = patches.shape;
    const pred = this.reconstruct(patches, masking, drop);
    const target = this.target(patches);
    const loss = mse(
      pred.reshape([B * T, P]),
      target.reshape([B * T, P]),
      masking.mask.reshape([B * T]),
    );
    return { loss, pred, target, mask: masking.mask };
  }

  /** All parameter stores (for optimizers and checkpoints). */
  get stores(): ParamStore[] {
    return [this.encoder, this.decoder];
  }

  /** Frees the GPU buffers. */
  destroy(): void {
    this.encoder.destroy();
    this.decoder.destroy();
  }
}
