/**
 * Multi-head softmax self-attention, fused, over kernels/attention.wgsl.
 *
 * Per batch b and head h, with q, k, v the (T, dh) slices of head h
 * (columns h*dh.. of each part) and scale = 1/sqrt(dh):
 *   S = scale q k^T,  P = softmax_row(S),  O = P v   (O is head h of the output).
 * Derivative (flash-attention form, D_i = sum_c dO_ic O_ic = sum_j P_ij dP_ij):
 *   dP = dO v^T,  dS = P * (dP - D),  dq = scale dS k,  dk = scale dS^T q,  dv = P^T dO.
 * The (T, T) matrices are never stored: the forward keeps a row's scores in
 * registers (online softmax) and saves only the per-row logsumexp; the
 * backward recomputes P from q, k and it.
 *
 * @module
 */

import { KERNEL_SOURCES } from "../../kernels/sources.ts";
import type { Binding, Gpu, KernelSpec } from "../gpu/device.ts";
import { gradOf, record } from "../tape.ts";
import { empty, type Tensor } from "../tensor.ts";
import { dtypeIs, grid1d, OpError, sameDevice } from "./_check.ts";
import { stageDistinct } from "./_stage.ts";
import { matmulInto } from "./matmul.ts";
import { attentionBackwardRef, attentionRef } from "../ref/attention.ts";
import type { OpDeclarations } from "./_op.ts";

const PARAMS = {
  batch_heads: "u32",
  heads: "u32",
  seq: "u32",
  dh: "u32",
  in_stride: "u32",
  q_off: "u32",
  k_off: "u32",
  v_off: "u32",
  out_stride: "u32",
  grad_stride: "u32",
  dq_off: "u32",
  dk_off: "u32",
  dv_off: "u32",
  scale: "f32",
  dv_in_dk: "u32",
} as const;
const FORWARD = {
  source: KERNEL_SOURCES["attention.wgsl"],
  entry: "attention_forward",
  params: PARAMS,
  workgroup: [16],
} as const satisfies KernelSpec<typeof PARAMS>;
const BACKWARD_QUERY = { ...FORWARD, entry: "attention_backward_query" } as const;
const BACKWARD_KEY = { ...FORWARD, entry: "attention_backward_key" } as const;
const ROWS_FORWARD = { ...FORWARD, entry: "attention_rows_forward", workgroup: [64] } as const;
const ROWS_BACKWARD_QUERY = { ...ROWS_FORWARD, entry: "attention_rows_backward_query" } as const;
const ROWS_BACKWARD_KEY = { ...ROWS_FORWARD, entry: "attention_rows_backward_key" } as const;

const HEADS_PARAMS = {
  batch_heads: "u32",
  heads: "u32",
  seq: "u32",
  seq_pad: "u32",
  dh: "u32",
  stride: "u32",
  off: "u32",
  scale: "f32",
  alpha: "f32",
  beta: "f32",
} as const;
const SPLIT_HEADS = {
  source: KERNEL_SOURCES["attention_heads.wgsl"],
  entry: "attention_split_heads",
  params: HEADS_PARAMS,
  workgroup: [64],
} as const satisfies KernelSpec<typeof HEADS_PARAMS>;
const MERGE_HEADS = { ...SPLIT_HEADS, entry: "attention_merge_heads" } as const;
const SOFTMAX_ROWS = { ...SPLIT_HEADS, entry: "attention_softmax_rows" } as const;
const SOFTMAX_BACKWARD = { ...SPLIT_HEADS, entry: "attention_softmax_backward" } as const;

/** Fused attention: kernels, f64 references and tolerances. */
export const ATTENTION_OPS = {
  attention: {
    kind: "differentiable",
    kernels: [
      FORWARD,
      BACKWARD_QUERY,
      BACKWARD_KEY,
      ROWS_FORWARD,
      ROWS_BACKWARD_QUERY,
      ROWS_BACKWARD_KEY,
      SPLIT_HEADS,
      MERGE_HEADS,
      SOFTMAX_ROWS,
      SOFTMAX_BACKWARD,
    ],
    reference: { forward: attentionRef, backward: attentionBackwardRef },
    // Unit-scale inputs, T <= 257: a convex combination of v after dh-term dots, measured
    // <= 2.1e-7 (forward) and 1.5e-7 (backward); large logits get a wider bound in the test.
    tolerance: { forward: { atol: 1e-6, rtol: 1e-5 }, backward: { atol: 1e-6, rtol: 1e-5 } },
    test: "attention_test.ts",
  },
} as const satisfies OpDeclarations;

