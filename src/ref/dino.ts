/**
 * Plain f64 references for the DINO kernels: the teacher's EMA, the centre
 * update, row-wise L2 normalisation (and weight normalisation with gain 1),
 * soft-target cross-entropy with a temperature, and global-norm gradient
 * clipping. Written from the definitions, not from the WGSL.
 * @module
 */

/** teacher' = m teacher + (1 - m) student, elementwise. */
export function emaRef(
  teacher: ArrayLike<number>,
  student: ArrayLike<number>,
  momentum: number,
): Float64Array {
  const out = new Float64Array(teacher.length);
  for (let i = 0; i < out.length; i++) {
    out[i] = momentum * teacher[i] + (1 - momentum) * student[i];
  }
  return out;
}

/** centre' = m centre + (1 - m) mean over the rows of x (rows, cols). */
export function centerUpdateRef(
  centre: ArrayLike<number>,
  x: ArrayLike<number>,
  cols: number,
  momentum: number,
): Float64Array {
  const rows = x.length / cols;
  const out = new Float64Array(cols);
  for (let c = 0; c < cols; c++) {
    let s = 0;
    for (let r = 0; r < rows; r++) s += x[r * cols + c];
    out[c] = momentum * centre[c] + (1 - momentum) * (s / rows);
  }
  return out;
}

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
