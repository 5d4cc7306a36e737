/**
 * `deno task bench:profile`: where the time of a training step goes. Runs one
 * MAE pre-training step and one fine-tuning step of ViT-Lite-7/4 (64x64), or
 * with `--model small` of the ci and small profiles' model, under
 * the runtime's timestamp-query profiler (every dispatch in its own timed
 * pass, every transfer bracketed by timestamps) and prints, per kernel entry
 * point and per kind of transfer (texture staging, buffer copies and clears,
 * in parentheses), its calls per step, GPU milliseconds per step and share of
 * the step's GPU time.
 *
 *   deno task bench:profile                 both steps at batch 32, a table
 *   deno task bench:profile --batch 128 --steps 3 --markdown
 *
 * Kernel time is summed over timed passes, so it excludes the host's
 * recording, submission and the ~12 ms per sync; the "wall" line shows the
 * whole step timed without the profiler for comparison.
 * @module
 */

import { parseArgs } from "cli";
import { type Gpu, openGpu } from "../src/gpu/device.ts";
import { STEP_MODELS, type StepModel, VIT_LITE_STEPS, withTrainSteps } from "./train_step.ts";

/** One kernel's line of the profile. */
export interface ProfileRow {
  entry: string;
  dispatchesPerStep: number;
  msPerStep: number;
  share: number;
}

/** A profiled step: its kernels, slowest first, and its unprofiled wall time. */
export interface StepProfile {
  name: string;
  /** The model's label ("ViT-Lite-7/4 64x64"). */
  model: string;
  batch: number;
  rows: ProfileRow[];
  kernelMs: number;
  wallMs: number;
}

async function profileSteps(
  gpu: Gpu,
  name: string,
  model: string,
  batch: number,
  steps: number,
  step: () => void,
): Promise<StepProfile> {
  step(); // pipelines, pooled buffers, optimizer state
  await gpu.sync();
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) step();
  await gpu.sync();
  const wallMs = (performance.now() - t0) / steps;
  if (!gpu.startProfile()) {
    throw new Error(`profile_step: adapter ${gpu.adapter.description} has no timestamp-query`);
  }
  for (let i = 0; i < steps; i++) step();
  const totals = await gpu.stopProfile();
  const kernelMs = totals.reduce((s, t) => s + t.ms, 0) / steps;
  const rows = totals.map((t) => ({
    entry: t.entry,
    dispatchesPerStep: t.calls / steps,
    msPerStep: t.ms / steps,
    share: t.ms / steps / kernelMs,
  }));
  return { name, model, batch, rows, kernelMs, wallMs };
}

/** Profiles one MAE pre-training step and one fine-tuning step of `model` at `batch`. */
export function profileTrainSteps(
  gpu: Gpu,
  batch: number,
  steps = 1,
  model: StepModel = VIT_LITE_STEPS,
): Promise<StepProfile[]> {
  return withTrainSteps(
    gpu,
    batch,
    (name, step) => profileSteps(gpu, name, model.label, batch, steps, step),
    model,
  );
}

/** The profile as a table: "kernel or transfer | calls per step | ms per step | share". */
export function formatProfile(p: StepProfile, markdown: boolean): string {
  const head = `${p.name}, ${p.model}, batch ${p.batch}: ` +
    `${p.kernelMs.toFixed(1)} ms on the GPU, ${p.wallMs.toFixed(1)} ms wall per step`;
  const cells = p.rows.map((r) => [
    r.entry,
    r.dispatchesPerStep.toFixed(r.dispatchesPerStep % 1 ? 1 : 0),
    r.msPerStep.toFixed(2),
    `${(100 * r.share).toFixed(1)}%`,
  ]);
  const dispatches = p.rows.reduce((s, r) => s + r.dispatchesPerStep, 0);
  cells.push(["total", dispatches.toFixed(0), p.kernelMs.toFixed(2), "100%"]);
  const header = ["kernel or transfer", "calls per step", "ms per step", "share"];
  if (markdown) {
    return [
      head,
      "",
      `| ${header.join(" | ")} |`,
      "|---|--:|--:|--:|",
      ...cells.map((c) => `| ${c.join(" | ")} |`),
    ].join("\n");
  }
  const w = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) =>
    c.map((v, i) => (i === 0 ? v.padEnd(w[i]) : v.padStart(w[i]))).join("  ");
  return [head, line(header), ...cells.map(line)].join("\n");
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      batch: { type: "string", default: "32" },
      model: { type: "string", default: "vit-lite" },
      steps: { type: "string", default: "1" },
      markdown: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(
      `usage: deno task bench:profile [--model M] [--batch N] [--steps N] [--markdown | --json]

Per-kernel GPU time of one MAE pre-training step and one fine-tuning step,
from timestamp queries (one timed pass per dispatch; transfers bracketed):
kernel or transfer | calls per step | ms per step | share.
--model     vit-lite: ViT-Lite-7/4 on 64x64 RGB (default); small: the ci and
            small profiles' 2-block ViT on 28x28 gray (batch 128 is theirs)
--batch     images per step (default 32)
--steps     profiled steps averaged, after one warm-up step (default 1)
--markdown  tables in Markdown (deno task results --step-profile keeps them on the results page)
--json      one JSON object per step`,
    );
    Deno.exit(0);
  }
  const batch = Number(values.batch), steps = Number(values.steps);
  for (const [flag, v] of [["--batch", batch], ["--steps", steps]] as const) {
    if (!Number.isInteger(v) || v < 1) {
      console.error(`profile_step: ${flag} must be a positive integer`);
      Deno.exit(2);
    }
  }
  const stepModel = STEP_MODELS[values.model!];
  if (!stepModel) {
    console.error(
      `profile_step: --model ${values.model}: unknown (one of ${
        Object.keys(STEP_MODELS).join(", ")
      })`,
    );
    Deno.exit(2);
  }
  const model = await stepModel();
  const gpu = await openGpu();
  for (const p of await profileTrainSteps(gpu, batch, steps, model)) {
    console.log(values.json ? JSON.stringify(p) : formatProfile(p, values.markdown) + "\n");
  }
}