/** Rows per workgroup (BLOCK in the WGSL). */
const BLOCK = 32;
/** Largest head dimension the kernel holds in registers (4 * MAX_DH4 in the WGSL). */
export const ATTENTION_MAX_HEAD_DIM = 64;

/** Flops of one attention forward (two T x T x dh products per head), for benchmarks. */
export function attentionFlops(B: number, T: number, D: number, H: number): number {
  return 4 * B * H * T * T * (D / H);
}

/**
 * Which implementation runs: "fused" (attention.wgsl: one forward and two
 * backward dispatches, the scores never stored, a workgroup per 32 rows of a
 * head sharing tiles through workgroup memory), "rows" (the same passes, one
 * thread per row of a head, vec4 reads, no barriers; head dims divisible by
 * 4) or "matmul" (batched matmuls over head-major copies of q, k, v, with the
 * (B*H, T, T) scores in a temporary buffer, and attention_heads.wgsl's
 * softmax and head permutes).
 */
export type AttentionKernel = "fused" | "rows" | "matmul";

/** Options of {@link attention} and {@link attentionQKV}. */
export interface AttentionOptions {
  /** Force the forward's implementation (tests); by default {@link attentionKernels} picks. */
  forward?: AttentionKernel;
  /** Force the backward's implementation (tests); by default {@link attentionKernels} picks. */
  backward?: AttentionKernel;
}

/**
 * The default implementations for T tokens of head dimension `dh`. Both
 * share the saved state (the output and per-row logsumexp), so forward and
 * backward could choose independently; today they choose alike. "matmul"
 * needs dh divisible by 4, so that every product runs on matmul_vec4, and
 * pays off once a head's products are large: measured on llvmpipe (B = 32,
 * 4 heads, medians of 3 interleaved runs at load ~3.5; forward+backward ms,
 * fused vs matmul) T = 65, dh = 64: 536 vs 139; T = 257, dh = 64: 5618 vs
 * 888; T = 257, dh = 16: 1038 vs 612; T = 65, dh = 32: 325 vs 113; but
 * T = 50, dh = 16 (the small profile): 69 vs 72, forward alone 17 vs 23,
 * where the 16x16 matmul blocks are mostly padding. So matmul from
 * T * dh >= 1280 (between 800 and 2080); other head dims would fall to the
 * slower tiled matmul and keep the fused kernels (the matmul kernel's head
 * permutes move vec4s and refuse them). "matmul" also holds the (B * H, Tp,
 * Tp) scores in one tensor (Tp: T rounded up to 4); when that is over
 * `scoreLimit` bytes (the device's binding limit; ViT-Lite at batch 128 needs
 * 138 MB against WebGPU's default 128 MiB) the fused kernels, which keep no
 * scores, run instead. Below the matmul threshold, head dims divisible by 4
 * take the rows form: measured on llvmpipe (deno task bench:profile --model
 * small, batch 128) it beat the fused kernels on the small profile's shapes
 * (T = 13 and 50, dh = 16); it was not measured on large heads, and other
 * head dims keep the fused kernels.
 */
export function attentionKernels(
  T: number,
  dh: number,
  scores?: { heads: number; batch: number; limit: number },
): { forward: AttentionKernel; backward: AttentionKernel } {
  const Tp = Math.ceil(T / 4) * 4;
  const fits = !scores || scores.batch * scores.heads * Tp * Tp * 4 <= scores.limit;
  const large = T * dh >= 1280;
  const k = dh % 4 !== 0 ? "fused" : large ? (fits ? "matmul" : "fused") : "rows";
  return { forward: k, backward: k };
}

/** How q, k, v sit in their buffers: (B*T, stride) rows, each part at a column offset. */
interface Layout {
  B: number;
  T: number;
  D: number;
  H: number;
  stride: number;
  qOff: number;
  kOff: number;
  vOff: number;
}

