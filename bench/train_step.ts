/**
 * One MAE pre-training step and one fine-tuning step of ViT-Lite-7/4 on
 * 64x64 inputs, in images/s, with the step's achieved FLOP/s (counted from
 * the architecture) divided by our own 1024^3 matmul's FLOP/s on the same
 * adapter: the training efficiency. {@link torchTrainSteps} runs the same
 * steps in PyTorch on the CPU (bench/torch_train_step.py) for the ratio
 * ours / PyTorch; it is skipped, with its reason, where torch is missing.
 * @module
 */

import { FASHION_MNIST_CLASSES } from "../src/data/idx.ts";
import type { Gpu } from "../src/gpu/device.ts";
import { Classifier, type Pooling } from "../src/models/classifier.ts";
import { Mae, MAE_DECODER, type MaeConfig } from "../src/models/mae.ts";
import { patchGeometry, VIT_LITE_7_4, type VitConfig } from "../src/models/vit.ts";
import { DropoutContext } from "../src/nn.ts";
import { crossEntropy } from "../src/ops/loss.ts";
import { AdamW } from "../src/optim.ts";
import { loadProfile } from "../src/repro/profiles.ts";
import { Rng } from "../src/rng.ts";
import { backward } from "../src/tape.ts";
import { tensor, tidy } from "../src/tensor.ts";
import { type QueuedTimingOptions, timeQueued } from "./_report.ts";

/** Forward FLOPs of `depth` pre-norm blocks of width w, MLP m, on T tokens (matmuls and attention). */
export function blockFlops(T: number, w: number, m: number, depth: number): number {
  const linear = 2 * T * (3 * w * w + w * w + 2 * w * m);
  const attention = 4 * T * T * w;
  return depth * (linear + attention);
}

/** FLOPs of one training step (forward + backward ~ 3x forward) per image. */
export function stepFlopsPerImage(
  kind: "mae" | "finetune",
  c: VitConfig = VIT_LITE_7_4,
  ratio = 0.75,
): number {
  const { tokens, patchDim } = patchGeometry(c);
  const d = MAE_DECODER;
  if (kind === "finetune") {
    const fwd = 2 * tokens * patchDim * c.width + blockFlops(tokens + 1, c.width, c.mlp, c.depth);
    return 3 * fwd;
  }
  const kept = tokens - Math.round(ratio * tokens);
  const fwd = 2 * tokens * patchDim * c.width + blockFlops(kept + 1, c.width, c.mlp, c.depth) +
    2 * (kept + 1) * c.width * d.decoderWidth +
    blockFlops(tokens + 1, d.decoderWidth, d.decoderMlp, d.decoderDepth) +
    2 * (tokens + 1) * d.decoderWidth * patchDim;
  return 3 * fwd;
}

/** The two benchmarked training steps. */
export type TrainStepName = "mae-pretrain-step" | "finetune-step";

/** A model whose two training steps are benchmarked or profiled. */
export interface StepModel {
  /** Its name in tables: "ViT-Lite-7/4 64x64". */
  label: string;
  encoder: VitConfig;
  decoder: Pick<MaeConfig, "decoderWidth" | "decoderDepth" | "decoderHeads" | "decoderMlp">;
  classes: number;
  pool: Pooling;
}

/** ViT-Lite-7/4 on 64x64 RGB with the paper's decoder and a class-token head (200 classes). */
export const VIT_LITE_STEPS: StepModel = {
  label: "ViT-Lite-7/4 64x64",
  encoder: VIT_LITE_7_4,
  decoder: MAE_DECODER,
  classes: 200,
  pool: "cls",
};

/**
 * The `small` profile's model, read from repro/profiles/small.yaml (the
 * `ci` profile trains the same ViT): its pre-training stage's 2-block
 * width-64 ViT on 28x28 gray images and MAE decoder, and its fine-tuning
 * stage's pooling over Fashion-MNIST's 10 classes. Its steps are what those
 * profiles' CPU time is made of.
 */
export async function smallSteps(): Promise<StepModel> {
  const { stages, file } = await loadProfile("small");
  const pretrain = stages.pretrain, finetune = stages.finetune;
  if (pretrain?.mode !== "pretrain" || finetune?.mode !== "finetune") {
    throw new Error(`${file}: the small steps need its pretrain and finetune stages`);
  }
  const { decoderWidth, decoderDepth, decoderHeads, decoderMlp } = pretrain.mae;
  return {
    label: "small ViT 28x28",
    encoder: pretrain.encoder,
    decoder: { decoderWidth, decoderDepth, decoderHeads, decoderMlp },
    classes: FASHION_MNIST_CLASSES.length,
    pool: finetune.encoder.pool,
  };
}

/** The models `--model` names. */
export const STEP_MODELS: Record<string, () => Promise<StepModel>> = {
  "vit-lite": () => Promise.resolve(VIT_LITE_STEPS),
  small: smallSteps,
};

