import { CUB_TRAIN_AUGMENT, FINETUNE_AUGMENT } from "../../src/data/augment.ts";
import { planFor } from "../../src/repro/experiments.ts";
import {
  autoWarmup,
  deriveRaw,
  loadProfile,
  parseSeeds,
  type ProfileName,
  resolveAuto,
  runSeeds,
  scaleStage,
  type Stage,
} from "../../src/repro/profiles.ts";
import { ofMode, parseYaml, type TrainConfig } from "../../src/train/config.ts";
import { learningRate } from "../../src/train/schedule.ts";
import { assert, assertRejects, assertThrows } from "../_assert.ts";

const PROFILE_DIR = new URL("../../repro/profiles/", import.meta.url);

async function rawStages(name: string): Promise<Record<string, Record<string, unknown>>> {
  const url = new URL(`${name}.yaml`, PROFILE_DIR);
  const raw = parseYaml(await Deno.readTextFile(url), url.pathname) as Record<string, unknown>;
  return raw.stages as Record<string, Record<string, unknown>>;
}

Deno.test("short is the paper profile with every epoch count at 5% and nothing else changed", async () => {
  const paper = await loadProfile("paper");
  const short = await loadProfile("short");
  const paperRaw = await rawStages("paper");
  assert.deepEqual(Object.keys(short.stages).sort(), Object.keys(paper.stages).sort());
  for (const [stage, p] of Object.entries(paper.stages) as [Stage, TrainConfig][]) {
    const s = short.stages[stage]!;
    // Written out here, not through scaleStage: 5% of the epochs, at least one.
    const epochs = Math.max(1, Math.round(p.optim.epochs / 20));
    assert.equal(s.optim.epochs, epochs, `${stage}: epochs`);
    const auto = (paperRaw[stage].optim as Record<string, unknown>).warmupEpochs === "auto";
    const warmup = auto
      ? Math.floor(epochs / 20)
      : p.optim.warmupEpochs === 0
      ? 0
      : Math.min(epochs, Math.max(1, Math.round(p.optim.warmupEpochs / 20)));
    assert.equal(s.optim.warmupEpochs, warmup, `${stage}: warmup`);
    const want = structuredClone(p);
    want.optim.epochs = epochs;
    want.optim.warmupEpochs = warmup;
    if (p.mode === "dino" && want.mode === "dino" && s.mode === "dino") {
      // DINO's teacher-temperature warm-up and last-layer freeze scale alike.
      want.dino.warmupTeacherTempEpochs = Math.max(
        1,
        Math.round(p.dino.warmupTeacherTempEpochs / 20),
      );
      want.dino.freezeLastLayerEpochs = Math.max(1, Math.round(p.dino.freezeLastLayerEpochs / 20));
      assert.deepEqual([s.dino.warmupTeacherTempEpochs, s.dino.freezeLastLayerEpochs], [2, 1]);
    }
    assert.deepEqual(s, want, `${stage}: only the epoch counts differ`);
  }
});

