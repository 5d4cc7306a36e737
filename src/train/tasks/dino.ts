/**
 * Mode `dino` of `deno task train`: DINO pre-training of a ViT with the
 * paper's settings (src/models/dino.ts for the networks and loss).
 *
 * Per step: the student sees [view 1; view 2] of the batch, the teacher
 * [view 2; view 1] (so each student row is matched with the other view's
 * teacher output), and with `dino.localCrops` N > 0 the student also sees N
 * smaller local crops per image, each matched with both teacher views
 * (DINO's multi-crop loss, {@link multiCropDinoLoss}); teacher targets are softmax((t - centre) / teacherTemp);
 * backward; the student's gradient is clipped to a global norm on the GPU;
 * the last layer's gradient is zeroed during the first epoch(s); AdamW with
 * the learning rate of src/train/schedule.ts and a cosine-rising weight
 * decay (Adam, no decay, with `optim.name: adam`); then the teacher's EMA
 * (cosine-rising momentum) and the centre's. The loop of src/train/loop.ts
 * runs these steps, as it does every mode's.
 *
 * Collapse monitoring: every logged step records the teacher's mean
 * entropy (nats; log K is uniform) and the centre's norm in metrics.jsonl.
 * When the entropy stays below 5% or above 95% of log K for
 * {@link COLLAPSE_WINDOW} consecutive logged steps, a warning is printed and
 * summary.json's `collapse` says which way it went.
 *
 * The checkpoint holds the teacher under the plain parameter names
 * (`encoder.*`, `head.*`) and the student under `student.*`. Fine-tuning
 * (`init`) therefore starts from the teacher's encoder: the teacher is what
 * DINO evaluates (its `checkpoint_key` default), an average of the student
 * over training that the DINO paper finds the better network throughout.
 * @module
 */

import { dinoAugment, type ImageDataset } from "../../data/mod.ts";
import type { Gpu } from "../../gpu/device.ts";
import {
  Dino,
  LAST_LAYER,
  meanEntropy,
  multiCropDinoLoss,
  teacherTargets,
} from "../../models/dino.ts";
import { DropoutContext } from "../../nn.ts";
import { centerUpdate, emaUpdate } from "../../ops/ema.ts";
import { GradClipper } from "../../optim.ts";
import { noGrad } from "../../tape.ts";
import { tensor, tidy } from "../../tensor.ts";
import { dinoLocalSize, type DinoRunConfig } from "../config.ts";
import { evalLoader } from "../data.ts";
import type { TrainTask } from "../loop.ts";

/** Consecutive logged steps near an entropy extreme that count as a collapse. */
export const COLLAPSE_WINDOW = 5;
/** Entropy fractions of log K below / above which the teacher counts as collapsing. */
export const COLLAPSE_BOUNDS = [0.05, 0.95] as const;

/** DINO's cosine schedule from `start` (step 0) to `end` (step `total`). */
export function cosineSchedule(start: number, end: number, step: number, total: number): number {
  const t = total > 0 ? Math.min(1, step / total) : 1;
  return end + 0.5 * (start - end) * (1 + Math.cos(Math.PI * t));
}

/** Teacher temperature of `epoch`: linear from warmup to final over `epochs` epochs (np.linspace), then final. */
export function teacherTemperature(warmup: number, final: number, epochs: number, epoch: number) {
  if (epoch >= epochs) return final;
  return epochs > 1 ? warmup + ((final - warmup) * epoch) / (epochs - 1) : final;
}

/** Classifies a run's logged entropy fractions: a collapse is COLLAPSE_WINDOW in a row past a bound. */
export function detectCollapse(fractions: number[]): "none" | "one-hot" | "uniform" {
  let low = 0, high = 0;
  for (const f of fractions) {
    low = f < COLLAPSE_BOUNDS[0] ? low + 1 : 0;
    high = f > COLLAPSE_BOUNDS[1] ? high + 1 : 0;
    if (low >= COLLAPSE_WINDOW) return "one-hot";
    if (high >= COLLAPSE_WINDOW) return "uniform";
  }
  return "none";
}

/** The images with their two halves (view 1, view 2) swapped: the teacher's input. */
function swapViews(images: Float32Array): Float32Array {
  const half = images.length / 2;
  const out = new Float32Array(images.length);
  out.set(images.subarray(half), 0);
  out.set(images.subarray(0, half), half);
  return out;
}

/** Held-out teacher entropy (one unaugmented view, the final centre and temperature). */
async function evaluateDino(
  c: DinoRunConfig,
  m: Dino,
  ds: ImageDataset,
  temp: number,
): Promise<Record<string, number>> {
  const loader = evalLoader(c, ds);
  const drop = new DropoutContext(false, 0, c.seed, 0);
  let sum = 0, seen = 0;
  const t0 = performance.now();
  for await (const b of loader.epoch(0)) {
    const h = noGrad(() =>
      tidy(() => {
        const t = m.forward(m.teacher, tensor(m.gpu, b.images, b.shape), drop);
        const { probs, logits } = teacherTargets(t, c.dino.centering ? m.centre : null, temp);
        return meanEntropy(logits, probs);
      })
    );
    sum += (await h.item()) * b.shape[0];
    h.dispose();
    seen += b.shape[0];
  }
  const entropy = sum / seen, fraction = entropy / Math.log(c.dino.outDim);
  return {
    teacher_entropy: entropy,
    entropy_fraction: fraction,
    // Distance of the entropy from the nearer collapse (0: one-hot, log K: uniform), in units of log K.
    collapse_margin: Math.min(fraction, 1 - fraction),
    seconds: (performance.now() - t0) / 1000,
    images: seen,
  };
}

