/**
 * The first five feature layers of SqueezeNet 1.1 (torchvision's
 * `squeezenet1_1().features[:5]`), built from the conv ops for a perceptual
 * loss:
 *
 *   Conv2d(3, 64, k3, s2) → ReLU → MaxPool(k3, s2, ceil) → Fire(64, 16, 64, 64)
 *   → Fire(128, 16, 64, 64)
 *
 * Fire(in, s, e1, e3) = squeeze 1x1 conv (in → s) + ReLU, then the channel
 * concatenation of expand1x1 (s → e1) + ReLU and expand3x3 (s → e3, pad 1) +
 * ReLU. A 64x64 input gives (N, 128, 15, 15). No backward of its own: every
 * op records its own.
 * @module
 */

import { concatChannels, conv2d, maxPool2d } from "../ops/conv.ts";
import { relu } from "../ops/elementwise.ts";
import type { Tensor } from "../tensor.ts";

/** One convolution's parameters: weight (K, C, kh, kw) and bias (K). */
export interface ConvParams {
  weight: Tensor;
  bias: Tensor;
}

/** A Fire module's three convolutions. */
export interface FireParams {
  squeeze: ConvParams;
  expand1x1: ConvParams;
  expand3x3: ConvParams;
}

/** Parameters of {@link squeezeFeatures}, named after torchvision's modules. */
export interface SqueezeFeatureParams {
  /** features.0 */
  conv1: ConvParams;
  /** features.3 */
  fire1: FireParams;
  /** features.4 */
  fire2: FireParams;
}

function fireShapes(cin: number, s: number, e1: number, e3: number) {
  return {
    squeeze: { weight: [s, cin, 1, 1], bias: [s] },
    expand1x1: { weight: [e1, s, 1, 1], bias: [e1] },
    expand3x3: { weight: [e3, s, 3, 3], bias: [e3] },
  };
}

/** The shape of every parameter, in the layout of {@link SqueezeFeatureParams}. */
export const SQUEEZE_FEATURE_SHAPES = {
  conv1: { weight: [64, 3, 3, 3], bias: [64] },
  fire1: fireShapes(64, 16, 64, 64),
  fire2: fireShapes(128, 16, 64, 64),
} as const;

function convRelu(x: Tensor, p: ConvParams, padding = 0, stride = 1): Tensor {
  return relu(conv2d(x, p.weight, { bias: p.bias, stride, padding }));
}

/** A Fire module: squeeze, then the concatenated 1x1 and 3x3 expansions. */
export function fire(x: Tensor, p: FireParams): Tensor {
  const s = convRelu(x, p.squeeze);
  return concatChannels(convRelu(s, p.expand1x1), convRelu(s, p.expand3x3, 1));
}

/**
 * SqueezeNet 1.1 features[:5] of x (N, 3, H, W) → (N, 128, H', W');
 * 64x64 → 15x15.
 *
 * @example
 * ```ts ignore
 * const f = squeezeFeatures(images, params); // (N, 128, 15, 15) for 64x64 images
 * ```
 */
export function squeezeFeatures(x: Tensor, params: SqueezeFeatureParams): Tensor {
  const c1 = convRelu(x, params.conv1, 0, 2);
  const pooled = maxPool2d(c1, 3, { stride: 2, ceilMode: true });
  return fire(fire(pooled, params.fire1), params.fire2);
}
