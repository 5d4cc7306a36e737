/**
 * The "peer" side of the benchmark: TensorFlow.js's WebGPU backend
 * (`@tensorflow/tfjs-backend-webgpu`), run on the same adapter in the same
 * Deno process as our own kernels. Every measurement returns a throughput
 * (GFLOP/s or GB/s; higher is better).
 *
 * Running tfjs-webgpu under Deno needs no shims: tfjs-backend-webgpu registers
 * itself at import time iff `globalThis.navigator.gpu` exists, which Deno
 * provides without `window`/`self`. Deno resolves the packages' Node builds,
 * so tfjs reports `IS_NODE: true`; that is harmless here because only the
 * webgpu backend is registered (the CPU backend, which would print the
 * "install tfjs-node" banner, is never loaded).
 *
 * Synchronisation: a GPU sync in Deno (`mapAsync` or `onSubmittedWorkDone`)
 * costs ~11-13 ms of polling latency on llvmpipe, regardless of the work
 * done. Each timed step therefore queues `reps` calls of the op and then
 * syncs once by reading back a single element (`tf.slice` to 1 element, then
 * `await data()`), which waits for everything queued before it. `reps` is
 * calibrated after warm-up so that a step lasts ≥ `stepMs` (default 200 ms),
 * which keeps the fixed sync cost to a few percent. Intermediate results are
 * disposed through `tf.tidy`, so memory stays flat.
 *
 * Run as main: `DENO_WEBGPU_BACKEND=vulkan deno run -A bench/peer_tfjs.ts`
 * prints one JSON line `{name, shape, peer, unit}` per measurement.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-webgpu";
import { type QueuedTimingOptions, timeQueued } from "./_report.ts";

/** Timing knobs shared by every peer measurement (see timeQueued). */
export type PeerTimingOptions = QueuedTimingOptions;

/** One measurement as printed by this module's main. */
export interface PeerResult {
  name: string;
  shape: string;
  peer: number;
  unit: string;
}

let initState: Promise<boolean> | null = null;

/**
 * Sets up tfjs-core with the WebGPU backend. Resolves to false (never throws)
 * when it cannot run, logging the reason to stderr once. Safe to call
 * repeatedly; later calls return the first outcome.
 */
export function initTfjsWebgpu(): Promise<boolean> {
  initState ??= doInit();
  return initState;
}

async function doInit(): Promise<boolean> {
  const fail = (reason: string): boolean => {
    console.error(`peer_tfjs: TensorFlow.js WebGPU backend unavailable: ${reason}`);
    return false;
  };
  try {
    if (!("gpu" in navigator) || !navigator.gpu) return fail("navigator.gpu is missing");
    // Probe first: tfjs's own factory dereferences a null adapter and prints
    // a noisy warning plus stack trace instead of failing cleanly.
    const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
    if (!adapter) return fail("navigator.gpu.requestAdapter() returned null");
    if (!tf.findBackendFactory("webgpu")) {
      return fail("tfjs-backend-webgpu did not register (navigator.gpu absent at import?)");
    }
    // Run everything on the GPU: by default tfjs hands ops on small tensors
    // (< 1000 elements) whose data still lives on the CPU to CPU kernels.
    tf.env().set("WEBGPU_CPU_HANDOFF_SIZE_THRESHOLD", 0);
    const ok = await tf.setBackend("webgpu");
    if (!ok || tf.getBackend() !== "webgpu") return fail("tf.setBackend('webgpu') failed");
    await tf.ready();
    return true;
  } catch (e) {
    return fail(e instanceof Error ? e.message : String(e));
  }
}

async function requireInit(): Promise<void> {
  if (!(await initTfjsWebgpu())) throw new Error("TensorFlow.js WebGPU backend is unavailable");
}

/**
 * Times `op` (which must return a fresh tensor and may allocate
 * intermediates) and returns mean milliseconds per call. See the module doc
 * for the sync strategy.
 */
