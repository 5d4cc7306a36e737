/**
 * Throughput of attention (src/ops/attention.ts, the implementation that
 * attentionKernels() picks: batched matmuls at these shapes) at the
 * encoder's width (D = 256, 4 heads) on the unmasked (T = 257) and MAE-masked
 * (T = 65) token counts, forward alone and forward + backward.
 *
 * Timed like the TensorFlow.js peer (bench/peer_tfjs.ts): `timeQueued` queues
 * several calls, then syncs once, so the ~12 ms sync latency of llvmpipe does
 * not swamp the kernel time. GFLOP/s counts model flops, not what the kernels
 * recompute or pad: attentionFlops() = 4 B H T^2 dh for the forward, and three times
 * that for forward + backward (the backward's four T x T x dh products).
 *
 * Run as main: `DENO_WEBGPU_BACKEND=vulkan deno run -A bench/attention.ts [--quick]`.
 * @module
 */

import { type Gpu, openGpu } from "../src/gpu/device.ts";
import { attention, attentionFlops } from "../src/ops/attention.ts";
import { Rng } from "../src/rng.ts";
import { backward } from "../src/tape.ts";
import { type Tensor, tensor } from "../src/tensor.ts";
import { type QueuedTimingOptions, timeOurs } from "./_report.ts";

/** Batch 32 rather than training's 128, so that a run stays short on a CPU adapter. */
const B = 32, D = 256, H = 4;

/** GFLOP/s of attention forward, and forward + backward, for T = 65 and 257. */
export async function benchAttention(
  gpu: Gpu,
  opts: QueuedTimingOptions = {},
): Promise<{ shape: string; gflops: number }[]> {
  const rows: { shape: string; gflops: number }[] = [];
  for (const T of [65, 257]) {
    const data = new Rng(T).normalArray(B * T * 3 * D);
    const qkv = tensor(gpu, data, [B, T, 3 * D]);
    const flops = attentionFlops(B, T, D, H);
    const shape = `B=${B} T=${T} D=${D} H=${H}`;
    const fwd = await timeOurs(gpu, () => attention(qkv, H), opts);
    rows.push({ shape: `${shape} forward`, gflops: flops / (fwd * 1e6) });

    qkv.requiresGrad = true;
    const seed = tensor(gpu, new Rng(T + 1).normalArray(B * T * D), [B, T, D]);
    const both = await timeOurs(gpu, () => backward(attention(qkv, H), seed), opts);
    rows.push({ shape: `${shape} forward+backward`, gflops: (3 * flops) / (both * 1e6) });
    for (const t of [qkv, seed] as Tensor[]) t.dispose();
  }
  return rows;
}

if (import.meta.main) {
  const quick = Deno.args.includes("--quick");
  const gpu = await openGpu();
  const opts = quick ? { minMs: 300, minIters: 1, stepMs: 100 } : {};
  for (const r of await benchAttention(gpu, opts)) {
    console.log(`attention ${r.shape}: ${r.gflops.toFixed(2)} GFLOP/s`);
  }
}
