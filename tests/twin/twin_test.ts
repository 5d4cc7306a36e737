/**
 * The harness against its PyTorch twin (twin/twin.py), 10 steps per mode at
 * small shapes, and the twin's deliberately wrong variants, which the
 * comparison must catch. Without PyTorch these tests are skipped by name,
 * except under CI=true, where they run and fail.
 */

import { assert } from "../_assert.ts";
import { testGpu } from "../_helpers.ts";
import {
  formatReport,
  torchAvailable,
  TWIN_MODES,
  twinCompare,
  type TwinReport,
} from "../../twin/run.ts";

const hasTorch = await torchAvailable();
const ci = Deno.env.get("CI") === "true";
const ignore = !hasTorch && !ci;
const STEPS = 10;

function twinTest(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, ignore, sanitizeOps: false, sanitizeResources: false, fn });
}

function check(r: TwinReport, what: string) {
  const c = r.checks.find((c) => c.what.startsWith(what));
  if (!c) throw new Error(`report of ${r.variant} has no check '${what}'`);
  return c;
}

if (ci && !hasTorch) {
  Deno.test("PyTorch is installed where CI runs the twin (.ci/setup installs python3-torch)", () => {
    throw new Error("/usr/bin/python3 cannot import torch; the twin tests cannot run");
  });
}

for (const mode of TWIN_MODES) {
  twinTest(`the harness's ${mode} matches its PyTorch twin over ${STEPS} steps`, async () => {
    const r = await twinCompare(await testGpu(), mode, STEPS);
    assert(r.ok, formatReport(r));
    // Every parameter of the model was compared, and gradients for each trainable one.
    assert(check(r, "parameters").count > 0 && check(r, "gradients").count > 0, formatReport(r));
  });
}

twinTest(
  "a twin with Adam's bias correction left out is caught after step 1, not before",
  async () => {
    const r = await twinCompare(await testGpu(), "finetune", STEPS, {
      fault: "no-bias-correction",
    });
    assert(!r.ok, formatReport(r));
    // Step 1 runs before any update: its loss and gradients still agree.
    assert(r.losses[0][2] <= 1e-5, formatReport(r));
    assert(check(r, "gradients").ok, formatReport(r));
    assert(!check(r, "loss, every step").ok, formatReport(r));
    assert(!check(r, "parameters").ok, formatReport(r));
  },
);

twinTest("a twin with GELU in place of ReLU is caught at the step-1 loss", async () => {
  const r = await twinCompare(await testGpu(), "pretrain-random", STEPS, { fault: "gelu" });
  assert(!r.ok, formatReport(r));
  assert(r.losses[0][2] > 1e-5, formatReport(r));
  assert(!check(r, "gradients").ok, formatReport(r));
});

twinTest(
  "a twin without the sigmoid on the critic features is caught in the code's SMAE scaling",
  async () => {
    const r = await twinCompare(await testGpu(), "smae-code", STEPS, { fault: "no-sigmoid" });
    assert(!r.ok, formatReport(r));
    // The code's scaling makes step 1's loss 1 on both sides; the gradients tell.
    assert(!check(r, "gradients").ok, formatReport(r));
  },
);

twinTest(
  "putting the class token first instead of last changes no number (attention is permutation-equivariant)",
  async () => {
    // Positions are added to the patch tokens only and no attention mask
    // exists, so the class token's place in the sequence is invisible: this
    // control must match, in MAE and in class-token pooling alike.
    for (const mode of ["pretrain-random", "scratch-cls"] as const) {
      const r = await twinCompare(await testGpu(), mode, STEPS, { fault: "cls-first" });
      assert(r.ok, formatReport(r));
    }
  },
);
