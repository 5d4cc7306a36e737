/**
 * The convolution ops of the perceptual loss (SqueezeNet features): conv2d
 * (kernels/conv2d.wgsl, implicit GEMM), maxPool2d (kernels/max_pool2d.wgsl),
 * concatChannels (kernels/concat_channels.wgsl) and sigmoid (kernels/sigmoid.wgsl).
 * All image tensors are NCHW f32. Derivatives are stated above each op.
 * @module
 */

import { KERNEL_SOURCES } from "../../kernels/sources.ts";
import type { Gpu, KernelSpec } from "../gpu/device.ts";
import { gradOf, isRecording, record } from "../tape.ts";
import { empty, type Tensor } from "../tensor.ts";
import { dtypeIs, grid1d, OpError, rankIs, sameDevice } from "./_check.ts";
import {
  concatChannelsBackwardRef,
  concatChannelsRef,
  conv2dBackwardRef,
  conv2dRef,
  maxPool2dBackwardRef,
  maxPool2dRef,
  sigmoidBackwardRef,
  sigmoidRef,
} from "../ref/conv.ts";
import { EXACT, type OpDeclarations, POINTWISE } from "./_op.ts";
import { matmulInto, matmulKernel } from "./matmul.ts";
import { sumAxisInto } from "./reduce.ts";

/** A convolution's geometry: the leading fields of both WGSL files' uniform structs. */
const GEOMETRY_PARAMS = {
  n: "u32",
  c: "u32",
  h: "u32",
  w: "u32",
  k: "u32",
  kh: "u32",
  kw: "u32",
  stride_h: "u32",
  stride_w: "u32",
  pad_h: "u32",
  pad_w: "u32",
  ho: "u32",
  wo: "u32",
} as const;
const CONV_PARAMS = {
  ...GEOMETRY_PARAMS,
  has_bias: "u32",
  chunk: "u32",
  splits: "u32",
} as const;
const CONV_FORWARD = {
  source: KERNEL_SOURCES["conv2d.wgsl"],
  entry: "conv2d_forward",
  params: CONV_PARAMS,
  workgroup: [8, 8],
} as const satisfies KernelSpec<typeof CONV_PARAMS>;
const CONV_BACKWARD_INPUT = { ...CONV_FORWARD, entry: "conv2d_backward_input" } as const;
const CONV_BACKWARD_INPUT_DIRECT = {
  ...CONV_FORWARD,
  entry: "conv2d_backward_input_direct",
  workgroup: [256],
} as const;
const CONV_BACKWARD_WEIGHT = { ...CONV_FORWARD, entry: "conv2d_backward_weight" } as const;
const CONV_WEIGHT_REDUCE = {
  ...CONV_FORWARD,
  entry: "conv2d_backward_weight_reduce",
  workgroup: [256],
} as const;
const CONV_BACKWARD_BIAS = {
  ...CONV_FORWARD,
  entry: "conv2d_backward_bias",
  workgroup: [64],
} as const;

const IM2COL_PARAMS = { ...GEOMETRY_PARAMS, cols_stride: "u32" } as const;
const IM2COL = {
  source: KERNEL_SOURCES["im2col.wgsl"],
  entry: "im2col_forward",
  params: IM2COL_PARAMS,
  workgroup: [256],
} as const satisfies KernelSpec<typeof IM2COL_PARAMS>;
const COL2IM = { ...IM2COL, entry: "col2im_backward" } as const;
const TRANSPOSE_PARAMS = { batch: "u32", rows: "u32", cols: "u32" } as const;
const TRANSPOSE = {
  source: KERNEL_SOURCES["im2col.wgsl"],
  entry: "transpose_forward",
  params: TRANSPOSE_PARAMS,
  workgroup: [256],
} as const satisfies KernelSpec<typeof TRANSPOSE_PARAMS>;
const COPY_COLS_PARAMS = { rows: "u32", out_cols: "u32", in_cols: "u32", beta: "f32" } as const;
const COPY_COLS = {
  source: KERNEL_SOURCES["im2col.wgsl"],
  entry: "copy_cols_forward",
  params: COPY_COLS_PARAMS,
  workgroup: [256],
} as const satisfies KernelSpec<typeof COPY_COLS_PARAMS>;

/** A size given once for both axes, or as [height, width]. */
export type Pair = number | readonly [number, number];