function checkHeads(op: string, D: number, heads: number, what: string): void {
  if (!Number.isInteger(heads) || heads < 1) throw new OpError(op, `heads ${heads} must be >= 1`);
  if (D % heads !== 0) {
    throw new OpError(op, `width D=${D} of ${what} is not divisible by heads=${heads}`);
  }
  if (D / heads > ATTENTION_MAX_HEAD_DIM) {
    throw new OpError(
      op,
      `head dimension ${D / heads} of ${what} exceeds ${ATTENTION_MAX_HEAD_DIM}`,
    );
  }
}

/**
 * Self-attention over a packed `qkv` (B, T, 3D) whose last axis is
 * [q | k | v], as a ViT's qkv linear layer produces; `heads` splits D.
 * Returns (B, T, D), heads concatenated on the last axis.
 * @example
 * ```ts ignore
 * const y = attention(qkv, 4); // qkv (B, T, 768) -> y (B, T, 256)
 * ```
 */
export function attention(qkv: Tensor, heads: number, options: AttentionOptions = {}): Tensor {
  const op = "attention";
  sameDevice(op, qkv);
  dtypeIs(op, qkv, "f32");
  if (qkv.shape.length !== 3) throw new OpError(op, `qkv ${qkv.describe()} must be (B, T, 3D)`);
  const [B, T, D3] = qkv.shape;
  if (D3 % 3 !== 0) {
    throw new OpError(op, `last axis of qkv ${qkv.describe()} is not divisible by 3`);
  }
  const D = D3 / 3;
  checkHeads(op, D, heads, `qkv ${qkv.describe()}`);
  const layout = { B, T, D, H: heads, stride: D3, qOff: 0, kOff: D, vOff: 2 * D };
  return launch(op, qkv.gpu, layout, qkv, qkv, qkv, options);
}

/**
 * Self-attention over separate `q`, `k`, `v`, each (B, T, D); `heads` splits D.
 * Returns (B, T, D), heads concatenated on the last axis.
 */
export function attentionQKV(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  heads: number,
  options: AttentionOptions = {},
): Tensor {
  const op = "attentionQKV";
  sameDevice(op, q, k, v);
  for (const t of [q, k, v]) dtypeIs(op, t, "f32");
  if (q.shape.length !== 3) throw new OpError(op, `q ${q.describe()} must be (B, T, D)`);
  for (const t of [k, v]) {
    if (t.shape.length !== 3 || t.shape.some((d, i) => d !== q.shape[i])) {
      throw new OpError(
        op,
        `shapes differ: q ${q.describe()}, k ${k.describe()}, v ${v.describe()}`,
      );
    }
  }
  const [B, T, D] = q.shape;
  checkHeads(op, D, heads, `q ${q.describe()}`);
  const layout = { B, T, D, H: heads, stride: D, qOff: 0, kOff: 0, vOff: 0 };
  return launch(op, q.gpu, layout, q, k, v, options);
}

function launch(
  op: string,
  gpu: Gpu,
  L: Layout,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  options: AttentionOptions,
): Tensor {
  const { B, T, D, H } = L;
  const dh = D / H;
  const defaults = attentionKernels(T, dh, {
    heads: H,
    batch: B,
    limit: gpu.device.limits.maxStorageBufferBindingSize,
  });
  const forward = options.forward ?? defaults.forward;
  const backward = options.backward ?? defaults.backward;
  for (const kernel of [forward, backward]) {
    if (kernel !== "fused" && dh % 4 !== 0) {
      throw new OpError(
        op,
        `the ${kernel} kernel needs a head dimension divisible by 4, not ${dh}`,
      );
    }
  }
  const out = empty(gpu, [B, T, D]);
  // (B, H, T, 2): [logsumexp of row t's scaled scores, D_t (the fused backward's)]
  const stats = empty(gpu, [B, H, T, 2]);
  const forms = {
    fused: fusedKernels(gpu, L, q, k, v, out, stats, "fused"),
    rows: fusedKernels(gpu, L, q, k, v, out, stats, "rows"),
    matmul: matmulKernels(gpu, L, q, k, v, out, stats),
  };
  if (out.size > 0) forms[forward].forward();
  const inputs = [...new Set([q, k, v])];
  // saves: the inputs, the output and stats
  return record(op, out, inputs, (g) => {
    if (out.size > 0) forms[backward].backward(g);
  });
}

/**
 * The three passes of attention.wgsl, in its fused form (a workgroup per 32
 * rows) or its rows form (a thread per row); the backward reads stats[.., 0]
 * and fills stats[.., 1].
 */
