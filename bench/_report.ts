import type { Gpu } from "../src/gpu/device.ts";
import { tidy } from "../src/tensor.ts";

import type { BenchRow } from "../src/repro/results_page.ts";

export type { BenchRow };

/** Builds a row and derives its ratio. */
export function row(
  name: string,
  shape: string,
  ours: number,
  peer: number | null,
  unit: string,
): BenchRow {
  return { name, shape, ours, peer, unit, ratio: peer ? ours / peer : null };
}

/**
 * Runs `step` (which must end with a GPU sync) until at least `minMs` have
 * passed after `warmup` calls; returns the mean milliseconds per call.
 */
export async function timeIt(
  step: () => Promise<void>,
  { warmup = 2, minMs = 1500, minIters = 3 } = {},
): Promise<number> {
  for (let i = 0; i < warmup; i++) await step();
  let iters = 0;
  const t0 = performance.now();
  while (iters < minIters || performance.now() - t0 < minMs) {
    await step();
    iters++;
  }
  return (performance.now() - t0) / iters;
}

/** Knobs of {@link timeQueued}. */
export interface QueuedTimingOptions {
  /** Minimum measured time per measurement, in ms (default 1500). */
  minMs?: number;
  /** Minimum number of timed steps (default 3). */
  minIters?: number;
  /** Target duration of one step (reps calls + one sync), in ms (default 200). */
  stepMs?: number;
  /** Upper bound on calls queued per step (default 64). */
  maxReps?: number;
}

/**
 * Mean milliseconds per call of an op, where `step(reps)` queues `reps` calls
 * and then waits for the GPU once. A sync in Deno costs ~11-13 ms of polling
 * latency on llvmpipe whatever the work, so one sync per call would swamp
 * small ops; `reps` is calibrated after warm-up so a step lasts >= stepMs.
 * Ours and the peer are timed by this same function.
 */
export async function timeQueued(
  step: (reps: number) => Promise<void>,
  opts: QueuedTimingOptions = {},
): Promise<number> {
  const { minMs = 1500, minIters = 3, stepMs = 200, maxReps = 64 } = opts;
  await step(1); // pipeline compilation, uploads
  const t0 = performance.now();
  await step(1);
  const single = performance.now() - t0;
  const reps = Math.max(1, Math.min(maxReps, Math.ceil(stepMs / Math.max(single, 1e-3))));
  const msPerStep = await timeIt(() => step(reps), { warmup: 1, minMs, minIters });
  return msPerStep / reps;
}

/**
 * Mean ms per call of `op` on our runtime: {@link timeQueued} with `reps`
 * calls recorded in one tidy scope and one GPU sync.
 */
export function timeOurs(gpu: Gpu, op: () => unknown, opts?: QueuedTimingOptions): Promise<number> {
  return timeQueued(async (reps) => {
    tidy(() => {
      for (let i = 0; i < reps; i++) op();
    });
    await gpu.sync();
  }, opts);
}
