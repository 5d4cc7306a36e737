/**
 * One benchmark result, printed as a JSON line by `deno task bench --json`.
 * `ours` and `peer` are in `unit` (GFLOP/s, GB/s or images/s; higher is
 * better); `peer` is the same work in TensorFlow.js's WebGPU backend on the
 * same adapter in the same run, or null where it has no equivalent.
 */
export interface BenchRow {
  name: string;
  shape: string;
  ours: number;
  peer: number | null;
  unit: string;
  /** ours / peer, or null without a peer. */
  ratio: number | null;
}

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
