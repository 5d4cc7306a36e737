import { loadTinyImageNet, toFloatNCHW } from "../../src/data/mod.ts";
import { Classifier } from "../../src/models/classifier.ts";
import { Mae } from "../../src/models/mae.ts";
import type { VitConfig } from "../../src/models/vit.ts";
import { DropoutContext } from "../../src/nn.ts";
import { crossEntropy } from "../../src/ops/loss.ts";
import { AdamW } from "../../src/optim.ts";
import { Rng } from "../../src/rng.ts";
import { backward, noGrad } from "../../src/tape.ts";
import { tensor, tidy } from "../../src/tensor.ts";
import { assert } from "../_assert.ts";
import { gpuTest } from "../_helpers.ts";

const ROOT = new URL("../../fixtures/tiny-imagenet-200", import.meta.url).pathname;
const TINY: VitConfig = {
  imageSize: 64,
  channels: 3,
  patch: 8,
  width: 32,
  depth: 1,
  heads: 2,
  mlp: 64,
  dropout: 0,
};

/** The first `n` fixture training images as normalised NCHW floats, and their labels. */
async function handful(n: number) {
  const ds = await loadTinyImageNet("train", { root: ROOT, cacheDir: null });
  // Two images of each class, so a classifier has something to separate.
  const pick = Array.from({ length: n }, (_, i) => (i % 5) * 10 + Math.floor(i / 5));
  const size = 64 * 64 * 3;
  const u8 = new Uint8Array(n * size);
  pick.forEach((src, i) => u8.set(ds.images.subarray(src * size, (src + 1) * size), i * size));
  const images = toFloatNCHW(u8, n, 64, 64, 3, "batch", new Float32Array(n * size));
  return { images, labels: Int32Array.from(pick, (i) => ds.labels[i]) };
}

gpuTest(
  "a tiny MAE overfits a handful of images: masked-patch loss falls below a quarter of its start",
  async (gpu) => {
    const { images } = await handful(6);
    const mae = new Mae(gpu, {
      encoder: TINY,
      decoderWidth: 32,
      decoderDepth: 1,
      decoderHeads: 2,
      decoderMlp: 64,
      maskRatio: 0.75,
      masking: "random",
      normPixLoss: false,
    }, 3);
    const opts = mae.stores.map((s) => new AdamW(s, { lr: 3e-3 }));
    const x = tensor(gpu, images, [6, 3, 64, 64]);
    // The same masking every step: overfitting means memorising these patches.
    const masking = () => mae.sampleMasking(new Rng(5), 6);
    const step = () =>
      tidy(() => {
        for (const s of mae.stores) s.zeroGrad();
        const { loss } = mae.forward(x, masking(), new DropoutContext(true, 0, 0, 0));
        backward(loss);
        for (const o of opts) o.update();
        return loss;
      });
    const first = await step().item();
    for (let i = 0; i < 150; i++) step().dispose();
    const last = await noGrad(() =>
      mae.forward(x, masking(), new DropoutContext(false, 0, 0, 0)).loss
    ).item();
    assert.ok(last < first / 4, `masked MSE ${first} -> ${last}`);
    mae.destroy();
  },
);

gpuTest("a tiny classifier overfits a handful of images to 100% training accuracy", async (gpu) => {
  const { images, labels } = await handful(10);
  const clf = new Classifier(gpu, TINY, 5, 4);
  const opts = clf.stores.map((s) => new AdamW(s, { lr: 3e-3 }));
  const x = tensor(gpu, images, [10, 3, 64, 64]), y = tensor(gpu, labels, [10], "i32");
  for (let i = 0; i < 120; i++) {
    tidy(() => {
      for (const s of clf.stores) s.zeroGrad();
      backward(crossEntropy(clf.forward(x, new DropoutContext(true, 0, 0, i)), y));
      for (const o of opts) o.update();
    });
  }
  // Evaluate in training mode (batch statistics), as the overfit happened there.
  const logits = await noGrad(() => clf.forward(x, new DropoutContext(true, 0, 0, 0))).read();
  let correct = 0;
  for (let i = 0; i < 10; i++) {
    const row = Array.from(logits.subarray(i * 5, i * 5 + 5));
    if (row.indexOf(Math.max(...row)) === labels[i]) correct++;
  }
  assert.equal(correct, 10, `train accuracy ${correct}/10`);
  clf.destroy();
  clf.encoder.destroy();
});
