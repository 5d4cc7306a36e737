/**
 * Plain-loop f64 reference for matmul, written from the definition
 * C[b, i, j] = sum_t op(A)[b, i, t] * op(B)[b, t, j] + bias[j], independently
 * of the WGSL (no tiling, no shared code with the kernel).
 * @module
 */

/** Shapes of one reference product. */
export interface MatmulRefDims {
  batch: number;
  m: number;
  k: number;
  n: number;
  transA?: boolean;
  transB?: boolean;
}

function at(
  x: ArrayLike<number>,
  base: number,
  r: number,
  c: number,
  cols: number,
  t: boolean,
  rows: number,
) {
  return t ? x[base + c * rows + r] : x[base + r * cols + c];
}

/** Forward: returns C (batch, m, n) in f64. */
export function matmulRef(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  d: MatmulRefDims,
  bias?: ArrayLike<number>,
): Float64Array {
  const { batch, m, k, n, transA = false, transB = false } = d;
  const c = new Float64Array(batch * m * n);
  for (let p = 0; p < batch; p++) {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = bias ? bias[j] : 0;
        for (let t = 0; t < k; t++) {
          s += at(a, p * m * k, i, t, k, transA, m) * at(b, p * k * n, t, j, n, transB, k);
        }
        c[(p * m + i) * n + j] = s;
      }
    }
  }
  return c;
}

/**
 * Backward: given dC, returns dA and dB in their *stored* layouts and dbias,
 * by the chain rule applied element by element (dA[i,t] += dC[i,j] B[t,j]).
 */
export function matmulBackwardRef(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  dc: ArrayLike<number>,
  d: MatmulRefDims,
): { da: Float64Array; db: Float64Array; dbias: Float64Array } {
  const { batch, m, k, n, transA = false, transB = false } = d;
  const da = new Float64Array(batch * m * k);
  const db = new Float64Array(batch * k * n);
  const dbias = new Float64Array(n);
  for (let p = 0; p < batch; p++) {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        const g = dc[(p * m + i) * n + j];
        dbias[j] += g;
        for (let t = 0; t < k; t++) {
          const ai = p * m * k + (transA ? t * m + i : i * k + t);
          const bi = p * k * n + (transB ? j * k + t : t * n + j);
          da[ai] += g * b[bi];
          db[bi] += g * a[ai];
        }
      }
    }
  }
  return { da, db, dbias };
}