function fusedKernels(
  gpu: Gpu,
  L: Layout,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  out: Tensor,
  stats: Tensor,
  form: "fused" | "rows",
): { forward: () => void; backward: (g: Tensor) => void } {
  const { B, T, D, H } = L;
  const dh = D / H;
  const passes = {
    fused: {
      kernels: [FORWARD, BACKWARD_QUERY, BACKWARD_KEY],
      groups: grid1d(B * H * Math.ceil(T / BLOCK)),
    },
    rows: {
      kernels: [ROWS_FORWARD, ROWS_BACKWARD_QUERY, ROWS_BACKWARD_KEY],
      groups: grid1d(Math.ceil((B * H * T) / 64)),
    },
  } as const;
  /**
   * The rows form reads q, k, v (the key pass: q, k, v, dO) from textures;
   * where a tensor cannot be staged (Gpu.stageTexture), that pass runs fused.
   */
  const pass = (i: 0 | 1 | 2, inputs: Tensor[], storage: Binding[]) => {
    // Slots from 2: matmul stages into 0 and 1.
    const staged = form === "rows" ? stageDistinct(gpu, inputs, 2) : null;
    const use = staged ? passes.rows : passes.fused;
    const bindings = staged ?? inputs.map((t) => t.binding);
    return { kernel: use.kernels[i], groups: use.groups, bindings: [...bindings, ...storage] };
  };
  const constants = { DH4: Math.max(1, Math.ceil(dh / 4)) };
  const base = {
    batch_heads: B * H,
    heads: H,
    seq: T,
    dh,
    in_stride: L.stride,
    q_off: L.qOff,
    k_off: L.kOff,
    v_off: L.vOff,
    out_stride: D,
    scale: 1 / Math.sqrt(dh),
    dv_in_dk: 0,
  };
  const forward = () => {
    const f = pass(0, [q, k, v], [out.binding, stats.binding]);
    gpu.dispatch(
      f.kernel,
      { ...base, grad_stride: 0, dq_off: 0, dk_off: 0, dv_off: 0 },
      f.bindings,
      f.groups,
      constants,
    );
  };
  const backward = (g: Tensor) => {
    // dq, dk, dv share q, k, v's layout: a packed qkv gets one packed gradient.
    // An input that needs no gradient gets a scratch buffer the kernel may write.
    const scratch: Tensor[] = [];
    const sink = (t: Tensor) => {
      if (t.requiresGrad) return gradOf(t);
      scratch.push(empty(gpu, t.shape));
      return scratch[scratch.length - 1];
    };
    const dq = sink(q);
    const grads = {
      ...base,
      grad_stride: L.stride,
      dq_off: L.qOff,
      dk_off: L.kOff,
      dv_off: L.vOff,
    };
    const fq = pass(1, [q, k, v], [out.binding, g.binding, stats.binding, dq.binding]);
    gpu.dispatch(fq.kernel, grads, fq.bindings, fq.groups, constants);
    if (k.requiresGrad || v.requiresGrad) {
      const [dk, dv] = [sink(k), sink(v)];
      // A packed qkv (or k and v one tensor) has one gradient for both: it is bound
      // once and dv goes through the dk binding; the dv slot gets a placeholder.
      const shared = dk === dv;
      // (four floats: the rows form views it as vec4s)
      const dvBinding = shared ? (scratch.push(empty(gpu, [4])), scratch.at(-1)!) : dv;
      // Runs after the query pass (same encoder), which filled stats[.., 1] = D.
      const fk = pass(2, [q, k, v, g], [stats.binding, dk.binding, dvBinding.binding]);
      gpu.dispatch(
        fk.kernel,
        { ...grads, dv_in_dk: shared ? 1 : 0 },
        fk.bindings,
        fk.groups,
        constants,
      );
    }
    // Safe at once: dispatches run in order, so a later owner writes after these reads.
    for (const t of scratch) t.dispose();
  };
  return { forward, backward };
}

