import { assertClose, dot } from "../../src/audit.ts";
import { SqueezeNet, squeezeNetSpecs } from "../../src/models/squeezenet.ts";
import { DropoutContext } from "../../src/nn.ts";
import { mul } from "../../src/ops/elementwise.ts";
import { sumAll } from "../../src/ops/reduce.ts";
import { squeezeNetRef } from "../../src/ref/squeezenet.ts";
import { Rng } from "../../src/rng.ts";
import { backward } from "../../src/tape.ts";
import { tensor, tidy } from "../../src/tensor.ts";
import { toConfig } from "../../src/train/config.ts";
import { train } from "../../src/train/trainer.ts";
import { assert } from "../_assert.ts";
import { gpuTest, gradData, leaf, rand } from "../_helpers.ts";

/** Random parameters with He-scaled weights and non-zero biases (positive in the last layer, so its ReLU is mostly open). */
function randomParams(channels: number, classes: number, seed: number): Map<string, Float32Array> {
  const r = new Rng(seed);
  const out = new Map<string, Float32Array>();
  for (const s of squeezeNetSpecs(channels, classes, 0)) {
    const n = s.init.length;
    if (s.shape.length === 4) {
      const fanIn = s.shape[1] * s.shape[2] * s.shape[3];
      const a = Math.sqrt(6 / fanIn);
      out.set(s.name, r.uniformArray(n, -a, a));
    } else {
      const last = s.name.startsWith("classifier");
      out.set(s.name, r.uniformArray(n, last ? 0.3 : -0.1, last ? 0.6 : 0.1));
    }
  }
  return out;
}

gpuTest("SqueezeNet 1.1 declares torchvision's layers: 722k features + the classifier conv", () => {
  const specs = squeezeNetSpecs(3, 1000, 0);
  const count = specs.reduce((a, s) => a + s.init.length, 0);
  // torchvision.models.squeezenet1_1(): 1,235,496 parameters for 1000 classes.
  assert.equal(count, 1235496);
  const features = squeezeNetSpecs(3, 1000, 0, true);
  assert.deepEqual(
    features.map((s) => s.name).filter((n) => n.endsWith("weight")),
    [
      "features.0.weight",
      "features.3.squeeze.weight",
      "features.3.expand1x1.weight",
      "features.3.expand3x3.weight",
      "features.4.squeeze.weight",
      "features.4.expand1x1.weight",
      "features.4.expand3x3.weight",
    ],
  );
  // The features-only declaration has the full network's values for the same names.
  const full = new Map(specs.map((s) => [s.name, s.init]));
  for (const s of features) assert.deepEqual(s.init, full.get(s.name), s.name);
  // Final convolution ~ N(0, 0.01^2), biases zero.
  const last = full.get("classifier.1.weight")!;
  const sd = Math.sqrt(dot(last, last) / last.length);
  assert.ok(sd > 0.009 && sd < 0.011, `classifier.1.weight std ${sd}`);
  assert.ok(full.get("features.12.expand3x3.bias")!.every((v) => v === 0));
});

for (const [n, c, hw, classes] of [[2, 1, 25, 7], [1, 3, 33, 10]] as const) {
  gpuTest(
    `SqueezeNet forward matches the f64 reference and its gradients match finite differences ` +
      `(${n}x${c}x${hw}x${hw}, ${classes} classes)`,
    async (gpu) => {
      const params = randomParams(c, classes, 11 + c);
      const net = new SqueezeNet(gpu, c, classes, 0);
      net.store.load(params);
      const X = rand(5 + c, n * c * hw * hw);
      const G = rand(6 + c, n * classes);
      const shape: [number, number, number, number] = [n, c, hw, hw];
      const x = leaf(gpu, X, shape);
      const drop = new DropoutContext(false, 0.5, 0, 0);
      const logits = tidy(() => {
        const y = net.forward(x, drop);
        backward(sumAll(mul(y, tensor(gpu, G, y.shape))));
        return y;
      });
      const ref = squeezeNetRef(X, shape, params);
      assert.deepEqual(logits.shape, ref.shape);
      assertClose(await logits.read(), ref.y, { atol: 1e-4, rtol: 1e-3 }, "logits");

      // d(sum G * logits) by central differences of the f64 reference, at
      // sampled coordinates of the input and of parameters spread over the depth.
      const loss = (p: Map<string, ArrayLike<number>>, xs: ArrayLike<number>) =>
        dot(squeezeNetRef(xs, shape, p).y, G);
      const h = 1e-5;
      const pick = new Rng(9);
      const got: number[] = [], want: number[] = [];
      const gx = await gradData(x);
      for (let k = 0; k < 6; k++) {
        const i = Math.floor(pick.uniform(0, X.length));
        const xs = Float64Array.from(X);
        xs[i] += h;
        const up = loss(params, xs);
        xs[i] -= 2 * h;
        want.push((up - loss(params, xs)) / (2 * h));
        got.push(gx[i]);
      }
      const names = [
        "features.0.weight",
        "features.3.expand3x3.weight",
        "features.4.squeeze.bias",
        "features.7.expand1x1.weight",
        "features.10.squeeze.weight",
        "features.12.expand3x3.weight",
        "classifier.1.weight",
        "classifier.1.bias",
      ];
      for (const name of names) {
        const g = await gradData(net.store.get(name));
        for (let k = 0; k < 3; k++) {
          const i = Math.floor(pick.uniform(0, g.length));
          const p = new Map<string, ArrayLike<number>>(params);
          const v = Float64Array.from(params.get(name)!);
          p.set(name, v);
          v[i] += h;
          const up = loss(p, X);
          v[i] -= 2 * h;
          want.push((up - loss(p, X)) / (2 * h));
          got.push(g[i]);
        }
      }
      const scale = Math.max(...want.map(Math.abs));
      assertClose(got, want, { atol: 1e-3 * scale, rtol: 1e-2 }, "dloss/d(input, params)");
      net.destroy();
    },
  );
}

gpuTest(
  "mode critic: SqueezeNet trained from scratch on the fixture classes beats chance on held-out images",
  async (gpu) => {
    const out = await Deno.makeTempDir();
    const config = toConfig({
      mode: "critic",
      data: {
        dataset: "tiny-imagenet",
        root: new URL("../../fixtures/tiny-imagenet-200", import.meta.url).pathname,
        normalize: "imagenet",
      },
      // 64x64 keeps a 3x3 map before the final ReLU and average pool; at 1x1
      // (32x32 inputs) Adam's first steps often switch whole classes off.
      encoder: { imageSize: 64, channels: 3, dropout: 0 },
      logEvery: 4,
      optim: {
        name: "adamw",
        lr: 1e-3,
        weightDecay: 0.15,
        betas: [0.9, 0.999],
        warmupEpochs: 2,
        epochs: 10,
        batchSize: 10,
      },
    }, "critic-test");
    const s = await train(config, { out, gpu, quiet: true });
    // 5 classes: chance is 20% on the 20 validation images.
    assert.ok(s.eval.accuracy >= 0.4, `held-out accuracy ${s.eval.accuracy}`);
    const lines = (await Deno.readTextFile(`${out}/metrics.jsonl`)).trim().split("\n")
      .map((l) => JSON.parse(l)).filter((r) => r.type === "epoch");
    assert.ok(
      lines.at(-1).loss < 0.9 * lines[0].loss,
      `training loss falls (${lines[0].loss} -> ${lines.at(-1).loss})`,
    );
    await Deno.remove(out, { recursive: true });
  },
);