Deno.test("the paper profile pins the settings settled against the paper and the authors' code", async () => {
  const p = await loadProfile("paper");
  const st = (s: Stage) => p.stages[s]!;
  // Warmup: epochs // 20 everywhere but DINO (Table 6: 20 / 5 / 2; Table 4: 10; the sweep: 10).
  const warm = Object.fromEntries(
    Object.entries(p.stages).map(([k, c]) => [k, [c!.optim.epochs, c!.optim.warmupEpochs]]),
  );
  assert.deepEqual(warm, {
    pretrain: [400, 20],
    probe: [50, 2],
    finetune: [100, 5],
    scratch: [400, 20],
    transfer: [100, 5],
    cubScratch: [400, 20],
    sweep: [200, 10],
    timing: [1, 0],
    critic: [200, 10],
    smae: [400, 20],
    dino: [100, 10],
  });
  // The CUB "supervised from scratch" column: fromscratch_cub.yaml, not the transfer recipe.
  const cs = st("cubScratch");
  assert.deepEqual(
    [cs.mode, cs.data.dataset, cs.data.augment, cs.optim.lr, cs.optim.weightDecay, cs.optim.betas],
    ["scratch", "cub", "cub", 5e-4, 0.1, [0.9, 0.999]],
  );
  const plan = planFor("transfer-scratch", p);
  assert.ok(plan.kind === "train" && plan.stage === "cubScratch" && plan.init === undefined);
  // CUB transfer: Table 6's fine-tune at half the learning rate.
  const tr = st("transfer");
  assert.deepEqual([tr.optim.lr, tr.optim.weightDecay, tr.data.augment], [5e-4, 0.05, "cub"]);
  // The critic: Table 4 (wd 0.15), RandAugment inside the authors' flip + crop pipeline.
  const cr = st("critic");
  assert.deepEqual([cr.optim.lr, cr.optim.weightDecay, cr.data.augment], [1e-3, 0.15, "finetune"]);
  assert.deepEqual(FINETUNE_AUGMENT, {
    randomResizedCrop: { size: 64, scale: [0.6, 1], ratio: [0.9, 1.1] },
    hflip: true,
    randAugment: { n: 2, m: 9 },
  });
  // CUB training crops: the authors' auto_augment on the short-side-64 photo.
  assert.deepEqual(CUB_TRAIN_AUGMENT, {
    randomResizedCrop: {
      size: 64,
      scale: [0.6, 1],
      ratio: [3 / 4, 4 / 3],
      interpolation: "bilinear",
    },
    hflip: true,
    randAugment: { n: 2, m: 9 },
  });
  // DINO: base lr 1e-4 times batch / 256, warmup 10 from 0, teacher temperature over 30 epochs.
  const d = ofMode(st("dino"), "dino");
  assert.deepEqual(
    [d.optim.lr, d.optim.minLr, d.optim.stepping, d.dino.warmupTeacherTempEpochs],
    [5e-5, 1e-6, "step", 30],
  );
  // Pre-training: no augmentation, Table 6's optimiser.
  for (const s of ["pretrain", "sweep", "smae"] as const) {
    assert.deepEqual(
      [st(s).data.augment, st(s).optim.lr, st(s).optim.weightDecay, st(s).optim.betas],
      ["none", 5e-4, 0.15, [0.9, 0.95]],
      s,
    );
  }
});

Deno.test("warmupEpochs auto is epochs // 20, computed on the epochs it ends up with", () => {
  assert.deepEqual([400, 200, 100, 50, 19, 20, 1].map(autoWarmup), [20, 10, 5, 2, 0, 1, 0]);
  const raw = { stages: { a: { optim: { epochs: 200, warmupEpochs: "auto" } } } };
  const a = resolveAuto(raw, "x.yaml").stages as Record<
    string,
    { optim: { warmupEpochs: unknown } }
  >;
  assert.equal(a.a.optim.warmupEpochs, 10);
  assertThrows(
    () => resolveAuto({ stages: { b: { optim: { warmupEpochs: "auto" } } } }, "x.yaml"),
    "x.yaml: stage b: optim.warmupEpochs auto needs numeric optim.epochs",
  );
});

Deno.test("scaleStage() scales epochs and schedule counts, keeping a warmup that exists and auto as auto", () => {
  const s = scaleStage({
    optim: { epochs: 100, warmupEpochs: 10 },
    dino: { warmupTeacherTempEpochs: 30, freezeLastLayerEpochs: 1 },
  }, 0.05);
  assert.deepEqual(s, {
    optim: { epochs: 5, warmupEpochs: 1 },
    dino: { warmupTeacherTempEpochs: 2, freezeLastLayerEpochs: 1 },
  });
  assert.deepEqual(scaleStage({ optim: { epochs: 1, warmupEpochs: 0 } }, 0.05), {
    optim: { epochs: 1, warmupEpochs: 0 },
  });
  assert.deepEqual(scaleStage({ optim: { epochs: 200, warmupEpochs: "auto" } }, 0.05), {
    optim: { epochs: 10, warmupEpochs: "auto" },
  });
});

Deno.test("derive names the file when the source, the scale or an overridden stage is wrong", async () => {
  const paper = { profile: "paper", stages: { probe: { optim: { epochs: 50, lr: 1e-3 } } } };
  const load = (name: ProfileName) =>
    Promise.resolve(name === "paper" ? structuredClone(paper) : { profile: name, stages: {} });
  const ok = await deriveRaw(
    {
      profile: "short",
      derive: { from: "paper", epochScale: 0.1 },
      stages: { probe: { optim: { lr: 2e-3 } } },
    },
    "s.yaml",
    load,
  );
  assert.deepEqual(ok.stages, { probe: { optim: { epochs: 5, lr: 2e-3 } } });
  assert.equal(ok.profile, "short");
  await assertRejects(
    () =>
      deriveRaw({ profile: "short", derive: { from: "nope", epochScale: 0.1 } }, "s.yaml", load),
    "s.yaml: derive.from must name another profile",
  );
  await assertRejects(
    () => deriveRaw({ profile: "short", derive: { from: "paper", epochScale: 2 } }, "s.yaml", load),
    "s.yaml: derive.epochScale must be a number in (0, 1], got 2",
  );
  await assertRejects(
    () =>
      deriveRaw(
        { profile: "short", derive: { from: "paper", epochScale: 0.5 }, stages: { dino: {} } },
        "s.yaml",
        load,
      ),
    "s.yaml: stage dino: not a stage of paper",
  );
});

