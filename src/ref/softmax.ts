/**
 * Plain f64 reference for softmax over the last axis and its backward.
 * @module
 */

/** Row-wise softmax of x viewed as (rows, cols). */
export function softmaxRef(x: ArrayLike<number>, cols: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r * cols < x.length; r++) {
    let m = -Infinity;
    for (let c = 0; c < cols; c++) m = Math.max(m, x[r * cols + c]);
    let s = 0;
    for (let c = 0; c < cols; c++) s += Math.exp(x[r * cols + c] - m);
    for (let c = 0; c < cols; c++) out[r * cols + c] = Math.exp(x[r * cols + c] - m) / s;
  }
  return out;
}

/** dx from the Jacobian: dx_c = sum_c' dy_c' y_c' ([c = c'] - y_c). */
export function softmaxBackwardRef(
  y: ArrayLike<number>,
  dy: ArrayLike<number>,
  cols: number,
): Float64Array {
  const dx = new Float64Array(y.length);
  for (let r = 0; r * cols < y.length; r++) {
    for (let c = 0; c < cols; c++) {
      let s = 0;
      for (let k = 0; k < cols; k++) {
        const yk = y[r * cols + k];
        s += dy[r * cols + k] * yk * ((k === c ? 1 : 0) - y[r * cols + c]);
      }
      dx[r * cols + c] = s;
    }
  }
  return dx;
}
