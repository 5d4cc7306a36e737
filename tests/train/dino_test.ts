import { loadTinyImageNet } from "../../src/data/mod.ts";
import { Classifier } from "../../src/models/classifier.ts";
import { Dino, LAST_LAYER } from "../../src/models/dino.ts";
import { adamwRef } from "../../src/ref/adamw.ts";
import { ConfigError, dinoLocalSize, ofMode, parseConfig } from "../../src/train/config.ts";
import { cosineSchedule, detectCollapse, teacherTemperature } from "../../src/train/tasks/dino.ts";
import { decodeSafetensors } from "../../src/train/safetensors.ts";
import { learningRate } from "../../src/train/schedule.ts";
import { train } from "../../src/train/trainer.ts";
import { expectNonFinite } from "./_nonfinite.ts";
import { assertClose } from "../../src/audit.ts";
import { assert, assertThrows } from "../_assert.ts";
import { gpuTest } from "../_helpers.ts";

const ROOT = new URL("../../fixtures/tiny-imagenet-200", import.meta.url).pathname;
const MODEL =
  "{ imageSize: 64, channels: 3, patch: 8, width: 32, depth: 1, heads: 2, mlp: 64, dropout: 0.1 }";

function dinoConfig(extra = "") {
  return ofMode(
    parseConfig(`
mode: dino
seed: 42
data: { dataset: tiny-imagenet, normalize: batch, augment: dino }
encoder: ${MODEL}
dino: { outDim: 256, hidden: 64, bottleneck: 32, teacherMomentum: 0.99, warmupTeacherTempEpochs: 2 }
optim: { name: adamw, lr: 1.0e-3, minLr: 1.0e-6, weightDecay: 0.04, betas: [0.9, 0.999], warmupEpochs: 2, epochs: 8, batchSize: 10 }
checkpointEvery: 1000
logEvery: 5
${extra}`),
    "dino",
  );
}

Deno.test("DINO schedules: cosine from start to end, teacher temperature warm-up as np.linspace", () => {
  assert.ok(Math.abs(cosineSchedule(0.04, 0.4, 0, 100) - 0.04) < 1e-15);
  assert.ok(Math.abs(cosineSchedule(0.04, 0.4, 50, 100) - 0.22) < 1e-12);
  assert.ok(Math.abs(cosineSchedule(0.9995, 1, 100, 100) - 1) < 1e-15);
  assert.equal(teacherTemperature(0.02, 0.04, 30, 0), 0.02);
  assert.ok(Math.abs(teacherTemperature(0.02, 0.04, 30, 29) - 0.04) < 1e-15);
  assert.equal(teacherTemperature(0.02, 0.04, 30, 31), 0.04);
});

Deno.test("detectCollapse() needs 5 consecutive logged steps past a bound, and names the direction", () => {
  assert.equal(detectCollapse([0.5, 0.01, 0.01, 0.01, 0.01, 0.5, 0.01]), "none");
  assert.equal(detectCollapse([0.5, 0.01, 0.02, 0.01, 0.03, 0.04]), "one-hot");
  assert.equal(detectCollapse([0.97, 0.99, 0.98, 0.99, 0.999]), "uniform");
});

