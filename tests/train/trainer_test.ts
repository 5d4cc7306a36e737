import { loadTinyImageNet } from "../../src/data/mod.ts";
import { ofMode, parseConfig, type TrainConfig } from "../../src/train/config.ts";
import { decodeSafetensors } from "../../src/train/safetensors.ts";
import { train } from "../../src/train/trainer.ts";
import { expectNonFinite } from "./_nonfinite.ts";
import { assert, assertRejects } from "../_assert.ts";
import { gpuTest } from "../_helpers.ts";

const ROOT = new URL("../../fixtures/tiny-imagenet-200", import.meta.url).pathname;

/** The fixture's train and val splits (5 classes, 50 + 20 images, 64x64). */
async function fixtureSplits() {
  const [train, val] = await Promise.all([
    loadTinyImageNet("train", { root: ROOT, cacheDir: null }),
    loadTinyImageNet("val", { root: ROOT, cacheDir: null }),
  ]);
  return { train, eval: val };
}

/** A tiny model on 64x64 fixture images: patch 8 -> 64 tokens. */
function tinyConfig(mode: TrainConfig["mode"], extra = ""): TrainConfig {
  // The MAE objective only for the modes that read it.
  const mae = mode === "pretrain" || mode === "smae"
    ? "mae: { decoderWidth: 16, decoderDepth: 1, decoderHeads: 2, decoderMlp: 32, maskRatio: 0.75, masking: random }"
    : "";
  return parseConfig(`
mode: ${mode}
seed: 7
data: { dataset: tiny-imagenet, normalize: batch }
encoder: { imageSize: 64, channels: 3, patch: 8, width: 32, depth: 1, heads: 2, mlp: 64, dropout: 0.1 }
${mae}
optim: { name: adamw, lr: 2.0e-3, weightDecay: 0.05, betas: [0.9, 0.95], warmupEpochs: 1, epochs: 2, batchSize: 10 }
checkpointEvery: 1000
logEvery: 1
${extra}`);
}

async function trainLosses(dir: string): Promise<number[]> {
  const lines = (await Deno.readTextFile(`${dir}/metrics.jsonl`)).trim().split("\n").map((l) =>
    JSON.parse(l)
  );
  return lines.filter((l) => l.type === "train").map((l) => l.loss);
}

gpuTest("two runs with the same seed give bitwise-identical metrics", async (gpu) => {
  const splits = await fixtureSplits();
  const a = await Deno.makeTempDir(), b = await Deno.makeTempDir();
  const sa = await train(tinyConfig("pretrain"), { out: a, gpu, quiet: true, splits });
  const sb = await train(tinyConfig("pretrain"), { out: b, gpu, quiet: true, splits });
  const la = await trainLosses(a), lb = await trainLosses(b);
  assert.equal(la.length, 10, "2 epochs x 5 steps, logged every step");
  assert.deepEqual(la, lb);
  assert.deepEqual(sa.eval.mse, sb.eval.mse);
  // Each epoch line carries its wall time; the summary gives their median.
  const epochs = (await Deno.readTextFile(`${a}/metrics.jsonl`)).trim().split("\n")
    .map((l) => JSON.parse(l)).filter((l) => l.type === "epoch");
  assert.equal(epochs.length, 2);
  assert.ok(epochs.every((e) => e.seconds > 0), "epoch seconds recorded");
  assert.equal(sa.epochSecondsMedian, (epochs[0].seconds + epochs[1].seconds) / 2);
  const c = await Deno.makeTempDir();
  await train({ ...tinyConfig("pretrain"), seed: 8 }, { out: c, gpu, quiet: true, splits });
  assert.notDeepEqual(await trainLosses(c), la, "another seed, another run");
});

gpuTest(
  "a run killed after a checkpoint and resumed logs the same losses as an uninterrupted one",
  async (gpu) => {
    const splits = await fixtureSplits();
    const whole = await Deno.makeTempDir(), parts = await Deno.makeTempDir();
    await train(tinyConfig("scratch"), { out: whole, gpu, quiet: true, splits });
    // Stop mid-epoch (step 7 of 10), as a kill right after a checkpoint would.
    await train(tinyConfig("scratch"), { out: parts, gpu, quiet: true, splits, stopAfterSteps: 7 });
    assert.equal((await trainLosses(parts)).length, 7);
    const resumed = await train(tinyConfig("scratch"), {
      out: parts,
      gpu,
      quiet: true,
      splits,
      resume: true,
    });
    assert.equal(resumed.steps, 10);
    assert.deepEqual(await trainLosses(parts), await trainLosses(whole));
  },
);

