/**
 * Plain f64 / integer references for patchify, unpatchify and MAE's patch
 * shuffle, written from their definitions (MAE's einsum and argsort), with
 * no code shared with kernels/patch.wgsl.
 * @module
 */

/** Image geometry: batch, channels, height, width and patch side. */
export interface PatchGeometry {
  batch: number;
  channels: number;
  height: number;
  width: number;
  patch: number;
}

/**
 * (B, C, H, W) -> (B, (H/p)(W/p), p p C): MAE's
 * `x.reshape(B, C, h, p, w, p); einsum('nchpwq->nhwpqc')`, written as the
 * nested loops of the output order n, h, w, p, q, c.
 */
export function patchifyRef(images: ArrayLike<number>, g: PatchGeometry): Float64Array {
  const { batch: B, channels: C, height: H, width: W, patch: P } = g;
  const out = new Float64Array(B * C * H * W);
  let o = 0;
  for (let n = 0; n < B; n++) {
    for (let h = 0; h < H / P; h++) {
      for (let w = 0; w < W / P; w++) {
        for (let py = 0; py < P; py++) {
          for (let px = 0; px < P; px++) {
            for (let c = 0; c < C; c++) {
              out[o++] = images[((n * C + c) * H + h * P + py) * W + w * P + px];
            }
          }
        }
      }
    }
  }
  return out;
}

/** The inverse of {@link patchifyRef}: (B, T, p p C) -> (B, C, H, W), looping in image order. */
export function unpatchifyRef(patches: ArrayLike<number>, g: PatchGeometry): Float64Array {
  const { batch: B, channels: C, height: H, width: W, patch: P } = g;
  const out = new Float64Array(B * C * H * W);
  const T = (H / P) * (W / P), D = P * P * C;
  let o = 0;
  for (let n = 0; n < B; n++) {
    for (let c = 0; c < C; c++) {
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < W; x++) {
          const t = Math.floor(y / P) * (W / P) + Math.floor(x / P);
          out[o++] = patches[(n * T + t) * D + ((y % P) * P + (x % P)) * C + c];
        }
      }
    }
  }
  return out;
}

/** Index outputs of the shuffle: what the decoder needs to put tokens back. */
export interface MaskingRef {
  /** (B, K): original positions of the kept tokens, in shuffled order. */
  idsKeep: Int32Array;
  /** (B, T): position of each original token in the shuffled order. */
  idsRestore: Int32Array;
  /** (B, T): 1 = masked, 0 = kept, in original order. */
  mask: Float32Array;
}

/** Tokens kept when masking `ratio` of T: exactly Math.round(ratio T) are masked. */
export function keptCount(tokens: number, ratio: number): number {
  return tokens - Math.round(ratio * tokens);
}

function fromShuffle(shuffle: number[][], tokens: number, keep: number): MaskingRef {
  const B = shuffle.length;
  const idsKeep = new Int32Array(B * keep), idsRestore = new Int32Array(B * tokens);
  const mask = new Float32Array(B * tokens);
  shuffle.forEach((order, b) => {
    order.forEach((t, r) => {
      idsRestore[b * tokens + t] = r;
      if (r < keep) idsKeep[b * keep + r] = t;
      else mask[b * tokens + t] = 1;
    });
  });
  return { idsKeep, idsRestore, mask };
}

/** MAE's random_masking: ids_shuffle = stable argsort(noise) per sample, keep the first K. */
export function randomMaskingRef(
  noise: ArrayLike<number>,
  batch: number,
  tokens: number,
  ratio: number,
): MaskingRef {
  const shuffle: number[][] = [];
  for (let b = 0; b < batch; b++) {
    const ids = Array.from({ length: tokens }, (_, t) => t);
    ids.sort((i, j) => noise[b * tokens + i] - noise[b * tokens + j] || i - j);
    shuffle.push(ids);
  }
  return fromShuffle(shuffle, tokens, keptCount(tokens, ratio));
}