Deno.test("dino configs are validated, naming the file and field", () => {
  assertThrows(
    () => parseConfig("mode: dino\n", "x.yaml"),
    "x.yaml: data.augment",
  );
  assertThrows(
    () => parseConfig("mode: pretrain\ndata: { augment: dino }\n", "p.yaml"),
    "p.yaml: data.augment dino is only for mode dino",
  );
  // Local crops: their size must be a multiple of the patch (and fit the image).
  const local = (d: string) =>
    ofMode(
      parseConfig(
        `mode: dino\ndata: { augment: dino }\nencoder: { imageSize: 64, patch: 8 }\ndino: ${d}\n`,
        "l.yaml",
      ),
      "dino",
    );
  assertThrows(
    () => local("{ localCrops: 2, localCropSize: 20 }"),
    "l.yaml: dino.localCropSize 20 is not a multiple of encoder.patch 8",
  );
  assertThrows(() => local("{ localCrops: 2, localCropSize: 72 }"), "l.yaml: dino.localCropSize");
  assertThrows(() => local("{ localCrops: 17 }"), "l.yaml: dino.localCrops");
  assertThrows(
    () => local("{ localCrops: 2, localCropScale: [0.4, 0.05] }"),
    "l.yaml: dino.localCropScale[1]",
  );
  const ok = local("{ localCrops: 2 }");
  assert.equal(ok.dino.localCrops, 2);
  assert.deepEqual(ok.dino.localCropScale, [0.05, 0.4]);
  assert.equal(dinoLocalSize(ok), 32, "default: imageSize / 2");
  assert.equal(
    dinoLocalSize({ encoder: { ...ok.encoder, imageSize: 28, patch: 4 }, dino: ok.dino }),
    16,
  );
  assert.equal(dinoLocalSize(local("{ localCrops: 2, localCropSize: 24 }")), 24);
  assertThrows(
    () =>
      parseConfig("mode: dino\ndata: { augment: dino }\ndino: { teacherInit: ema }\n", "t.yaml"),
    "t.yaml: dino.teacherInit must be copy or separate",
  );
  assertThrows(
    () => parseConfig("mode: dino\ndata: { augment: dino }\ndino: { studentTemp: 0 }\n", "s.yaml"),
    "dino.studentTemp",
  );
  assert.ok(new ConfigError("f", "m") instanceof Error);
});

gpuTest(
  "a short DINO run on fixture data brings the student toward the teacher without collapse, and a finetune loads the teacher's encoder",
  async (gpu) => {
    const [trainDs, val] = await Promise.all([
      loadTinyImageNet("train", { root: ROOT, cacheDir: null }),
      loadTinyImageNet("val", { root: ROOT, cacheDir: null }),
    ]);
    const splits = { train: trainDs, eval: val };
    const out = await Deno.makeTempDir();
    const s = await train(dinoConfig(), { out, gpu, quiet: true, splits });
    assert.equal(s.mode, "dino");
    assert.equal(s.collapse, "none");
    const lines = (await Deno.readTextFile(`${out}/metrics.jsonl`)).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    const steps = lines.filter((l) => l.type === "train");
    assert.equal(steps.length, 40, "8 epochs x 5 steps");
    for (const l of steps) {
      assert.ok(
        l.teacher_entropy > 0 && l.teacher_entropy < Math.log(256),
        "entropy in (0, log K)",
      );
    }
    // Norms are read once per log interval and carried by that interval's last step.
    const normed = steps.filter((l) => l.centre_norm !== undefined);
    assert.ok(normed.length >= 1 && normed.length < steps.length);
    for (const l of normed) {
      assert.ok(Number.isFinite(l.centre_norm) && Number.isFinite(l.grad_norm));
    }
    assert.ok(normed.at(-1).step === steps.at(-1).step, "the run's last step carries the norms");
    // The loss is H(teacher) + KL(teacher || student); centring raises the first
    // term from the sharp initial teacher, the student lowers the second.
    const kl = (e: number) => {
      const xs = steps.filter((l) => l.epoch === e).map((l) => l.loss - l.teacher_entropy);
      return xs.reduce((a, b) => a + b, 0) / xs.length;
    };
    assert.ok(
      kl(7) < 0.8 * kl(0),
      `KL(teacher || student) falls: epoch 0 ${kl(0)}, epoch 7 ${kl(7)}`,
    );
    const frac = s.eval.entropy_fraction;
    assert.ok(frac > 0.1 && frac < 0.9, `held-out entropy fraction ${frac} well inside (0, 1)`);

    // The checkpoint: the teacher under the classifier's encoder names, the student apart.
    const ckpt = decodeSafetensors(await Deno.readFile(s.checkpoint), s.checkpoint).tensors;
    const enc = Classifier.freshEncoder(gpu, dinoConfig().encoder, 1);
    for (const name of enc.params.keys()) {
      assert.ok(ckpt.has(name) && ckpt.has(`student.${name}`), name);
    }
    enc.destroy();
    const name = "encoder.blocks.0.fc1.w";
    assert.notDeepEqual(ckpt.get(name)!.data, ckpt.get(`student.${name}`)!.data);

    // Fine-tuning with learning rate 0 keeps the loaded encoder: it must be the teacher's.
    const ft = parseConfig(`
mode: finetune
seed: 42
data: { dataset: tiny-imagenet, normalize: imagenet }
encoder: ${MODEL}
optim: { name: adamw, lr: 0, weightDecay: 0, betas: [0.9, 0.999], warmupEpochs: 0, epochs: 1, batchSize: 10 }
init: ${s.checkpoint}
checkpointEvery: 1000
logEvery: 5
`);
    const ftOut = await Deno.makeTempDir();
    const fs = await train(ft, { out: ftOut, gpu, quiet: true, splits });
    const after = decodeSafetensors(await Deno.readFile(fs.checkpoint), fs.checkpoint).tensors;
    assert.deepEqual(
      after.get(name)!.data,
      ckpt.get(name)!.data,
      "finetune starts from the teacher",
    );
  },
);

