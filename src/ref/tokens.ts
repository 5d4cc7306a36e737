/**
 * Plain f64 references for the token moves.
 * @module
 */

/** x (B, T, D) with `tok` appended as token T. */
export function appendTokenRef(
  x: ArrayLike<number>,
  tok: ArrayLike<number>,
  B: number,
  T: number,
  D: number,
) {
  const y = new Float64Array(B * (T + 1) * D);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t <= T; t++) {
      for (let d = 0; d < D; d++) {
        y[(b * (T + 1) + t) * D + d] = t < T ? x[(b * T + t) * D + d] : tok[d];
      }
    }
  }
  return y;
}

/** Gradients of {@link appendTokenRef} given dy (B, T + 1, D). */
export function appendTokenBackwardRef(dy: ArrayLike<number>, B: number, T: number, D: number) {
  const dx = new Float64Array(B * T * D), dtok = new Float64Array(D);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t <= T; t++) {
      for (let d = 0; d < D; d++) {
        const g = dy[(b * (T + 1) + t) * D + d];
        if (t < T) dx[(b * T + t) * D + d] += g;
        else dtok[d] += g;
      }
    }
  }
  return { dx, dtok };
}

/** Tokens [start, start + len) of x (B, T, D). */
export function sliceTokensRef(
  x: ArrayLike<number>,
  B: number,
  T: number,
  D: number,
  start: number,
  len: number,
) {
  const y = new Float64Array(B * len * D);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < len; t++) {
      for (let d = 0; d < D; d++) y[(b * len + t) * D + d] = x[(b * T + start + t) * D + d];
    }
  }
  return y;
}

/** Gradient of {@link sliceTokensRef}: dy placed back into its range, zeros elsewhere. */
export function sliceTokensBackwardRef(
  dy: ArrayLike<number>,
  B: number,
  T: number,
  D: number,
  start: number,
  len: number,
) {
  const dx = new Float64Array(B * T * D);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < len; t++) {
      for (let d = 0; d < D; d++) dx[(b * T + start + t) * D + d] += dy[(b * len + t) * D + d];
    }
  }
  return dx;
}

/** a (B, T, D) then b (B, L, D) along the token axis. */
export function concatTokensRef(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  B: number,
  T: number,
  L: number,
  D: number,
) {
  const y = new Float64Array(B * (T + L) * D);
  for (let n = 0; n < B; n++) {
    for (let t = 0; t < T + L; t++) {
      for (let d = 0; d < D; d++) {
        y[(n * (T + L) + t) * D + d] = t < T ? a[(n * T + t) * D + d] : b[(n * L + t - T) * D + d];
      }
    }
  }
  return y;
}

/** Gradients of {@link concatTokensRef} given dy (B, T + L, D). */
export function concatTokensBackwardRef(
  dy: ArrayLike<number>,
  B: number,
  T: number,
  L: number,
  D: number,
) {
  return { da: sliceTokensRef(dy, B, T + L, D, 0, T), db: sliceTokensRef(dy, B, T + L, D, T, L) };
}