/** Mode dino: the student trains, the teacher follows by EMA; both are checkpointed. */
export function dinoTask(c: DinoRunConfig, gpu: Gpu): Promise<TrainTask> {
  const d = c.dino;
  const model = new Dino(gpu, c.encoder, d, c.seed, d.teacherInit);
  const clipper = d.clipGrad > 0 ? new GradClipper(model.student, d.clipGrad) : null;
  const logK = Math.log(d.outDim);
  const temperature = (epoch: number) =>
    teacherTemperature(d.warmupTeacherTemp, d.teacherTemp, d.warmupTeacherTempEpochs, epoch);
  const fractions: number[] = [];
  let warned = false;
  return Promise.resolve({
    saved: [["", model.teacher], ["student.", model.student]],
    trainable: [model.student],
    augment: {
      dino: dinoAugment(c.encoder.imageSize, {
        crops: d.localCrops,
        size: dinoLocalSize(c),
        scale: d.localCropScale,
      }),
    },
    checkpointHint: "not a DINO checkpoint of this model?",
    // The authors' DINO uses DINO's cosine_scheduler, whose warmup starts at 0
    // (utilities/dino.py), unlike their other recipes' LinearLR from lr/3.
    warmupStartFactor: 0,
    describe: (total, trainImages) =>
      `dino: ${model.student.count} parameters per network, ${total} steps of ` +
      `${c.optim.batchSize} x 2 views${
        d.localCrops ? ` + ${d.localCrops} local crops of ${dinoLocalSize(c)}px` : ""
      } on ${trainImages} images (teacher: ${d.teacherInit})`,
    images: (batch) => batch.shape[0] / 2,
    forward(batch, { step, epoch, total }) {
      const views = tensor(gpu, batch.images, batch.shape);
      const swapped = tensor(gpu, swapViews(batch.images as Float32Array), batch.shape);
      const teacherOut = noGrad(() =>
        model.forward(model.teacher, swapped, new DropoutContext(false, 0, c.seed, step))
      );
      const { probs, logits } = teacherTargets(
        teacherOut,
        d.centering ? model.centre : null,
        temperature(epoch),
      );
      const drop = new DropoutContext(true, c.encoder.dropout, c.seed, step);
      const studentOut = model.forward(model.student, views, drop);
      const localOut = batch.local
        ? model.forward(model.student, tensor(gpu, batch.local.images, batch.local.shape), drop)
        : null;
      return {
        loss: multiCropDinoLoss(studentOut, localOut, probs, d.studentTemp),
        scalars: { teacher_entropy: meanEntropy(logits, probs) },
        beforeUpdate() {
          clipper?.clip();
          if (epoch < d.freezeLastLayerEpochs) {
            // DINO cancels the last layer's gradient in the first epoch(s); with a
            // zero gradient AdamW's moments stay 0 and only the (scale-free,
            // hence harmless) weight decay touches V.
            gpu.clear(model.student.get(LAST_LAYER).grad!.binding);
          }
        },
        afterUpdate() {
          emaUpdate(
            model.teacher,
            model.student,
            cosineSchedule(d.teacherMomentum, 1, step, total),
          );
          if (d.centering) centerUpdate(model.centre, teacherOut, d.centerMomentum);
        },
      };
    },
    weightDecay: ({ step, total }) =>
      cosineSchedule(c.optim.weightDecay, d.weightDecayEnd, step, total),
    async readInterval() {
      const centre = await model.centre.read() as Float32Array;
      const clip = clipper ? await clipper.read() : null;
      return {
        centre_norm: Math.sqrt(centre.reduce((a, v) => a + v * v, 0)),
        ...(clip ? { grad_norm: clip.norm } : {}),
      };
    },
    logged({ teacher_entropy: entropy }) {
      fractions.push(entropy / logK);
      const state = detectCollapse(fractions);
      if (state !== "none" && !warned) {
        warned = true;
        console.error(
          `dino: warning: the teacher's output is collapsing (${state}): entropy ` +
            `${entropy.toFixed(3)} of log K = ${logK.toFixed(3)} for ${COLLAPSE_WINDOW} ` +
            `logged steps in a row`,
        );
      }
      return { teacher_entropy: entropy, entropy_fraction: entropy / logK };
    },
    evaluate: (ds) => evaluateDino(c, model, ds, temperature(c.optim.epochs - 1)),
    saveState: async () => ({
      tensors: new Map([["dino.centre", {
        shape: [...model.centre.shape],
        data: await model.centre.read() as Float32Array,
      }]]),
      metadata: { encoder: "teacher" },
    }),
    loadState({ tensors, path }) {
      const centre = tensors.get("dino.centre");
      if (!centre) {
        throw new Error(
          `${path}: checkpoint has no 'dino.centre' (not a DINO checkpoint of this model?)`,
        );
      }
      gpu.upload(model.centre.binding, centre.data);
    },
    summary: () => ({ collapse: detectCollapse(fractions) }),
    destroy() {
      clipper?.destroy();
      model.destroy();
    },
  });
}
