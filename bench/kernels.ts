/**
 * `deno task bench`: each kernel's throughput next to TensorFlow.js's WebGPU
 * backend on the same adapter in the same process (bench/peer_tfjs.ts), both
 * timed by `timeQueued` (several calls queued, one sync).
 *
 *   deno task bench              a table
 *   deno task bench --json       one JSON object per line: {name, shape, ours, peer, unit, ratio}
 *   deno task bench --only matmul --quick
 *
 * @module
 */

import { parseFlags, usageExit } from "../src/cli/_args.ts";
import { type Gpu, openGpu } from "../src/gpu/device.ts";
import { add } from "../src/ops/elementwise.ts";
import { matmul } from "../src/ops/matmul.ts";
import { softmax } from "../src/ops/softmax.ts";
import { Rng } from "../src/rng.ts";
import { type Tensor, tensor } from "../src/tensor.ts";
import { type BenchRow, type QueuedTimingOptions, row, timeOurs } from "./_report.ts";
import { benchAttention } from "./attention.ts";
import { benchConv, CONV_BENCH_SHAPES } from "./conv.ts";
import { benchData } from "./data.ts";
import { benchNorm } from "./norm.ts";
import {
  initTfjsWebgpu,
  tfAddGBs,
  tfAttentionGflops,
  tfConv2dGflops,
  tfLayerNormGBs,
  tfMatmulGflops,
  tfSoftmaxGBs,
} from "./peer_tfjs.ts";
import { benchTrainSteps, torchTrainSteps } from "./train_step.ts";

/** One benchmark case: our measurement and, where it has one, the peer's. */
interface Case {
  name: string;
  shape: string;
  unit: string;
  ours: (gpu: Gpu, o: QueuedTimingOptions) => Promise<number>;
  peer?: (o: QueuedTimingOptions) => Promise<number>;
}

const perSecond = (work: number, ms: number) => work / (ms * 1e6);

function randomTensor(gpu: Gpu, shape: number[], seed: number): Tensor {
  return tensor(gpu, new Rng(seed).normalArray(shape.reduce((a, b) => a * b, 1)), shape);
}

function matmulCase(n: number): Case {
  return {
    name: "matmul",
    shape: `${n}x${n}x${n}`,
    unit: "GFLOP/s",
    ours: async (gpu, o) => {
      const a = randomTensor(gpu, [n, n], 1), b = randomTensor(gpu, [n, n], 2);
      const ms = await timeOurs(gpu, () => matmul(a, b), o);
      a.dispose();
      b.dispose();
      return perSecond(2 * n * n * n, ms);
    },
    peer: (o) => tfMatmulGflops(n, n, n, o),
  };
}

/** The core kernel cases: matmul, softmax, add (later kernels append theirs). */
export const CASES: Case[] = [
  matmulCase(256),
  matmulCase(512),
  matmulCase(1024),
  {
    name: "softmax",
    shape: "33280x65",
    unit: "GB/s",
    ours: async (gpu, o) => {
      const rows = 128 * 4 * 65, cols = 65;
      const x = randomTensor(gpu, [rows, cols], 3);
      const ms = await timeOurs(gpu, () => softmax(x), o);
      x.dispose();
      return perSecond(2 * rows * cols * 4, ms);
    },
    peer: (o) => tfSoftmaxGBs(128 * 4 * 65, 65, o),
  },
  {
    name: "add",
    shape: "4194304",
    unit: "GB/s",
    ours: async (gpu, o) => {
      const n = 1 << 22;
      const a = randomTensor(gpu, [n], 4), b = randomTensor(gpu, [n], 5);
      const ms = await timeOurs(gpu, () => add(a, b), o);
      a.dispose();
      b.dispose();
      return perSecond(3 * n * 4, ms);
    },
    peer: (o) => tfAddGBs(1 << 22, o),
  },
];

/** A group of rows measured together (helpers that return several shapes at once). */
interface Suite {
  name: string;
  run: (
    gpu: Gpu,
    o: QueuedTimingOptions,
    peerOk: boolean,
    trainBatches: number[],
  ) => Promise<BenchRow[]>;
}

