/**
 * Throughput of conv2d (kernels/conv2d.wgsl) on the perceptual-loss shapes:
 * SqueezeNet 1.1's first layer on a batch of 64x64 images, and a Fire
 * module's 3x3 expand. Timed like bench/peer_tfjs.ts (several calls queued,
 * one sync), with the same flop count as its `tfConv2dGflops`, so the two
 * compare directly.
 *
 *   DENO_WEBGPU_BACKEND=vulkan deno run -A bench/conv.ts          ours only
 *   DENO_WEBGPU_BACKEND=vulkan deno run -A bench/conv.ts --peer   ours and TF.js
 *
 * @module
 */

import { type Gpu, openGpu } from "../src/gpu/device.ts";
import { conv2d } from "../src/ops/conv.ts";
import { Rng } from "../src/rng.ts";
import { tensor } from "../src/tensor.ts";
import { type QueuedTimingOptions, timeOurs } from "./_report.ts";

/** One conv2d configuration: input (n, c, h, w), k filters of kh x kw. */
export interface ConvBenchShape {
  n: number;
  c: number;
  h: number;
  w: number;
  k: number;
  kh: number;
  kw: number;
  stride: number;
  pad: number;
}

/** The measured shapes: SqueezeNet 1.1 conv1, and a Fire expand3x3 on 15x15 maps. */
export const CONV_BENCH_SHAPES: ConvBenchShape[] = [
  { n: 32, c: 3, h: 64, w: 64, k: 64, kh: 3, kw: 3, stride: 2, pad: 0 },
  { n: 32, c: 16, h: 15, w: 15, k: 64, kh: 3, kw: 3, stride: 1, pad: 1 },
];

/** `N32,C3,64x64,K64,k3,s2,p0`, as bench/peer_tfjs.ts names its conv2d case. */
export function convShapeName(s: ConvBenchShape): string {
  const k = s.kh === s.kw ? `${s.kh}` : `${s.kh}x${s.kw}`;
  return `N${s.n},C${s.c},${s.h}x${s.w},K${s.k},k${k},s${s.stride},p${s.pad}`;
}

/** Forward flops of one conv2d call: 2 * N * K * Ho * Wo * C * kh * kw. */
export function convFlops(s: ConvBenchShape): number {
  const ho = Math.floor((s.h + 2 * s.pad - s.kh) / s.stride) + 1;
  const wo = Math.floor((s.w + 2 * s.pad - s.kw) / s.stride) + 1;
  return 2 * s.n * s.k * ho * wo * s.c * s.kh * s.kw;
}

/** GFLOP/s of our conv2d forward (with bias) on each of {@link CONV_BENCH_SHAPES}. */
export async function benchConv(
  gpu: Gpu,
  opts?: QueuedTimingOptions,
): Promise<{ shape: string; gflops: number }[]> {
  const out: { shape: string; gflops: number }[] = [];
  for (const [i, s] of CONV_BENCH_SHAPES.entries()) {
    const rng = new Rng(100 + i);
    const x = tensor(gpu, rng.normalArray(s.n * s.c * s.h * s.w), [s.n, s.c, s.h, s.w]);
    const w = tensor(gpu, rng.normalArray(s.k * s.c * s.kh * s.kw), [s.k, s.c, s.kh, s.kw]);
    const b = tensor(gpu, rng.normalArray(s.k), [s.k]);
    const ms = await timeOurs(
      gpu,
      () => conv2d(x, w, { bias: b, stride: s.stride, padding: s.pad }),
      opts,
    );
    out.push({ shape: convShapeName(s), gflops: convFlops(s) / (ms * 1e6) });
    for (const t of [x, w, b]) t.dispose();
  }
  return out;
}

if (import.meta.main) {
  const gpu = await openGpu();
  const ours = await benchConv(gpu);
  const withPeer = Deno.args.includes("--peer");
  const peer = withPeer ? await import("./peer_tfjs.ts") : null;
  const peerOk = peer ? await peer.initTfjsWebgpu() : false;
  for (const [i, r] of ours.entries()) {
    const s = CONV_BENCH_SHAPES[i];
    const p = peer && peerOk
      ? await peer.tfConv2dGflops(s.n, s.c, s.h, s.w, s.k, s.kh, s.kw, s.stride, s.pad)
      : null;
    console.log(JSON.stringify({
      name: "conv2d",
      shape: r.shape,
      ours: r.gflops,
      peer: p,
      unit: "GFLOP/s",
      ratio: p ? r.gflops / p : null,
    }));
  }
}
