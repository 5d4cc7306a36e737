/**
 * Tensors: a shape and a dtype over a range of a GPU buffer. Intermediates
 * own a pooled buffer and go back to the pool when disposed; parameters are
 * views into one flat buffer (see src/params.ts) and are never pooled.
 *
 * Memory is managed by scopes, as in TensorFlow.js: {@link tidy} disposes
 * every tensor created inside it except those it returns or {@link keep}s.
 *
 * @module
 */

import type { Binding, Gpu } from "./gpu/device.ts";

/** Element types a tensor may hold (all 4 bytes wide). */
export type DType = "f32" | "i32" | "u32";

/** Typed array for each dtype. */
export type HostArray<D extends DType = DType> = D extends "f32" ? Float32Array
  : D extends "i32" ? Int32Array
  : Uint32Array;

/** Backward hook of the op that produced a tensor (see src/tape.ts). */
export interface TapeNode {
  /** Op name for error messages. */
  op: string;
  inputs: Tensor[];
  /** Adds this op's contribution to each input's gradient, given the output's gradient. */
  backward: (grad: Tensor) => void;
}

const scopes: Set<Tensor>[] = [];

/** A shaped, typed range of a GPU buffer, with an optional gradient. */
export class Tensor {
  /** Gradient of the last backward pass (same shape), or null. */
  grad: Tensor | null = null;
  /** The op that produced this tensor while recording, or null for leaves. */
  node: TapeNode | null = null;
  /** Optional name shown in errors (parameters have one). */
  name = "";
  /** For a view made by {@link reshape}: the tensor whose memory (and gradient) it shares. */
  base: Tensor | null = null;
  #disposed = false;

  /** @internal use the factories below or an op. */
  constructor(
    readonly gpu: Gpu,
    readonly shape: readonly number[],
    readonly dtype: DType,
    readonly buffer: GPUBuffer,
    readonly offset: number,
    /** True when this tensor owns `buffer` (pooled) and frees it on dispose. */
    readonly owned: boolean,
    public requiresGrad = false,
  ) {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new RangeError(`invalid shape [${shape}]`);
    }
    scopes.at(-1)?.add(this);
  }

  /** Number of elements. */
  get size(): number {
    return sizeOf(this.shape);
  }

  /** The buffer range a kernel binds. */
  get binding(): Binding {
    if (this.#disposed) throw new Error(`tensor ${this.describe()} was used after dispose`);
    return { buffer: this.buffer, offset: this.offset, size: this.size * 4 };
  }

  /** True after {@link dispose}. */
  get disposed(): boolean {
    return this.#disposed;
  }

  /** `name[2,3] f32` for messages. */
  describe(): string {
    return `${this.name || "tensor"}[${this.shape.join(",")}] ${this.dtype}`;
  }

  /** Copies the data to the host (waits for the GPU). */
  async read(): Promise<HostArray> {
    const bytes = await this.gpu.download(this.binding);
    if (this.dtype === "f32") return new Float32Array(bytes);
    if (this.dtype === "i32") return new Int32Array(bytes);
    return new Uint32Array(bytes);
  }

  /** Reads a one-element tensor as a number. */
  async item(): Promise<number> {
    if (this.size !== 1) {
      throw new Error(`item() needs one element, ${this.describe()} has ${this.size}`);
    }
    return (await this.read())[0];
  }

  /** Returns a tensor sharing this data with another shape of the same size. */
  reshape(shape: readonly number[]): Tensor {
    if (sizeOf(shape) !== this.size) {
      throw new RangeError(`reshape: ${this.describe()} cannot become [${shape}]`);
    }
    const t = new Tensor(this.gpu, shape, this.dtype, this.buffer, this.offset, false);
    t.requiresGrad = this.requiresGrad;
    t.name = this.name;
    // The view's gradient is a view of the base's gradient (see gradOf in
    // src/tape.ts), so no tape node is needed; tidy keeps the base alive.
    t.base = this.base ?? this;
    return t;
  }

  /** Frees the buffer (pooled tensors) and the gradient. Idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    if (this.owned) this.gpu.release(this.buffer);
    this.node = null;
    if (this.grad && this.grad.owned) this.grad.dispose();
    this.grad = null;
  }
}

/** Element count of a shape. */
export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Allocates an uninitialised tensor from the pool. */
export function empty(gpu: Gpu, shape: readonly number[], dtype: DType = "f32"): Tensor {
  const n = sizeOf(shape);
  return new Tensor(gpu, shape, dtype, gpu.acquire(Math.max(4, n * 4)), 0, true);
}

/** Allocates a zero-filled tensor (the fill is recorded, not waited for). */
export function zeros(gpu: Gpu, shape: readonly number[], dtype: DType = "f32"): Tensor {
  const t = empty(gpu, shape, dtype);
  gpu.clear(t.binding);
  return t;
}

/** Uploads host data as a new tensor of `shape`. */
export function tensor(
  gpu: Gpu,
  data: ArrayLike<number> | HostArray,
  shape: readonly number[] = [data.length],
  dtype: DType = "f32",
): Tensor {
  if (sizeOf(shape) !== data.length) {
    throw new RangeError(`tensor: ${data.length} values do not fill shape [${shape}]`);
  }
  const t = empty(gpu, shape, dtype);
  const host = dtype === "f32"
    ? Float32Array.from(data)
    : dtype === "i32"
    ? Int32Array.from(data)
    : Uint32Array.from(data);
  if (host.length > 0) gpu.upload(t.binding, host);
  return t;
}

/**
 * Runs `fn` and disposes every tensor created inside it that is not part of
 * its result (a tensor, an array or a plain object of tensors) and not kept.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } finally {
    scopes.pop();
  }
  return closeScope(scope, result);
}

/** Async variant of {@link tidy}: awaits `fn` before disposing. */
export async function tidyAsync<T>(fn: () => Promise<T>): Promise<T> {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = await fn();
  } finally {
    const i = scopes.lastIndexOf(scope);
    if (i >= 0) scopes.splice(i, 1);
  }
  return closeScope(scope, result);
}

const kept = new WeakSet<Tensor>();

/** Disposes a closed scope's tensors except `result`'s and kept ones; survivors move to the enclosing scope. */
function closeScope<T>(scope: Set<Tensor>, result: T): T {
  const survivors = new Set<Tensor>();
  collect(result, survivors);
  for (const t of scope) {
    if (survivors.has(t)) scopes.at(-1)?.add(t);
    else if (!kept.has(t)) t.dispose();
  }
  return result;
}

/**
 * Runs `fn` with no scope active, so the tensors it creates outlive every
 * enclosing {@link tidy} (gradients of leaves are made this way).
 */
export function unscoped<T>(fn: () => T): T {
  const saved = scopes.splice(0, scopes.length);
  try {
    return fn();
  } finally {
    scopes.push(...saved);
  }
}

/** Exempts a tensor from disposal by enclosing {@link tidy} scopes. */
export function keep<T extends Tensor>(t: T): T {
  kept.add(t);
  return t;
}

function collect(x: unknown, out: Set<Tensor>): void {
  if (x instanceof Tensor) {
    out.add(x);
    if (x.base) out.add(x.base);
  } else if (Array.isArray(x)) x.forEach((v) => collect(v, out));
  else if (x && typeof x === "object" && Object.getPrototypeOf(x) === Object.prototype) {
    for (const v of Object.values(x)) collect(v, out);
  }
}