async function timeOp(op: () => tf.Tensor, opts: PeerTimingOptions = {}): Promise<number> {
  return await timeQueued(async (reps) => {
    const probe = tf.tidy(() => {
      let out = op();
      for (let i = 1; i < reps; i++) {
        out.dispose();
        out = op();
      }
      return tf.slice(tf.reshape(out, [-1]), 0, 1);
    });
    await probe.data();
    probe.dispose();
  }, opts);
}

/** Seeded standard-normal f32 tensor (generated on the CPU, then uploaded). */
function randn(shape: number[], seed: number): tf.Tensor {
  return tf.randomNormal(shape, 0, 1, "float32", seed);
}

/** Converts work per call and ms per call to G-units per second. */
function perSecond(work: number, ms: number): number {
  return work / (ms * 1e6);
}

/** GFLOP/s of `tf.matMul` on f32 (m,k)x(k,n); 2*m*n*k flops per call. */
export async function tfMatmulGflops(
  m: number,
  k: number,
  n: number,
  opts?: PeerTimingOptions,
): Promise<number> {
  await requireInit();
  const a = randn([m, k], 1);
  const b = randn([k, n], 2);
  try {
    return perSecond(2 * m * n * k, await timeOp(() => tf.matMul(a, b), opts));
  } finally {
    tf.dispose([a, b]);
  }
}

/** GB/s of `tf.softmax` over the last axis of (rows, cols); bytes = 2*rows*cols*4. */
export async function tfSoftmaxGBs(
  rows: number,
  cols: number,
  opts?: PeerTimingOptions,
): Promise<number> {
  await requireInit();
  const x = randn([rows, cols], 3);
  try {
    return perSecond(2 * rows * cols * 4, await timeOp(() => tf.softmax(x), opts));
  } finally {
    x.dispose();
  }
}

/** GB/s of elementwise `tf.add` of two length-n f32 tensors; bytes = 3*n*4. */
export async function tfAddGBs(n: number, opts?: PeerTimingOptions): Promise<number> {
  await requireInit();
  const a = randn([n], 4);
  const b = randn([n], 5);
  try {
    return perSecond(3 * n * 4, await timeOp(() => tf.add(a, b), opts));
  } finally {
    tf.dispose([a, b]);
  }
}

/**
 * GFLOP/s of attention composed from tfjs ops: q, k, v of shape (B, H, T, D/H)
 * (held as (B*H, T, D/H) for batched matMul); softmax(q@k^T / sqrt(D/H)) @ v.
 * Flops = 4*B*H*T*T*(D/H).
 */
export async function tfAttentionGflops(
  B: number,
  T: number,
  D: number,
  H: number,
  opts?: PeerTimingOptions,
): Promise<number> {
  await requireInit();
  const dh = D / H;
  if (!Number.isInteger(dh)) throw new RangeError(`D=${D} is not divisible by H=${H}`);
  const q = randn([B * H, T, dh], 6);
  const k = randn([B * H, T, dh], 7);
  const v = randn([B * H, T, dh], 8);
  const scale = tf.scalar(1 / Math.sqrt(dh));
  const op = () => {
    const scores = tf.mul(tf.matMul(q, k, false, true), scale);
    return tf.matMul(tf.softmax(scores), v);
  };
  try {
    return perSecond(4 * B * H * T * T * dh, await timeOp(op, opts));
  } finally {
    tf.dispose([q, k, v, scale]);
  }
}

/**
 * GB/s of layer norm over the last axis of (rows, cols), composed from
 * `tf.moments`, normalise, scale (gamma) and shift (beta); eps = 1e-5.
 * Bytes = 2*rows*cols*4 (one read, one write; intermediates not counted).
 */
