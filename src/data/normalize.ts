/**
 * Conversion of packed uint8 NHWC batches to float32 NCHW for GPU upload,
 * with the normalizations the paper's pipelines use.
 *
 * @module
 */

/**
 * - "none": x / 255;
 * - "batch": per-batch standardization of x / 255 by the batch's own scalar
 *   mean and (unbiased) std, as the authors' pretrain and probe loaders do;
 * - "imagenet": ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225), for fine-tuning;
 * - "cub": CUB mean (0.502, 0.459, 0.408) and std 0.5 (authors' code).
 */
export type Normalization = "none" | "batch" | "imagenet" | "cub";

/** Per-channel mean and std of each fixed normalization. */
export const NORM_STATS: Record<"imagenet" | "cub", { mean: number[]; std: number[] }> = {
  imagenet: { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
  cub: { mean: [0.502, 0.459, 0.408], std: [0.5, 0.5, 0.5] },
};

/**
 * Writes `n` images (h x w x c uint8, NHWC) as float32 NCHW into `out`,
 * normalized by `mode`. Returns `out`.
 */
export function toFloatNCHW(
  src: Uint8Array,
  n: number,
  h: number,
  w: number,
  c: number,
  mode: Normalization,
  out: Float32Array = new Float32Array(n * c * h * w),
): Float32Array {
  const hw = h * w;
  let scale: number[], shift: number[]; // y = v * scale[k] + shift[k]
  if (mode === "none") {
    scale = new Array(c).fill(1 / 255);
    shift = new Array(c).fill(0);
  } else if (mode === "batch") {
    let s = 0, s2 = 0;
    const len = n * hw * c;
    for (let i = 0; i < len; i++) {
      const v = src[i];
      s += v;
      s2 += v * v;
    }
    const mean = s / len;
    const variance = len > 1 ? (s2 - s * mean) / (len - 1) : 0;
    const std = Math.sqrt(Math.max(variance, 0)) || 1;
    scale = new Array(c).fill(1 / std);
    shift = new Array(c).fill(-mean / std);
  } else {
    const st = NORM_STATS[mode];
    if (c !== 3) throw new Error(`normalization "${mode}" needs 3 channels, got ${c}`);
    scale = st.std.map((sd) => 1 / (255 * sd));
    shift = st.mean.map((m, k) => -m / st.std[k]);
  }
  for (let i = 0; i < n; i++) {
    const ibase = i * hw * c, obase = i * hw * c;
    for (let k = 0; k < c; k++) {
      const a = scale[k], b = shift[k], o = obase + k * hw;
      for (let p = 0; p < hw; p++) out[o + p] = src[ibase + p * c + k] * a + b;
    }
  }
  return out;
}