function pair(v: Pair): [number, number] {
  return typeof v === "number" ? [v, v] : [v[0], v[1]];
}

/** Options of {@link conv2d}. */
export interface Conv2dOptions {
  /** Added to output channel k; shape (K). */
  bias?: Tensor;
  /** Step between windows (default 1). */
  stride?: Pair;
  /** Zeros added on each side (default 0). */
  padding?: Pair;
  /**
   * Kernel for the input gradient: "gemm" (tiled implicit GEMM), "direct"
   * (one thread per input element) or "auto" (default: direct where the GEMM
   * would waste 3/4 or more of its work). For tests and benchmarks.
   */
  inputGrad?: "auto" | "gemm" | "direct";
  /**
   * How the convolution runs: "implicit" (kernels/conv2d.wgsl, patches gathered
   * inside the GEMM tiles), "im2col" (patches written out as matrix rows, then
   * matmul_vec4: 1.6x and 2.6x the implicit forward on the two bench shapes on
   * the CPU adapter) or "auto" (default: im2col where every product runs on
   * matmul_vec4 and its temporaries fit one binding). For tests and benchmarks.
   */
  impl?: "auto" | "implicit" | "im2col";
  /**
   * Slices of the batch the im2col weight gradient sums over (a divisor of
   * N; default {@link weightGradSlices}). For tests and benchmarks.
   */
  weightSlices?: number;
}

/** Geometry of one convolution, as the kernel's uniform struct wants it. */
type ConvGeometry = { [K in keyof typeof CONV_PARAMS]: number };

/** Pixels of the weight-gradient reduction per workgroup layer (a multiple of 32). */
function weightSplit(g: ConvGeometry): { chunk: number; splits: number } {
  const npix = g.n * g.ho * g.wo;
  const tiles = Math.ceil((g.c * g.kh * g.kw) / 64) * Math.ceil(g.k / 64);
  // Enough workgroups to fill the device, but at least 256 pixels each so the
  // partials stay small next to the work.
  const want = Math.max(1, Math.ceil(64 / tiles));
  const chunk = Math.max(256, Math.ceil(npix / want / 32) * 32);
  return { chunk, splits: Math.max(1, Math.ceil(npix / chunk)) };
}

function launchConvBackward(
  gpu: Gpu,
  geo: ConvGeometry,
  x: Tensor,
  weight: Tensor,
  g: Tensor,
  bias: Tensor | undefined,
  inputGrad: "auto" | "gemm" | "direct",
): void {
  const crs = geo.c * geo.kh * geo.kw;
  // The GEMM pads channels to 64-row tiles and multiplies the stride's zeros.
  const waste = (Math.ceil(geo.c / 64) * 64 / geo.c) * geo.stride_h * geo.stride_w;
  const direct = inputGrad === "direct" || (inputGrad === "auto" && waste >= 4);
  if (x.requiresGrad && direct) {
    gpu.dispatch(
      CONV_BACKWARD_INPUT_DIRECT,
      geo,
      [g.binding, weight.binding, gradOf(x).binding],
      grid1d(Math.ceil(x.size / 256)),
    );
  } else if (x.requiresGrad) {
    gpu.dispatch(
      CONV_BACKWARD_INPUT,
      geo,
      [g.binding, weight.binding, gradOf(x).binding],
      [Math.ceil((geo.n * geo.h * geo.w) / 64), Math.ceil(geo.c / 64)],
    );
  }
  if (weight.requiresGrad) {
    const { chunk, splits } = weightSplit(geo);
    const part = empty(gpu, [splits, geo.k * crs]);
    const p = { ...geo, chunk, splits };
    gpu.dispatch(
      CONV_BACKWARD_WEIGHT,
      p,
      [x.binding, g.binding, part.binding],
      [Math.ceil(crs / 64), Math.ceil(geo.k / 64), splits],
    );
    gpu.dispatch(
      CONV_WEIGHT_REDUCE,
      p,
      [part.binding, gradOf(weight).binding],
      grid1d(Math.ceil((geo.k * crs) / 256)),
    );
    // Safe to pool at once: later dispatches that reuse it run after these.
    part.dispose();
  }
  if (bias?.requiresGrad) {
    gpu.dispatch(CONV_BACKWARD_BIAS, geo, [g.binding, gradOf(bias).binding], [geo.k]);
  }
}

