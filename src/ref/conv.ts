/**
 * Plain f64 references for the perceptual-loss convolution ops: conv2d,
 * maxPool2d (PyTorch ceil_mode semantics), concatChannels and sigmoid,
 * written as loops over their definitions, independent of the WGSL.
 * Backward functions return the gradient contribution (not accumulated).
 * All tensors are NCHW, row-major.
 * @module
 */

type A = ArrayLike<number>;

/** Geometry of a 2-D convolution: input (n, c, h, w), weight (k, c, kh, kw). */
export interface ConvRefDims {
  n: number;
  c: number;
  h: number;
  w: number;
  k: number;
  kh: number;
  kw: number;
  strideH: number;
  strideW: number;
  padH: number;
  padW: number;
}

/** Output height and width: floor((h + 2p - kh) / s) + 1. */
export function convOutSize(d: ConvRefDims): { ho: number; wo: number } {
  return {
    ho: Math.floor((d.h + 2 * d.padH - d.kh) / d.strideH) + 1,
    wo: Math.floor((d.w + 2 * d.padW - d.kw) / d.strideW) + 1,
  };
}

/**
 * y[n, k, oy, ox] = bias[k] + sum_{c, i, j} wt[k, c, i, j] x[n, c, oy s - p + i, ox s - p + j],
 * with x = 0 outside the input (zero padding).
 */
export function conv2dRef(x: A, wt: A, bias: A | null, d: ConvRefDims): Float64Array {
  const { ho, wo } = convOutSize(d);
  const y = new Float64Array(d.n * d.k * ho * wo);
  for (let n = 0; n < d.n; n++) {
    for (let k = 0; k < d.k; k++) {
      for (let oy = 0; oy < ho; oy++) {
        for (let ox = 0; ox < wo; ox++) {
          let s = bias ? bias[k] : 0;
          for (let c = 0; c < d.c; c++) {
            for (let i = 0; i < d.kh; i++) {
              const iy = oy * d.strideH - d.padH + i;
              if (iy < 0 || iy >= d.h) continue;
              for (let j = 0; j < d.kw; j++) {
                const ix = ox * d.strideW - d.padW + j;
                if (ix < 0 || ix >= d.w) continue;
                s += wt[((k * d.c + c) * d.kh + i) * d.kw + j] *
                  x[((n * d.c + c) * d.h + iy) * d.w + ix];
              }
            }
          }
          y[((n * d.k + k) * ho + oy) * wo + ox] = s;
        }
      }
    }
  }
  return y;
}

/**
 * Gradients of {@link conv2dRef} given dy (n, k, ho, wo): each output term
 * wt * x sends dy * x to dwt, dy * wt to dx, and dy to dbias.
 */
export function conv2dBackwardRef(
  x: A,
  wt: A,
  dy: A,
  d: ConvRefDims,
): { dx: Float64Array; dw: Float64Array; dbias: Float64Array } {
  const { ho, wo } = convOutSize(d);
  const dx = new Float64Array(d.n * d.c * d.h * d.w);
  const dw = new Float64Array(d.k * d.c * d.kh * d.kw);
  const dbias = new Float64Array(d.k);
  for (let n = 0; n < d.n; n++) {
    for (let k = 0; k < d.k; k++) {
      for (let oy = 0; oy < ho; oy++) {
        for (let ox = 0; ox < wo; ox++) {
          const g = dy[((n * d.k + k) * ho + oy) * wo + ox];
          dbias[k] += g;
          for (let c = 0; c < d.c; c++) {
            for (let i = 0; i < d.kh; i++) {
              const iy = oy * d.strideH - d.padH + i;
              if (iy < 0 || iy >= d.h) continue;
              for (let j = 0; j < d.kw; j++) {
                const ix = ox * d.strideW - d.padW + j;
                if (ix < 0 || ix >= d.w) continue;
                const wi = ((k * d.c + c) * d.kh + i) * d.kw + j;
                const xi = ((n * d.c + c) * d.h + iy) * d.w + ix;
                dw[wi] += g * x[xi];
                dx[xi] += g * wt[wi];
              }
            }
          }
        }
      }
    }
  }
  return { dx, dw, dbias };
}

/** Geometry of a max pool over (n, c, h, w) planes. */
export interface PoolRefDims {
  n: number;
  c: number;
  h: number;
  w: number;
  kernel: number;
  stride: number;
  pad: number;
  ceil: boolean;
}

