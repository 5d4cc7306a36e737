/**
 * matmul: batched matrix product with either operand transposed and an
 * optional bias, over kernels/matmul.wgsl.
 *
 * Derivative (a = op(A), b = op(B), C = a b + bias):
 *   da = dC b^T,  db = a^T dC,  dbias = sum over rows (and batch) of dC.
 * When A is stored transposed, dA = da^T = b dC^T; likewise for B.
 * Every product is the same kernel with other transposes and beta = 1.
 *
 * @module
 */

import { KERNEL_SOURCES } from "../../kernels/sources.ts";
import type { Gpu, KernelSpec } from "../gpu/device.ts";
import { gradOf, record } from "../tape.ts";
import { empty, type Tensor } from "../tensor.ts";
import { dtypeIs, OpError, sameDevice } from "./_check.ts";
import { sumRowsInto } from "./reduce.ts";
import { matmulBackwardRef, matmulRef } from "../ref/matmul.ts";
import type { OpDeclarations } from "./_op.ts";

const MATMUL = {
  source: KERNEL_SOURCES["matmul.wgsl"],
  entry: "matmul_forward",
  params: {
    batch: "u32",
    m: "u32",
    n: "u32",
    k: "u32",
    stride_a: "u32",
    stride_b: "u32",
    stride_c: "u32",
    alpha: "f32",
    beta: "f32",
    has_bias: "u32",
  },
  workgroup: [8, 8],
} as const satisfies KernelSpec<Record<string, "u32" | "f32">>;

/** The vec4 entry point of the same file: 16x16 output blocks, one per invocation. */
const MATMUL_VEC4 = { ...MATMUL, entry: "matmul_vec4", workgroup: [64] } as const;

/** matmul_vec4's product with operands read from textures: 16x32 blocks, one per invocation. */
const MATMUL_TEX = {
  ...MATMUL,
  source: KERNEL_SOURCES["matmul_tex.wgsl"],
  entry: "matmul_tex",
  workgroup: [64],
} as const;

/** The same with 32x32 blocks, for products with many of them. */
const MATMUL_TEX_TALL = { ...MATMUL_TEX, entry: "matmul_tex_tall" } as const;

/**
 * Whether matmul_tex_tall (32-row blocks) runs a product rather than
 * matmul_tex (16 rows). Measured on llvmpipe, 2 cores, GFLOP/s 16-row vs
 * 32-row, one process, medians of 3 interleaved: 8224x256x768 (A B^T) 32.6 vs
 * 38.3, 8224x768x256 34.7 vs 42.9, 2080x256x768 33.4 vs 38.7, 6400x64x192
 * 22.5 vs 25.8, 6400x64x64 18.1 vs 19.2; but 128 x 260x260x64 (A^T B) 24.1
 * vs 20.8 (m = 260 overhangs 32-row blocks by 11%), 256x8224x256 (A^T B) 28.1
 * vs 18.3 and 64x6400x192 14.8 vs 12.9 (too few blocks to share the cores).
 * So: at least 1024 rows and 256 blocks of 32x32 over the batch.
 */
export function texTall(dims: { batch: number; m: number; n: number }): boolean {
  const { batch, m, n } = dims;
  return m >= 1024 && Math.ceil(m / 32) * Math.ceil(n / 32) * batch >= 256;
}

/** matmul: kernels, f64 references and tolerances. */
export const MATMUL_OPS = {
  matmul: {
    kind: "differentiable",
    kernels: [MATMUL, MATMUL_VEC4, MATMUL_TEX, MATMUL_TEX_TALL],
    reference: { forward: matmulRef, backward: matmulBackwardRef },
    // k up to ~1000 terms of |x| <= 1: sum error ~ sqrt(k) * 6e-8 * k
    tolerance: { forward: { atol: 1e-4, rtol: 1e-4 }, backward: { atol: 2e-4, rtol: 1e-4 } },
    test: "matmul_test.ts",
  },
} as const satisfies OpDeclarations;

/** llvmpipe ends a shader loop after 65535 iterations; matmul_vec4 loops ceil(k / 4) times. */
const VEC4_MAX_K = 4 * 65535;

/**
 * Which kernel a product runs on: "vec4" (matmul_vec4, faster) reads every
 * operand row as vec4s, so the stored rows it reads that way must have lengths
 * divisible by 4: n always, m when A is transposed, and k when A is not
 * transposed or B is. Other shapes run "tiled" (matmul_forward).
 */
export function matmulKernel(
  dims: { m: number; k: number; n: number },
  transA = false,
  transB = false,
): "vec4" | "tiled" {
  const { m, k, n } = dims;
  const kAlong = !transA || transB; // some operand is read as vec4 along k
  const ok = k > 0 && k <= VEC4_MAX_K && n % 4 === 0 && (!transA || m % 4 === 0) &&
    (!kAlong || k % 4 === 0);
  return ok ? "vec4" : "tiled";
}

/** Options of {@link matmul}. */
export interface MatmulOptions {
  /** Use A^T: A is stored (..., k, m). */
  transA?: boolean;
  /** Use B^T: B is stored (..., n, k). */
  transB?: boolean;
  /** Added to every row of the result; shape (n). */
  bias?: Tensor;
}

