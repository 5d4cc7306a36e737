/**
 * Throughput of the fused LayerNorm forward (src/ops/layernorm.ts) at the
 * encoder's MAE-masked shape: 128 samples x 65 tokens (64 kept + class token),
 * width 256. GB/s counts one read and one write of x: 2 * rows * cols * 4
 * bytes (as the TensorFlow.js peer's tfLayerNormGBs in bench/peer_tfjs.ts).
 *
 * Timed like the peer: `timeQueued` queues several calls, then syncs once, so
 * the ~12 ms sync latency of llvmpipe does not swamp the kernel time.
 *
 * Run as main: `DENO_WEBGPU_BACKEND=vulkan deno run -A bench/norm.ts [--quick]`.
 * @module
 */

import { type Gpu, openGpu } from "../src/gpu/device.ts";
import { layerNorm } from "../src/ops/layernorm.ts";
import { Rng } from "../src/rng.ts";
import { tensor } from "../src/tensor.ts";
import { type QueuedTimingOptions, timeOurs } from "./_report.ts";

const ROWS = 128 * 65, COLS = 256;

/** GB/s of layerNorm forward on (8320, 256). */
export async function benchNorm(
  gpu: Gpu,
  opts: QueuedTimingOptions = {},
): Promise<{ name: string; shape: string; gbs: number }[]> {
  const rng = new Rng(7);
  const x = tensor(gpu, rng.normalArray(ROWS * COLS), [ROWS, COLS]);
  const w = tensor(gpu, rng.uniformArray(COLS, 0.5, 1.5), [COLS]);
  const b = tensor(gpu, rng.uniformArray(COLS, -0.5, 0.5), [COLS]);
  try {
    const ms = await timeOurs(gpu, () => layerNorm(x, w, b), opts);
    const bytes = 2 * ROWS * COLS * 4;
    return [{ name: "layernorm", shape: `${ROWS}x${COLS}`, gbs: bytes / (ms * 1e6) }];
  } finally {
    for (const t of [x, w, b]) t.dispose();
  }
}

if (import.meta.main) {
  const quick = Deno.args.includes("--quick");
  const gpu = await openGpu();
  const opts = quick ? { minMs: 300, minIters: 1, stepMs: 100 } : {};
  for (const r of await benchNorm(gpu, opts)) {
    console.log(`${r.name} ${r.shape}: ${r.gbs.toFixed(2)} GB/s`);
  }
}
