/**
 * Plain f64 references for the losses (src/ops/loss.ts): cross-entropy with
 * integer labels, mean-squared error, and DINO's soft-target cross-entropy
 * with a temperature. Written from the definitions, not from the WGSL.
 * @module
 */

/** Per-row cross-entropy -log softmax(logits)[label]; NaN for an out-of-range label. */
export function crossEntropyRowsRef(
  logits: ArrayLike<number>,
  labels: ArrayLike<number>,
  cols: number,
) {
  const rows = labels.length;
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let c = 0; c < cols; c++) m = Math.max(m, logits[r * cols + c]);
    let s = 0;
    for (let c = 0; c < cols; c++) s += Math.exp(logits[r * cols + c] - m);
    const y = labels[r];
    out[r] = y >= 0 && y < cols ? m + Math.log(s) - logits[r * cols + y] : NaN;
  }
  return out;
}

/** d loss_r / d logits given dloss per row: dloss_r (p - onehot). */
export function crossEntropyRowsBackwardRef(
  logits: ArrayLike<number>,
  labels: ArrayLike<number>,
  dloss: ArrayLike<number>,
  cols: number,
): Float64Array {
  const out = new Float64Array(logits.length);
  for (let r = 0; r < labels.length; r++) {
    let m = -Infinity;
    for (let c = 0; c < cols; c++) m = Math.max(m, logits[r * cols + c]);
    let s = 0;
    for (let c = 0; c < cols; c++) s += Math.exp(logits[r * cols + c] - m);
    for (let c = 0; c < cols; c++) {
      const p = Math.exp(logits[r * cols + c] - m) / s;
      out[r * cols + c] = dloss[r] * (p - (c === labels[r] ? 1 : 0));
    }
  }
  return out;
}

/** Masked MSE: sum_r m_r mean_c (p - t)^2 / sum_r m_r (0 if no weight). */
export function mseRef(
  p: ArrayLike<number>,
  t: ArrayLike<number>,
  cols: number,
  mask?: ArrayLike<number>,
): number {
  let num = 0, den = 0;
  for (let r = 0; r * cols < p.length; r++) {
    const m = mask ? mask[r] : 1;
    let s = 0;
    for (let c = 0; c < cols; c++) s += (p[r * cols + c] - t[r * cols + c]) ** 2;
    num += m * s / cols;
    den += m;
  }
  return den > 0 ? num / den : 0;
}

/** d mse / d pred times the upstream gradient g. */
export function mseBackwardRef(
  p: ArrayLike<number>,
  t: ArrayLike<number>,
  cols: number,
  g: number,
  mask?: ArrayLike<number>,
): Float64Array {
  const rows = p.length / cols;
  let den = 0;
  for (let r = 0; r < rows; r++) den += mask ? mask[r] : 1;
  const out = new Float64Array(p.length);
  if (den <= 0) return out;
  for (let i = 0; i < p.length; i++) {
    const m = mask ? mask[Math.floor(i / cols)] : 1;
    out[i] = g * m * 2 * (p[i] - t[i]) / (cols * den);
  }
  return out;
}

/** Per row: -sum_c q_c log softmax(x / t)_c, x and q (rows, cols). */
export function softCrossEntropyRef(
  x: ArrayLike<number>,
  q: ArrayLike<number>,
  cols: number,
  t: number,
): Float64Array {
  const rows = x.length / cols;
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let c = 0; c < cols; c++) m = Math.max(m, x[r * cols + c] / t);
    let s = 0;
    for (let c = 0; c < cols; c++) s += Math.exp(x[r * cols + c] / t - m);
    const lse = m + Math.log(s);
    let loss = 0;
    for (let c = 0; c < cols; c++) loss -= q[r * cols + c] * (x[r * cols + c] / t - lse);
    out[r] = loss;
  }
  return out;
}

/** dx of {@link softCrossEntropyRef} for per-row upstream gradients dloss (rows). */
export function softCrossEntropyBackwardRef(
  x: ArrayLike<number>,
  q: ArrayLike<number>,
  dloss: ArrayLike<number>,
  cols: number,
  t: number,
): Float64Array {
  const rows = x.length / cols;
  const dx = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity, qs = 0;
    for (let c = 0; c < cols; c++) {
      m = Math.max(m, x[r * cols + c] / t);
      qs += q[r * cols + c];
    }
    let s = 0;
    for (let c = 0; c < cols; c++) s += Math.exp(x[r * cols + c] / t - m);
    for (let c = 0; c < cols; c++) {
      const p = Math.exp(x[r * cols + c] / t - m) / s;
      dx[r * cols + c] = dloss[r] * (p * qs - q[r * cols + c]) / t;
    }
  }
  return dx;
}
