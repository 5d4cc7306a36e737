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
 * decay; then the teacher's EMA (cosine-rising momentum) and the centre's.
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

import { BatchLoader, dinoAugment, type ImageDataset, writeFileAtomic } from "../data/mod.ts";
import { type Gpu, openGpu } from "../gpu/device.ts";
import {
  Dino,
  LAST_LAYER,
  meanEntropy,
  multiCropDinoLoss,
  teacherTargets,
} from "../models/dino.ts";
import { DropoutContext } from "../nn.ts";
import { centerUpdate, emaUpdate } from "../ops/ema.ts";
import { AdamW, GradClipper } from "../optim.ts";
import { backward, noGrad } from "../tape.ts";
import { keep, type Tensor, tensor, tidy } from "../tensor.ts";
import { dinoLocalSize, type TrainConfig } from "./config.ts";
import { evalLoader, loadSplits } from "./data.ts";
import { decodeSafetensors, encodeSafetensors, type NamedArray } from "./safetensors.ts";
import { learningRate } from "./schedule.ts";
import {
  NonFiniteLossError,
  type TrainOptions,
  type TrainSummary,
  truncateMetrics,
} from "./trainer.ts";

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

const CHECKPOINT = "checkpoint.safetensors";

async function saveDino(path: string, c: TrainConfig, m: Dino, opt: AdamW, step: number) {
  const gpu = m.gpu;
  const tensors = new Map<string, NamedArray>();
  for (const [prefix, store] of [["", m.teacher], ["student.", m.student]] as const) {
    for (const [name, data] of await store.read()) {
      tensors.set(prefix + name, { shape: [...store.get(name).shape], data });
    }
  }
  const n = opt.store.length;
  for (const [k, buf] of [["m", opt.m], ["v", opt.v]] as const) {
    const data = new Float32Array(await gpu.download({ buffer: buf, offset: 0, size: n * 4 }));
    tensors.set(`optim.0.${k}`, { shape: [n], data });
  }
  tensors.set("dino.centre", {
    shape: [...m.centre.shape],
    data: await m.centre.read() as Float32Array,
  });
  const metadata = {
    format: "smae-repro/1",
    mode: c.mode,
    config: JSON.stringify(c),
    seed: String(c.seed),
    step: String(step),
    optimizer_steps: JSON.stringify([opt.step]),
    encoder: "teacher",
  };
  await writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

async function loadDino(path: string, m: Dino, opt: AdamW): Promise<number> {
  const { tensors, metadata } = decodeSafetensors(await Deno.readFile(path), path);
  const need = (name: string) => {
    const t = tensors.get(name);
    if (!t) {
      throw new Error(
        `${path}: checkpoint has no '${name}' (not a DINO checkpoint of this model?)`,
      );
    }
    return t.data as Float32Array;
  };
  for (const [prefix, store] of [["", m.teacher], ["student.", m.student]] as const) {
    store.loadAll(
      (name) => tensors.get(name)?.data as Float32Array | undefined,
      `checkpoint ${path}`,
      "not a DINO checkpoint of this model?",
      prefix,
    );
  }
  for (const [k, buf] of [["m", opt.m], ["v", opt.v]] as const) {
    const d = need(`optim.0.${k}`);
    if (d.length !== opt.store.length) throw new Error(`${path}: optim.0.${k} is mis-sized`);
    m.gpu.upload({ buffer: buf, offset: 0, size: d.byteLength }, d);
  }
  m.gpu.upload(m.centre.binding, need("dino.centre"));
  opt.step = (JSON.parse(metadata.optimizer_steps ?? "[0]") as number[])[0] ?? 0;
  return Number(metadata.step ?? 0);
}

/** Held-out teacher entropy (one unaugmented view, the final centre and temperature). */
async function evaluateDino(
  c: TrainConfig,
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

/** Trains mode `dino` to the end (or `stopAfterSteps`) and returns the summary. */
export async function trainDino(c: TrainConfig, opts: TrainOptions): Promise<TrainSummary> {
  const gpu: Gpu = opts.gpu ?? await openGpu();
  const t0 = performance.now();
  const d = c.dino;
  await Deno.mkdir(opts.out, { recursive: true });
  const splits = opts.splits ?? await loadSplits(c, opts.data);
  const model = new Dino(gpu, c.model, d, c.seed, d.teacherInit);
  const opt = new AdamW(model.student, {
    lr: c.optim.lr,
    beta1: c.optim.betas[0],
    beta2: c.optim.betas[1],
    weightDecay: c.optim.weightDecay,
  });
  const clipper = d.clipGrad > 0 ? new GradClipper(model.student, d.clipGrad) : null;
  const ckpt = `${opts.out}/${CHECKPOINT}`;
  const metricsPath = `${opts.out}/metrics.jsonl`;
  let step = 0;
  if (opts.resume) {
    try {
      step = await loadDino(ckpt, model, opt);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      throw new Error(`--resume: no checkpoint at ${ckpt}`);
    }
    await truncateMetrics(metricsPath, step);
  } else {
    await Deno.writeTextFile(metricsPath, "");
    await saveDino(ckpt, c, model, opt, 0);
  }
  const ds = splits.train;
  const loader = new BatchLoader(ds, {
    batchSize: c.optim.batchSize,
    seed: c.seed,
    dropLast: ds.count >= c.optim.batchSize,
    augment: {
      dino: dinoAugment(c.model.imageSize, {
        crops: d.localCrops,
        size: dinoLocalSize(c),
        scale: d.localCropScale,
      }),
    },
    normalize: c.data.normalize,
  });
  const stepsPerEpoch = c.optim.batchSize > ds.count ? 1 : Math.floor(ds.count / c.optim.batchSize);
  const total = stepsPerEpoch * c.optim.epochs;
  const logK = Math.log(d.outDim);
  if (!opts.quiet) {
    console.error(
      `dino: ${model.student.count} parameters per network, ${total} steps of ` +
        `${c.optim.batchSize} x 2 views${
          d.localCrops ? ` + ${d.localCrops} local crops of ${dinoLocalSize(c)}px` : ""
        } on ${ds.count} images (teacher: ${d.teacherInit})`,
    );
  }
  const write = (line: Record<string, unknown>) =>
    Deno.writeTextFile(metricsPath, JSON.stringify(line) + "\n", { append: true });
  type Pending = { step: number; epoch: number; lr: number; loss: Tensor; entropy: Tensor };
  const pending: Pending[] = [];
  const fractions: number[] = [];
  let epochLoss = 0, epochSteps = 0, lastEpochLoss = NaN, images = 0, warned = false;
  const tRun = performance.now();
  const cleanup = () => {
    loader.close?.();
    clipper?.destroy();
    opt.destroy();
    model.destroy();
  };

  const flush = async () => {
    if (pending.length === 0) return;
    const centre = await model.centre.read() as Float32Array;
    const centreNorm = Math.sqrt(centre.reduce((a, v) => a + v * v, 0));
    const clip = clipper ? await clipper.read() : null;
    const last = pending.at(-1);
    for (const p of pending.splice(0)) {
      const loss = await p.loss.item(), entropy = await p.entropy.item();
      p.loss.dispose();
      p.entropy.dispose();
      if (!Number.isFinite(loss)) {
        for (const q of pending.splice(0)) (q.loss.dispose(), q.entropy.dispose());
        cleanup();
        throw new NonFiniteLossError(p.step, null, ckpt);
      }
      epochLoss += loss;
      epochSteps++;
      fractions.push(entropy / logK);
      const state = detectCollapse(fractions);
      if (state !== "none" && !warned) {
        warned = true;
        console.error(
          `dino: warning: the teacher's output is collapsing (${state}): entropy ` +
            `${entropy.toFixed(3)} of log K = ${
              logK.toFixed(3)
            } for ${COLLAPSE_WINDOW} logged steps in a row`,
        );
      }
      await write({
        type: "train",
        step: p.step,
        epoch: p.epoch,
        loss,
        lr: p.lr,
        teacher_entropy: entropy,
        entropy_fraction: entropy / logK,
        // The centre and gradient norm are read once per log interval (no
        // per-step readback), so only the interval's last step carries them.
        ...(p === last
          ? { centre_norm: centreNorm, ...(clip ? { grad_norm: clip.norm } : {}) }
          : {}),
        images_per_s: images / ((performance.now() - tRun) / 1000),
      });
      if (!opts.quiet && (p.step + 1) % Math.max(1, Math.round(total / 10)) === 0) {
        console.error(
          `dino: step ${p.step + 1}/${total} loss ${loss.toFixed(4)} entropy ${
            entropy.toFixed(3)
          }/${logK.toFixed(3)}`,
        );
      }
    }
  };

  const startEpoch = Math.floor(step / stepsPerEpoch);
  let stopped = false;
  for (let epoch = startEpoch; epoch < c.optim.epochs && !stopped; epoch++) {
    let inEpoch = 0;
    epochLoss = 0;
    epochSteps = 0;
    const temp = teacherTemperature(
      d.warmupTeacherTemp,
      d.teacherTemp,
      d.warmupTeacherTempEpochs,
      epoch,
    );
    for await (const batch of loader.epoch(epoch)) {
      if (inEpoch >= stepsPerEpoch) break;
      if (epoch * stepsPerEpoch + inEpoch < step) {
        inEpoch++; // resumed: replay the data order without training
        continue;
      }
      const lr = learningRate({ ...c.optim, warmupStartFactor: 0 }, epoch, inEpoch, stepsPerEpoch);
      const wd = cosineSchedule(c.optim.weightDecay, d.weightDecayEnd, step, total);
      const momentum = cosineSchedule(d.teacherMomentum, 1, step, total);
      const s = step;
      const out = tidy(() => {
        model.student.zeroGrad();
        const views = tensor(gpu, batch.images, batch.shape);
        const swapped = tensor(gpu, swapViews(batch.images as Float32Array), batch.shape);
        const teacherOut = noGrad(() =>
          model.forward(model.teacher, swapped, new DropoutContext(false, 0, c.seed, s))
        );
        const { probs, logits } = teacherTargets(
          teacherOut,
          d.centering ? model.centre : null,
          temp,
        );
        const drop = new DropoutContext(true, c.model.dropout, c.seed, s);
        const studentOut = model.forward(model.student, views, drop);
        const localOut = batch.local
          ? model.forward(model.student, tensor(gpu, batch.local.images, batch.local.shape), drop)
          : null;
        const loss = multiCropDinoLoss(studentOut, localOut, probs, d.studentTemp);
        const entropy = meanEntropy(logits, probs);
        backward(loss);
        clipper?.clip();
        if (epoch < d.freezeLastLayerEpochs) {
          // DINO cancels the last layer's gradient in the first epoch(s); with a
          // zero gradient AdamW's moments stay 0 and only the (scale-free,
          // hence harmless) weight decay touches V.
          gpu.clear(model.student.get(LAST_LAYER).grad!.binding);
        }
        opt.update(lr, wd);
        emaUpdate(model.teacher, model.student, momentum);
        if (d.centering) centerUpdate(model.centre, teacherOut, d.centerMomentum);
        return { loss: keep(loss), entropy: keep(entropy) };
      });
      pending.push({ step: s, epoch, lr, ...out });
      images += batch.shape[0] / 2;
      step++;
      inEpoch++;
      if (step % c.logEvery === 0) await flush();
      if (step % c.checkpointEvery === 0) {
        await flush();
        await saveDino(ckpt, c, model, opt, step);
      }
      if (opts.stopAfterSteps !== undefined && step >= opts.stopAfterSteps) {
        await flush();
        await saveDino(ckpt, c, model, opt, step);
        stopped = true;
        break;
      }
    }
    await flush();
    if (!stopped) {
      lastEpochLoss = epochSteps ? epochLoss / epochSteps : NaN;
      await write({ type: "epoch", epoch, loss: lastEpochLoss });
    }
  }
  loader.close?.();
  await saveDino(ckpt, c, model, opt, step);
  const finalTemp = teacherTemperature(
    d.warmupTeacherTemp,
    d.teacherTemp,
    d.warmupTeacherTempEpochs,
    c.optim.epochs - 1,
  );
  const evalMetrics = stopped ? {} : await evaluateDino(c, model, splits.eval, finalTemp);
  if (!stopped) await write({ type: "eval", ...evalMetrics });
  const collapse = detectCollapse(fractions);
  const summary: TrainSummary = {
    mode: c.mode,
    seed: c.seed,
    steps: step,
    epochs: c.optim.epochs,
    finalLoss: lastEpochLoss,
    eval: evalMetrics,
    imagesPerSecond: images / ((performance.now() - tRun) / 1000),
    seconds: (performance.now() - t0) / 1000,
    params: { trainable: model.student.count, total: 2 * model.student.count },
    checkpoint: ckpt,
    adapter: gpu.adapter.description,
    collapse,
  };
  await writeFileAtomic(
    `${opts.out}/summary.json`,
    new TextEncoder().encode(JSON.stringify(summary, null, 2) + "\n"),
  );
  clipper?.destroy();
  opt.destroy();
  model.destroy();
  return summary;
}