/** Row length of the patch matrix: c * kh * kw rounded up to a multiple of 4 (vec4 rows). */
function colsStride(geo: Pick<ConvGeometry, "c" | "kh" | "kw">): number {
  return Math.ceil((geo.c * geo.kh * geo.kw) / 4) * 4;
}

/**
 * Into how many slices of the batch the im2col weight gradient splits its sum
 * over images: one product per slice (a batched matmul), then a sum over the
 * slices. On a hardware adapter, a slice per image (the most parallel). On a
 * software one, 4 slices (a divisor of n, at most 4): a CPU has few cores to
 * fill, and summing n partial gradients cost more than it saved. Measured on
 * llvmpipe, SqueezeNet 1.1 training steps (ms, slices of n vs 4):
 * 28x28x1 batch 32 310 vs 210, batch 128 553 vs 423; 64x64x3 batch 32 682 vs
 * 571 (2 slices and 1 were no better than 4).
 */
export function weightGradSlices(n: number, software: boolean): number {
  if (!software) return n;
  let s = Math.min(4, n);
  while (n % s !== 0) s--;
  return s;
}

/**
 * Whether the im2col form suits a convolution: its three products (forward,
 * input gradient, weight gradient in {@link weightGradSlices} slices) all run
 * on matmul_vec4, and its largest temporaries (the patch matrix, the sliced
 * weight gradients) fit one storage binding.
 */
export function im2colSuits(
  gpu: Gpu,
  geo: Pick<ConvGeometry, "n" | "c" | "k" | "kh" | "kw" | "ho" | "wo">,
): boolean {
  const rows = geo.n * geo.ho * geo.wo, cs = colsStride(geo), k = geo.k;
  const slices = weightGradSlices(geo.n, gpu.adapter.software);
  const vec4 = matmulKernel({ m: rows, k: cs, n: k }, false, true) === "vec4" &&
    matmulKernel({ m: rows, k, n: cs }) === "vec4" &&
    matmulKernel({ m: k, k: rows / slices, n: cs }, true) === "vec4";
  const limit = gpu.device.limits.maxStorageBufferBindingSize;
  return vec4 && Math.max(rows, slices * k) * cs * 4 <= limit;
}

/** The patch matrix (n*ho*wo, cols_stride) of x. */
function im2col(gpu: Gpu, geo: ConvGeometry, x: Tensor): Tensor {
  const rows = geo.n * geo.ho * geo.wo, cs = colsStride(geo);
  const cols = empty(gpu, [rows, cs]);
  gpu.dispatch(
    IM2COL,
    im2colParams(geo),
    [x.binding, cols.binding],
    grid1d(Math.ceil((rows * geo.c) / 256)),
  );
  return cols;
}

function im2colParams(geo: ConvGeometry) {
  const { has_bias: _bias, chunk: _chunk, splits: _splits, ...geometry } = geo;
  return { ...geometry, cols_stride: colsStride(geo) };
}

/** dst (batch, cols, rows) = src (batch, rows, cols) transposed per batch item. */
function transposeInto(
  gpu: Gpu,
  src: Tensor,
  dst: Tensor,
  batch: number,
  rows: number,
  cols: number,
) {
  gpu.dispatch(
    TRANSPOSE,
    { batch, rows, cols },
    [src.binding, dst.binding],
    grid1d(Math.ceil((batch * rows * cols) / 256)),
  );
}

/** dst (rows, outCols) = src (rows, inCols) cut or zero-padded to outCols (+ dst when accumulate). */
function copyColsInto(
  gpu: Gpu,
  src: Tensor,
  dst: Tensor,
  rows: number,
  inCols: number,
  outCols: number,
  accumulate: boolean,
) {
  gpu.dispatch(
    COPY_COLS,
    { rows, out_cols: outCols, in_cols: inCols, beta: accumulate ? 1 : 0 },
    [src.binding, dst.binding],
    grid1d(Math.ceil((rows * outCols) / 256)),
  );
}

/** The weight as a (k, cols_stride) matrix: itself, or a zero-padded copy (caller disposes). */
function paddedWeight(gpu: Gpu, geo: ConvGeometry, weight: Tensor): Tensor {
  const crs = geo.c * geo.kh * geo.kw, cs = colsStride(geo);
  if (cs === crs) return weight.reshape([geo.k, crs]);
  const padded = empty(gpu, [geo.k, cs]);
  copyColsInto(gpu, weight, padded, geo.k, crs, cs, false);
  return padded;
}

