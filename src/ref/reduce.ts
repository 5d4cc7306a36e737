/**
 * Plain f64 references for sum over an axis and its backward.
 * @module
 */

/** Sums x viewed as (outer, axis, inner) over the middle axis, times scale. */
export function sumAxisRef(
  x: ArrayLike<number>,
  outer: number,
  axis: number,
  inner: number,
  scale = 1,
) {
  const out = new Float64Array(outer * inner);
  for (let o = 0; o < outer; o++) {
    for (let a = 0; a < axis; a++) {
      for (let i = 0; i < inner; i++) out[o * inner + i] += scale * x[(o * axis + a) * inner + i];
    }
  }
  return out;
}

/** Gradient of {@link sumAxisRef}: dy broadcast back along the axis, times scale. */
export function sumAxisBackwardRef(
  dy: ArrayLike<number>,
  outer: number,
  axis: number,
  inner: number,
  scale = 1,
) {
  const out = new Float64Array(outer * axis * inner);
  for (let o = 0; o < outer; o++) {
    for (let a = 0; a < axis; a++) {
      for (let i = 0; i < inner; i++) out[(o * axis + a) * inner + i] = scale * dy[o * inner + i];
    }
  }
  return out;
}
