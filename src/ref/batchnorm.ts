/**
 * Plain f64 reference for BatchNorm1d without affine (PyTorch semantics),
 * forward with the running-statistics update, and backward, written from the
 * definition.
 * @module
 */

/** Forward result: y (N, C) and the updated running statistics (C). */
export interface BatchNormRefResult {
  y: Float64Array;
  runningMean: Float64Array;
  runningVar: Float64Array;
}

function columnStats(x: ArrayLike<number>, n: number, c: number): [Float64Array, Float64Array] {
  const mean = new Float64Array(c), biased = new Float64Array(c);
  for (let j = 0; j < c; j++) {
    for (let i = 0; i < n; i++) mean[j] += x[i * c + j] / n;
    for (let i = 0; i < n; i++) biased[j] += (x[i * c + j] - mean[j]) ** 2 / n;
  }
  return [mean, biased];
}

/**
 * Training: y = (x - batch mean) / sqrt(biased batch var + eps), running
 * stats move by `momentum` towards the batch mean and unbiased variance.
 * Eval: y = (x - running mean) / sqrt(running var + eps), stats unchanged.
 */
export function batchNormRef(
  x: ArrayLike<number>,
  channels: number,
  runningMean: ArrayLike<number>,
  runningVar: ArrayLike<number>,
  training: boolean,
  momentum = 0.1,
  eps = 1e-5,
): BatchNormRefResult {
  const n = x.length / channels;
  const rm = Float64Array.from(runningMean), rv = Float64Array.from(runningVar);
  let mean: Float64Array = Float64Array.from(runningMean);
  let v: Float64Array = Float64Array.from(runningVar);
  if (training) {
    [mean, v] = columnStats(x, n, channels);
    for (let j = 0; j < channels; j++) {
      rm[j] = (1 - momentum) * rm[j] + momentum * mean[j];
      rv[j] = (1 - momentum) * rv[j] + momentum * v[j] * n / (n - 1);
    }
  }
  const y = new Float64Array(x.length);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < channels; j++) {
      y[i * channels + j] = (x[i * channels + j] - mean[j]) / Math.sqrt(v[j] + eps);
    }
  }
  return { y, runningMean: rm, runningVar: rv };
}

/**
 * dx of sum(dy * batchNorm(x)). Training, by the chain rule through the
 * batch mean and variance: dvar = sum dy (x - m) (-1/2) (var + eps)^(-3/2),
 * dmean = -sum dy / sqrt(var + eps), dx = dy / sqrt(var + eps) + dvar 2 (x - m) / n + dmean / n.
 * Eval: dx = dy / sqrt(running var + eps).
 */
export function batchNormBackwardRef(
  x: ArrayLike<number>,
  dy: ArrayLike<number>,
  channels: number,
  runningVar: ArrayLike<number>,
  training: boolean,
  eps = 1e-5,
): Float64Array {
  const n = x.length / channels;
  const dx = new Float64Array(x.length);
  if (!training) {
    for (let i = 0; i < x.length; i++) dx[i] = dy[i] / Math.sqrt(runningVar[i % channels] + eps);
    return dx;
  }
  const [mean, v] = columnStats(x, n, channels);
  for (let j = 0; j < channels; j++) {
    const s = Math.sqrt(v[j] + eps);
    let dvar = 0, dmean = 0;
    for (let i = 0; i < n; i++) {
      const k = i * channels + j;
      dvar += dy[k] * (x[k] - mean[j]) * -0.5 * s ** -3;
      dmean += -dy[k] / s;
    }
    for (let i = 0; i < n; i++) {
      const k = i * channels + j;
      dx[k] = dy[k] / s + dvar * 2 * (x[k] - mean[j]) / n + dmean / n;
    }
  }
  return dx;
}
