/**
 * The fixed sinusoidal 1-D position encoding of the paper's ViT-Lite (Compact
 * Transformers' `sinusoidal_embedding`) and MAE decoder:
 *   pe[pos, j] = sin(pos / 10000^(2 floor(j/2) / D)) for even j, cos(...) for odd j.
 *
 * Computed on the CPU, once per model: it is a constant table (no gradient),
 * tiny (T x D <= 257 x 256), and f64 Math.sin/cos of arguments up to T
 * radians are accurate to the last f32 bit, whereas WGSL's sin/cos only
 * promise an absolute error bound on [-pi, pi] and lose digits on large
 * arguments. The caller uploads it with `tensor(gpu, pe, [T, D])`.
 *
 * @example
 * ```ts
 * import { sinusoidalPositions } from "./posenc.ts";
 * const pe = sinusoidalPositions(257, 256);
 * if (pe.length !== 257 * 256 || pe[1] !== 1) throw new Error("pe[0, 1] = cos 0 = 1");
 * ```
 * @module
 */

/** (T, D) row-major table of sinusoidal position encodings, computed in f64, stored as f32. */
export function sinusoidalPositions(tokens: number, dim: number): Float32Array {
  if (!Number.isInteger(tokens) || tokens < 0 || !Number.isInteger(dim) || dim < 0) {
    throw new RangeError(`sinusoidalPositions: bad size ${tokens}x${dim}`);
  }
  const pe = new Float32Array(tokens * dim);
  for (let pos = 0; pos < tokens; pos++) {
    for (let j = 0; j < dim; j++) {
      const angle = pos / 10000 ** ((2 * Math.floor(j / 2)) / dim);
      pe[pos * dim + j] = j % 2 === 0 ? Math.sin(angle) : Math.cos(angle);
    }
  }
  return pe;
}
