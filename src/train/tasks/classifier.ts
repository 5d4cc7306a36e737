/**
 * Modes `probe`, `finetune` and `scratch`: the ViT classifier
 * (src/models/classifier.ts) on cross-entropy. Probe and finetune start from
 * the encoder of `init` (a pretrain or DINO checkpoint); the probe trains the
 * head only, without dropout. Its extra state is the head's BatchNorm
 * running statistics. Also the top-1 evaluation the critic shares.
 * @module
 */

import type { Batch, ImageDataset } from "../../data/mod.ts";
import type { Gpu } from "../../gpu/device.ts";
import { Classifier } from "../../models/classifier.ts";
import { DropoutContext } from "../../nn.ts";
import { crossEntropy } from "../../ops/loss.ts";
import { noGrad } from "../../tape.ts";
import { type Tensor, tensor, tidy } from "../../tensor.ts";
import type { ClassifierConfig, TrainConfig } from "../config.ts";
import { augmentFor, evalLoader } from "../data.ts";
import type { TrainTask } from "../loop.ts";
import { readCheckpoint } from "../safetensors.ts";

/** The batch's images and integer labels as tensors. */
export function batchTensors(gpu: Gpu, batch: Batch): [Tensor, Tensor] {
  return [
    tensor(gpu, batch.images, batch.shape),
    tensor(gpu, batch.labels, [batch.labels.length], "i32"),
  ];
}

/** Held-out top-1 accuracy of the class scores `logits` gives (dropout off). */
export async function evaluateAccuracy(
  c: TrainConfig,
  ds: ImageDataset,
  gpu: Gpu,
  logits: (images: Tensor, drop: DropoutContext) => Tensor,
): Promise<Record<string, number>> {
  const loader = evalLoader(c, ds);
  let correct = 0, seen = 0;
  const t0 = performance.now();
  for await (const b of loader.epoch(0)) {
    const [n] = b.shape;
    const drop = new DropoutContext(false, 0, c.seed, 0);
    const out = noGrad(() => tidy(() => logits(tensor(gpu, b.images, b.shape), drop)));
    const v = await out.read() as Float32Array;
    out.dispose();
    const k = v.length / n;
    for (let i = 0; i < n; i++) {
      let best = 0;
      for (let j = 1; j < k; j++) if (v[i * k + j] > v[i * k + best]) best = j;
      if (best === b.labels[i]) correct++;
    }
    seen += n;
  }
  return { accuracy: correct / seen, seconds: (performance.now() - t0) / 1000, images: seen };
}

/** The classifier of a config: fresh (scratch) or on the encoder of `init` (probe, finetune). */
async function buildClassifier(
  c: ClassifierConfig,
  gpu: Gpu,
  classes: number,
): Promise<Classifier> {
  if (c.mode === "scratch") {
    return new Classifier(gpu, c.encoder, classes, c.seed, undefined, c.encoder.pool);
  }
  const enc = Classifier.freshEncoder(gpu, c.encoder, c.seed);
  const file = c.init!;
  // The encoder's architecture must be the one trained; dropout and the heads may differ.
  const { imageSize, channels, patch, width, depth, heads, mlp } = c.encoder;
  const { tensors } = await readCheckpoint(file, "init", {
    imageSize,
    channels,
    patch,
    width,
    depth,
    heads,
    mlp,
  });
  enc.loadAll(
    (name) => tensors.get(name)?.data as Float32Array | undefined,
    `init checkpoint ${file}`,
    "was it a pretrain of this model?",
  );
  return new Classifier(gpu, c.encoder, classes, c.seed, enc, c.encoder.pool);
}

const BN = ["bn.running_mean", "bn.running_var"] as const;

/** Modes probe, finetune and scratch. */
export async function classifierTask(
  c: ClassifierConfig,
  gpu: Gpu,
  train: ImageDataset,
): Promise<TrainTask> {
  const clf = await buildClassifier(c, gpu, train.classes.length);
  const probe = c.mode === "probe";
  clf.setEncoderTrainable(!probe);
  const bn = () => [clf.bn.runningMean, clf.bn.runningVar] as const;
  return {
    saved: clf.stores.map((s) => ["", s] as const),
    trainable: probe ? [clf.head] : clf.stores,
    augment: augmentFor(c),
    checkpointHint: "another model or config?",
    forward(batch, at) {
      const [images, labels] = batchTensors(gpu, batch);
      const drop = new DropoutContext(true, probe ? 0 : c.encoder.dropout, c.seed, at.step);
      return { loss: crossEntropy(clf.forward(images, drop), labels) };
    },
    evaluate: (ds) => evaluateAccuracy(c, ds, gpu, (x, drop) => clf.forward(x, drop)),
    async saveState() {
      const tensors = new Map();
      for (const [i, t] of bn().entries()) {
        tensors.set(BN[i], { shape: [...t.shape], data: await t.read() as Float32Array });
      }
      return { tensors };
    },
    loadState({ tensors }) {
      for (const [i, t] of bn().entries()) {
        const v = tensors.get(BN[i]);
        if (v) t.gpu.upload(t.binding, v.data);
      }
    },
    destroy() {
      clf.destroy();
      clf.encoder.destroy();
    },
  };
}