/**
 * A model's training steps (default ViT-Lite-7/4) on synthetic images at
 * `batch`: hands `use` one MAE pre-training step (random 75% masking), then
 * one fine-tuning step of a classifier on its encoder, each a full forward,
 * backward and AdamW update; frees everything afterwards.
 */
export async function withTrainSteps<T>(
  gpu: Gpu,
  batch: number,
  use: (name: TrainStepName, step: () => void) => Promise<T>,
  model: StepModel = VIT_LITE_STEPS,
): Promise<T[]> {
  const { imageSize: size, channels } = model.encoder;
  const images = tensor(
    gpu,
    new Rng(1).normalArray(batch * channels * size * size),
    [batch, channels, size, size],
  );
  const labels = tensor(
    gpu,
    Int32Array.from({ length: batch }, (_, i) => i % model.classes),
    [batch],
    "i32",
  );
  const out: T[] = [];
  const mae = new Mae(gpu, {
    encoder: model.encoder,
    ...model.decoder,
    maskRatio: 0.75,
    masking: "random",
    normPixLoss: false,
  }, 1);
  const maeOpt = mae.stores.map((s) => new AdamW(s, { lr: 5e-4, weightDecay: 0.15 }));
  let n = 0;
  out.push(
    await use("mae-pretrain-step", () =>
      tidy(() => {
        for (const s of mae.stores) s.zeroGrad();
        const drop = new DropoutContext(true, 0.1, 1, n);
        backward(mae.forward(images, mae.sampleMasking(new Rng(n++), batch), drop).loss);
        for (const o of maeOpt) o.update();
      })),
  );
  for (const o of maeOpt) o.destroy();
  const clf = new Classifier(gpu, model.encoder, model.classes, 1, mae.encoder, model.pool);
  const clfOpt = clf.stores.map((s) => new AdamW(s, { lr: 1e-3, weightDecay: 0.05 }));
  out.push(
    await use("finetune-step", () =>
      tidy(() => {
        for (const s of clf.stores) s.zeroGrad();
        backward(crossEntropy(clf.forward(images, new DropoutContext(true, 0.1, 1, n++)), labels));
        for (const o of clfOpt) o.update();
      })),
  );
  for (const o of clfOpt) o.destroy();
  clf.destroy();
  mae.destroy();
  images.dispose();
  labels.dispose();
  return out;
}

/** images/s and GFLOP/s of each step at batch `batch`. */
export function benchTrainSteps(
  gpu: Gpu,
  batch: number,
  opts: QueuedTimingOptions = {},
): Promise<{ name: string; imagesPerSecond: number; gflops: number }[]> {
  const timing = { minIters: 2, minMs: 0, stepMs: 0, maxReps: 1, ...opts };
  return withTrainSteps(gpu, batch, async (name, step) => {
    const ms = await timeQueued(async (reps) => {
      for (let r = 0; r < reps; r++) step();
      await gpu.sync();
    }, timing);
    return {
      name,
      imagesPerSecond: batch / (ms / 1000),
      gflops: stepFlopsPerImage(name === "mae-pretrain-step" ? "mae" : "finetune") * batch /
        (ms * 1e6),
    };
  });
}

/** One step of the same model in PyTorch on the CPU (bench/torch_train_step.py). */
export interface TorchStep {
  name: string;
  batch: number;
  imagesPerSecond: number;
}

/**
 * Runs bench/torch_train_step.py (2 threads, OMP_WAIT_POLICY=PASSIVE) at
 * `batch`; returns its steps, or a reason when PyTorch cannot be run.
 */
export async function torchTrainSteps(
  batch: number,
  python = "/usr/bin/python3",
): Promise<TorchStep[] | { skipped: string }> {
  const script = new URL("./torch_train_step.py", import.meta.url).pathname;
  let out: Deno.CommandOutput;
  try {
    const probe = await new Deno.Command(python, { args: ["-c", "import torch"], stderr: "null" })
      .output();
    if (!probe.success) {
      return {
        skipped:
          `${python} cannot import torch (apt-get install python3-torch libopenblas0-openmp)`,
      };
    }
    out = await new Deno.Command(python, {
      args: [script, "--batch", String(batch), "--threads", "2"],
      env: { OMP_WAIT_POLICY: "PASSIVE" },
      stderr: "piped",
    }).output();
  } catch (e) {
    return { skipped: `${python} could not be run: ${(e as Error).message}` };
  }
  if (!out.success) {
    return { skipped: `${script} failed: ${new TextDecoder().decode(out.stderr).slice(-300)}` };
  }
  return new TextDecoder().decode(out.stdout).trim().split("\n").map((l) => {
    const r = JSON.parse(l);
    return { name: r.name, batch: r.batch, imagesPerSecond: r.images_per_second };
  });
}