/** The same outputs for a given 0/1 mask: kept tokens first in ascending order, then masked ones. */
export function maskFromBooleanRef(
  mask: ArrayLike<number>,
  batch: number,
  tokens: number,
): MaskingRef {
  const shuffle: number[][] = [];
  let keep = -1;
  for (let b = 0; b < batch; b++) {
    const kept: number[] = [], masked: number[] = [];
    for (let t = 0; t < tokens; t++) (mask[b * tokens + t] !== 0 ? masked : kept).push(t);
    if (keep >= 0 && kept.length !== keep) throw new Error("rows keep different counts");
    keep = kept.length;
    shuffle.push([...kept, ...masked]);
  }
  return fromShuffle(shuffle, tokens, Math.max(keep, 0));
}

/** out[b, k, :] = x[b, idsKeep[b, k], :] with x (B, T, D). */
export function gatherTokensRef(
  x: ArrayLike<number>,
  idsKeep: ArrayLike<number>,
  batch: number,
  tokens: number,
  dim: number,
): Float64Array {
  const keep = idsKeep.length / batch;
  const out = new Float64Array(batch * keep * dim);
  for (let b = 0; b < batch; b++) {
    for (let k = 0; k < keep; k++) {
      for (let d = 0; d < dim; d++) {
        out[(b * keep + k) * dim + d] = x[(b * tokens + idsKeep[b * keep + k]) * dim + d];
      }
    }
  }
  return out;
}

/** dx (B, T, D) of sum(dy * gather(x)): each kept token's gradient lands at its position, others 0. */
export function gatherTokensBackwardRef(
  dy: ArrayLike<number>,
  idsKeep: ArrayLike<number>,
  batch: number,
  tokens: number,
  dim: number,
): Float64Array {
  const keep = idsKeep.length / batch;
  const dx = new Float64Array(batch * tokens * dim);
  for (let b = 0; b < batch; b++) {
    for (let k = 0; k < keep; k++) {
      for (let d = 0; d < dim; d++) {
        dx[(b * tokens + idsKeep[b * keep + k]) * dim + d] += dy[(b * keep + k) * dim + d];
      }
    }
  }
  return dx;
}

/**
 * MAE's decoder input: cat(encoded, mask tokens) in shuffled order, then
 * gathered by ids_restore. Built literally that way: a (T, D) shuffled
 * sequence per sample, then out[t] = seq[idsRestore[t]].
 */
export function unshuffleTokensRef(
  encoded: ArrayLike<number>,
  maskToken: ArrayLike<number>,
  idsRestore: ArrayLike<number>,
  batch: number,
  keep: number,
  dim: number,
): Float64Array {
  const tokens = idsRestore.length / batch;
  const out = new Float64Array(batch * tokens * dim);
  for (let b = 0; b < batch; b++) {
    const seq = new Float64Array(tokens * dim);
    for (let r = 0; r < tokens; r++) {
      for (let d = 0; d < dim; d++) {
        seq[r * dim + d] = r < keep ? encoded[(b * keep + r) * dim + d] : maskToken[d];
      }
    }
    for (let t = 0; t < tokens; t++) {
      for (let d = 0; d < dim; d++) {
        out[(b * tokens + t) * dim + d] = seq[idsRestore[b * tokens + t] * dim + d];
      }
    }
  }
  return out;
}

/** Gradients of sum(dy * unshuffle(encoded, maskToken)). */
export interface UnshuffleGrads {
  dencoded: Float64Array;
  dmaskToken: Float64Array;
}

/** Backward of {@link unshuffleTokensRef}: every masked position's dy sums into the mask token. */
export function unshuffleTokensBackwardRef(
  dy: ArrayLike<number>,
  idsRestore: ArrayLike<number>,
  batch: number,
  keep: number,
  dim: number,
): UnshuffleGrads {
  const tokens = idsRestore.length / batch;
  const dencoded = new Float64Array(batch * keep * dim), dmaskToken = new Float64Array(dim);
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < tokens; t++) {
      const r = idsRestore[b * tokens + t];
      for (let d = 0; d < dim; d++) {
        const g = dy[(b * tokens + t) * dim + d];
        if (r < keep) dencoded[(b * keep + r) * dim + d] += g;
        else dmaskToken[d] += g;
      }
    }
  }
  return { dencoded, dmaskToken };
}