export async function tfLayerNormGBs(
  rows: number,
  cols: number,
  opts?: PeerTimingOptions,
): Promise<number> {
  await requireInit();
  const x = randn([rows, cols], 9);
  const gamma = randn([cols], 10);
  const beta = randn([cols], 11);
  const eps = tf.scalar(1e-5);
  const op = () => {
    const { mean, variance } = tf.moments(x, -1, true);
    const normed = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps)));
    return tf.add(tf.mul(normed, gamma), beta);
  };
  try {
    return perSecond(2 * rows * cols * 4, await timeOp(op, opts));
  } finally {
    tf.dispose([x, gamma, beta, eps]);
  }
}

/**
 * GFLOP/s of `tf.conv2d` with input N×C×H×W, K filters of kh×kw, square
 * `stride` and symmetric zero padding `pad`. tfjs runs it in NHWC layout
 * (input [N,H,W,C], filter [kh,kw,C,K]); flops = 2*N*K*Ho*Wo*C*kh*kw.
 */
export async function tfConv2dGflops(
  N: number,
  C: number,
  H: number,
  W: number,
  K: number,
  kh: number,
  kw: number,
  stride: number,
  pad: number,
  opts?: PeerTimingOptions,
): Promise<number> {
  await requireInit();
  const Ho = Math.floor((H + 2 * pad - kh) / stride) + 1;
  const Wo = Math.floor((W + 2 * pad - kw) / stride) + 1;
  if (Ho < 1 || Wo < 1) throw new RangeError("conv2d output would be empty");
  const x = randn([N, H, W, C], 12) as tf.Tensor4D;
  const f = randn([kh, kw, C, K], 13) as tf.Tensor4D;
  const padding = pad === 0 ? "valid" : pad;
  try {
    const ms = await timeOp(() => tf.conv2d(x, f, stride, padding, "NHWC"), opts);
    return perSecond(2 * N * K * Ho * Wo * C * kh * kw, ms);
  } finally {
    tf.dispose([x, f]);
  }
}

/**
 * Runs the standard peer suite (sizes chosen so each measurement takes a few
 * seconds on a CPU adapter) and returns one result per measurement.
 * `onResult` is called as each one finishes.
 */
export async function peerSuite(
  opts?: PeerTimingOptions,
  onResult?: (r: PeerResult, seconds: number) => void,
): Promise<PeerResult[]> {
  await requireInit();
  const cases: [string, string, string, () => Promise<number>][] = [
    ["matmul", "256x256x256", "GFLOP/s", () => tfMatmulGflops(256, 256, 256, opts)],
    ["matmul", "512x512x512", "GFLOP/s", () => tfMatmulGflops(512, 512, 512, opts)],
    ["matmul", "1024x1024x1024", "GFLOP/s", () => tfMatmulGflops(1024, 1024, 1024, opts)],
    ["softmax", "33280x65", "GB/s", () => tfSoftmaxGBs(128 * 4 * 65, 65, opts)],
    ["add", "4194304", "GB/s", () => tfAddGBs(1 << 22, opts)],
    ["layernorm", "8320x256", "GB/s", () => tfLayerNormGBs(128 * 65, 256, opts)],
    ["attention", "B32,T65,D256,H4", "GFLOP/s", () => tfAttentionGflops(32, 65, 256, 4, opts)],
    [
      "conv2d",
      "N32,C3,64x64,K64,k3,s2,p0",
      "GFLOP/s",
      () => tfConv2dGflops(32, 3, 64, 64, 64, 3, 3, 2, 0, opts),
    ],
  ];
  const out: PeerResult[] = [];
  for (const [name, shape, unit, run] of cases) {
    const t0 = performance.now();
    const r: PeerResult = { name, shape, peer: await run(), unit };
    out.push(r);
    onResult?.(r, (performance.now() - t0) / 1000);
  }
  return out;
}

if (import.meta.main) {
  if (!(await initTfjsWebgpu())) Deno.exit(1);
  const t0 = performance.now();
  await peerSuite(undefined, (r, s) => {
    console.log(JSON.stringify(r));
    console.error(`peer_tfjs: ${r.name} ${r.shape} took ${s.toFixed(1)} s`);
  });
  console.error(`peer_tfjs: total ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}