/** y = conv2d(x, weight) + bias through the patch matrix: y^T = cols W^T + bias, then NCHW. */
function conv2dIm2colForward(
  gpu: Gpu,
  geo: ConvGeometry,
  x: Tensor,
  weight: Tensor,
  bias: Tensor | undefined,
  y: Tensor,
): void {
  const rows = geo.n * geo.ho * geo.wo, cs = colsStride(geo);
  const cols = im2col(gpu, geo, x);
  const wp = paddedWeight(gpu, geo, weight);
  const yt = empty(gpu, [rows, geo.k]);
  matmulInto(gpu, cols, wp, yt, { batch: 1, m: rows, k: cs, n: geo.k }, { transB: true, bias });
  transposeInto(gpu, yt, y, geo.n, geo.ho * geo.wo, geo.k);
  // Safe to pool at once: later dispatches that reuse them run after these.
  for (const t of [cols, yt]) t.dispose();
  if (wp.buffer !== weight.buffer) wp.dispose();
}

/**
 * The gradients through the patch matrix, g = dy (n, k, ho, wo):
 * g^T = g as (n*P, k); dcols = g^T W (then col2im into dx); dW = sum over
 * slices of images of g_s^T cols_s (one batched product, then a sum over the
 * slices: {@link weightGradSlices}).
 * The patch matrix is rebuilt from x rather than kept from the forward.
 */
function conv2dIm2colBackward(
  gpu: Gpu,
  geo: ConvGeometry,
  x: Tensor,
  weight: Tensor,
  g: Tensor,
  bias: Tensor | undefined,
  slices: number,
): void {
  const pixels = geo.ho * geo.wo, rows = geo.n * pixels, cs = colsStride(geo);
  const crs = geo.c * geo.kh * geo.kw;
  const gt = empty(gpu, [rows, geo.k]);
  transposeInto(gpu, g, gt, geo.n, geo.k, pixels);
  if (x.requiresGrad) {
    const wp = paddedWeight(gpu, geo, weight);
    const dcols = empty(gpu, [rows, cs]);
    matmulInto(gpu, gt, wp, dcols, { batch: 1, m: rows, k: geo.k, n: cs }, {});
    gpu.dispatch(
      COL2IM,
      im2colParams(geo),
      [dcols.binding, gradOf(x).binding],
      grid1d(Math.ceil(x.size / 256)),
    );
    dcols.dispose();
    if (wp.buffer !== weight.buffer) wp.dispose();
  }
  if (weight.requiresGrad) {
    const cols = im2col(gpu, geo, x);
    // Slices of whole images: rows n*P split in `slices` runs of (n / slices)*P.
    const part = empty(gpu, [slices, geo.k, cs]);
    matmulInto(gpu, gt, cols, part, { batch: slices, m: geo.k, k: rows / slices, n: cs }, {
      transA: true,
    });
    const view = { outer: 1, axis: slices, inner: geo.k * cs };
    if (cs === crs) {
      sumAxisInto(gpu, part, gradOf(weight), view, 1, 1);
    } else {
      const dw = empty(gpu, [geo.k, cs]);
      sumAxisInto(gpu, part, dw, view, 1, 0);
      copyColsInto(gpu, dw, gradOf(weight), geo.k, cs, crs, true);
      dw.dispose();
    }
    for (const t of [cols, part]) t.dispose();
  }
  if (bias?.requiresGrad) {
    gpu.dispatch(CONV_BACKWARD_BIAS, geo, [g.binding, gradOf(bias).binding], [geo.k]);
  }
  gt.dispose();
}

/**
 * 2-D cross-correlation (PyTorch's Conv2d): x (N, C, H, W), weight
 * (K, C, kh, kw), optional bias (K) → (N, K, Ho, Wo) with
 * Ho = floor((H + 2 pad_h - kh) / stride_h) + 1 (likewise Wo):
 *   y[n,k,oy,ox] = bias[k] + sum_{c,i,j} weight[k,c,i,j] x[n,c,oy*s_h-p_h+i,ox*s_w-p_w+j].
 * Derivative: dx = transposed convolution of dy with weight;
 * dweight[k,c,i,j] = sum_{n,oy,ox} dy[n,k,oy,ox] x[n,c,oy*s_h-p_h+i,ox*s_w-p_w+j];
 * dbias[k] = sum_{n,oy,ox} dy[n,k,oy,ox].
 *
 * @example
 * ```ts ignore
 * const y = conv2d(x, w, { bias: b, stride: 2 }); // SqueezeNet 1.1's first layer
 * ```
 */