gpuTest(
  "pretrain -> probe -> finetune chains through the checkpoint on the fixture data",
  async (gpu) => {
    const splits = await fixtureSplits();
    const pre = await Deno.makeTempDir(),
      probe = await Deno.makeTempDir(),
      fine = await Deno.makeTempDir();
    const p = await train(tinyConfig("pretrain"), { out: pre, gpu, quiet: true, splits });
    assert.ok(p.eval.mse > 0 && p.eval.mse_zero_predictor > 0);
    const ckpt = decodeSafetensors(await Deno.readFile(p.checkpoint), p.checkpoint);
    assert.equal(ckpt.metadata.mode, "pretrain");
    assert.ok(ckpt.tensors.has("encoder.blocks.0.qkv.w") && ckpt.tensors.has("decoder.head.w"));
    const pr = await train(tinyConfig("probe", `init: ${p.checkpoint}`), {
      out: probe,
      gpu,
      quiet: true,
      splits,
    });
    assert.equal(pr.params.trainable, 32 * 5 + 5, "the probe trains the head only");
    assert.ok(pr.eval.accuracy >= 0 && pr.eval.accuracy <= 1);
    const ft = await train(tinyConfig("finetune", `init: ${p.checkpoint}`), {
      out: fine,
      gpu,
      quiet: true,
      splits,
    });
    assert.equal(ft.params.trainable, ft.params.total, "fine-tuning trains everything");
    // The probe's encoder is the pretrained one, untouched.
    const probed = decodeSafetensors(await Deno.readFile(pr.checkpoint));
    assert.deepEqual(
      probed.tensors.get("encoder.blocks.0.fc1.w")!.data,
      ckpt.tensors.get("encoder.blocks.0.fc1.w")!.data,
    );
  },
);

gpuTest(
  "a non-finite loss stops the run naming the step and the op, with the state before it saved",
  async (gpu) => {
    const splits = await fixtureSplits();
    const out = await Deno.makeTempDir();
    const config = tinyConfig("scratch");
    config.optim.lr = 1e30; // the first update sends the weights to inf
    config.optim.warmupEpochs = 0;
    const { saved } = await expectNonFinite(config, { out, gpu, quiet: true, splits });
    assert.ok(
      saved.tensors.get("encoder.embed.w")!.data.every(Number.isFinite),
      "saved state is from before the blow-up",
    );
  },
);

Deno.test("config errors name the file and the field", () => {
  let msg = "";
  try {
    parseConfig("mode: pretrain\noptim: { lr: -1 }\n", "cfg.yaml");
  } catch (e) {
    msg = (e as Error).message;
  }
  assert.match(msg, /^cfg\.yaml: optim\.lr must be a number in \[0, 10\], got -1/);
  assert.throws(
    () => parseConfig("mode: pretrain\nencoder: { widht: 3 }\n", "x.yaml"),
    /x\.yaml: unknown field 'encoder\.widht'/,
  );
  assert.throws(
    () => parseConfig("mode: probe\n", "p.yaml"),
    /p\.yaml: init is required for mode probe/,
  );
});

/** A run's metrics.jsonl and summary.json without their wall-clock fields (and the folder). */
async function record(dir: string): Promise<{ metrics: string; summary: string }> {
  const strip = (o: Record<string, unknown>) => {
    for (
      const k of ["images_per_s", "imagesPerSecond", "seconds", "epochSecondsMedian", "checkpoint"]
    ) {
      delete o[k];
    }
    if (o.eval) delete (o.eval as Record<string, unknown>).seconds;
    return JSON.stringify(o);
  };
  const text = await Deno.readTextFile(`${dir}/metrics.jsonl`);
  assert.ok(text.endsWith("\n"), "metrics.jsonl ends with a whole line");
  return {
    metrics: text.trim().split("\n").map((l) => strip(JSON.parse(l))).join("\n"),
    summary: strip(JSON.parse(await Deno.readTextFile(`${dir}/summary.json`))),
  };
}