function poolLen(size: number, k: number, s: number, p: number, ceil: boolean): number {
  const span = size + 2 * p - k;
  let out = (ceil ? Math.ceil(span / s) : Math.floor(span / s)) + 1;
  // PyTorch: with ceil mode the last window must start inside the input or the left padding.
  if (ceil && (out - 1) * s >= size + p) out--;
  return out;
}

/** Output height and width of a max pool (PyTorch's pooling_output_shape). */
export function poolOutSize(d: PoolRefDims): { ho: number; wo: number } {
  return {
    ho: poolLen(d.h, d.kernel, d.stride, d.pad, d.ceil),
    wo: poolLen(d.w, d.kernel, d.stride, d.pad, d.ceil),
  };
}

/**
 * y[n, c, oy, ox] = max of x over the window rows oy s - p .. + kernel - 1 and
 * the same for columns, clipped to the input (padding never wins). `arg` is
 * the flat in-plane index (iy * w + ix) of the first maximum in row-major
 * window order, as PyTorch picks it.
 */
export function maxPool2dRef(x: A, d: PoolRefDims): { y: Float64Array; arg: Int32Array } {
  const { ho, wo } = poolOutSize(d);
  const y = new Float64Array(d.n * d.c * ho * wo);
  const arg = new Int32Array(y.length);
  for (let plane = 0; plane < d.n * d.c; plane++) {
    for (let oy = 0; oy < ho; oy++) {
      for (let ox = 0; ox < wo; ox++) {
        let best = -Infinity, at = -1;
        for (let i = 0; i < d.kernel; i++) {
          const iy = oy * d.stride - d.pad + i;
          if (iy < 0 || iy >= d.h) continue;
          for (let j = 0; j < d.kernel; j++) {
            const ix = ox * d.stride - d.pad + j;
            if (ix < 0 || ix >= d.w) continue;
            const v = x[(plane * d.h + iy) * d.w + ix];
            if (at < 0 || v > best) {
              best = v;
              at = iy * d.w + ix;
            }
          }
        }
        const o = (plane * ho + oy) * wo + ox;
        y[o] = best;
        arg[o] = at;
      }
    }
  }
  return { y, arg };
}

/** dx: each output's dy goes to the input element its max came from. */
export function maxPool2dBackwardRef(x: A, dy: A, d: PoolRefDims): Float64Array {
  const { arg } = maxPool2dRef(x, d);
  const { ho, wo } = poolOutSize(d);
  const dx = new Float64Array(d.n * d.c * d.h * d.w);
  for (let o = 0; o < arg.length; o++) {
    const plane = Math.floor(o / (ho * wo));
    dx[plane * d.h * d.w + arg[o]] += dy[o];
  }
  return dx;
}

/** (n, ca, hw) and (n, cb, hw) stacked along channels into (n, ca + cb, hw). */
export function concatChannelsRef(a: A, b: A, n: number, hw: number): Float64Array {
  const ca = a.length / (n * hw), cb = b.length / (n * hw);
  const out = new Float64Array(a.length + b.length);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < ca; c++) {
      for (let q = 0; q < hw; q++) out[(i * (ca + cb) + c) * hw + q] = a[(i * ca + c) * hw + q];
    }
    for (let c = 0; c < cb; c++) {
      for (let q = 0; q < hw; q++) {
        out[(i * (ca + cb) + ca + c) * hw + q] = b[(i * cb + c) * hw + q];
      }
    }
  }
  return out;
}

/** Splits dy (n, ca + cb, hw) back into the parts for a (ca channels) and b. */
export function concatChannelsBackwardRef(
  dy: A,
  n: number,
  ca: number,
  hw: number,
): { da: Float64Array; db: Float64Array } {
  const ct = dy.length / (n * hw), cb = ct - ca;
  const da = new Float64Array(n * ca * hw), db = new Float64Array(n * cb * hw);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < ct; c++) {
      for (let q = 0; q < hw; q++) {
        const v = dy[(i * ct + c) * hw + q];
        if (c < ca) da[(i * ca + c) * hw + q] = v;
        else db[(i * cb + c - ca) * hw + q] = v;
      }
    }
  }
  return { da, db };
}

/** 1 / (1 + e^-x). */
export function sigmoidRef(x: A): Float64Array {
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = 1 / (1 + Math.exp(-x[i]));
  return y;
}

/** dx = dy * y (1 - y), from the output y. */
export function sigmoidBackwardRef(y: A, dy: A): Float64Array {
  const dx = new Float64Array(y.length);
  for (let i = 0; i < y.length; i++) dx[i] = dy[i] * y[i] * (1 - y[i]);
  return dx;
}