export function conv2d(x: Tensor, weight: Tensor, options: Conv2dOptions = {}): Tensor {
  const op = "conv2d";
  const { bias } = options;
  sameDevice(op, x, weight, ...(bias ? [bias] : []));
  dtypeIs(op, x, "f32");
  dtypeIs(op, weight, "f32");
  rankIs(op, x, 4);
  rankIs(op, weight, 4);
  const [n, c, h, w] = x.shape;
  const [k, cw, kh, kw] = weight.shape;
  const [strideH, strideW] = pair(options.stride ?? 1);
  const [padH, padW] = pair(options.padding ?? 0);
  const what = `x ${x.describe()}, weight ${weight.describe()}`;
  if (![strideH, strideW].every((s) => Number.isInteger(s) && s >= 1)) {
    throw new OpError(op, `stride ${options.stride} must be a positive integer (${what})`);
  }
  if (![padH, padW].every((s) => Number.isInteger(s) && s >= 0)) {
    throw new OpError(op, `padding ${options.padding} must be a non-negative integer (${what})`);
  }
  if (cw !== c) throw new OpError(op, `channel mismatch: ${what}`);
  if (kh < 1 || kw < 1 || kh > h + 2 * padH || kw > w + 2 * padW) {
    throw new OpError(
      op,
      `kernel ${kh}x${kw} does not fit the padded input ${h + 2 * padH}x${w + 2 * padW} (${what})`,
    );
  }
  if (bias) {
    dtypeIs(op, bias, "f32");
    if (bias.size !== k) {
      throw new OpError(op, `bias ${bias.describe()} must have ${k} elements (${what})`);
    }
  }
  const ho = Math.floor((h + 2 * padH - kh) / strideH) + 1;
  const wo = Math.floor((w + 2 * padW - kw) / strideW) + 1;
  const geo: ConvGeometry = {
    n,
    c,
    h,
    w,
    k,
    kh,
    kw,
    stride_h: strideH,
    stride_w: strideW,
    pad_h: padH,
    pad_w: padW,
    ho,
    wo,
    has_bias: bias ? 1 : 0,
    chunk: 0,
    splits: 0,
  };
  const gpu = x.gpu;
  const y = empty(gpu, [n, k, ho, wo]);
  const impl = options.impl ?? "auto";
  if (impl === "im2col" || (impl === "auto" && im2colSuits(gpu, geo))) {
    const slices = options.weightSlices ?? weightGradSlices(n, gpu.adapter.software);
    if (!Number.isInteger(slices) || slices < 1 || n % slices !== 0) {
      throw new OpError(op, `weightSlices ${slices} must divide the batch ${n}`);
    }
    conv2dIm2colForward(gpu, geo, x, weight, bias, y);
    // saves: x and weight (inputs, alive while the tape holds them)
    return record(
      op,
      y,
      bias ? [x, weight, bias] : [x, weight],
      (g) => conv2dIm2colBackward(gpu, geo, x, weight, g, bias, slices),
    );
  }
  gpu.dispatch(
    CONV_FORWARD,
    geo,
    [x.binding, weight.binding, (bias ?? weight).binding, y.binding],
    [Math.ceil((n * ho * wo) / 64), Math.ceil(k / 64)],
  );
  // saves: x and weight (inputs, alive while the tape holds them)
  return record(
    op,
    y,
    bias ? [x, weight, bias] : [x, weight],
    (g) => launchConvBackward(gpu, geo, x, weight, g, bias, options.inputGrad ?? "auto"),
  );
}

const POOL_PARAMS = {
  count: "u32",
  h: "u32",
  w: "u32",
  ho: "u32",
  wo: "u32",
  kernel: "u32",
  stride: "u32",
  pad: "u32",
} as const;
const POOL_FORWARD = {
  source: KERNEL_SOURCES["max_pool2d.wgsl"],
  entry: "max_pool2d_forward",
  params: POOL_PARAMS,
  workgroup: [256],
} as const satisfies KernelSpec<typeof POOL_PARAMS>;
const POOL_BACKWARD = { ...POOL_FORWARD, entry: "max_pool2d_backward" } as const;