gpuTest(
  "a run stopped at an epoch's end, mid-epoch, and killed past a checkpoint with a cut-off metrics line resumes to the uninterrupted run's metrics and summary",
  async (gpu) => {
    const splits = await fixtureSplits();
    const config = tinyConfig("scratch");
    config.optim.epochs = 3; // 5 steps an epoch
    const opts = { gpu, quiet: true, splits };
    const whole = await Deno.makeTempDir(), parts = await Deno.makeTempDir();
    await train(config, { ...opts, out: whole });
    const want = await record(whole);
    await train(config, { ...opts, out: parts, stopAfterSteps: 5 }); // epoch 0's last step
    await train(config, { ...opts, out: parts, resume: true, stopAfterSteps: 6 });
    const ckpt = `${parts}/checkpoint.safetensors`;
    const at6 = await Deno.readFile(ckpt);
    // On to step 12 (past epoch 1's end), then killed with the step-6 checkpoint the latest
    // and metrics.jsonl cut off mid-line.
    await train(config, { ...opts, out: parts, resume: true, stopAfterSteps: 12 });
    await Deno.writeFile(ckpt, at6);
    await Deno.writeTextFile(`${parts}/metrics.jsonl`, '{"type":"train","st', { append: true });
    const s = await train(config, { ...opts, out: parts, resume: true });
    assert.ok(Number.isFinite(s.finalLoss));
    const got = await record(parts);
    assert.equal(got.metrics, want.metrics);
    assert.equal(got.summary, want.summary);
    // --resume on the finished run changes nothing.
    const summary = await Deno.readTextFile(`${parts}/summary.json`);
    const metrics = await Deno.readTextFile(`${parts}/metrics.jsonl`);
    const again = await train(config, { ...opts, out: parts, resume: true });
    assert.equal(again.finalLoss, s.finalLoss);
    assert.equal(await Deno.readTextFile(`${parts}/summary.json`), summary);
    assert.equal(await Deno.readTextFile(`${parts}/metrics.jsonl`), metrics);
  },
);

gpuTest(
  "--resume with another seed, learning rate or mask ratio is refused naming the fields; more epochs are allowed",
  async (gpu) => {
    const splits = await fixtureSplits();
    const out = await Deno.makeTempDir();
    const opts = { out, gpu, quiet: true, splits };
    await train(tinyConfig("pretrain"), { ...opts, stopAfterSteps: 3 });
    const ckpt = await Deno.readFile(`${out}/checkpoint.safetensors`);
    const metrics = await Deno.readTextFile(`${out}/metrics.jsonl`);
    const changed = ofMode(tinyConfig("pretrain"), "pretrain");
    changed.seed = 8;
    changed.optim.lr = 1e-3;
    changed.mae.maskRatio = 0.5;
    changed.logEvery = 3; // allowed: it changes no result
    let msg = "";
    await assertRejects(async () => {
      try {
        await train(changed, { ...opts, resume: true });
      } catch (e) {
        msg = (e as Error).message;
        throw e;
      }
    }, `--resume: ${out}/checkpoint.safetensors was trained with other settings`);
    assert.match(msg, /seed 7 \(now 8\)/);
    assert.match(msg, /optim\.lr 0\.002 \(now 0\.001\)/);
    assert.match(msg, /mae\.maskRatio 0\.75 \(now 0\.5\)/);
    assert.equal(msg.split(": ")[2].split(";")[0].split(", ").length, 3, "the three fields only");
    assert.deepEqual(await Deno.readFile(`${out}/checkpoint.safetensors`), ckpt, "left as it was");
    assert.equal(await Deno.readTextFile(`${out}/metrics.jsonl`), metrics);
    const fewer = tinyConfig("pretrain");
    fewer.optim.epochs = 1;
    await assertRejects(() => train(fewer, { ...opts, resume: true }), "optim.epochs 2 (now 1)");
    // More epochs (and another log interval) continue the run.
    const more = tinyConfig("pretrain");
    more.optim.epochs = 3;
    more.logEvery = 2;
    const s = await train(more, { ...opts, resume: true });
    assert.equal(s.steps, 15);
  },
);

gpuTest(
  "a probe refuses an init checkpoint of another architecture or with a flipped byte, naming the field or the checksum",
  async (gpu) => {
    const splits = await fixtureSplits();
    const pre = await Deno.makeTempDir();
    const c = tinyConfig("pretrain");
    c.optim.epochs = 1;
    c.optim.warmupEpochs = 0;
    await train(c, { out: pre, gpu, quiet: true, splits });
    const probe = (heads: number) => {
      const p = ofMode(tinyConfig("probe", `init: ${pre}/checkpoint.safetensors`), "probe");
      p.encoder.heads = heads;
      p.optim.epochs = 1;
      p.optim.warmupEpochs = 0;
      return p;
    };
    // Same parameter count and names: only the recorded config tells heads 2 from heads 4.
    await assertRejects(
      async () => train(probe(4), { out: await Deno.makeTempDir(), gpu, quiet: true, splits }),
      "model.heads: checkpoint 2, expected 4",
    );
    const file = `${pre}/checkpoint.safetensors`;
    const bytes = await Deno.readFile(file);
    bytes[bytes.length - 5] ^= 0x40;
    await Deno.writeFile(file, bytes);
    await assertRejects(
      async () => train(probe(2), { out: await Deno.makeTempDir(), gpu, quiet: true, splits }),
      "fails its checksum",
    );
  },
);
