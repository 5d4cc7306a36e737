/**
 * Plain f64 reference for multi-head softmax self-attention and its backward,
 * written from the definition: per batch b and head h (columns h*dh.. of
 * (B, T, D) rows, dh = D / H), S = q k^T / sqrt(dh), P = softmax_row(S),
 * O = P v. The backward materialises P and every intermediate.
 * @module
 */

/** Shape of an attention problem: q, k, v and the output are (B, T, D); H heads. */
export interface AttentionShape {
  B: number;
  T: number;
  D: number;
  H: number;
}

/** Splits a packed (B, T, 3D) qkv, last axis [q | k | v], into three (B, T, D) arrays. */
export function splitQkvRef(
  qkv: ArrayLike<number>,
  B: number,
  T: number,
  D: number,
): [Float64Array, Float64Array, Float64Array] {
  const parts = [0, 1, 2].map(() => new Float64Array(B * T * D));
  for (let r = 0; r < B * T; r++) {
    for (let part = 0; part < 3; part++) {
      for (let c = 0; c < D; c++) parts[part][r * D + c] = qkv[r * 3 * D + part * D + c];
    }
  }
  return [parts[0], parts[1], parts[2]];
}

/** Packs three (B, T, D) arrays into one (B, T, 3D), last axis [q | k | v]. */
export function packQkvRef(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  B: number,
  T: number,
  D: number,
): Float64Array {
  const out = new Float64Array(B * T * 3 * D);
  const parts = [q, k, v];
  for (let r = 0; r < B * T; r++) {
    for (let part = 0; part < 3; part++) {
      for (let c = 0; c < D; c++) out[r * 3 * D + part * D + c] = parts[part][r * D + c];
    }
  }
  return out;
}

/** P for batch b, head h: (T, T) row-softmax of scaled scores. */
function probabilities(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  s: AttentionShape,
  b: number,
  h: number,
): Float64Array {
  const { T, D, H } = s;
  const dh = D / H;
  const scale = 1 / Math.sqrt(dh);
  const P = new Float64Array(T * T);
  for (let i = 0; i < T; i++) {
    let m = -Infinity;
    for (let j = 0; j < T; j++) {
      let dot = 0;
      for (let c = 0; c < dh; c++) {
        dot += q[(b * T + i) * D + h * dh + c] * k[(b * T + j) * D + h * dh + c];
      }
      P[i * T + j] = scale * dot;
      m = Math.max(m, P[i * T + j]);
    }
    let z = 0;
    for (let j = 0; j < T; j++) z += Math.exp(P[i * T + j] - m);
    for (let j = 0; j < T; j++) P[i * T + j] = Math.exp(P[i * T + j] - m) / z;
  }
  return P;
}

/** Attention output (B, T, D) from separate q, k, v (B, T, D). */
export function attentionRef(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  s: AttentionShape,
): Float64Array {
  const { B, T, D, H } = s;
  const dh = D / H;
  const out = new Float64Array(B * T * D);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const P = probabilities(q, k, s, b, h);
      for (let i = 0; i < T; i++) {
        for (let c = 0; c < dh; c++) {
          let acc = 0;
          for (let j = 0; j < T; j++) acc += P[i * T + j] * v[(b * T + j) * D + h * dh + c];
          out[(b * T + i) * D + h * dh + c] = acc;
        }
      }
    }
  }
  return out;
}

/**
 * Gradients of attention with respect to q, k, v given dO (B, T, D), by the
 * chain rule through each step: dv = P^T dO, dP = dO v^T, dS_ij = P_ij (dP_ij
 * - sum_j' P_ij' dP_ij') (the softmax Jacobian), dq = scale dS k, dk = scale dS^T q.
 */
export function attentionBackwardRef(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  dO: ArrayLike<number>,
  s: AttentionShape,
): { dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const { B, T, D, H } = s;
  const dh = D / H;
  const scale = 1 / Math.sqrt(dh);
  const dq = new Float64Array(B * T * D);
  const dk = new Float64Array(B * T * D);
  const dv = new Float64Array(B * T * D);
  const at = (b: number, t: number, h: number, c: number) => (b * T + t) * D + h * dh + c;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const P = probabilities(q, k, s, b, h);
      const dP = new Float64Array(T * T);
      for (let i = 0; i < T; i++) {
        for (let j = 0; j < T; j++) {
          let acc = 0;
          for (let c = 0; c < dh; c++) acc += dO[at(b, i, h, c)] * v[at(b, j, h, c)];
          dP[i * T + j] = acc;
        }
      }
      const dS = new Float64Array(T * T);
      for (let i = 0; i < T; i++) {
        let rowDot = 0;
        for (let j = 0; j < T; j++) rowDot += P[i * T + j] * dP[i * T + j];
        for (let j = 0; j < T; j++) dS[i * T + j] = P[i * T + j] * (dP[i * T + j] - rowDot);
      }
      for (let t = 0; t < T; t++) {
        for (let c = 0; c < dh; c++) {
          let gq = 0, gk = 0, gv = 0;
          for (let u = 0; u < T; u++) {
            gq += dS[t * T + u] * k[at(b, u, h, c)];
            gk += dS[u * T + t] * q[at(b, u, h, c)];
            gv += P[u * T + t] * dO[at(b, u, h, c)];
          }
          dq[at(b, t, h, c)] = scale * gq;
          dk[at(b, t, h, c)] = scale * gk;
          dv[at(b, t, h, c)] = gv;
        }
      }
    }
  }
  return { dq, dk, dv };
}
