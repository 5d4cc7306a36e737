/**
 * SMAE: an MAE whose reconstruction loss adds a perceptual term from a
 * frozen SqueezeNet critic (the paper's extension).
 *
 *   L = (1 - alpha) * s_pix * L_pixel + alpha * s_perc * L_percep
 *
 * L_pixel is the MSE over ALL patches (not only the masked ones, unlike MAE);
 * L_percep is the MSE between the critic features g (SqueezeNet 1.1
 * features[:5]) of the reconstruction (every predicted patch, unpatchified
 * to an image) and of the input. The input's features are constants; the
 * critic's parameters are frozen, so gradients flow through g into the
 * reconstruction only.
 *
 * Two named scalings bring the terms to one scale:
 *   - `paper`: s_pix = 1, s_perc = c = (initial pixel loss) / (initial
 *     perceptual loss), both measured on the first training step; no sigmoid.
 *   - `code` (the authors' code, loss/combined.py): a sigmoid on the critic
 *     features, and each term divided by its size over the first
 *     `calibrationSteps` steps: s = mean over those steps of 1 / loss_k,
 *     updated on each of them (the step's own value included) and frozen after.
 * Either way the perceptual term starts at the pixel term's scale.
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import { add, scale } from "../ops/elementwise.ts";
import { sigmoid } from "../ops/conv.ts";
import { mse } from "../ops/loss.ts";
import { unpatchify } from "../ops/patch.ts";
import { ParamStore } from "../params.ts";
import { noGrad } from "../tape.ts";
import type { Tensor } from "../tensor.ts";
import { featureParamsOf, squeezeNetSpecs } from "./squeezenet.ts";
import { type SqueezeFeatureParams, squeezeFeatures } from "./squeeze_features.ts";
import type { VitConfig } from "./vit.ts";

/** How the two loss terms are brought to one scale. */
export type PerceptualScaling = "paper" | "code";

/** The SMAE objective's settings. */
export interface SmaeConfig {
  /** Weight of the perceptual term: 0.5 (Table 1) or 1.0 (Table 7). */
  alpha: number;
  scaling: PerceptualScaling;
  /** Steps averaged by the `code` scaling (10 in the authors' code). */
  calibrationSteps: number;
}

/** The paper's SMAE: alpha 0.5 with the paper's scaling. */
export const SMAE_DEFAULTS: SmaeConfig = { alpha: 0.5, scaling: "paper", calibrationSteps: 10 };

/** The frozen perceptual network g: SqueezeNet 1.1 features[:5] (+ sigmoid for the code's variant). */
export class Critic {
  readonly params: SqueezeFeatureParams;

  /** `store` holds features.0/.3/.4 (e.g. {@link Critic.fromValues}); it is frozen here. */
  constructor(readonly store: ParamStore, readonly sigmoid: boolean) {
    for (const t of store.params.values()) t.requiresGrad = false;
    this.params = featureParamsOf(store);
  }

  /** A critic for `channels`-channel images from trained SqueezeNet values (by torchvision name). */
  static fromValues(
    gpu: Gpu,
    channels: number,
    values: Map<string, Float32Array>,
    sigmoid: boolean,
    source = "critic",
  ): Critic {
    const store = new ParamStore(gpu, squeezeNetSpecs(channels, 1, 0, true));
    try {
      store.loadAll((name) => values.get(name), source, "is it a SqueezeNet critic?");
    } catch (e) {
      store.destroy();
      throw e;
    }
    return new Critic(store, sigmoid);
  }

  /** g(x) for images (N, C, H, W). */
  features(x: Tensor): Tensor {
    const f = squeezeFeatures(x, this.params);
    return this.sigmoid ? sigmoid(f) : f;
  }

  /** Frees the parameter buffers. */
  destroy(): void {
    this.store.destroy();
  }
}

/** The two unscaled terms of one SMAE forward pass. */
export interface SmaeTerms {
  /** MSE over every patch (scalar). */
  pixel: Tensor;
  /** MSE between critic features of the reconstruction and of the input (scalar). */
  perceptual: Tensor;
}

/**
 * Pixel and perceptual terms for predicted patches `pred` (B, T, P) of
 * `images` (B, C, H, W) whose patches are `target` (B, T, P).
 */
export function smaeTerms(
  critic: Critic,
  encoder: VitConfig,
  images: Tensor,
  pred: Tensor,
  target: Tensor,
): SmaeTerms {
  const [B, T, P] = pred.shape;
  const pixel = mse(pred.reshape([B * T, P]), target.reshape([B * T, P]));
  const recon = unpatchify(pred, encoder.patch, [
    encoder.channels,
    encoder.imageSize,
    encoder.imageSize,
  ]);
  const fr = critic.features(recon);
  const fx = noGrad(() => critic.features(images));
  const d = fr.size / B;
  const perceptual = mse(fr.reshape([B, d]), fx.reshape([B, d]));
  return { pixel, perceptual };
}

/** The scaling state: what has been measured so far and the weights it gives. */
export interface BalanceState {
  /** [pixel, perceptual] loss values of the calibration steps, in order. */
  points: [number, number][];
}

/**
 * Turns the two terms into the SMAE loss with the configured scaling. The
 * scales come from loss values read back on the first step(s) only; the
 * state is part of a checkpoint so a resumed run continues with the same scales.
 */
export class LossBalance {
  points: [number, number][] = [];

  /** For `config` (alpha, scaling, calibration steps). */
  constructor(readonly config: SmaeConfig) {}

  /** Steps that still measure the terms before use: 1 (paper) or calibrationSteps (code). */
  get calibrationSteps(): number {
    return this.config.scaling === "paper" ? 1 : this.config.calibrationSteps;
  }

  /** Whether the next step must read its terms back first. */
  get calibrating(): boolean {
    return this.points.length < this.calibrationSteps;
  }

  /** Records one step's unscaled terms (during calibration). */
  calibrate(pixel: number, perceptual: number): void {
    if (!(pixel > 0 && perceptual > 0 && Number.isFinite(pixel) && Number.isFinite(perceptual))) {
      throw new Error(
        `SMAE loss calibration needs positive finite terms, got pixel ${pixel}, perceptual ${perceptual}`,
      );
    }
    if (this.calibrating) this.points.push([pixel, perceptual]);
  }

  /** [s_pix, s_perc] from the points so far. */
  scales(): [number, number] {
    if (this.points.length === 0) throw new Error("SMAE loss scales are read before calibration");
    if (this.config.scaling === "paper") {
      const [p0, q0] = this.points[0];
      return [1, p0 / q0];
    }
    let a = 0, b = 0;
    for (const [p, q] of this.points) {
      a += 1 / p;
      b += 1 / q;
    }
    return [a / this.points.length, b / this.points.length];
  }

  /** The weights multiplying the two terms: [(1 - alpha) s_pix, alpha s_perc]. */
  weights(): [number, number] {
    const [sp, sq] = this.scales();
    const a = this.config.alpha;
    return [(1 - a) * sp, a * sq];
  }

  /** The scalar SMAE loss from the terms. */
  combine(t: SmaeTerms): Tensor {
    const [wp, wq] = this.weights();
    return add(scale(t.pixel, wp), scale(t.perceptual, wq));
  }

  /** Serialisable state (for checkpoints). */
  state(): BalanceState {
    return { points: this.points.map(([p, q]) => [p, q]) };
  }

  /** Restores {@link state}. */
  load(s: BalanceState): void {
    this.points = s.points.slice(0, this.calibrationSteps).map(([p, q]) => [p, q]);
  }
}
