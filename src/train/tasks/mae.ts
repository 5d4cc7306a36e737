/**
 * Mode `pretrain`: the MAE (src/models/mae.ts) on the masked-patch MSE, with
 * a fresh masking per global step. Also the held-out evaluation SMAE shares.
 * @module
 */

import type { ImageDataset } from "../../data/mod.ts";
import type { Gpu } from "../../gpu/device.ts";
import { Mae, type MaeOutput } from "../../models/mae.ts";
import { DropoutContext } from "../../nn.ts";
import { mse } from "../../ops/loss.ts";
import { Rng } from "../../rng.ts";
import { noGrad } from "../../tape.ts";
import { type Tensor, tensor, tidy } from "../../tensor.ts";
import type { MaeRunConfig, PretrainConfig, TrainConfig } from "../config.ts";
import { augmentFor, evalLoader } from "../data.ts";
import type { TrainTask } from "../loop.ts";

/** The MAE of a config (its seed's initialisation). */
export function buildMae(c: MaeRunConfig, gpu: Gpu): Mae {
  return new Mae(gpu, { ...c.mae, encoder: c.encoder }, c.seed);
}

/** The masking of global step `step`: a function of the seed and the step. */
export function stepMasking(c: TrainConfig, mae: Mae, step: number, batch: number) {
  return mae.sampleMasking(new Rng(c.seed).fork("mask").fork(step), batch);
}

/**
 * Held-out masked-patch MSE, and the zero predictor's; `terms` adds named
 * per-batch scalars (SMAE's), averaged over the images like the MSE.
 */
export async function evaluateMae(
  c: TrainConfig,
  mae: Mae,
  ds: ImageDataset,
  gpu: Gpu,
  terms?: (images: Tensor, out: MaeOutput) => Record<string, Tensor>,
): Promise<Record<string, number>> {
  const loader = evalLoader(c, ds);
  let seen = 0, mseSum = 0, zero = 0, batches = 0;
  const sums: Record<string, number> = {};
  const t0 = performance.now();
  for await (const b of loader.epoch(0)) {
    const [n] = b.shape;
    const drop = new DropoutContext(false, 0, c.seed, 0);
    const masking = mae.sampleMasking(new Rng(c.seed).fork("eval-mask").fork(batches), n);
    const outs = noGrad(() =>
      tidy(() => {
        const images = tensor(gpu, b.images, b.shape);
        const out = mae.forward(images, masking, drop);
        // The trivial predictor: every pixel at the (standardised) mean, 0.
        const [B, T, P] = out.target.shape;
        const zeros = tensor(gpu, new Float32Array(out.target.size), [B * T, P]);
        const zeroLoss = mse(zeros, out.target.reshape([B * T, P]), out.mask.reshape([B * T]));
        return { mse: out.loss, zero: zeroLoss, ...terms?.(images, out) };
      })
    );
    for (const [k, t] of Object.entries(outs)) {
      const v = await t.item();
      t.dispose();
      if (k === "mse") mseSum += v * n;
      else if (k === "zero") zero += v * n;
      else sums[k] = (sums[k] ?? 0) + v * n;
    }
    seen += n;
    batches++;
  }
  const seconds = (performance.now() - t0) / 1000;
  const extra = Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, v / seen]));
  return { mse: mseSum / seen, mse_zero_predictor: zero / seen, seconds, images: seen, ...extra };
}

/** Mode pretrain. */
export function pretrainTask(c: PretrainConfig, gpu: Gpu): Promise<TrainTask> {
  const mae = buildMae(c, gpu);
  return Promise.resolve({
    saved: mae.stores.map((s) => ["", s] as const),
    trainable: mae.stores,
    augment: augmentFor(c),
    checkpointHint: "another model or config?",
    forward(batch, at) {
      const images = tensor(gpu, batch.images, batch.shape);
      const drop = new DropoutContext(true, c.encoder.dropout, c.seed, at.step);
      return { loss: mae.forward(images, stepMasking(c, mae, at.step, batch.shape[0]), drop).loss };
    },
    evaluate: (ds) => evaluateMae(c, mae, ds, gpu),
    destroy: () => mae.destroy(),
  });
}
