/**
 * The classification network of the paper: the ViT encoder, its class
 * token, BatchNorm1d without affine parameters, then a linear layer. Used
 * for the linear probe (encoder frozen), fine-tuning (everything trains) and
 * training from scratch (the same network from random init).
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import { batchNorm1d, type BatchNormState } from "../ops/batchnorm.ts";
import { mean } from "../ops/reduce.ts";
import { sliceTokens } from "../ops/tokens.ts";
import { type DropoutContext, linear, SpecList } from "../nn.ts";
import { ParamStore } from "../params.ts";
import { Rng } from "../rng.ts";
import { type Tensor, tensor, unscoped } from "../tensor.ts";
import {
  embedPatches,
  encodeTokens,
  imagePatches,
  patchGeometry,
  positionTensor,
  type VitConfig,
  vitSpecs,
} from "./vit.ts";

/** How the head reads the encoder's tokens. */
export type Pooling = "cls" | "mean" | "flat";

/** Width of the head's input for a pooling. */
export function featureDim(c: VitConfig, pool: Pooling): number {
  return pool === "flat" ? patchGeometry(c).tokens * c.width : c.width;
}

/** Encoder plus head; `encoder` can be shared with an {@link Mae}'s. */
export class Classifier {
  readonly head: ParamStore;
  readonly bn: BatchNormState;
  #pos: Tensor;

  /**
   * A classifier over `encoder` (a pretrained store, or null for a fresh one
   * initialised from `seed`) with `classes` outputs.
   */
  constructor(
    readonly gpu: Gpu,
    readonly config: VitConfig,
    readonly classes: number,
    seed: number,
    readonly encoder: ParamStore = Classifier.freshEncoder(gpu, config, seed),
    /**
     * Features for the head: the class token (the paper), the mean of the
     * patch tokens, or all patch tokens flattened (keeps their positions).
     */
    readonly pool: Pooling = "cls",
  ) {
    const dim = featureDim(config, pool);
    const list = new SpecList();
    list.linear("head.fc", dim, classes, new Rng(seed).fork("head"));
    this.head = new ParamStore(gpu, list.specs);
    this.#pos = positionTensor(gpu, patchGeometry(config).tokens, config.width);
    // Running statistics start as PyTorch's: mean 0, variance 1. They are
    // model state, so they live outside any tidy scope.
    this.bn = unscoped(() => ({
      runningMean: tensor(gpu, new Float32Array(dim), [dim]),
      runningVar: tensor(gpu, new Float32Array(dim).fill(1), [dim]),
    }));
  }

  /** A randomly initialised encoder store (training from scratch). */
  static freshEncoder(gpu: Gpu, config: VitConfig, seed: number): ParamStore {
    const list = new SpecList();
    vitSpecs(list, config, new Rng(seed).fork("init").fork("encoder"));
    return new ParamStore(gpu, list.specs);
  }

  /** Freezes or unfreezes the encoder (linear probe vs fine-tune). */
  setEncoderTrainable(trainable: boolean): void {
    for (const t of this.encoder.params.values()) t.requiresGrad = trainable;
  }

  /** Logits (B, classes) for images (B, C, H, W). */
  forward(images: Tensor, drop: DropoutContext): Tensor {
    const c = this.config;
    const tokens = embedPatches(this.encoder, "encoder", imagePatches(c, images), this.#pos);
    const enc = encodeTokens(this.encoder, c, tokens, drop);
    const [B, T1] = enc.shape;
    const features = this.pool === "cls"
      ? sliceTokens(enc, T1 - 1, 1).reshape([B, c.width])
      : this.pool === "mean"
      ? mean(sliceTokens(enc, 0, T1 - 1), 1)
      : sliceTokens(enc, 0, T1 - 1).reshape([B, (T1 - 1) * c.width]);
    const normed = batchNorm1d(features, this.bn, drop.training);
    return linear(normed, this.head.get("head.fc.w"), this.head.get("head.fc.b"));
  }

  /** All parameter stores. */
  get stores(): ParamStore[] {
    return [this.encoder, this.head];
  }

  /** Frees the head's buffers and (when owned) nothing else: the encoder may be shared. */
  destroy(): void {
    this.head.destroy();
    this.bn.runningMean.dispose();
    this.bn.runningVar.dispose();
  }
}
