/**
 * Plain f64 references for DINO's moving averages (src/ops/ema.ts): the
 * teacher's EMA and the centre update. Written from the definitions, not
 * from the WGSL.
 * @module
 */

/** teacher' = m teacher + (1 - m) student, elementwise. */
export function emaUpdateRef(
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
