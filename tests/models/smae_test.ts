import { dot } from "../../src/audit.ts";
import { Mae } from "../../src/models/mae.ts";
import { Critic, LossBalance, smaeTerms } from "../../src/models/smae.ts";
import { squeezeNetSpecs } from "../../src/models/squeezenet.ts";
import { imagePatches } from "../../src/models/vit.ts";
import { DropoutContext } from "../../src/nn.ts";
import { type ParamStore, sealCheckpoint } from "../../src/params.ts";
import { randomMasking } from "../../src/ops/patch.ts";
import { Rng } from "../../src/rng.ts";
import { backward, noGrad } from "../../src/tape.ts";
import { keep, tensor, tidy } from "../../src/tensor.ts";
import { toConfig } from "../../src/train/config.ts";
import {
  decodeSafetensors,
  encodeSafetensors,
  type NamedArray,
} from "../../src/train/safetensors.ts";
import { train } from "../../src/train/trainer.ts";
import { assert, assertRejects, assertThrows } from "../_assert.ts";
import { gpuTest, rand } from "../_helpers.ts";

Deno.test("LossBalance, paper scaling: c = initial pixel / initial perceptual, so both terms start equal", () => {
  const b = new LossBalance({ alpha: 0.5, scaling: "paper", calibrationSteps: 10 });
  assert.ok(b.calibrating);
  b.calibrate(0.8, 0.02);
  assert.ok(!b.calibrating, "the paper's c is measured once");
  b.calibrate(5, 5); // ignored after calibration
  const [wp, wq] = b.weights();
  assert.equal(wp, 0.5);
  assert.ok(Math.abs(wq - 0.5 * 40) < 1e-12);
  // The documented start ratio: weighted perceptual / weighted pixel = alpha / (1 - alpha).
  assert.ok(Math.abs((wq * 0.02) / (wp * 0.8) - 1) < 1e-12);
  const one = new LossBalance({ alpha: 1, scaling: "paper", calibrationSteps: 10 });
  one.calibrate(0.8, 0.02);
  assert.deepEqual(one.weights(), [0, 40]);
});

Deno.test("LossBalance, code scaling: each term divided by the mean of its reciprocals over the first steps", () => {
  const b = new LossBalance({ alpha: 0.5, scaling: "code", calibrationSteps: 3 });
  const pts: [number, number][] = [[1, 0.1], [0.5, 0.2], [0.25, 0.4], [9, 9]];
  b.calibrate(...pts[0]);
  // After the first step each scaled term is exactly 1 on that step.
  const [wp0, wq0] = b.weights();
  assert.ok(Math.abs(wp0 * 1 - 0.5) < 1e-12 && Math.abs(wq0 * 0.1 - 0.5) < 1e-12);
  for (const p of pts.slice(1)) b.calibrate(...p);
  // The loss/combined.py rule: s = mean over calibration steps of 1 / loss (the 4th point is past them).
  const sp = (1 / 1 + 1 / 0.5 + 1 / 0.25) / 3, sq = (1 / 0.1 + 1 / 0.2 + 1 / 0.4) / 3;
  const [wp, wq] = b.weights();
  assert.ok(Math.abs(wp - 0.5 * sp) < 1e-12 && Math.abs(wq - 0.5 * sq) < 1e-12);
  // Checkpoint round trip.
  const c = new LossBalance({ alpha: 0.5, scaling: "code", calibrationSteps: 3 });
  c.load(JSON.parse(JSON.stringify(b.state())));
  assert.deepEqual(c.weights(), b.weights());
  assert.ok(!c.calibrating);
  assertThrows(() => new LossBalance(b.config).weights(), "before calibration");
  assertThrows(() => b.calibrate(NaN, 1), "positive finite");
});

const ENC = {
  imageSize: 8,
  channels: 3,
  patch: 4,
  width: 8,
  depth: 1,
  heads: 2,
  mlp: 12,
  dropout: 0,
};
const MAE = { decoderWidth: 8, decoderDepth: 1, decoderHeads: 2, decoderMlp: 12 };