const SUITES: Suite[] = [
  {
    name: "attention",
    run: async (gpu, o, peerOk) => {
      const rows = await benchAttention(gpu, o);
      const out: BenchRow[] = [];
      for (const r of rows) {
        const T = Number(/T=(\d+)/.exec(r.shape)![1]);
        const peer = peerOk && r.shape.endsWith("forward")
          ? await tfAttentionGflops(32, T, 256, 4, o)
          : null;
        out.push(row("attention", r.shape, r.gflops, peer, "GFLOP/s"));
      }
      return out;
    },
  },
  {
    name: "layernorm",
    run: async (gpu, o, peerOk) => {
      const [r] = await benchNorm(gpu, o);
      return [
        row(
          "layernorm",
          r.shape,
          r.gbs,
          peerOk ? await tfLayerNormGBs(128 * 65, 256, o) : null,
          "GB/s",
        ),
      ];
    },
  },
  {
    name: "conv2d",
    run: async (gpu, o, peerOk) => {
      const rows = await benchConv(gpu, o);
      const out: BenchRow[] = [];
      for (const [i, r] of rows.entries()) {
        const s = CONV_BENCH_SHAPES[i];
        const peer = peerOk
          ? await tfConv2dGflops(s.n, s.c, s.h, s.w, s.k, s.kh, s.kw, s.stride, s.pad, o)
          : null;
        out.push(row("conv2d", r.shape, r.gflops, peer, "GFLOP/s"));
      }
      return out;
    },
  },
  {
    name: "loader",
    run: () => benchData(),
  },
  {
    name: "train",
    run: async (gpu, o, _peerOk, batches) => {
      const mm = CASES.find((c) => c.shape === "1024x1024x1024")!;
      const matmulGflops = await mm.ours(gpu, o);
      const rows: BenchRow[] = [];
      for (const batch of batches) {
        const shape = `ViT-Lite-7/4 64x64 b${batch}`;
        const ours = await benchTrainSteps(gpu, batch);
        for (const r of ours) {
          rows.push(row(r.name, shape, r.imagesPerSecond, null, "images/s"));
          // Efficiency: the step's achieved FLOP/s over our own 1024^3 matmul's.
          rows.push(row(`${r.name} efficiency`, shape, r.gflops / matmulGflops, null, "x matmul"));
        }
        // The same steps in PyTorch on the CPU: peer = PyTorch images/s, ratio = ours / PyTorch.
        const torch = await torchTrainSteps(batch);
        if ("skipped" in torch) {
          console.error(`bench: PyTorch rows skipped: ${torch.skipped}`);
          continue;
        }
        for (const t of torch) {
          const mine = ours.find((r) => r.name === t.name)!;
          rows.push(
            row(`${t.name} vs pytorch`, shape, mine.imagesPerSecond, t.imagesPerSecond, "images/s"),
          );
        }
      }
      return rows;
    },
  },
];

/** Every selectable name: the kernel cases and the suites. */
export const NAMES = [...new Set([...CASES.map((c) => c.name), ...SUITES.map((s) => s.name)])];

/** Runs the selected cases and suites, reporting each row as soon as it is measured. */
export async function runBench(
  only: string[] | null,
  opts: QueuedTimingOptions,
  trainBatches: number[],
  onRow: (r: BenchRow) => void,
): Promise<BenchRow[]> {
  const gpu = await openGpu();
  const peerOk = await initTfjsWebgpu();
  const rows: BenchRow[] = [];
  const emit = (r: BenchRow) => {
    rows.push(r);
    onRow(r);
  };
  for (const c of CASES.filter((c) => !only || only.includes(c.name))) {
    const ours = await c.ours(gpu, opts);
    const peer = c.peer && peerOk ? await c.peer(opts) : null;
    emit(row(c.name, c.shape, ours, peer, c.unit));
  }
  for (const s of SUITES.filter((s) => !only || only.includes(s.name))) {
    for (const r of await s.run(gpu, opts, peerOk, trainBatches)) emit(r);
  }
  return rows;
}

function formatRow(r: BenchRow): string {
  const f = (v: number | null) => (v === null ? "-" : v.toFixed(2));
  return `${r.name.padEnd(10)} ${r.shape.padEnd(28)} ${f(r.ours).padStart(9)} ${
    f(r.peer).padStart(9)
  } ${r.unit.padEnd(8)} ${r.ratio === null ? "-" : r.ratio.toFixed(2) + "x"}`;
}

if (import.meta.main) {
  const help = `usage: deno task bench [--json] [--only NAME[,NAME]] [--quick] [--train-batch N[,N]]

Measures each kernel and the same work in TensorFlow.js's WebGPU backend on
the same adapter (ratio = ours / tfjs), the data loader, and one MAE and one
fine-tuning step of ViT-Lite-7/4 (images/s, and achieved FLOP/s over our
1024^3 matmul's). Names: ${NAMES.join(", ")}.
--json          one JSON object per line: {name, shape, ours, peer, unit, ratio}
--only NAMES    only these cases (comma-separated)
--quick         shorter timing windows (noisier)
--train-batch   batches of the training-step rows, comma-separated (default 32,128;
                128 is the paper's); each also runs in PyTorch on the CPU when
                /usr/bin/python3 can import torch (ratio = ours / PyTorch)
-h, --help      this text`;
  const { values } = parseFlags("bench", Deno.args, {
    json: { type: "boolean", default: false },
    only: { type: "string" },
    quick: { type: "boolean", default: false },
    "train-batch": { type: "string", default: "32,128" },
  }, help);
  const only: string[] | null = values.only?.split(",") ?? null;
  const unknown = only?.filter((n: string) => !NAMES.includes(n)) ?? [];
  if (unknown.length) {
    usageExit("bench", `unknown case ${unknown.join(", ")}; known: ${NAMES.join(", ")}`, help);
  }
  const trainBatches = (values["train-batch"] as string).split(",").map((b: string) =>
    /^\d+$/.test(b) ? Number(b) : NaN
  );
  if (!trainBatches.every((b: number) => b >= 1)) {
    usageExit(
      "bench",
      `--train-batch must be integers >= 1 separated by commas, got '${values["train-batch"]}'`,
      help,
    );
  }
  const opts: QueuedTimingOptions = values.quick ? { minMs: 400, minIters: 2, stepMs: 100 } : {};
  if (!values.json) {
    console.log(
      `${"kernel".padEnd(10)} ${"shape".padEnd(28)} ${"ours".padStart(9)} ${
        "tfjs".padStart(9)
      } unit     ratio`,
    );
  }
  await runBench(
    only,
    opts,
    trainBatches,
    (r) => console.log(values.json ? JSON.stringify(r) : formatRow(r)),
  );
}
