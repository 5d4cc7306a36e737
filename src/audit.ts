/**
 * The audit toolkit shared by every kernel test (and usable from a REPL):
 * a closeness checker that reports the first mismatches, and central finite
 * differences in f64.
 * @module
 */

import type { Tolerance } from "./ops/_op.ts";

/** One mismatching element. */
export interface Mismatch {
  index: number;
  got: number;
  want: number;
}

/** Elements where |got - want| > atol + rtol |want| (NaN anywhere mismatches). */
export function mismatches(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol: Tolerance,
): Mismatch[] {
  const out: Mismatch[] = [];
  for (let i = 0; i < want.length; i++) {
    const g = got[i], w = want[i];
    const ok = (Number.isNaN(w) && Number.isNaN(g)) ||
      Math.abs(g - w) <= tol.atol + tol.rtol * Math.abs(w);
    if (!ok) out.push({ index: i, got: g, want: w });
  }
  return out;
}

/** One closeness check, as the audit runner records it. */
export interface AuditRecord {
  label: string;
  elements: number;
  /** Largest |got - want| (Infinity where a NaN meets a number). */
  maxAbsError: number;
  /** Largest |got - want| / (atol + rtol |want|): at most 1 where the check passes. */
  worstRatio: number;
  atol: number;
  rtol: number;
  pass: boolean;
}

let recorder: ((r: AuditRecord) => void) | null = null;

/** Routes every later {@link assertClose} to `r` (null: stop recording). */
export function setAuditRecorder(r: ((r: AuditRecord) => void) | null): void {
  recorder = r;
}

function record(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol: Tolerance,
  label: string,
  pass: boolean,
): void {
  let maxAbsError = 0, worstRatio = 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i], w = want[i];
    if (Number.isNaN(w) && Number.isNaN(g)) continue;
    const d = Number.isNaN(g) || Number.isNaN(w) ? Infinity : Math.abs(g - w);
    const bound = tol.atol + tol.rtol * Math.abs(w);
    maxAbsError = Math.max(maxAbsError, d);
    worstRatio = Math.max(worstRatio, d === 0 ? 0 : bound === 0 ? Infinity : d / bound);
  }
  recorder!({
    label,
    elements: want.length,
    maxAbsError,
    worstRatio,
    atol: tol.atol,
    rtol: tol.rtol,
    pass,
  });
}

/**
 * Throws unless `got` matches `want` element-wise within `tol`; the message
 * names `label`, the bound, the count and the first five mismatches.
 */
export function assertClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol: Tolerance,
  label: string,
): void {
  if (got.length !== want.length) {
    throw new Error(`${label}: length ${got.length}, expected ${want.length}`);
  }
  const bad = mismatches(got, want, tol);
  if (recorder) record(got, want, tol, label, bad.length === 0);
  if (bad.length === 0) return;
  const first = bad.slice(0, 5).map((m) => `[${m.index}] got ${m.got} want ${m.want}`).join("; ");
  throw new Error(
    `${label}: ${bad.length}/${want.length} elements outside |d| <= ${tol.atol} + ${tol.rtol}|ref|: ${first}`,
  );
}

/**
 * Central finite differences of a scalar function of `x` (f64): returns
 * d f / d x[i] ~ (f(x + h e_i) - f(x - h e_i)) / 2h for every i.
 */
export function finiteDifference(
  f: (x: Float64Array) => number,
  x: ArrayLike<number>,
  h = 1e-6,
): Float64Array {
  const xs = Float64Array.from(x);
  const grad = new Float64Array(xs.length);
  for (let i = 0; i < xs.length; i++) {
    const v = xs[i];
    xs[i] = v + h;
    const up = f(xs);
    xs[i] = v - h;
    const down = f(xs);
    xs[i] = v;
    grad[i] = (up - down) / (2 * h);
  }
  return grad;
}

/** Dot product in f64: reduces a vector-valued function to a scalar for FD checks. */
export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}