function randomCritic(gpu: Parameters<typeof Critic.fromValues>[0], sigmoid: boolean) {
  const r = new Rng(21);
  const values = new Map<string, Float32Array>();
  for (const s of squeezeNetSpecs(3, 1, 0, true)) {
    const a = s.shape.length === 4 ? Math.sqrt(6 / (s.shape[1] * s.shape[2] * s.shape[3])) : 0.1;
    values.set(s.name, r.uniformArray(s.init.length, -a, a));
  }
  return { critic: Critic.fromValues(gpu, 3, values, sigmoid), values };
}

for (const scaling of ["paper", "code"] as const) {
  gpuTest(
    `an SMAE step's gradient matches finite differences on a tiny model (${scaling} scaling), ` +
      `and the frozen critic gets none`,
    async (gpu) => {
      const B = 3;
      const mae = new Mae(gpu, {
        encoder: ENC,
        ...MAE,
        maskRatio: 0.5,
        masking: "random",
        normPixLoss: false,
      }, 7);
      const { critic } = randomCritic(gpu, scaling === "code");
      const balance = new LossBalance({ alpha: 0.5, scaling, calibrationSteps: 10 });
      balance.calibrate(0.9, 0.05);
      const images = tensor(gpu, rand(3, B * 3 * 8 * 8), [B, 3, 8, 8]);
      const masking = noGrad(() =>
        tidy(() => {
          const m = randomMasking(tensor(gpu, rand(4, B * 4, 0, 1), [B, 4]), 0.5);
          return { idsKeep: keep(m.idsKeep), idsRestore: keep(m.idsRestore), mask: keep(m.mask) };
        })
      );
      const drop = new DropoutContext(false, 0, 0, 0);
      const lossOf = (record: boolean) =>
        tidy(() => {
          const patches = imagePatches(ENC, images);
          const pred = mae.reconstruct(patches, masking, drop);
          const l = balance.combine(smaeTerms(critic, ENC, images, pred, patches));
          if (record) backward(l);
          return l;
        });
      for (const s of [...mae.stores, critic.store]) s.zeroGrad();
      const l0 = lossOf(true);
      assert.ok(Number.isFinite(await l0.item()));
      // The critic is frozen: its gradient buffer stays zero.
      const cg = new Float32Array(
        await gpu.download({
          buffer: critic.store.grads,
          offset: 0,
          size: critic.store.length * 4,
        }),
      );
      assert.ok(cg.every((v) => v === 0), "critic parameters received a gradient");

      // Directional derivative per store: (L(θ + h d) - L(θ - h d)) / 2h vs grad · d.
      const host = async (s: ParamStore) =>
        new Float32Array(await gpu.download({ buffer: s.data, offset: 0, size: s.length * 4 }));
      const set = (s: ParamStore, v: Float32Array) =>
        gpu.upload({ buffer: s.data, offset: 0, size: v.byteLength }, v);
      for (const [i, store] of mae.stores.entries()) {
        const theta = await host(store);
        const g = new Float32Array(
          await gpu.download({ buffer: store.grads, offset: 0, size: store.length * 4 }),
        );
        // A sparse random direction (32 coordinates): perturbing every
        // parameter at once crosses too many ReLU and max-pool kinks for f32.
        const d = new Float32Array(theta.length);
        const pick = new Rng(30 + i);
        for (let k = 0; k < 32; k++) {
          d[Math.floor(pick.uniform(0, store.count))] = pick.uniform(-1, 1);
        }
        const h = 1e-3;
        const at = async (sign: number) => {
          set(store, theta.map((v, j) => v + sign * h * d[j]));
          const l = noGrad(() => lossOf(false));
          return await l.item();
        };
        const fd = ((await at(1)) - (await at(-1))) / (2 * h);
        set(store, theta);
        const an = dot(g, d);
        assert.ok(Math.abs(an) > 1e-3, `the direction must see a gradient (${an})`);
        assert.ok(
          Math.abs(fd - an) <= 2e-3 + 2e-2 * Math.abs(an),
          `${i ? "decoder" : "encoder"}: finite difference ${fd} vs tape ${an}`,
        );
      }
      mae.destroy();
      critic.destroy();
    },
  );
}

/** The model fields a mode-critic checkpoint of 3-channel images is sealed with. */
const CRITIC_MODEL = { imageSize: 64, channels: 3, dropout: 0.5 };

