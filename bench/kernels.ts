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

import { parseArgs } from "cli";
import { type Gpu, openGpu } from "../src/gpu/device.ts";
import { add } from "../src/ops/elementwise.ts";
import { matmul } from "../src/ops/matmul.ts";
import { softmax } from "../src/ops/softmax.ts";
import { Rng } from "../src/rng.ts";
import { type Tensor, tensor, tidy } from "../src/tensor.ts";
import { type BenchRow, type QueuedTimingOptions, row, timeQueued } from "./_report.ts";
import { initTfjsWebgpu, tfAddGBs, tfMatmulGflops, tfSoftmaxGBs } from "./peer_tfjs.ts";

/** Mean ms per call of `op` on our runtime (queued calls, one sync per step). */
export function timeOurs(gpu: Gpu, op: () => Tensor, opts?: QueuedTimingOptions): Promise<number> {
  return timeQueued(async (reps) => {
    tidy(() => {
      for (let i = 0; i < reps; i++) op();
    });
    await gpu.sync();
  }, opts);
}

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

/** The core cases of issue 2 (later kernels append theirs). */
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

/** Runs the selected cases, reporting each row as soon as it is measured. */
export async function runBench(
  cases: Case[],
  opts: QueuedTimingOptions,
  onRow: (r: BenchRow) => void,
): Promise<BenchRow[]> {
  const gpu = await openGpu();
  const peerOk = await initTfjsWebgpu();
  const rows: BenchRow[] = [];
  for (const c of cases) {
    const ours = await c.ours(gpu, opts);
    const peer = c.peer && peerOk ? await c.peer(opts) : null;
    const r = row(c.name, c.shape, ours, peer, c.unit);
    rows.push(r);
    onRow(r);
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
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      json: { type: "boolean", default: false },
      only: { type: "string" },
      quick: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(`usage: deno task bench [--json] [--only NAME[,NAME]] [--quick]

Measures each kernel and the same work in TensorFlow.js's WebGPU backend on
the same adapter. Cases: ${[...new Set(CASES.map((c) => c.name))].join(", ")}.
--json   one JSON object per line: {name, shape, ours, peer, unit, ratio}
--quick  shorter timing windows (noisier)`);
    Deno.exit(0);
  }
  const only = values.only?.split(",");
  const unknown = only?.filter((n) => !CASES.some((c) => c.name === n)) ?? [];
  if (unknown.length) {
    console.error(
      `bench: unknown case ${unknown.join(", ")}; known: ${
        [...new Set(CASES.map((c) => c.name))].join(", ")
      }`,
    );
    Deno.exit(2);
  }
  const selected = only ? CASES.filter((c) => only.includes(c.name)) : CASES;
  const opts: QueuedTimingOptions = values.quick ? { minMs: 400, minIters: 2, stepMs: 100 } : {};
  if (!values.json) {
    console.log(
      `${"kernel".padEnd(10)} ${"shape".padEnd(28)} ${"ours".padStart(9)} ${
        "tfjs".padStart(9)
      } unit     ratio`,
    );
  }
  await runBench(
    selected,
    opts,
    (r) => console.log(values.json ? JSON.stringify(r) : formatRow(r)),
  );
}
