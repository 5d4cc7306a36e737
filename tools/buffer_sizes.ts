/**
 * The largest GPU buffer each training stage of a profile allocates, measured
 * and scaled to the profile's batch size, against the buffer limits WebGPU
 * guarantees (maxStorageBufferBindingSize 128 MiB, maxBufferSize 256 MiB) and
 * those the adapter offers.
 *
 * Each stage runs one real training step (the profile's model and objective,
 * the Tiny ImageNet fixture as data) at three small batch sizes, recording
 * every tensor allocation (`Gpu.acquire`, whose size is the binding's) and
 * every other buffer (parameters, optimizer state). The step makes the same
 * allocations in the same order at every batch, each of size a + c * batch,
 * so the line through the first two batches gives each allocation's size at
 * the profile's batch; the third batch checks that every allocation lies on
 * its line. Pooled buffers round a binding up by at most 12.5% (poolSize in
 * src/gpu/device.ts) and those other buffers do not depend on the batch.
 *
 * Usage: deno run -A tools/buffer_sizes.ts [--profile paper] [--batches 2,4,6]
 * @module
 */

import { parseArgs } from "cli";
import { loadTinyImageNet } from "../src/data/mod.ts";
import { createGpu, type Gpu } from "../src/gpu/device.ts";
import { DEFAULT_LIMITS } from "../src/gpu/limits.ts";
import { loadProfile, type ProfileName, type Stage } from "../src/repro/profiles.ts";
import type { TrainConfig } from "../src/train/config.ts";
import { train } from "../src/train/trainer.ts";

const ROOT = new URL("../fixtures/tiny-imagenet-200", import.meta.url).pathname;
// Trained first: probe and finetune start from pretrain's checkpoint, smae uses critic's.
const STAGES: Stage[] = ["pretrain", "probe", "finetune", "scratch", "critic", "smae", "dino"];

const HELP = `Usage: deno run -A tools/buffer_sizes.ts [--profile NAME] [--batches A,B,C]

Runs one training step of each stage of a profile (default paper) at three
small batch sizes (default 2,4,6) on the Tiny ImageNet fixture, records every
allocation, scales each linearly to the profile's batch size and compares the
largest with WebGPU's default and the adapter's buffer limits.
  --help   this text`;

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** What one training step allocated: tensor sizes in order, and the largest other buffer. */
interface Allocations {
  tensors: number[];
  otherMax: number;
}

async function record(gpu: Gpu, fn: () => Promise<unknown>): Promise<Allocations> {
  const device = gpu.device as GPUDevice & { createBuffer: GPUDevice["createBuffer"] };
  const create = device.createBuffer.bind(device);
  const acquire = gpu.acquire.bind(gpu);
  const rec: Allocations = { tensors: [], otherMax: 0 };
  let inAcquire = false;
  gpu.acquire = (bytes: number) => {
    rec.tensors.push(bytes);
    inAcquire = true;
    try {
      return acquire(bytes);
    } finally {
      inAcquire = false;
    }
  };
  device.createBuffer = (d: GPUBufferDescriptor) => {
    if (!inAcquire) rec.otherMax = Math.max(rec.otherMax, d.size);
    return create(d);
  };
  try {
    await fn();
  } finally {
    device.createBuffer = create;
    gpu.acquire = acquire;
  }
  return rec;
}

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      profile: { type: "string", default: "paper" },
      batches: { type: "string", default: "2,4,6" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const batches: number[] = String(values.batches).split(",").map(Number);
  if (batches.length !== 3 || !batches.every((b) => Number.isInteger(b) && b > 0)) {
    console.error("buffer_sizes: --batches needs three positive integers");
    return 2;
  }
  const profile = await loadProfile(values.profile as ProfileName);
  const [trainSplit, evalSplit] = await Promise.all([
    loadTinyImageNet("train", { root: ROOT, cacheDir: null }),
    loadTinyImageNet("val", { root: ROOT, cacheDir: null }),
  ]);
  const splits = { train: trainSplit, eval: evalSplit };
  const work = await Deno.makeTempDir({ prefix: "buffer_sizes_" });
  const gpu = await createGpu({ log: false });
  const limits = gpu.device.limits;
  console.log(
    `profile ${profile.name}; limits: default binding ${
      mib(DEFAULT_LIMITS.maxStorageBufferBindingSize)
    }, ` +
      `buffer ${mib(DEFAULT_LIMITS.maxBufferSize)}; this device (${gpu.adapter.description}) ` +
      `binding ${mib(limits.maxStorageBufferBindingSize)}, buffer ${mib(limits.maxBufferSize)}`,
  );
  const checkpoints: Partial<Record<Stage, string>> = {};
  let worst = 0;
  for (const stage of STAGES) {
    if (!profile.stages[stage]) continue;
    const base = structuredClone(profile.stages[stage]!);
    const runs: Allocations[] = [];
    for (const batch of batches) {
      const c: TrainConfig = structuredClone(base);
      c.optim.batchSize = batch;
      const init = stage === "probe" || stage === "finetune";
      if (init && (c.mode === "probe" || c.mode === "finetune")) c.init = checkpoints.pretrain;
      if (stage === "smae" && c.mode === "smae") c.critic = checkpoints.critic;
      const out = `${work}/${stage}-${batch}`;
      runs.push(
        await record(gpu, () => train(c, { out, gpu, quiet: true, splits, stopAfterSteps: 1 })),
      );
      checkpoints[stage] = `${out}/checkpoint.safetensors`;
    }
    const [b0, b1, b2] = batches;
    const target = base.optim.batchSize;
    const n = runs[0].tensors.length;
    const sameOrder = runs.every((r) => r.tensors.length === n);
    let scaled = 0;
    let offLine = 0;
    if (sameOrder) {
      for (let i = 0; i < n; i++) {
        const [s0, s1, s2] = runs.map((r) => r.tensors[i]);
        const slope = (s1 - s0) / (b1 - b0);
        if (s0 + slope * (b2 - b0) !== s2) offLine++;
        scaled = Math.max(scaled, s0 + slope * (target - b0));
      }
    }
    const other = Math.max(...runs.map((r) => r.otherMax));
    const largest = Math.max(scaled, other);
    worst = Math.max(worst, largest);
    console.log(
      `${stage.padEnd(9)} B=${target}: largest tensor ${
        sameOrder ? mib(scaled) : "? (allocations differ between batches)"
      }` +
        `${offLine ? ` (${offLine} of ${n} allocations off their line)` : ""}` +
        `; largest parameter/optimizer buffer ${mib(other)}` +
        `${
          largest > limits.maxStorageBufferBindingSize ? "  OVER this device's binding limit" : ""
        }`,
    );
  }
  await Deno.remove(work, { recursive: true });
  console.log(
    `largest at the profile's batch: ${mib(worst)}; ` +
      `${
        worst <= DEFAULT_LIMITS.maxStorageBufferBindingSize ? "fits" : "exceeds"
      } WebGPU's default binding limit`,
  );
  gpu.destroy();
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