/** Writes a critic checkpoint as mode `critic` would (features + classifier names, sealed). */
async function writeCritic(dir: string, values: Map<string, Float32Array>): Promise<string> {
  const tensors = new Map<string, NamedArray>();
  for (const s of squeezeNetSpecs(3, 5, 0)) {
    tensors.set(s.name, { shape: [...s.shape], data: values.get(s.name) ?? s.init });
  }
  const path = `${dir}/critic.safetensors`;
  const seal = sealCheckpoint(tensors, CRITIC_MODEL);
  await Deno.writeFile(path, encodeSafetensors(tensors, { mode: "critic", ...seal }));
  return path;
}

const FIXTURES = new URL("../../fixtures/tiny-imagenet-200", import.meta.url).pathname;

for (const scaling of ["paper", "code"] as const) {
  gpuTest(
    `mode smae (${scaling} scaling): the first step's loss has both terms at one scale, ` +
      `and a resumed run keeps the scales`,
    async (gpu) => {
      const dir = await Deno.makeTempDir();
      const { critic, values } = randomCritic(gpu, false);
      critic.destroy();
      const config = toConfig({
        mode: "smae",
        critic: await writeCritic(dir, values),
        smae: { alpha: 0.5, scaling, calibrationSteps: 2 },
        data: { dataset: "tiny-imagenet", root: FIXTURES, fit: "resize", normalize: "batch" },
        encoder: { ...ENC, imageSize: 16 },
        mae: { ...MAE, maskRatio: 0.75 },
        logEvery: 1,
        optim: {
          name: "adamw",
          lr: 1e-3,
          weightDecay: 0.05,
          betas: [0.9, 0.95],
          warmupEpochs: 0,
          epochs: 1,
          batchSize: 10,
        },
      }, "smae-test");
      const out = `${dir}/run`;
      await train(config, { out, gpu, quiet: true, stopAfterSteps: 3 });
      const { metadata } = decodeSafetensors(
        await Deno.readFile(`${out}/checkpoint.safetensors`),
        "ckpt",
      );
      const points = JSON.parse(metadata.smae_loss_balance).points as [number, number][];
      assert.equal(points.length, scaling === "paper" ? 1 : 2);
      const [p0, q0] = points[0];
      assert.ok(p0 > 0 && q0 > 0);
      const first = JSON.parse((await Deno.readTextFile(`${out}/metrics.jsonl`)).split("\n")[0]);
      // paper: (1 - a) p0 + a (p0 / q0) q0 = p0; code: (1 - a) p0 / p0 + a q0 / q0 = 1.
      const want = scaling === "paper" ? p0 : 1;
      assert.ok(Math.abs(first.loss - want) < 1e-5 * Math.max(1, want), `${first.loss} vs ${want}`);
      // Resume to the end: the stored calibration points are kept, not re-measured.
      const s = await train(config, { out, gpu, quiet: true, resume: true });
      const after = decodeSafetensors(await Deno.readFile(s.checkpoint), "ckpt").metadata;
      assert.deepEqual(JSON.parse(after.smae_loss_balance).points.slice(0, points.length), points);
      assert.ok(s.eval.perceptual > 0 && s.eval.mse_all > 0, JSON.stringify(s.eval));
      await Deno.remove(dir, { recursive: true });
    },
  );
}

gpuTest(
  "mode smae refuses a missing critic and a critic of another shape, naming them",
  async () => {
    assertThrows(
      () => toConfig({ mode: "smae" }, "x.yaml"),
      "x.yaml: critic is required for mode smae",
    );
    const dir = await Deno.makeTempDir();
    const path = `${dir}/bad.safetensors`;
    // Sealed for the right channels, so that the shape is what is refused.
    const bad = new Map([["features.0.weight", { shape: [1], data: new Float32Array(1) }]]);
    await Deno.writeFile(path, encodeSafetensors(bad, sealCheckpoint(bad, CRITIC_MODEL)));
    const config = toConfig({
      mode: "smae",
      critic: path,
      data: { dataset: "tiny-imagenet", root: FIXTURES, fit: "resize" },
      encoder: { ...ENC, imageSize: 16 },
      mae: MAE,
      optim: { epochs: 1, warmupEpochs: 0, batchSize: 10 },
    }, "x.yaml");
    await assertRejects(
      () => train(config, { out: `${dir}/run`, quiet: true }),
      "features.0.weight",
    );
    await Deno.remove(dir, { recursive: true });
  },
);
