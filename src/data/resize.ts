/**
 * Separable resampling of packed uint8 HWC images, the way PIL's
 * `Image.resize(size, BICUBIC, box)` does it: output pixel i samples the
 * source at `box0 + (i + 0.5) * scale`, the cubic kernel (a = -0.5) is
 * stretched by the scale factor when shrinking (so downsizing CUB photos is
 * antialiased) and weights are renormalized at the borders. torchvision's
 * RandomResizedCrop on PIL images reduces to exactly this call on a crop box.
 *
 * @module
 */

import type { ImageDataset } from "./image_dataset.ts";

/** Cubic convolution kernel with a = -0.5 (PIL, Keys). */
export function cubicKernel(x: number): number {
  const a = -0.5;
  x = Math.abs(x);
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

/** Linear (triangle) kernel. */
export function linearKernel(x: number): number {
  x = Math.abs(x);
  return x < 1 ? 1 - x : 0;
}

/** Resampling filter: kernel function and its support radius at scale 1. */
export interface Filter {
  kernel: (x: number) => number;
  support: number;
}

/** PIL's BICUBIC filter. */
export const BICUBIC: Filter = { kernel: cubicKernel, support: 2 };
/** PIL's BILINEAR filter. */
export const BILINEAR: Filter = { kernel: linearKernel, support: 1 };

/** Precomputed taps for one axis: output i reads `size[i]` inputs from `start[i]`. */
interface Taps {
  start: Int32Array;
  size: Int32Array;
  width: number;
  weights: Float64Array;
}

function computeTaps(inSize: number, outSize: number, b0: number, b1: number, f: Filter): Taps {
  const scale = (b1 - b0) / outSize;
  const fscale = Math.max(scale, 1);
  const support = f.support * fscale;
  const width = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const size = new Int32Array(outSize);
  const weights = new Float64Array(outSize * width);
  for (let i = 0; i < outSize; i++) {
    const center = b0 + (i + 0.5) * scale;
    let lo = Math.trunc(center - support + 0.5);
    if (lo < 0) lo = 0;
    let hi = Math.trunc(center + support + 0.5);
    if (hi > inSize) hi = inSize;
    if (hi <= lo) { // box entirely outside: clamp to the nearest edge pixel
      lo = Math.min(Math.max(Math.floor(center), 0), inSize - 1);
      hi = lo + 1;
    }
    let total = 0;
    for (let x = lo; x < hi; x++) {
      const w = f.kernel((x - center + 0.5) / fscale);
      weights[i * width + x - lo] = w;
      total += w;
    }
    if (total !== 0) { for (let x = lo; x < hi; x++) weights[i * width + x - lo] /= total; }
    start[i] = lo;
    size[i] = hi - lo;
  }
  return { start, size, width, weights };
}

let scratch = new Float64Array(0);
function scratchF64(n: number): Float64Array {
  if (scratch.length < n) scratch = new Float64Array(n);
  return scratch;
}

/** Crop box in source pixel coordinates: left, top, right, bottom (may be fractional). */
export type Box = [number, number, number, number];

/**
 * Resamples the `box` region of `src` (sh x sw x c) to dh x dw x c, written
 * into `out` at `outOffset` (allocated when omitted). Bicubic by default.
 */
export function resample(
  src: Uint8Array,
  sh: number,
  sw: number,
  c: number,
  box: Box,
  dh: number,
  dw: number,
  filter: Filter = BICUBIC,
  out?: Uint8Array,
  outOffset = 0,
): Uint8Array {
  out ??= new Uint8Array(dh * dw * c);
  const tx = computeTaps(sw, dw, box[0], box[2], filter);
  const ty = computeTaps(sh, dh, box[1], box[3], filter);
  // Horizontal pass over only the rows the vertical taps read.
  const r0 = ty.start[0];
  const rows = ty.start[dh - 1] + ty.size[dh - 1] - r0;
  const rowLen = dw * c;
  const tmp = scratchF64(rows * rowLen);
  const txw = tx.weights, txs = tx.start, txn = tx.size, txW = tx.width;
  for (let y = 0; y < rows; y++) {
    const srow = (y + r0) * sw * c;
    const trow = y * rowLen;
    if (c === 3) {
      for (let x = 0; x < dw; x++) {
        const n = txn[x], wo = x * txW;
        let p = srow + txs[x] * 3, a0 = 0, a1 = 0, a2 = 0;
        for (let k = 0; k < n; k++, p += 3) {
          const wt = txw[wo + k];
          a0 += wt * src[p];
          a1 += wt * src[p + 1];
          a2 += wt * src[p + 2];
        }
        const t = trow + x * 3;
        tmp[t] = a0;
        tmp[t + 1] = a1;
        tmp[t + 2] = a2;
      }
    } else {
      for (let x = 0; x < dw; x++) {
        const s0 = txs[x], n = txn[x], wo = x * txW;
        for (let ch = 0; ch < c; ch++) {
          let acc = 0;
          for (let k = 0; k < n; k++) acc += txw[wo + k] * src[srow + (s0 + k) * c + ch];
          tmp[trow + x * c + ch] = acc;
        }
      }
    }
  }
  const tyw = ty.weights, tyW = ty.width;
  for (let y = 0; y < dh; y++) {
    const s0 = ty.start[y] - r0, n = ty.size[y], wo = y * tyW;
    const orow = outOffset + y * rowLen;
    const base = s0 * rowLen;
    for (let j = 0; j < rowLen; j++) {
      let acc = 0;
      for (let k = 0, q = base + j; k < n; k++, q += rowLen) acc += tyw[wo + k] * tmp[q];
      const v = Math.round(acc);
      out[orow + j] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  return out;
}

/**
 * Resizes so the short side becomes `size`, then takes the central
 * `size x size` square (torchvision `Resize(size)` + `CenterCrop(size)`), in
 * one resampling step: the crop box is mapped back into source coordinates.
 */
export function resizeShortCenterCrop(
  src: Uint8Array,
  sh: number,
  sw: number,
  c: number,
  size: number,
  out?: Uint8Array,
  outOffset = 0,
): Uint8Array {
  // torchvision Resize(int): the short side becomes `size`, the long side int(size * long / short).
  let rh: number, rw: number;
  if (sw <= sh) {
    rw = size;
    rh = Math.trunc((size * sh) / sw);
  } else {
    rh = size;
    rw = Math.trunc((size * sw) / sh);
  }
  // CenterCrop offsets in the resized image (torchvision rounds them).
  const top = Math.round((rh - size) / 2);
  const left = Math.round((rw - size) / 2);
  const sy = sh / rh, sx = sw / rw;
  const box: Box = [left * sx, top * sy, (left + size) * sx, (top + size) * sy];
  return resample(src, sh, sw, c, box, size, size, BICUBIC, out, outOffset);
}

/** Options for {@link fitDataset}. */
export interface FitOptions {
  /** Output side length (square images). */
  size: number;
  /** "pad": centre the image on a zero canvas (must not be larger); "resize": bicubic resample. */
  mode: "pad" | "resize";
  /** Output channels: 1 keeps gray, 3 replicates gray into RGB. Default: unchanged. */
  channels?: 1 | 3;
}

/**
 * Brings every image of `ds` to `size x size` (Fashion-MNIST's 28x28 to the
 * model's 64x64, say) by zero padding or bicubic resizing, optionally
 * replicating gray into three channels.
 */
export function fitDataset(ds: ImageDataset, opts: FitOptions): ImageDataset {
  const { size, mode } = opts;
  const cin = ds.channels;
  const cout = opts.channels ?? cin;
  if (cout !== cin && !(cin === 1 && cout === 3)) {
    throw new Error(`fitDataset: cannot turn ${cin} channels into ${cout}`);
  }
  if (mode === "pad" && (ds.height > size || ds.width > size)) {
    throw new Error(`fitDataset: cannot pad ${ds.height}x${ds.width} images into ${size}x${size}`);
  }
  const inSz = ds.height * ds.width * cin;
  const outSz = size * size * cout;
  const images = new Uint8Array(ds.count * outSz);
  const tmp = new Uint8Array(size * size * cin);
  const top = (size - ds.height) >> 1, left = (size - ds.width) >> 1;
  for (let i = 0; i < ds.count; i++) {
    const src = ds.images.subarray(i * inSz, (i + 1) * inSz);
    if (mode === "resize") {
      resample(
        src,
        ds.height,
        ds.width,
        cin,
        [0, 0, ds.width, ds.height],
        size,
        size,
        BICUBIC,
        tmp,
      );
    } else {
      tmp.fill(0);
      for (let y = 0; y < ds.height; y++) {
        tmp.set(
          src.subarray(y * ds.width * cin, (y + 1) * ds.width * cin),
          ((y + top) * size + left) * cin,
        );
      }
    }
    const o = i * outSz;
    if (cout === cin) images.set(tmp, o);
    else for (let p = 0; p < size * size; p++) images.fill(tmp[p], o + 3 * p, o + 3 * p + 3);
  }
  return { ...ds, height: size, width: size, channels: cout, images };
}
