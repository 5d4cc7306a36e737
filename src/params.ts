/**
 * Parameters live in one flat GPU buffer (and their gradients, and the
 * optimizer's moments, in buffers of the same layout) so that zeroing the
 * gradients is one clear and an optimizer step is one dispatch. Each
 * parameter is a {@link Tensor} view at a 256-byte-aligned offset (WebGPU's
 * minStorageBufferOffsetAlignment), with a per-parameter weight-decay switch.
 * @module
 */

import type { Gpu } from "./gpu/device.ts";
import { Tensor } from "./tensor.ts";

/** What a model declares for one parameter before the store is built. */
export interface ParamSpec {
  name: string;
  shape: readonly number[];
  /** Initial values (length = product of shape). */
  init: Float32Array;
  /** Whether AdamW's decoupled weight decay applies (false for biases, norms, tokens). */
  decay: boolean;
}

const ALIGN_FLOATS = 64; // 256 bytes

/** The flat parameter, gradient and decay-mask buffers of one model. */
export class ParamStore {
  /** Parameters by name, in declaration order. */
  readonly params = new Map<string, Tensor>();
  /** Total f32 slots including alignment padding. */
  readonly length: number;
  readonly data: GPUBuffer;
  readonly grads: GPUBuffer;
  /** Bit i set when slot i takes weight decay. */
  readonly decayMask: GPUBuffer;
  readonly specs: readonly ParamSpec[];
  readonly offsets: readonly number[];

  /** Allocates the buffers and uploads the initial values. */
  constructor(readonly gpu: Gpu, specs: readonly ParamSpec[]) {
    this.specs = specs;
    const names = new Set<string>();
    const offsets: number[] = [];
    let n = 0;
    for (const s of specs) {
      if (names.has(s.name)) throw new Error(`ParamStore: parameter '${s.name}' declared twice`);
      names.add(s.name);
      const size = s.shape.reduce((a, b) => a * b, 1);
      if (s.init.length !== size) {
        throw new Error(`ParamStore: '${s.name}' [${s.shape}] has ${s.init.length} initial values`);
      }
      offsets.push(n);
      n += Math.ceil(size / ALIGN_FLOATS) * ALIGN_FLOATS;
    }
    this.offsets = offsets;
    this.length = Math.max(n, ALIGN_FLOATS);
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    const make = (bytes: number) => {
      gpu.buffersCreated++;
      return gpu.device.createBuffer({ size: bytes, usage });
    };
    this.data = make(this.length * 4);
    this.grads = make(this.length * 4);
    this.decayMask = make(Math.ceil(this.length / 32) * 4);
    const host = new Float32Array(this.length);
    const mask = new Uint32Array(Math.ceil(this.length / 32));
    specs.forEach((s, i) => {
      const o = offsets[i];
      host.set(s.init, o);
      if (s.decay) { for (let j = o; j < o + s.init.length; j++) mask[j >>> 5] |= 1 << (j & 31); }
      const t = new Tensor(gpu, s.shape, "f32", this.data, o * 4, false, true);
      t.name = s.name;
      t.grad = new Tensor(gpu, s.shape, "f32", this.grads, o * 4, false);
      t.grad.name = `grad(${s.name})`;
      this.params.set(s.name, t);
    });
    gpu.upload({ buffer: this.data, offset: 0, size: host.byteLength }, host);
    gpu.upload({ buffer: this.decayMask, offset: 0, size: mask.byteLength }, mask);
    this.zeroGrad();
  }

  /** The parameter called `name`; throws listing the known names otherwise. */
  get(name: string): Tensor {
    const t = this.params.get(name);
    if (!t) throw new Error(`no parameter '${name}' (have: ${[...this.params.keys()].join(", ")})`);
    return t;
  }

  /** Number of trainable values (without padding). */
  get count(): number {
    return this.specs.reduce((a, s) => a + s.init.length, 0);
  }

  /** Sets every gradient to zero (one recorded clear). */
  zeroGrad(): void {
    this.gpu.clear({ buffer: this.grads, offset: 0, size: this.length * 4 });
  }

  /** Reads every parameter's values back, by name. */
  async read(): Promise<Map<string, Float32Array>> {
    const all = new Float32Array(
      await this.gpu.download({ buffer: this.data, offset: 0, size: this.length * 4 }),
    );
    return new Map(
      this.specs.map((
        s,
        i,
      ) => [s.name, all.slice(this.offsets[i], this.offsets[i] + s.init.length)]),
    );
  }

  /** Overwrites parameters from host arrays (e.g. a checkpoint), by name. */
  load(values: Map<string, Float32Array>): void {
    this.specs.forEach((s, i) => {
      const v = values.get(s.name);
      if (!v) return;
      if (v.length !== s.init.length) {
        throw new Error(`load: '${s.name}' expects ${s.init.length} values, got ${v.length}`);
      }
      this.gpu.upload({ buffer: this.data, offset: this.offsets[i] * 4, size: v.byteLength }, v);
    });
  }

  /**
   * Overwrites every parameter with `valueOf(prefix + name)` (e.g. from a
   * checkpoint's tensors); a missing or mis-sized value throws naming
   * `source`, the parameter and, for a missing one, `hint` (what `source`
   * should have been). Nothing is uploaded unless every value fits.
   */
  loadAll(
    valueOf: (name: string) => Float32Array | undefined,
    source: string,
    hint: string,
    prefix = "",
  ): void {
    const values = new Map<string, Float32Array>();
    for (const s of this.specs) {
      const name = prefix + s.name;
      const v = valueOf(name);
      if (!v) throw new Error(`${source} has no parameter '${name}' (${hint})`);
      if (v.length !== s.init.length) {
        throw new Error(
          `${source}: '${name}' has ${v.length} values, the model wants ${s.init.length}`,
        );
      }
      values.set(s.name, v);
    }
    this.load(values);
  }

  /** Frees the GPU buffers (after submitting work that may still use them). */
  destroy(): void {
    // Destroying a buffer that an unsubmitted encoder references makes the
    // submit invalid (and panics wgpu 29), so submit first.
    this.gpu.flush();
    this.data.destroy();
    this.grads.destroy();
    this.decayMask.destroy();
  }
}
