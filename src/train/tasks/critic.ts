/**
 * Mode `critic`: SqueezeNet 1.1 (src/models/squeezenet.ts) trained from
 * scratch as a classifier on cross-entropy; mode smae later loads its
 * feature layers as the frozen perceptual critic.
 * @module
 */

import type { ImageDataset } from "../../data/mod.ts";
import type { Gpu } from "../../gpu/device.ts";
import { SqueezeNet } from "../../models/squeezenet.ts";
import { DropoutContext } from "../../nn.ts";
import { crossEntropy } from "../../ops/loss.ts";
import type { CriticConfig } from "../config.ts";
import { augmentFor } from "../data.ts";
import type { TrainTask } from "../loop.ts";
import { batchTensors, evaluateAccuracy } from "./classifier.ts";

/** Mode critic. */
export function criticTask(c: CriticConfig, gpu: Gpu, train: ImageDataset): Promise<TrainTask> {
  const net = new SqueezeNet(gpu, c.encoder.channels, train.classes.length, c.seed);
  return Promise.resolve({
    saved: [["", net.store]],
    trainable: [net.store],
    augment: augmentFor(c),
    checkpointHint: "another model or config?",
    forward(batch, at) {
      const [images, labels] = batchTensors(gpu, batch);
      const drop = new DropoutContext(true, c.encoder.dropout, c.seed, at.step);
      return { loss: crossEntropy(net.forward(images, drop), labels) };
    },
    evaluate: (ds) => evaluateAccuracy(c, ds, gpu, (x, drop) => net.forward(x, drop)),
    destroy: () => net.destroy(),
  });
}
