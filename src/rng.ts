/**
 * Seeded random numbers for everything that must replay exactly: parameter
 * init, data order, masking noise, augmentation. One seed drives a run; each
 * consumer derives its own stream with {@link Rng.fork} so that adding draws
 * in one place does not shift another.
 *
 * The generator is xoshiro128** seeded through splitmix32 (small, fast in
 * plain 32-bit integer arithmetic, and good enough for ML; not cryptographic).
 *
 * @example
 * ```ts
 * import { Rng } from "./rng.ts";
 * const a = new Rng(42), b = new Rng(42);
 * if (a.float() !== b.float()) throw new Error("not replayable");
 * ```
 * @module
 */

/** splitmix32 step: turns any 32-bit state into a well-mixed 32-bit output. */
export function splitmix32(x: number): number {
  x = (x + 0x9e3779b9) | 0;
  let z = x;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/**
 * Counter-based hash of (seed, stream, index) to a uniform u32. The dropout
 * kernel computes the same function in WGSL (`hash3` in kernels/elementwise.wgsl),
 * so a mask can be replayed from its key alone, on the GPU or here.
 */
export function hash3(seed: number, stream: number, index: number): number {
  let h = splitmix32((seed >>> 0) ^ Math.imul(stream >>> 0, 0x27d4eb2d));
  h = splitmix32((h ^ (index >>> 0)) >>> 0);
  return h >>> 0;
}

/** A seeded xoshiro128** generator. */
export class Rng {
  #s = new Uint32Array(4);

  /** Seeds the four state words from `seed` through splitmix32. */
  constructor(seed: number) {
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      x = splitmix32(x + i);
      this.#s[i] = x;
    }
    if ((this.#s[0] | this.#s[1] | this.#s[2] | this.#s[3]) === 0) this.#s[0] = 1;
  }

  /** Next uniform 32-bit unsigned integer. */
  u32(): number {
    const s = this.#s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform float in [0, 1) with 32 random bits. */
  float(): number {
    return this.u32() / 4294967296;
  }

  /** Uniform float in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.float();
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    if (!(n > 0)) throw new RangeError(`Rng.int: n must be positive, got ${n}`);
    return Math.floor(this.float() * n);
  }

  /** Standard normal sample (Box-Muller). */
  normal(): number {
    let u = this.float();
    while (u === 0) u = this.float();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.float());
  }

  /** Shuffles `a` in place (Fisher-Yates) and returns it. */
  shuffle<T>(a: T[] | Uint32Array | Int32Array): typeof a {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
    return a;
  }

  /** A random permutation of 0..n-1. */
  permutation(n: number): Uint32Array {
    const p = new Uint32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    return this.shuffle(p) as Uint32Array;
  }

  /** An independent generator for a named sub-stream (e.g. "data", "mask"). */
  fork(name: string | number): Rng {
    let h = this.#s[0] ^ 0x5bd1e995;
    const key = String(name);
    for (let i = 0; i < key.length; i++) h = splitmix32(h ^ key.charCodeAt(i));
    return new Rng((h ^ this.#s[2]) >>> 0);
  }

  /** Fills a new Float32Array of length n with uniform [lo, hi) samples. */
  uniformArray(n: number, lo = 0, hi = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.uniform(lo, hi);
    return out;
  }

  /** Fills a new Float32Array of length n with N(0, std^2) samples. */
  normalArray(n: number, std = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = std * this.normal();
    return out;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