/** Options of {@link maxPool2d} (PyTorch's MaxPool2d defaults). */
export interface MaxPool2dOptions {
  /** Step between windows (default: the kernel size). */
  stride?: number;
  /** Implicit -inf padding on each side, at most kernel / 2 (default 0). */
  padding?: number;
  /** Round the output size up, keeping only windows that start inside (default false). */
  ceilMode?: boolean;
}

function poolLength(size: number, k: number, s: number, p: number, ceil: boolean): number {
  const span = size + 2 * p - k;
  let out = (ceil ? Math.ceil(span / s) : Math.floor(span / s)) + 1;
  // PyTorch drops a last window that would start in the far padding.
  if (ceil && (out - 1) * s >= size + p) out--;
  return out;
}

/**
 * Max pooling over square windows of x (N, C, H, W) → (N, C, Ho, Wo).
 * Derivative: each output's dy goes to the input its maximum came from (the
 * first maximum in row-major window order on ties); saves that argmax (u32).
 */
export function maxPool2d(x: Tensor, kernel: number, options: MaxPool2dOptions = {}): Tensor {
  const op = "maxPool2d";
  const { stride = kernel, padding = 0, ceilMode = false } = options;
  sameDevice(op, x);
  dtypeIs(op, x, "f32");
  rankIs(op, x, 4);
  const [n, c, h, w] = x.shape;
  const what = `x ${x.describe()}, kernel ${kernel}, stride ${stride}, padding ${padding}`;
  if (![kernel, stride].every((v) => Number.isInteger(v) && v >= 1)) {
    throw new OpError(op, `kernel and stride must be positive integers (${what})`);
  }
  if (!Number.isInteger(padding) || padding < 0 || padding > kernel / 2) {
    throw new OpError(op, `padding must be an integer in [0, kernel / 2] (${what})`);
  }
  if (kernel > h + 2 * padding || kernel > w + 2 * padding) {
    throw new OpError(op, `kernel does not fit the padded input (${what})`);
  }
  const ho = poolLength(h, kernel, stride, padding, ceilMode);
  const wo = poolLength(w, kernel, stride, padding, ceilMode);
  const gpu = x.gpu;
  const y = empty(gpu, [n, c, ho, wo]);
  const arg = empty(gpu, [n, c, ho, wo], "u32");
  const p = { count: y.size, h, w, ho, wo, kernel, stride, pad: padding };
  gpu.dispatch(
    POOL_FORWARD,
    p,
    [x.binding, y.binding, arg.binding],
    grid1d(Math.ceil(y.size / 256)),
  );
  if (!isRecording() || !x.requiresGrad) {
    arg.dispose();
    return y;
  }
  // saves: arg, the in-plane index of each output's maximum
  return record(op, y, [x], (g) => {
    gpu.dispatch(
      POOL_BACKWARD,
      { ...p, count: x.size },
      [arg.binding, g.binding, gradOf(x).binding],
      grid1d(Math.ceil(x.size / 256)),
    );
  });
}

const CONCAT_PARAMS = { count: "u32", cs: "u32", ct: "u32", off: "u32", hw: "u32" } as const;
const CONCAT_FORWARD = {
  source: KERNEL_SOURCES["concat_channels.wgsl"],
  entry: "concat_channels_forward",
  params: CONCAT_PARAMS,
  workgroup: [256],
} as const satisfies KernelSpec<typeof CONCAT_PARAMS>;
const CONCAT_BACKWARD = { ...CONCAT_FORWARD, entry: "concat_channels_backward" } as const;

/**
 * Stacks a (N, Ca, H, W) and b (N, Cb, H, W) along channels → (N, Ca+Cb, H, W).
 * Derivative: da = dy[:, :Ca], db = dy[:, Ca:]; saves nothing.
 */
