/**
 * Plain f64 references for the pointwise ops, from their definitions.
 * Backward functions return the gradient contribution (not accumulated).
 * @module
 */

import { hash3 } from "../rng.ts";

type A = ArrayLike<number>;

function map(n: number, f: (i: number) => number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = f(i);
  return out;
}

/** alpha * a + beta * b. */
export function axpbyRef(a: A, b: A, alpha: number, beta: number): Float64Array {
  return map(a.length, (i) => alpha * a[i] + beta * b[i]);
}

/** a * b. */
export function mulRef(a: A, b: A): Float64Array {
  return map(a.length, (i) => a[i] * b[i]);
}

/** x[r, c] + bias[c]. */
export function biasAddRef(x: A, bias: A): Float64Array {
  return map(x.length, (i) => x[i] + bias[i % bias.length]);
}

/** Column sums of g viewed as (rows, n): the bias gradient. */
export function biasAddBackwardRef(g: A, n: number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < g.length; i++) out[i % n] += g[i];
  return out;
}

/** max(x, 0). */
export function reluRef(x: A): Float64Array {
  return map(x.length, (i) => (x[i] > 0 ? x[i] : 0));
}

/** dy * [x > 0]. */
export function reluBackwardRef(x: A, dy: A): Float64Array {
  return map(x.length, (i) => (x[i] > 0 ? dy[i] : 0));
}

const S = Math.sqrt(2 / Math.PI);

/** GELU, tanh form. */
export function geluRef(x: A): Float64Array {
  return map(x.length, (i) => 0.5 * x[i] * (1 + Math.tanh(S * (x[i] + 0.044715 * x[i] ** 3))));
}

/** dy * d/dx gelu(x), differentiated by hand from {@link geluRef}. */
export function geluBackwardRef(x: A, dy: A): Float64Array {
  return map(x.length, (i) => {
    const v = x[i];
    const t = Math.tanh(S * (v + 0.044715 * v ** 3));
    const d = 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * S * (1 + 3 * 0.044715 * v * v);
    return dy[i] * d;
  });
}

/** Inverted dropout with the counter-based mask keyed by (seed, stream). */
export function dropoutRef(x: A, rate: number, seed: number, stream: number): Float64Array {
  const threshold = Math.min(0xffffffff, Math.floor(rate * 4294967296));
  return map(x.length, (i) => (hash3(seed, stream, i) >= threshold ? x[i] / (1 - rate) : 0));
}
