import { type Claim, evaluateClaims, type Study } from "../../src/repro/claims.ts";
import { median, medianRatio, timeTasks } from "../../src/train/timing.ts";
import type { Batch } from "../../src/data/mod.ts";
import { assert } from "../_assert.ts";
import { gpuTest } from "../_helpers.ts";

function timingStudy(extra: Partial<Claim> = {}): Study {
  return {
    study: "t",
    title: "t",
    file: "t.yaml",
    claims: [{
      id: "recon-time",
      wording: "w",
      source: "s",
      metric: "time ratio",
      paper: 1,
      experiment: "timing-smae",
      value: "smae_over_mae",
      timing: true,
      profiles: { smoke: { tolerance: 0.5 } },
      ...extra,
    }],
  };
}

const RATIO_041 = new Map([["timing-smae", { seeds: [42], metrics: [{ smae_over_mae: 0.41 }] }]]);

Deno.test("a timing claim on a software adapter is measured, with its value, not failed", () => {
  const [r] = evaluateClaims(timingStudy(), "smoke", RATIO_041, { softwareAdapter: true });
  assert.equal(r.verdict, "measured");
  assert.equal(r.ours!.mean, 0.41);
  assert.equal(r.tolerance, "±0.5 (not asserted)");
  assert.match(r.reason, /timing on a software adapter/);
});

Deno.test("a timing claim on a hardware adapter, and a non-timing claim anywhere, are still asserted", () => {
  const [hw] = evaluateClaims(timingStudy(), "smoke", RATIO_041, { softwareAdapter: false });
  assert.equal(hw.verdict, "fail");
  const [plain] = evaluateClaims(timingStudy({ timing: undefined }), "smoke", RATIO_041, {
    softwareAdapter: true,
  });
  assert.equal(plain.verdict, "fail");
});

Deno.test("median() and medianRatio() ignore one stalled repetition", () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  // Repetition 3 of `a` stalled (another job took the CPU): the paired median ratio stays 1.
  const a = [0.10, 0.11, 0.95, 0.10, 0.12], b = [0.10, 0.11, 0.10, 0.10, 0.12];
  assert.equal(medianRatio(a, b), 1);
  assert.ok(a.reduce((x, y) => x + y) / b.reduce((x, y) => x + y) > 2, "the sums would say 2x");
});

gpuTest(
  "timeTasks() interleaves the tasks batch by batch, rotating which goes first, in whole rotations (min 2 of 3 tasks runs 3)",
  async (gpu) => {
    const batch = (): Batch => ({
      images: new Float32Array(4),
      labels: new Int32Array(1),
      indices: new Uint32Array(1),
      shape: [1, 1, 2, 2],
    } as Batch);
    const calls: string[] = [];
    const samples = await timeTasks(gpu, [batch(), batch()], {
      a: (_x, i) => calls.push(`a${i}`),
      b: (_x, i) => calls.push(`b${i}`),
      c: (_x, i) => calls.push(`c${i}`),
    }, { min: 2, seconds: 0, max: 40 });
    assert.deepEqual(calls, [
      // untimed warm-up, task by task
      "a0",
      "a1",
      "b0",
      "b1",
      "c0",
      "c1",
      // repetition 0: a first; 1: b first; 2: c first
      "a0",
      "b0",
      "c0",
      "a1",
      "b1",
      "c1",
      "b0",
      "c0",
      "a0",
      "b1",
      "c1",
      "a1",
      "c0",
      "a0",
      "b0",
      "c1",
      "a1",
      "b1",
    ]);
    for (const k of ["a", "b", "c"] as const) assert.equal(samples[k].length, 3);
  },
);
