/**
 * Plain f64 reference for AdamW (as torch.optim.AdamW documents it).
 * @module
 */

/** Hyper-parameters of one reference step. */
export interface AdamWRefOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/**
 * One AdamW step at time t (1-based) on copies of the state; `decay[i]`
 * switches weight decay per element. Returns the new param, m and v.
 */
export function adamwRef(
  param: ArrayLike<number>,
  grad: ArrayLike<number>,
  m: ArrayLike<number>,
  v: ArrayLike<number>,
  decay: ArrayLike<boolean>,
  t: number,
  o: AdamWRefOptions,
): { param: Float64Array; m: Float64Array; v: Float64Array } {
  const n = param.length;
  const p2 = new Float64Array(n), m2 = new Float64Array(n), v2 = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let x = param[i];
    if (decay[i]) x -= o.lr * o.weightDecay * x;
    m2[i] = o.beta1 * m[i] + (1 - o.beta1) * grad[i];
    v2[i] = o.beta2 * v[i] + (1 - o.beta2) * grad[i] * grad[i];
    const mh = m2[i] / (1 - o.beta1 ** t);
    const vh = v2[i] / (1 - o.beta2 ** t);
    p2[i] = x - o.lr * mh / (Math.sqrt(vh) + o.eps);
  }
  return { param: p2, m: m2, v: v2 };
}
