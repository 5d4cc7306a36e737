/**
 * SqueezeNet 1.1 (Iandola et al.; torchvision's `squeezenet1_1`) in our ops:
 * the SMAE critic. Trained from scratch as a classifier (`deno task train`
 * mode `critic`), then its first five feature layers are frozen and used as
 * the perceptual network g of the SMAE loss (src/models/smae.ts).
 *
 *   features: Conv(C, 64, k3, s2) ReLU MaxPool(3, 2, ceil) Fire(64,16,64,64)
 *             Fire(128,16,64,64) MaxPool Fire(128,32,128,128) Fire(256,32,128,128)
 *             MaxPool Fire(256,48,192,192) Fire(384,48,192,192)
 *             Fire(384,64,256,256) Fire(512,64,256,256)
 *   classifier: Dropout(0.5) Conv(512, classes, k1) ReLU AdaptiveAvgPool(1)
 *
 * Parameter names are torchvision's (`features.3.squeeze.weight`,
 * `classifier.1.bias`, ...), so a checkpoint maps onto PyTorch's state dict
 * name for name. Initialisation as torchvision: Kaiming-uniform convolutions,
 * the final convolution N(0, 0.01^2), zero biases.
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import { conv2d, maxPool2d } from "../ops/conv.ts";
import { relu } from "../ops/elementwise.ts";
import { mean } from "../ops/reduce.ts";
import type { DropoutContext } from "../nn.ts";
import { type ParamSpec, ParamStore } from "../params.ts";
import { Rng } from "../rng.ts";
import type { Tensor } from "../tensor.ts";
import {
  type ConvParams,
  fire,
  type FireParams,
  type SqueezeFeatureParams,
} from "./squeeze_features.ts";

/** Fire modules after the first convolution: [torchvision index, in, squeeze, expand]. */
const FIRES = [
  [3, 64, 16, 64],
  [4, 128, 16, 64],
  [6, 128, 32, 128],
  [7, 256, 32, 128],
  [9, 256, 48, 192],
  [10, 384, 48, 192],
  [11, 384, 64, 256],
  [12, 512, 64, 256],
] as const;

/** Feature width after the last Fire module. */
export const SQUEEZENET_WIDTH = 512;

function convSpecs(
  out: ParamSpec[],
  name: string,
  k: number,
  c: number,
  size: number,
  rng: Rng,
  std?: number,
): void {
  const n = k * c * size * size;
  // Kaiming-uniform with a = 0 (torchvision): U(-b, b), b = sqrt(6 / fan_in).
  const b = Math.sqrt(6 / (c * size * size));
  out.push({
    name: `${name}.weight`,
    shape: [k, c, size, size],
    init: std === undefined ? rng.uniformArray(n, -b, b) : rng.normalArray(n, std),
    decay: true,
  });
  out.push({ name: `${name}.bias`, shape: [k], init: new Float32Array(k), decay: false });
}

function fireSpecs(out: ParamSpec[], index: number, cin: number, s: number, e: number, rng: Rng) {
  const r = rng.fork(`features.${index}`);
  convSpecs(out, `features.${index}.squeeze`, s, cin, 1, r);
  convSpecs(out, `features.${index}.expand1x1`, e, s, 1, r);
  convSpecs(out, `features.${index}.expand3x3`, e, s, 3, r);
}

/**
 * Parameter declarations of SqueezeNet 1.1 for `channels` input channels and
 * `classes` outputs. `featuresOnly` declares just features.0, .3 and .4 (the
 * perceptual network), with the same names and values as the full network's.
 */
export function squeezeNetSpecs(
  channels: number,
  classes: number,
  seed: number,
  featuresOnly = false,
): ParamSpec[] {
  const rng = new Rng(seed).fork("init").fork("squeezenet");
  const out: ParamSpec[] = [];
  convSpecs(out, "features.0", 64, channels, 3, rng.fork("features.0"));
  for (const [index, cin, s, e] of FIRES) {
    if (featuresOnly && index > 4) break;
    fireSpecs(out, index, cin, s, e, rng);
  }
  if (!featuresOnly) {
    convSpecs(out, "classifier.1", classes, SQUEEZENET_WIDTH, 1, rng.fork("classifier"), 0.01);
  }
  return out;
}

function convOf(store: ParamStore, name: string): ConvParams {
  return { weight: store.get(`${name}.weight`), bias: store.get(`${name}.bias`) };
}

function fireOf(store: ParamStore, index: number): FireParams {
  return {
    squeeze: convOf(store, `features.${index}.squeeze`),
    expand1x1: convOf(store, `features.${index}.expand1x1`),
    expand3x3: convOf(store, `features.${index}.expand3x3`),
  };
}

/** The perceptual network's parameters (features.0, .3, .4) as views into `store`. */
export function featureParamsOf(store: ParamStore): SqueezeFeatureParams {
  return { conv1: convOf(store, "features.0"), fire1: fireOf(store, 3), fire2: fireOf(store, 4) };
}

/** A SqueezeNet 1.1 classifier with its parameters in one store. */
export class SqueezeNet {
  readonly store: ParamStore;

  /** Declares and initialises the parameters from `seed`. */
  constructor(
    readonly gpu: Gpu,
    readonly channels: number,
    readonly classes: number,
    seed: number,
  ) {
    this.store = new ParamStore(gpu, squeezeNetSpecs(channels, classes, seed));
  }

  /** The feature stack (N, C, H, W) → (N, 512, H', W'). */
  features(x: Tensor): Tensor {
    const pool = (t: Tensor) => maxPool2d(t, 3, { stride: 2, ceilMode: true });
    const c = convOf(this.store, "features.0");
    let h = pool(relu(conv2d(x, c.weight, { bias: c.bias, stride: 2 })));
    for (const [index] of FIRES) {
      if (index === 6 || index === 9) h = pool(h);
      h = fire(h, fireOf(this.store, index));
    }
    return h;
  }

  /** Logits (N, classes): dropout, 1x1 convolution, ReLU, global average pool. */
  forward(x: Tensor, drop: DropoutContext): Tensor {
    const f = drop.apply(this.features(x));
    const c = convOf(this.store, "classifier.1");
    const y = relu(conv2d(f, c.weight, { bias: c.bias }));
    const [n, k, h, w] = y.shape;
    return mean(y.reshape([n, k, h * w]), -1);
  }

  /** Frees the parameter buffers. */
  destroy(): void {
    this.store.destroy();
  }
}