Deno.test("learningRate() warms up from lr/3 like PyTorch LinearLR, or from 0 for DINO, then follows the cosine", () => {
  // SequentialLR(LinearLR(start_factor 1/3, total_iters 5), CosineAnnealingLR(T_max 95)),
  // stepped once per epoch: epoch e < 5 -> lr (1/3 + (2/3) e / 5); e >= 5 -> lr (1 + cos(pi (e - 5) / 95)) / 2.
  const c = { lr: 1e-3, epochs: 100, warmupEpochs: 5 };
  const torch = (e: number) =>
    e < 5 ? 1e-3 * (1 / 3 + (2 / 3) * e / 5) : 1e-3 * (1 + Math.cos(Math.PI * (e - 5) / 95)) / 2;
  for (const e of [0, 1, 4, 5, 6, 50, 99]) {
    assert.ok(Math.abs(learningRate(c, e) - torch(e)) < 1e-12, `epoch ${e}`);
  }
  // DINO's cosine_scheduler: np.linspace(0, lr, warmup iterations), per step.
  const d = { ...c, stepping: "step" as const, warmupStartFactor: 0 };
  assert.equal(learningRate(d, 0, 0, 10), 0);
  assert.ok(Math.abs(learningRate(d, 2, 5, 10) - 1e-3 * 2.5 / 5) < 1e-15);
  assert.ok(Math.abs(learningRate(d, 5, 0, 10) - 1e-3) < 1e-15);
});

Deno.test("the small profile keeps its design seeds apart: --seeds N runs held-apart seeds only", async () => {
  const small = await loadProfile("small");
  const { design, held } = small.seeds!;
  assert.ok(design.length >= 3 && held.length >= 3);
  assert.ok(held.every((s) => !design.includes(s)));
  const three = runSeeds(small, 3);
  assert.deepEqual(three.seeds, held.slice(0, 3));
  assert.match(three.role, /^held apart: the thresholds were set on the design seeds/);
  assert.equal(three.kind, "held");
  assert.equal(runSeeds(small, undefined, design).kind, "design");
  // The profile's own seed (one run, no --seeds) is a held-apart seed too.
  assert.ok(held.includes(runSeeds(small).seeds[0]));
  assert.match(
    runSeeds(small, undefined, design).role,
    /^the design seeds.*not a held-apart check/,
  );
  assert.match(runSeeds(small, undefined, [held[0], design[0]]).role, /are design seeds/);
  assertThrows(
    () => runSeeds(small, held.length + 1),
    `--seeds ${held.length + 1}: the small profile holds ${held.length} seeds apart`,
  );
  // A profile without held-apart seeds: 1..N, and no role to report.
  const ci = await loadProfile("ci");
  assert.deepEqual(runSeeds(ci, 3), { seeds: [1, 2, 3], role: "" });
  assert.equal(runSeeds(ci, 3).kind, undefined);
  assert.deepEqual(runSeeds(ci).seeds, [42]);
});

Deno.test("parseSeeds() names the profile file and what is wrong", () => {
  assert.equal(parseSeeds(undefined, "p.yaml"), undefined);
  assert.deepEqual(parseSeeds({ design: [1], held: [2, 3] }, "p.yaml"), {
    design: [1],
    held: [2, 3],
  });
  const bad: [unknown, string][] = [
    [[1, 2], "p.yaml: seeds: must be { design: [...], held: [...] }"],
    [{ design: [1], held: [2], extra: 1 }, "p.yaml: seeds: unknown key extra"],
    [{ design: [], held: [2] }, "p.yaml: seeds: design must be a non-empty list"],
    [{ design: [1], held: [2.5] }, "p.yaml: seeds: held: 2.5 is not a seed"],
    [{ design: [1, 1], held: [2] }, "p.yaml: seeds: design repeats a seed"],
    [{ design: [1, 2], held: [2] }, "p.yaml: seeds: seed 2 is both a design and a held-apart seed"],
  ];
  for (const [raw, msg] of bad) assertThrows(() => parseSeeds(raw, "p.yaml"), msg);
});
