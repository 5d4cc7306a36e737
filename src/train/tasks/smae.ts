/**
 * Mode `smae`: the MAE with the frozen critic's perceptual loss
 * (src/models/smae.ts). Its extra state is the loss balance: calibrated on the
 * first steps (which read their two terms back), then kept in the checkpoint
 * so a resumed run does not re-measure it. The critic stays in its own file.
 * @module
 */

import type { Gpu } from "../../gpu/device.ts";
import { Critic, LossBalance, smaeTerms } from "../../models/smae.ts";
import { imagePatches } from "../../models/vit.ts";
import { DropoutContext } from "../../nn.ts";
import { tensor } from "../../tensor.ts";
import type { SmaeRunConfig } from "../config.ts";
import { augmentFor } from "../data.ts";
import type { TrainTask } from "../loop.ts";
import { readCheckpoint } from "../safetensors.ts";
import { buildMae, evaluateMae, stepMasking } from "./mae.ts";

/** The frozen SMAE critic from a checkpoint written by mode `critic`. */
async function loadCritic(c: SmaeRunConfig, gpu: Gpu): Promise<Critic> {
  const file = c.critic!;
  const { tensors } = await readCheckpoint(file, "critic", { channels: c.encoder.channels });
  const values = new Map<string, Float32Array>();
  for (const [name, t] of tensors) values.set(name, t.data as Float32Array);
  return Critic.fromValues(gpu, c.encoder.channels, values, c.smae.scaling === "code", file);
}

/** Mode smae. */
export async function smaeTask(c: SmaeRunConfig, gpu: Gpu): Promise<TrainTask> {
  const mae = buildMae(c, gpu);
  const critic = await loadCritic(c, gpu);
  const balance = new LossBalance(c.smae);
  return {
    saved: mae.stores.map((s) => ["", s] as const),
    trainable: mae.stores,
    augment: augmentFor(c),
    checkpointHint: "another model or config?",
    async forward(batch, at) {
      const images = tensor(gpu, batch.images, batch.shape);
      const drop = new DropoutContext(true, c.encoder.dropout, c.seed, at.step);
      const masking = stepMasking(c, mae, at.step, batch.shape[0]);
      const patches = imagePatches(c.encoder, images);
      const pred = mae.reconstruct(patches, masking, drop);
      const terms = smaeTerms(critic, c.encoder, images, pred, mae.target(patches));
      if (balance.calibrating) {
        balance.calibrate(await terms.pixel.item(), await terms.perceptual.item());
      }
      return { loss: balance.combine(terms) };
    },
    // Also its own terms, unscaled: MSE over all patches and the perceptual MSE.
    evaluate: (ds) =>
      evaluateMae(c, mae, ds, gpu, (images, out) => {
        const t = smaeTerms(critic, c.encoder, images, out.pred, out.target);
        return { mse_all: t.pixel, perceptual: t.perceptual };
      }),
    saveState: () =>
      Promise.resolve({ metadata: { smae_loss_balance: JSON.stringify(balance.state()) } }),
    loadState({ metadata }) {
      if (metadata.smae_loss_balance) balance.load(JSON.parse(metadata.smae_loss_balance));
    },
    destroy() {
      mae.destroy();
      critic.destroy();
    },
  };
}