gpuTest(
  "a DINO run stopped after a checkpoint and resumed logs the same losses as an uninterrupted one",
  async (gpu) => {
    const [trainDs, val] = await Promise.all([
      loadTinyImageNet("train", { root: ROOT, cacheDir: null }),
      loadTinyImageNet("val", { root: ROOT, cacheDir: null }),
    ]);
    const splits = { train: trainDs, eval: val };
    const c = dinoConfig("");
    c.optim.epochs = 2;
    c.logEvery = 1;
    const losses = async (dir: string) =>
      (await Deno.readTextFile(`${dir}/metrics.jsonl`)).trim().split("\n").map((l) => JSON.parse(l))
        .filter((l) => l.type === "train").map((l) => [l.step, l.loss, l.teacher_entropy]);
    const whole = await Deno.makeTempDir(), parts = await Deno.makeTempDir();
    await train(c, { out: whole, gpu, quiet: true, splits });
    await train(c, { out: parts, gpu, quiet: true, splits, stopAfterSteps: 7 });
    await train(c, { out: parts, gpu, quiet: true, splits, resume: true });
    const a = await losses(whole);
    assert.equal(a.length, 10);
    assert.deepEqual(await losses(parts), a);
  },
);

gpuTest(
  "a short DINO run with 2 local crops trains without non-finite values or collapse, and a finetune loads its teacher's encoder",
  async (gpu) => {
    const [trainDs, val] = await Promise.all([
      loadTinyImageNet("train", { root: ROOT, cacheDir: null }),
      loadTinyImageNet("val", { root: ROOT, cacheDir: null }),
    ]);
    const splits = { train: trainDs, eval: val };
    const c = dinoConfig();
    c.dino.localCrops = 2; // 32 px (16 tokens) per local crop, the default size
    c.optim.epochs = 2;
    const out = await Deno.makeTempDir();
    const s = await train(c, { out, gpu, quiet: true, splits });
    assert.equal(s.collapse, "none");
    const steps = (await Deno.readTextFile(`${out}/metrics.jsonl`)).trim().split("\n")
      .map((l) => JSON.parse(l)).filter((l) => l.type === "train");
    assert.equal(steps.length, 10, "2 epochs x 5 steps");
    for (const l of steps) {
      assert.ok(Number.isFinite(l.loss) && l.loss > 0, `finite loss ${l.loss}`);
      assert.ok(
        l.teacher_entropy > 0 && l.teacher_entropy < Math.log(256),
        "entropy in (0, log K)",
      );
    }
    // The local crops reach the loss: without them the first step's loss differs.
    const plain = await Deno.makeTempDir();
    await train(dinoConfig(), { out: plain, gpu, quiet: true, splits, stopAfterSteps: 1 });
    const first = JSON.parse((await Deno.readTextFile(`${plain}/metrics.jsonl`)).split("\n")[0]);
    assert.equal(first.step, 0);
    assert.ok(Math.abs(first.loss - steps[0].loss) > 1e-4, `${first.loss} vs ${steps[0].loss}`);
    const frac = s.eval.entropy_fraction;
    assert.ok(frac > 0.05 && frac < 0.95, `held-out entropy fraction ${frac} inside (0, 1)`);
    const ckpt = decodeSafetensors(await Deno.readFile(s.checkpoint), s.checkpoint).tensors;
    for (const t of ckpt.values()) assert.ok(t.data.every(Number.isFinite), "finite checkpoint");
    const ft = parseConfig(`
mode: finetune
seed: 42
data: { dataset: tiny-imagenet, normalize: imagenet }
encoder: ${MODEL}
optim: { name: adamw, lr: 0, weightDecay: 0, betas: [0.9, 0.999], warmupEpochs: 0, epochs: 1, batchSize: 10 }
init: ${s.checkpoint}
checkpointEvery: 1000
logEvery: 5
`);
    const fs = await train(ft, { out: await Deno.makeTempDir(), gpu, quiet: true, splits });
    const after = decodeSafetensors(await Deno.readFile(fs.checkpoint), fs.checkpoint).tensors;
    const name = "encoder.embed.w";
    assert.deepEqual(
      after.get(name)!.data,
      ckpt.get(name)!.data,
      "finetune starts from the teacher",
    );
  },
);