export function concatChannels(a: Tensor, b: Tensor): Tensor {
  const op = "concatChannels";
  sameDevice(op, a, b);
  dtypeIs(op, a, "f32");
  dtypeIs(op, b, "f32");
  rankIs(op, a, 4);
  rankIs(op, b, 4);
  const [n, ca, h, w] = a.shape;
  const [nb, cb, hb, wb] = b.shape;
  if (n !== nb || h !== hb || w !== wb) {
    throw new OpError(op, `batch or spatial sizes differ: ${a.describe()} vs ${b.describe()}`);
  }
  const gpu = a.gpu;
  const ct = ca + cb, hw = h * w;
  const y = empty(gpu, [n, ct, h, w]);
  const parts: [Tensor, number, number][] = [[a, ca, 0], [b, cb, ca]];
  for (const [src, cs, off] of parts) {
    gpu.dispatch(
      CONCAT_FORWARD,
      { count: src.size, cs, ct, off, hw },
      [src.binding, y.binding],
      grid1d(Math.ceil(src.size / 256)),
    );
  }
  return record(op, y, [a, b], (g) => {
    for (const [src, cs, off] of parts) {
      if (!src.requiresGrad) continue;
      gpu.dispatch(
        CONCAT_BACKWARD,
        { count: src.size, cs, ct, off, hw },
        [g.binding, gradOf(src).binding],
        grid1d(Math.ceil(src.size / 256)),
      );
    }
  });
}

const SIGMOID_PARAMS = { n: "u32" } as const;
const SIGMOID_FORWARD = {
  source: KERNEL_SOURCES["sigmoid.wgsl"],
  entry: "sigmoid_forward",
  params: SIGMOID_PARAMS,
  workgroup: [256],
} as const satisfies KernelSpec<typeof SIGMOID_PARAMS>;
const SIGMOID_BACKWARD = { ...SIGMOID_FORWARD, entry: "sigmoid_backward" } as const;

/**
 * Logistic sigmoid 1 / (1 + e^-x), finite for every finite x.
 * Derivative: dx = dy * y * (1 - y); saves y (the output).
 */
export function sigmoid(x: Tensor): Tensor {
  sameDevice("sigmoid", x);
  dtypeIs("sigmoid", x, "f32");
  const gpu = x.gpu;
  const y = empty(gpu, x.shape);
  const groups = grid1d(Math.ceil(x.size / 256));
  gpu.dispatch(SIGMOID_FORWARD, { n: x.size }, [x.binding, y.binding], groups);
  return record("sigmoid", y, [x], (g) => {
    gpu.dispatch(
      SIGMOID_BACKWARD,
      { n: x.size },
      [y.binding, g.binding, gradOf(x).binding],
      groups,
    );
  });
}

/** The perceptual loss's ops: kernels, f64 references and tolerances. */
export const CONV_OPS = {
  conv2d: {
    kind: "differentiable",
    kernels: [
      CONV_FORWARD,
      CONV_BACKWARD_INPUT,
      CONV_BACKWARD_INPUT_DIRECT,
      CONV_BACKWARD_WEIGHT,
      CONV_WEIGHT_REDUCE,
      CONV_BACKWARD_BIAS,
      IM2COL,
      COL2IM,
      TRANSPOSE,
      COPY_COLS,
    ],
    reference: { forward: conv2dRef, backward: conv2dBackwardRef },
    // Forward sums c*kh*kw (<= ~1200) products of |v| <= 1, like matmul; the
    // weight gradient sums n*ho*wo (a few thousand in the tests) in split chunks.
    tolerance: { forward: { atol: 1e-4, rtol: 1e-4 }, backward: { atol: 2e-4, rtol: 2e-4 } },
    test: "conv_test.ts",
  },
  maxPool2d: {
    kind: "differentiable",
    kernels: [POOL_FORWARD, POOL_BACKWARD],
    reference: { forward: maxPool2dRef, backward: maxPool2dBackwardRef },
    // Selection, and at most kernel^2 copies of dy summed in a fixed order.
    tolerance: { forward: EXACT, backward: POINTWISE },
    test: "conv_test.ts",
  },
  concatChannels: {
    kind: "differentiable",
    kernels: [CONCAT_FORWARD, CONCAT_BACKWARD],
    reference: { forward: concatChannelsRef, backward: concatChannelsBackwardRef },
    tolerance: { forward: EXACT, backward: EXACT },
    test: "conv_test.ts",
  },
  sigmoid: {
    kind: "differentiable",
    kernels: [SIGMOID_FORWARD, SIGMOID_BACKWARD],
    reference: { forward: sigmoidRef, backward: sigmoidBackwardRef },
    // exp in WGSL may be a few ulp off correctly rounded
    tolerance: { forward: { atol: 1e-7, rtol: 2e-6 }, backward: { atol: 1e-7, rtol: 1e-5 } },
    test: "conv_test.ts",
  },
} as const satisfies OpDeclarations;