/**
 * Attention as batched matmuls over head-major copies (B*H, Tp, dh), Tp = T
 * rounded up to 4 (zero rows past T), with attention_heads.wgsl's kernels:
 *   forward:  S = Q K^T, P = softmax(scale S) with lse into stats[.., 0], O = P V;
 *   backward: S and dP = dO V^T recomputed, P and dS = P * (dP - D) in place,
 *             dv += P^T dO, dk += scale dS^T Q, dq += scale dS K.
 * Each gradient is added into its part of the input's gradient by its own
 * dispatch, so a packed qkv's one gradient buffer is never bound twice.
 */
function matmulKernels(
  gpu: Gpu,
  L: Layout,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  out: Tensor,
  stats: Tensor,
): { forward: () => void; backward: (g: Tensor) => void } {
  const { B, T, D, H } = L;
  const dh = D / H;
  const BH = B * H;
  const Tp = Math.ceil(T / 4) * 4;
  const base = {
    batch_heads: BH,
    heads: H,
    seq: T,
    seq_pad: Tp,
    dh,
    stride: L.stride,
    off: 0,
    scale: 1 / Math.sqrt(dh),
    alpha: 1,
    beta: 0,
  };
  const items = (n: number) => grid1d(Math.ceil(n / 64));
  /** Head-major (B*H, Tp, dh) copy of the part at column `off` of `t`. */
  const split = (t: Tensor, off: number, stride: number): Tensor => {
    const h = empty(gpu, [BH, Tp, dh]);
    gpu.dispatch(SPLIT_HEADS, { ...base, off, stride }, [t.binding, h.binding], items(BH * Tp));
    return h;
  };
  /** dst[part at `off`] = alpha * src + beta * dst[..] over the first T rows of each head. */
  const merge = (
    src: Tensor,
    dst: Tensor,
    off: number,
    stride: number,
    alpha: number,
    beta: number,
  ) => {
    gpu.dispatch(
      MERGE_HEADS,
      { ...base, off, stride, alpha, beta },
      [src.binding, dst.binding],
      items(BH * T),
    );
  };
  const scores = { batch: BH, m: Tp, k: dh, n: Tp };
  const byHead = { batch: BH, m: Tp, k: Tp, n: dh };
  const qkv = () => [
    split(q, L.qOff, L.stride),
    split(k, L.kOff, L.stride),
    split(v, L.vOff, L.stride),
  ];
  /** S = Q K^T (B*H, Tp, Tp), raw (unscaled). */
  const qkT = (qh: Tensor, kh: Tensor): Tensor => {
    const s = empty(gpu, [BH, Tp, Tp]);
    matmulInto(gpu, qh, kh, s, scores, { transB: true });
    return s;
  };
  const forward = () => {
    const [qh, kh, vh] = qkv();
    const s = qkT(qh, kh);
    gpu.dispatch(SOFTMAX_ROWS, base, [s.binding, stats.binding], items(BH * Tp));
    const oh = empty(gpu, [BH, Tp, dh]);
    matmulInto(gpu, s, vh, oh, byHead, {});
    merge(oh, out, 0, D, 1, 0);
    // Safe at once: dispatches run in order, so a later owner writes after these reads.
    for (const t of [qh, kh, vh, s, oh]) t.dispose();
  };
  const backward = (g: Tensor) => {
    const [qh, kh, vh] = qkv();
    const doh = split(g, 0, D);
    const s = qkT(qh, kh);
    const dp = empty(gpu, [BH, Tp, Tp]);
    matmulInto(gpu, doh, vh, dp, scores, { transB: true });
    // s := P, dp := dS
    gpu.dispatch(SOFTMAX_BACKWARD, base, [s.binding, dp.binding, stats.binding], items(BH * Tp));
    const tmp = empty(gpu, [BH, Tp, dh]);
    if (v.requiresGrad) {
      matmulInto(gpu, s, doh, tmp, byHead, { transA: true }); // P^T dO
      merge(tmp, gradOf(v), L.vOff, L.stride, 1, 1);
    }
    if (k.requiresGrad) {
      matmulInto(gpu, dp, qh, tmp, byHead, { transA: true }); // dS^T Q
      merge(tmp, gradOf(k), L.kOff, L.stride, base.scale, 1);
    }
    if (q.requiresGrad) {
      matmulInto(gpu, dp, kh, tmp, byHead, {}); // dS K
      merge(tmp, gradOf(q), L.qOff, L.stride, base.scale, 1);
    }
    for (const t of [qh, kh, vh, doh, s, dp, tmp]) t.dispose();
  };
  return { forward, backward };
}
