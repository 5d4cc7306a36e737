/**
 * Summary statistics over seeds: mean, sample standard deviation and a 95%
 * confidence interval from Student's t (the paper ran each experiment once;
 * with --seeds N we can say how sure a number is).
 * @module
 */

/** Two-sided 97.5% quantiles of Student's t for 1..30 degrees of freedom. */
const T975 = [
  12.706,
  4.303,
  3.182,
  2.776,
  2.571,
  2.447,
  2.365,
  2.306,
  2.262,
  2.228,
  2.201,
  2.179,
  2.16,
  2.145,
  2.131,
  2.12,
  2.11,
  2.101,
  2.093,
  2.086,
  2.08,
  2.074,
  2.069,
  2.064,
  2.06,
  2.056,
  2.052,
  2.048,
  2.045,
  2.042,
];

/** Mean, standard deviation and 95% interval of some values. */
export interface Summary {
  n: number;
  mean: number;
  std: number;
  /** [lo, hi]; equal to [mean, mean] for a single value. */
  ci95: [number, number];
}

/** Summarises `xs` (NaN-free, at least one value). */
export function summarize(xs: number[]): Summary {
  const n = xs.length;
  if (n === 0) throw new Error("summarize: no values");
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  if (n === 1) return { n, mean, std: 0, ci95: [mean, mean] };
  const std = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1));
  const t = T975[Math.min(n - 1, T975.length) - 1] ?? 1.96;
  const h = t * std / Math.sqrt(n);
  return { n, mean, std, ci95: [mean - h, mean + h] };
}
