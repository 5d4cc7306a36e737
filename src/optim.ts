/**
 * AdamW over a {@link ParamStore}: one dispatch of kernels/adamw.wgsl per
 * step, whatever the number of parameters. Adam is AdamW with weight decay 0.
 * @module
 */

import { grid1d } from "./ops/_check.ts";
import type { KernelSpec } from "./gpu/device.ts";
import type { ParamStore } from "./params.ts";

const PARAMS = {
  n: "u32",
  lr: "f32",
  beta1: "f32",
  beta2: "f32",
  eps: "f32",
  wd: "f32",
  bc1: "f32",
  bc2: "f32",
} as const;
const STEP = {
  file: "adamw.wgsl",
  entry: "adamw_step",
  params: PARAMS,
  workgroup: [256],
} as const satisfies KernelSpec<typeof PARAMS>;

/** AdamW hyper-parameters (PyTorch's defaults apart from lr). */
export interface AdamWOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Decoupled weight decay, applied to parameters declared with `decay: true`. */
  weightDecay?: number;
}

/** AdamW state (first and second moments) and its step counter. */
export class AdamW {
  /** Steps taken so far (bias correction uses t = step after increment). */
  step = 0;
  readonly m: GPUBuffer;
  readonly v: GPUBuffer;
  readonly options: Required<AdamWOptions>;

  /** Allocates zeroed moments with the store's layout. */
  constructor(readonly store: ParamStore, options: AdamWOptions) {
    this.options = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, ...options };
    const gpu = store.gpu;
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    gpu.buffersCreated += 2;
    this.m = gpu.device.createBuffer({ size: store.length * 4, usage });
    this.v = gpu.device.createBuffer({ size: store.length * 4, usage });
    gpu.clear({ buffer: this.m, offset: 0, size: store.length * 4 });
    gpu.clear({ buffer: this.v, offset: 0, size: store.length * 4 });
  }

  /** Applies one update with learning rate `lr` (default: the constructor's). */
  update(lr = this.options.lr): void {
    const { beta1, beta2, eps, weightDecay } = this.options;
    this.step++;
    const s = this.store;
    const bytes = s.length * 4;
    s.gpu.dispatch(
      STEP,
      {
        n: s.length,
        lr,
        beta1,
        beta2,
        eps,
        wd: weightDecay,
        bc1: 1 / (1 - beta1 ** this.step),
        bc2: 1 / (1 - beta2 ** this.step),
      },
      [
        { buffer: s.grads, offset: 0, size: bytes },
        { buffer: s.decayMask, offset: 0, size: Math.ceil(s.length / 32) * 4 },
        { buffer: s.data, offset: 0, size: bytes },
        { buffer: this.m, offset: 0, size: bytes },
        { buffer: this.v, offset: 0, size: bytes },
      ],
      grid1d(Math.ceil(s.length / 256)),
    );
  }

  /** Frees the moment buffers (after submitting work that may still use them). */
  destroy(): void {
    this.store.gpu.flush();
    this.m.destroy();
    this.v.destroy();
  }
}
