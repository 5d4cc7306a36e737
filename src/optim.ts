/**
 * AdamW over a {@link ParamStore}: one dispatch of kernels/adamw.wgsl per
 * step, whatever the number of parameters. Adam is AdamW with weight decay 0.
 * {@link GradClipper} clips a store's gradient to a global norm on the GPU
 * (kernels/clip_grad_norm.wgsl) before the step, with no readback. The
 * kernels are declared in src/ops/adamw.ts and src/ops/clip_grad_norm.ts.
 * @module
 */

import { grid1d } from "./ops/_check.ts";
import { ADAMW_STEP as STEP } from "./ops/adamw.ts";
import {
  CLIP_GRAD_NORM_APPLY as CLIP_APPLY,
  CLIP_GRAD_NORM_FACTOR as CLIP_FACTOR,
  CLIP_GRAD_NORM_PARTIAL as CLIP_PARTIAL,
} from "./ops/clip_grad_norm.ts";
import type { ParamStore } from "./params.ts";

/** AdamW hyper-parameters (PyTorch's defaults apart from lr). */
export interface AdamWOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Decoupled weight decay, applied to parameters declared with `decay: true`. */
  weightDecay?: number;
}

/** What a checkpoint keeps of an {@link AdamW}: its step count and both moments. */
export interface AdamWState {
  step: number;
  /** First moments, one per parameter value in the store's layout. */
  m: Float32Array;
  /** Second moments, same layout. */
  v: Float32Array;
}

/** AdamW state (first and second moments) and its step counter. */
export class AdamW {
  /** Steps taken so far (bias correction uses t = step after increment). */
  step = 0;
  readonly #m: GPUBuffer;
  readonly #v: GPUBuffer;
  readonly options: Required<AdamWOptions>;

  /** Allocates zeroed moments with the store's layout. */
  constructor(readonly store: ParamStore, options: AdamWOptions) {
    this.options = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, ...options };
    const gpu = store.gpu;
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    gpu.buffersCreated += 2;
    this.#m = gpu.device.createBuffer({ size: store.length * 4, usage });
    this.#v = gpu.device.createBuffer({ size: store.length * 4, usage });
    gpu.clear({ buffer: this.#m, offset: 0, size: store.length * 4 });
    gpu.clear({ buffer: this.#v, offset: 0, size: store.length * 4 });
  }

  /** Reads the step count and both moments back (waits for the GPU). */
  async state(): Promise<AdamWState> {
    const gpu = this.store.gpu, size = this.store.length * 4;
    const m = new Float32Array(await gpu.download({ buffer: this.#m, offset: 0, size }));
    const v = new Float32Array(await gpu.download({ buffer: this.#v, offset: 0, size }));
    return { step: this.step, m, v };
  }

  /**
   * Restores what {@link state} returned; `source` (a checkpoint's path and
   * entry) names a moment whose length is not the store's.
   */
  load(state: AdamWState, source: string): void {
    const n = this.store.length;
    for (const [k, buf, data] of [["m", this.#m, state.m], ["v", this.#v, state.v]] as const) {
      if (data.length !== n) {
        throw new Error(`${source}.${k} has ${data.length} values; the optimizer has ${n}`);
      }
      this.store.gpu.upload({ buffer: buf, offset: 0, size: data.byteLength }, data);
    }
    this.step = state.step;
  }

  /**
   * Applies one update with learning rate `lr` and weight decay `weightDecay`
   * (defaults: the constructor's; DINO schedules the decay).
   */
  update(lr = this.options.lr, weightDecay = this.options.weightDecay): void {
    const { beta1, beta2, eps } = this.options;
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
        { buffer: this.#m, offset: 0, size: bytes },
        { buffer: this.#v, offset: 0, size: bytes },
      ],
      grid1d(Math.ceil(s.length / 256)),
    );
  }

  /** Frees the moment buffers (after submitting work that may still use them). */
  destroy(): void {
    this.store.gpu.flush();
    this.#m.destroy();
    this.#v.destroy();
  }
}

/**
 * Clips a store's whole gradient to L2 norm `maxNorm` in place, as
 * torch.nn.utils.clip_grad_norm_: g *= min(1, maxNorm / (||g|| + 1e-6)).
 * Three dispatches (partial sums of squares, the factor, the scaling); the
 * norm and factor stay in a GPU buffer ({@link GradClipper.state}), read
 * back only when a caller logs them.
 */
export class GradClipper {
  /** (norm before clipping, factor applied) of the last {@link clip}. */
  readonly state: GPUBuffer;
  readonly #partial: GPUBuffer;
  readonly #groups: number;

  /** Allocates the partial-sum and state buffers for `store`. */
  constructor(readonly store: ParamStore, readonly maxNorm: number) {
    if (!(maxNorm > 0)) throw new RangeError(`GradClipper: maxNorm ${maxNorm} must be positive`);
    const gpu = store.gpu;
    this.#groups = Math.max(1, Math.min(1024, Math.ceil(store.length / 64)));
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    gpu.buffersCreated += 2;
    this.#partial = gpu.device.createBuffer({ size: this.#groups * 4, usage });
    this.state = gpu.device.createBuffer({ size: 8, usage });
  }

  /** Records the clipping of the store's current gradient. */
  clip(): void {
    const s = this.store, gpu = s.gpu, n = s.length, groups = this.#groups;
    const params = { n, groups, max_norm: this.maxNorm };
    const grads = { buffer: s.grads, offset: 0, size: n * 4 };
    const partial = { buffer: this.#partial, offset: 0, size: groups * 4 };
    const state = { buffer: this.state, offset: 0, size: 8 };
    gpu.dispatch(CLIP_PARTIAL, params, [grads, partial], [groups]);
    gpu.dispatch(CLIP_FACTOR, params, [partial, state], [1]);
    gpu.dispatch(CLIP_APPLY, params, [state, grads], grid1d(Math.ceil(n / 256)));
  }

  /** Reads (norm, factor) of the last clip (waits for the GPU). */
  async read(): Promise<{ norm: number; factor: number }> {
    const v = new Float32Array(
      await this.store.gpu.download({ buffer: this.state, offset: 0, size: 8 }),
    );
    return { norm: v[0], factor: v[1] };
  }

  /** Frees the buffers (after submitting work that may still use them). */
  destroy(): void {
    this.store.gpu.flush();
    this.#partial.destroy();
    this.state.destroy();
  }
}
