/**
 * Building blocks shared by the models: parameter declaration with the
 * paper's initialisation, linear layers, and the dropout key schedule.
 * Everything here is composed from audited ops and needs no backward of its own.
 * @module
 */

import { dropout } from "./ops/elementwise.ts";
import { matmul } from "./ops/matmul.ts";
import type { ParamSpec } from "./params.ts";
import type { Rng } from "./rng.ts";
import type { Tensor } from "./tensor.ts";

/**
 * Xavier/Glorot uniform init for a (fanOut, fanIn) weight: U(-a, a) with
 * a = gain * sqrt(6 / (fanIn + fanOut)). The paper's code uses gain sqrt(2).
 */
export function xavierUniform(
  rng: Rng,
  fanOut: number,
  fanIn: number,
  gain = Math.SQRT2,
): Float32Array {
  const a = gain * Math.sqrt(6 / (fanIn + fanOut));
  return rng.uniformArray(fanOut * fanIn, -a, a);
}

/** Collects parameter declarations in order; names are prefixed paths. */
export class SpecList {
  readonly specs: ParamSpec[] = [];

  /** Declares a (out, in) linear layer `name.w` (+ `name.b` zeros unless bias = false). */
  linear(name: string, fanIn: number, fanOut: number, rng: Rng, bias = true): void {
    this.specs.push({
      name: `${name}.w`,
      shape: [fanOut, fanIn],
      init: xavierUniform(rng, fanOut, fanIn),
      decay: true,
    });
    if (bias) {
      this.specs.push({
        name: `${name}.b`,
        shape: [fanOut],
        init: new Float32Array(fanOut),
        decay: false,
      });
    }
  }

  /** Declares a LayerNorm's weight (ones) and bias (zeros), `name.w` / `name.b`. */
  layerNorm(name: string, width: number): void {
    this.specs.push({
      name: `${name}.w`,
      shape: [width],
      init: new Float32Array(width).fill(1),
      decay: false,
    });
    this.specs.push({
      name: `${name}.b`,
      shape: [width],
      init: new Float32Array(width),
      decay: false,
    });
  }

  /** Declares a learned token ~ N(0, 0.02^2), as MAE's class and mask tokens. */
  token(name: string, width: number, rng: Rng): void {
    this.specs.push({ name, shape: [width], init: rng.normalArray(width, 0.02), decay: false });
  }
}

/**
 * Linear layer on the last axis: x (..., in) @ w^T + b, w (out, in).
 * Leading axes are flattened into rows, as matmul wants rank-2 operands.
 */
export function linear(x: Tensor, w: Tensor, b?: Tensor): Tensor {
  const [out, inp] = w.shape;
  const lead = x.shape.slice(0, -1);
  const rows = lead.reduce((a, c) => a * c, 1);
  const y = matmul(x.reshape([rows, inp]), w, { transB: true, ...(b ? { bias: b } : {}) });
  return y.reshape([...lead, out]);
}

/**
 * Where dropout masks come from: (seed, step) plus a per-call-site counter, so
 * a replayed step draws the same masks and different sites draw different ones.
 */
export class DropoutContext {
  #site = 0;

  /** `rate` 0 or `training` false turn dropout into the identity. */
  constructor(
    readonly training: boolean,
    readonly rate: number,
    readonly seed: number,
    readonly step: number,
  ) {}

  /** Applies dropout at the next call site. */
  apply(x: Tensor): Tensor {
    const site = this.#site++;
    if (!this.training || this.rate === 0) return x;
    return dropout(x, this.rate, { seed: this.seed, stream: (this.step * 4096 + site) >>> 0 });
  }
}