gpuTest(
  "a DINO run with optim.name adam takes Adam steps: the frozen last layer keeps its values, where adamw decays them",
  async (gpu) => {
    const [trainDs, val] = await Promise.all([
      loadTinyImageNet("train", { root: ROOT, cacheDir: null }),
      loadTinyImageNet("val", { root: ROOT, cacheDir: null }),
    ]);
    const splits = { train: trainDs, eval: val };
    // The student's initial values: the model is a function of the seed.
    const c0 = dinoConfig();
    const init = new Dino(gpu, c0.encoder, c0.dino, c0.seed, c0.dino.teacherInit);
    const spec = init.student.specs.find((s) => s.name === LAST_LAYER)!;
    assert.ok(spec.decay, `${LAST_LAYER} takes weight decay under AdamW`);
    const p0 = (await init.student.read()).get(LAST_LAYER)!;
    const e0 = (await init.student.read()).get("encoder.embed.w")!;
    init.destroy();
    for (const name of ["adam", "adamw"] as const) {
      const c = dinoConfig();
      c.optim.name = name;
      c.optim.warmupEpochs = 0;
      c.optim.epochs = 2;
      assert.equal(c.dino.freezeLastLayerEpochs, 1, "the last layer's gradient is zero in epoch 0");
      const out = await Deno.makeTempDir();
      await train(c, { out, gpu, quiet: true, splits, stopAfterSteps: 1 });
      const ckpt = decodeSafetensors(await Deno.readFile(`${out}/checkpoint.safetensors`)).tensors;
      // One step of the f64 reference on a zero gradient: Adam moves nothing,
      // AdamW scales by 1 - lr * wd (DINO's decay schedule at step 0).
      const lr = learningRate(c.optim, 0, 0, 5);
      const wd = name === "adam"
        ? 0
        : cosineSchedule(c.optim.weightDecay, c.dino.weightDecayEnd, 0, 10);
      const zero = new Float64Array(p0.length);
      const ref = adamwRef(p0, zero, zero, zero, new Array(p0.length).fill(true), 1, {
        lr,
        beta1: c.optim.betas[0],
        beta2: c.optim.betas[1],
        eps: 1e-8,
        weightDecay: wd,
      });
      const got = ckpt.get(`student.${LAST_LAYER}`)!.data;
      assertClose(got, ref.param, { atol: 0, rtol: 1e-6 }, `${name}: ${LAST_LAYER} after one step`);
      if (name === "adam") {
        assert.deepEqual(got, p0, "Adam leaves a zero-gradient parameter as it was");
      } else assert.notDeepEqual(got, p0, "AdamW decays it");
      assert.notDeepEqual(ckpt.get("student.encoder.embed.w")!.data, e0, "the step did train");
    }
  },
);

gpuTest(
  "a non-finite DINO loss stops the run naming the step and the op, with the state before it saved",
  async (gpu) => {
    const [trainDs, val] = await Promise.all([
      loadTinyImageNet("train", { root: ROOT, cacheDir: null }),
      loadTinyImageNet("val", { root: ROOT, cacheDir: null }),
    ]);
    const splits = { train: trainDs, eval: val };
    const out = await Deno.makeTempDir();
    const c = dinoConfig();
    c.optim.epochs = 2;
    c.optim.lr = 1e30; // the first update sends the student's weights to inf
    c.optim.warmupEpochs = 0;
    const { saved } = await expectNonFinite(c, { out, gpu, quiet: true, splits });
    for (const name of ["encoder.embed.w", "student.encoder.embed.w", "dino.centre"]) {
      assert.ok(
        saved.tensors.get(name)!.data.every(Number.isFinite),
        `saved ${name} is from before the blow-up`,
      );
    }
  },
);
