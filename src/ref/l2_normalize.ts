/**
 * Plain f64 references for row-wise L2 normalisation (src/ops/l2_normalize.ts),
 * which DINO's head also uses as weight normalisation with gain 1. Written
 * from the definitions, not from the WGSL.
 * @module
 */

/** y = x / max(||x||, eps) per row of x (rows, cols). */
export function l2NormalizeRef(x: ArrayLike<number>, cols: number, eps: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r * cols < x.length; r++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += x[r * cols + c] ** 2;
    const d = Math.max(Math.sqrt(s), eps);
    for (let c = 0; c < cols; c++) out[r * cols + c] = x[r * cols + c] / d;
  }
  return out;
}

/**
 * dx of {@link l2NormalizeRef} from the Jacobian of x / ||x||:
 * dx_c = sum_k dy_k ([c = k] - y_c y_k) / ||x|| (dy / eps where the norm is clamped).
 */
export function l2NormalizeBackwardRef(
  x: ArrayLike<number>,
  dy: ArrayLike<number>,
  cols: number,
  eps: number,
): Float64Array {
  const dx = new Float64Array(x.length);
  for (let r = 0; r * cols < x.length; r++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += x[r * cols + c] ** 2;
    const n = Math.sqrt(s);
    for (let c = 0; c < cols; c++) {
      if (n <= eps) {
        dx[r * cols + c] = dy[r * cols + c] / eps;
        continue;
      }
      let v = 0;
      for (let k = 0; k < cols; k++) {
        const jac = ((k === c ? 1 : 0) - (x[r * cols + c] / n) * (x[r * cols + k] / n)) / n;
        v += dy[r * cols + k] * jac;
      }
      dx[r * cols + c] = v;
    }
  }
  return dx;
}