/** The (batch, m, k, n) of a product, or an error naming the shapes. */
export function matmulDims(
  a: readonly number[],
  b: readonly number[],
  transA = false,
  transB = false,
): { batch: number; m: number; k: number; n: number } {
  const fail = (why: string): never => {
    throw new OpError(
      "matmul",
      `${why}: A[${a}]${transA ? "^T" : ""} @ B[${b}]${transB ? "^T" : ""}`,
    );
  };
  if (a.length < 2 || b.length < 2) fail("operands need rank >= 2");
  if (a.length !== b.length) fail("operands need the same rank (flatten a linear layer's input)");
  const batchA = a.slice(0, -2), batchB = b.slice(0, -2);
  if (batchA.some((d, i) => d !== batchB[i])) fail("batch dimensions differ");
  const batch = batchA.reduce((x, y) => x * y, 1);
  const [ar, ac] = a.slice(-2), [br, bc] = b.slice(-2);
  const [m, k] = transA ? [ac, ar] : [ar, ac];
  const [k2, n] = transB ? [bc, br] : [br, bc];
  if (k !== k2) fail(`inner dimensions differ (${k} vs ${k2})`);
  return { batch, m, k, n };
}

/**
 * Low-level launch: out = alpha * op(a) @ op(b) + bias + beta * out, on raw
 * tensors (no tape). Shapes must already be checked.
 */
export function matmulInto(
  gpu: Gpu,
  a: Tensor,
  b: Tensor,
  out: Tensor,
  dims: { batch: number; m: number; k: number; n: number },
  o: { transA?: boolean; transB?: boolean; bias?: Tensor; alpha?: number; beta?: number },
): void {
  const { batch, m, k, n } = dims;
  const params = {
    batch,
    m,
    n,
    k,
    stride_a: m * k,
    stride_b: k * n,
    stride_c: m * n,
    alpha: o.alpha ?? 1,
    beta: o.beta ?? 0,
    has_bias: o.bias ? 1 : 0,
  };
  const bindings = [a.binding, b.binding, (o.bias ?? a).binding, out.binding];
  const constants = { TRANS_A: o.transA ? 1 : 0, TRANS_B: o.transB ? 1 : 0 };
  // Only then do the vec4 kernels read past k (A^T B with k % 4 != 0).
  const kTail = o.transA && !o.transB && k % 4 !== 0 ? 1 : 0;
  const kernel = matmulKernel(dims, o.transA, o.transB);
  if (kernel === "vec4" && gpu.textureOperands) {
    const at = gpu.stageTexture(a.binding, 0);
    const bt = at && gpu.stageTexture(b.binding, 1);
    if (at && bt) {
      const tall = texTall(dims);
      const blocks = Math.ceil(m / (tall ? 32 : 16)) * Math.ceil(n / 32);
      gpu.dispatch(
        tall ? MATMUL_TEX_TALL : MATMUL_TEX,
        params,
        [at, bt, bindings[2], bindings[3]],
        [Math.ceil(blocks / 64), 1, batch],
        {
          ...constants,
          HAS_BIAS: o.bias ? 1 : 0,
          ACCUMULATE: params.beta !== 0 ? 1 : 0,
          K_TAIL: kTail,
        },
      );
      return;
    }
  }
  if (kernel === "vec4") {
    const blocks = Math.ceil(m / 16) * Math.ceil(n / 16);
    gpu.dispatch(MATMUL_VEC4, params, bindings, [Math.ceil(blocks / 64), 1, batch], {
      ...constants,
      K_TAIL: kTail,
    });
  } else {
    gpu.dispatch(
      MATMUL,
      params,
      bindings,
      [Math.ceil(n / 64), Math.ceil(m / 64), batch],
      constants,
    );
  }
}

/**
 * Batched matrix product `op(a) @ op(b) (+ bias)`. Operands are (..., m, k)
 * and (..., k, n) with equal leading (batch) dimensions; the result is
 * (..., m, n).
 *
 * @example
 * ```ts ignore
 * const y = matmul(x, w, { transB: true, bias }); // a linear layer, w is (out, in)
 * ```
 */
export function matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Tensor {
  const { transA = false, transB = false, bias } = options;
  sameDevice("matmul", a, b, ...(bias ? [bias] : []));
  dtypeIs("matmul", a, "f32");
  dtypeIs("matmul", b, "f32");
  const dims = matmulDims(a.shape, b.shape, transA, transB);
  const { m, k, n } = dims;
  if (bias) {
    dtypeIs("matmul", bias, "f32");
    if (bias.size !== n) {
      throw new OpError("matmul", `bias ${bias.describe()} must have ${n} elements`);
    }
  }
  const gpu = a.gpu;
  const out = empty(gpu, [...a.shape.slice(0, -2), m, n]);
  matmulInto(gpu, a, b, out, dims, { transA, transB, bias });
  // saves: a, b (inputs, alive while the tape holds them)
  return record("matmul", out, bias ? [a, b, bias] : [a, b], (g) => {
    if (a.requiresGrad) {
      const ga = gradOf(a);
      if (!transA) {
        matmulInto(gpu, g, b, ga, { ...dims, k: n, n: k }, { transB: !transB, beta: 1 });
      } else {
        matmulInto(gpu, b, g, ga, { ...dims, m: k, k: n, n: m }, {
          transA: transB,
          transB: true,
          beta: 1,
        });
      }
    }
    if (b.requiresGrad) {
      const gb = gradOf(b);
      if (!transB) {
        matmulInto(gpu, a, g, gb, { ...dims, m: k, k: m, n }, { transA: !transA, beta: 1 });
      } else {
        matmulInto(gpu, g, a, gb, { ...dims, m: n, k: m, n: k }, {
          transA: true,
          transB: transA,
          beta: 1,
        });
      }
    }
    if (bias?.requiresGrad) sumRowsInto(gpu, g, gradOf(bias), n);
  });
}
