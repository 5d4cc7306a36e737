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
  noiseElements,
  torchAvailable,
  TWIN_MODES,
  twinCompare,
  type TwinReport,
} from "../../twin/run.ts";
import { ciMaeCompare, formatCiMae, lrMismatch, meanSpread } from "../../twin/ci_mae.ts";

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
  "the critic's check judges the code, not the rounding: it still matches from three starts an ulp away",
  async () => {
    // SqueezeNet's ReLUs and max-pools make its trajectory sensitive; this is what was
    // measured at the code's lr 5e-4, where nudge 1 moved the step-9 loss by 1.2e-2.
    const plain = await twinCompare(await testGpu(), "critic", STEPS);
    for (const seed of [1, 2, 3]) {
      const r = await twinCompare(await testGpu(), "critic", STEPS, { nudge: seed });
      assert(r.ok, `nudge ${seed}:\n${formatReport(r)}`);
      // The nudge moved the harness's trajectory (not the twin's start).
      assert(r.losses.some(([h], i) => h !== plain.losses[i][0]), `nudge ${seed} changed nothing`);
    }
  },
);

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
  "a twin whose DINO loss also pairs a teacher view with its own student view is caught at step 1",
  async () => {
    const r = await twinCompare(await testGpu(), "dino-local", STEPS, { fault: "same-view-pairs" });
    assert(!r.ok, formatReport(r));
    assert(r.losses[0][2] > 1e-3, formatReport(r));
    assert(!check(r, "gradients").ok, formatReport(r));
  },
);

Deno.test("noise elements: opposite signs below 1e-6 of the tensor's largest gradient, zeros excluded", () => {
  const h = new Map([["grad.w", new Float32Array([1, 2e-8, -3e-8, 0, 1e-3, 2e-6])]]);
  const t = new Map([["grad.w", new Float32Array([1, -3e-8, -2e-8, 1e-8, -1e-3, -2e-6])]]);
  // Element 1: noise, opposite signs. 2: same sign. 3: a zero. 4: opposite but
  // far above the floor (a real disagreement). 5: opposite, 2e-6 of the largest (above the floor).
  assert(
    JSON.stringify([...noiseElements(h, t).get("w")!]) === "[0,1,0,0,0,0]",
    String(noiseElements(h, t).get("w")),
  );
  assert(noiseElements(h, new Map([["grad.w", h.get("grad.w")!]])).size === 0);
});

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

/**
 * The whole-run plumbing of `deno task twin --experiment ci-mae` on a cut-down
 * ci run (1 epoch each, 256 / 128 images of the harness's subset, one seed):
 * the numbers are measured, not compared, but the deterministic parts are
 * asserted: both sides run the same per-epoch schedule, and the twin,
 * evaluating the harness's fine-tuned checkpoint with its own data pipeline
 * and forward pass, gets the harness's accuracy (up to a near-tie).
 */
const CI_SMALL = { seeds: 1, epochsScale: 0.05, trainLimit: 256, evalLimit: 128 };

twinTest(
  "ci-mae: the harness's whole MAE run and its twin's, side by side (cut down)",
  async () => {
    const r = await ciMaeCompare(await testGpu(), { ...CI_SMALL, log: () => {} });
    const md = formatCiMae(r);
    assert(r.seeds.length === 1 && r.seeds[0].seed === 1, md);
    const s = r.seeds[0];
    assert(r.setup.pretrain.epochs === 1 && r.setup.finetune.epochs === 1, md);
    assert(r.setup.pretrain.train === 256 && r.setup.pretrain.eval === 128, md);
    assert(s.harness.lr.pretrain.length === 1 && lrMismatch(s) <= 1e-12, md);
    for (const side of [s.harness, s.twin]) {
      assert(side.mseRatio > 0 && Number.isFinite(side.mseRatio), md);
      assert(side.accuracy >= 0 && side.accuracy <= 1, md);
    }
    assert(Math.abs(s.twinOnHarnessCheckpoint - s.harness.accuracy) <= 1 / 128 + 1e-12, md);
    assert(md.includes("| 1 | ") && md.includes("mean ± sd (1 seed)"), md);
  },
);

twinTest(
  "ci-mae: a twin that normalises by x / 255 instead of per batch misreads the harness's checkpoint",
  async () => {
    const r = await ciMaeCompare(await testGpu(), {
      ...CI_SMALL,
      fault: "unit-scale",
      log: () => {},
    });
    const s = r.seeds[0];
    assert(Math.abs(s.twinOnHarnessCheckpoint - s.harness.accuracy) > 0.05, formatCiMae(r));
  },
);

Deno.test("ci-mae: mean and sample standard deviation over seeds", () => {
  const { mean, sd } = meanSpread([0.5, 0.7]);
  assert(Math.abs(mean - 0.6) < 1e-12 && Math.abs(sd - Math.sqrt(0.02)) < 1e-12, `${mean} ${sd}`);
  assert(meanSpread([0.3]).sd === 0);
});

Deno.test("deno task twin: a bad flag or value exits 2 naming it", async () => {
  const run = async (...args: string[]) => {
    const script = new URL("../../twin/run.ts", import.meta.url).pathname;
    const r = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", script, ...args],
      stdout: "piped",
      stderr: "piped",
    }).output();
    return { code: r.code, err: new TextDecoder().decode(r.stderr) };
  };
  for (
    const [args, says] of [
      [["--bogus"], "unknown option '--bogus'"],
      [["--experiment", "nope"], "--experiment nope is not one of ci-mae"],
      [["--experiment", "ci-mae", "--seeds", "0"], "--seeds must be an integer >= 1"],
      [
        ["--experiment", "ci-mae", "--epochs-scale", "2"],
        "--epochs-scale must be a number in (0, 1]",
      ],
      [["--experiment", "ci-mae", "--mode", "dino"], "--mode does not go with --experiment"],
      [["--out", "x.md"], "--out needs --experiment"],
      [["--fault", "nope"], "--fault nope is not one of"],
    ] as const
  ) {
    const r = await run(...args);
    assert(
      r.code === 2 && r.err.includes(says) && r.err.includes("usage:"),
      `${args}: ${r.code} ${r.err}`,
    );
  }
});
