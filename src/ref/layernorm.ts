/**
 * Plain f64 reference for layer normalization over the last axis (biased
 * variance, as PyTorch) and its backward, written from the definition.
 * @module
 */

/** Forward result: y (rows, cols), and per row the mean and 1 / sqrt(var + eps). */
export interface LayerNormRefResult {
  y: Float64Array;
  mean: Float64Array;
  rstd: Float64Array;
}

/** y = (x - mean) / sqrt(var + eps) * weight + bias per row of x viewed as (rows, cols). */
export function layerNormRef(
  x: ArrayLike<number>,
  weight: ArrayLike<number>,
  bias: ArrayLike<number>,
  cols: number,
  eps = 1e-5,
): LayerNormRefResult {
  const rows = x.length / cols;
  const y = new Float64Array(x.length),
    mean = new Float64Array(rows),
    rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += x[r * cols + c];
    const m = s / cols;
    let v = 0;
    for (let c = 0; c < cols; c++) v += (x[r * cols + c] - m) ** 2;
    const rs = 1 / Math.sqrt(v / cols + eps);
    mean[r] = m;
    rstd[r] = rs;
    for (let c = 0; c < cols; c++) {
      y[r * cols + c] = (x[r * cols + c] - m) * rs * weight[c] + bias[c];
    }
  }
  return { y, mean, rstd };
}

/** Gradients of sum(dy * layerNorm(x)) with respect to x, weight and bias. */
export interface LayerNormGrads {
  dx: Float64Array;
  dweight: Float64Array;
  dbias: Float64Array;
}

/**
 * Backward by the chain rule through mean and variance, term by term:
 * dxhat = dy w; dvar = sum dxhat (x - m) (-1/2) rstd^3; dmean = -sum dxhat rstd
 * (the dvar term through the mean vanishes since sum (x - m) = 0);
 * dx = dxhat rstd + dvar 2 (x - m) / n + dmean / n.
 */
export function layerNormBackwardRef(
  x: ArrayLike<number>,
  weight: ArrayLike<number>,
  dy: ArrayLike<number>,
  cols: number,
  eps = 1e-5,
): LayerNormGrads {
  const rows = x.length / cols;
  const dx = new Float64Array(x.length);
  const dweight = new Float64Array(cols), dbias = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    let m = 0;
    for (let c = 0; c < cols; c++) m += x[r * cols + c] / cols;
    let v = 0;
    for (let c = 0; c < cols; c++) v += (x[r * cols + c] - m) ** 2 / cols;
    const rs = 1 / Math.sqrt(v + eps);
    let dvar = 0, dmean = 0;
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      const dxhat = dy[i] * weight[c];
      dvar += dxhat * (x[i] - m) * -0.5 * rs ** 3;
      dmean += -dxhat * rs;
      dweight[c] += dy[i] * (x[i] - m) * rs;
      dbias[c] += dy[i];
    }
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      dx[i] = dy[i] * weight[c] * rs + dvar * 2 * (x[i] - m) / cols + dmean / cols;
    }
  }
  return { dx, dweight, dbias };
}
