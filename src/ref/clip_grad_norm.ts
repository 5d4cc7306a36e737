/**
 * Plain f64 reference for global-norm gradient clipping
 * (src/ops/clip_grad_norm.ts), as torch.nn.utils.clip_grad_norm_.
 * @module
 */

/** Scales g so that its L2 norm is at most maxNorm (torch.nn.utils.clip_grad_norm_, eps 1e-6). */
export function clipGradNormRef(
  g: ArrayLike<number>,
  maxNorm: number,
): { grad: Float64Array; norm: number; factor: number } {
  let s = 0;
  for (let i = 0; i < g.length; i++) s += g[i] * g[i];
  const norm = Math.sqrt(s);
  const factor = Math.min(1, maxNorm / (norm + 1e-6));
  return { grad: Float64Array.from(g, (v) => v * factor), norm, factor };
}
