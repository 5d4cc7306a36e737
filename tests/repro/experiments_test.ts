import type { Gpu } from "../../src/gpu/device.ts";
import { loadStudy } from "../../src/repro/claims.ts";
import {
  checkpointPlaceholder,
  experimentConfig,
  experimentConfigs,
  planFor,
  SCALE_SIZES,
  SCALED_EXPERIMENTS,
  studyConfigs,
} from "../../src/repro/experiments.ts";
import { loadProfile, type Profile, PROFILES } from "../../src/repro/profiles.ts";
import { runExperiments } from "../../src/repro/runner.ts";
import { ofMode, toConfig, type TrainConfig } from "../../src/train/config.ts";
import { assert } from "../_assert.ts";

Deno.test("the paper profile's printed configs carry each experiment's overlay on its stage", async () => {
  const paper = await loadProfile("paper");
  const tin = studyConfigs(await loadStudy("tin"), paper, 7);
  const sweep = studyConfigs(await loadStudy("sweep"), paper, 7);
  // Plain JSON: printing and reading back gives the same value.
  assert.deepEqual(JSON.parse(JSON.stringify(sweep)), sweep);
  const block = ofMode(tin["pretrain-mae-block"] as TrainConfig, "pretrain");
  assert.deepEqual([block.mae.masking, block.mae.maskRatio, block.seed], ["block", 0.5, 7]);
  const random = ofMode(tin["pretrain-mae-random"] as TrainConfig, "pretrain");
  assert.deepEqual([random.mae.masking, random.mae.maskRatio], ["random", 0.75]);
  const r60 = ofMode(sweep["pretrain-mae-r60"] as TrainConfig, "pretrain");
  assert.equal(r60.mae.maskRatio, 0.6);
  assert.equal(r60.optim.epochs, 200, "the sweep stage's epochs");
  const probe = ofMode(sweep["probe-mae-r60"] as TrainConfig, "probe");
  assert.equal(probe.init, "<checkpoint of pretrain-mae-r60>");
  const hp = sweep["pretrain-hp-lr1e-3-wd0.05"] as TrainConfig;
  assert.deepEqual([hp.optim.lr, hp.optim.weightDecay], [1e-3, 0.05]);
  // The lr-0 control is its stage with the learning rate, epochs and warm-up changed, nothing else.
  const untrained = tin["pretrain-mae-untrained"] as TrainConfig;
  assert.deepEqual(untrained, {
    ...random,
    optim: { ...random.optim, lr: 0, minLr: 0, epochs: 1, warmupEpochs: 0 },
  });
  // A stage's copy checked at load is not touched by building an experiment's config.
  assert.equal(ofMode(paper.stages.sweep!, "pretrain").mae.maskRatio, 0.75);
  assert.equal(paper.stages.pretrain!.seed, 42);
});

Deno.test("every experiment of every study validates in every profile, dependencies first", async () => {
  for (const name of PROFILES) {
    const p = await loadProfile(name);
    for (const study of ["tin", "cub", "sweep", "scale"]) {
      const configs = studyConfigs(await loadStudy(study), p, 1);
      const ids = Object.keys(configs);
      for (const [id, c] of Object.entries(configs)) {
        const plan = planFor(id, p);
        if ("notrun" in c) {
          assert.equal(plan.kind, "notrun", `${name}/${id}`);
          continue;
        }
        assert.equal(c.seed, 1);
        if (plan.kind === "train" && plan.init) {
          assert.ok(c.mode === "probe" || c.mode === "finetune", `${name}/${id}: ${c.mode}`);
          assert.equal(c.init, `<checkpoint of ${plan.init}>`);
          assert.ok(ids.indexOf(plan.init) < ids.indexOf(id), `${name}/${id} after its init`);
        }
      }
    }
  }
});

/** The smoke profile with its pretrain stage on a 2x2 patch grid (fixture-sized, no file). */
async function tinyGridProfile(): Promise<Profile> {
  const smoke = await loadProfile("smoke");
  const raw = structuredClone(smoke.raw.pretrain) as Record<string, Record<string, unknown>>;
  raw.encoder = { ...raw.encoder, patch: 32 };
  raw.mae = { ...raw.mae, maskRatio: 0.5 };
  return {
    ...smoke,
    raw: { ...smoke.raw, pretrain: raw },
    stages: { ...smoke.stages, pretrain: toConfig(raw, "tiny", false) },
  };
}

Deno.test("an overlay that is invalid for its stage fails naming the experiment and the field", async () => {
  const p = await tinyGridProfile();
  // Block masking at 0.5 keeps 2 of the 4 patches: valid.
  assert.equal(
    ofMode(experimentConfig(p, "pretrain-mae-block", 1, checkpointPlaceholder), "pretrain")
      .encoder.patch,
    32,
  );
  const sweepy: Profile = {
    ...p,
    raw: { ...p.raw, sweep: p.raw.pretrain },
    stages: { ...p.stages, sweep: p.stages.pretrain },
  };
  // pretrain-mae-r90 masks round(0.9 * 4) = 4 of 4 patches.
  assert.throws(
    () => experimentConfig(sweepy, "pretrain-mae-r90", 1, checkpointPlaceholder),
    (e: Error) =>
      e.message.startsWith(`${p.file} (stage sweep), experiment pretrain-mae-r90: `) &&
      /mae\.maskRatio 0\.9 masks 4 of the 4 patches.*\(set by experiment pretrain-mae-r90\)$/
        .test(e.message),
  );
  assert.throws(() => experimentConfigs(["probe-mae-r90"], sweepy, 1), /pretrain-mae-r90/);
});

Deno.test("the runner refuses a bad config before it reads data or writes anything", async () => {
  const p = await tinyGridProfile();
  const bad: Profile = {
    ...p,
    raw: { ...p.raw, sweep: p.raw.pretrain },
    stages: { ...p.stages, sweep: p.stages.pretrain },
  };
  const cache = await Deno.makeTempDir();
  const logged: string[] = [];
  let msg = "";
  try {
    // pretrain-mae-random (valid) comes first in the run order, the bad sweep run after it.
    await runExperiments(["probe-mae-random", "probe-mae-r90"], {
      profile: bad,
      seeds: [1],
      // Never touched: the configs are checked before any run starts.
      gpu: undefined as unknown as Gpu,
      cacheDir: cache,
      fresh: false,
      roots: {},
      log: (l) => logged.push(l),
    });
  } catch (e) {
    msg = (e as Error).message;
  }
  assert.match(msg, /experiment pretrain-mae-r90: mae\.maskRatio/);
  assert.deepEqual(logged, []);
  assert.deepEqual([...Deno.readDirSync(cache)], []);
  await Deno.remove(cache);
});

Deno.test("the small profile's comparisons: equal supervised epochs and the paper's budget", async () => {
  const small = await loadProfile("small");
  const tin = studyConfigs(await loadStudy("tin"), small, 11);
  const ft = ofMode(tin["finetune-mae-random"] as TrainConfig, "finetune");
  const scratch = ofMode(tin["scratch"] as TrainConfig, "scratch");
  const pre = ofMode(tin["pretrain-mae-random"] as TrainConfig, "pretrain");
  // Fine-tuning and scratch differ in the mode and the init only.
  const { mode: _m, init: _i, ...ftRest } = ft;
  const { mode: _s, ...scratchRest } = scratch;
  assert.deepEqual(ftRest, scratchRest);
  assert.deepEqual([ft.encoder.pool, ft.data.augment, ft.data.evalLimit], ["mean", "cropflip", 0]);
  assert.equal(pre.data.trainLimit, ft.data.trainLimit, "pre-training sees the labelled images");
  // The paper's budget: scratch as long as MAE pre-training, all else as scratch.
  const budget = ofMode(tin["scratch-paper-budget"] as TrainConfig, "scratch");
  assert.deepEqual(
    [budget.optim.epochs, budget.optim.warmupEpochs],
    [pre.optim.epochs, pre.optim.warmupEpochs],
  );
  assert.deepEqual(
    { ...budget, optim: { ...budget.optim, epochs: 0, warmupEpochs: 0 } },
    { ...scratch, optim: { ...scratch.optim, epochs: 0, warmupEpochs: 0 } },
  );
  // In the paper profile the budget run is its 400-epoch scratch stage.
  const paper = await loadProfile("paper");
  const long = experimentConfig(paper, "scratch-paper-budget", 1, checkpointPlaceholder);
  assert.equal(long.optim.epochs, 400);
});

Deno.test("the scale study repeats the two comparisons at each training-set size, 1024 being the small profile's own runs", async () => {
  const small = await loadProfile("small");
  const cfg = (id: string) => experimentConfig(small, id, 11, checkpointPlaceholder);
  for (const base of SCALED_EXPERIMENTS) {
    // At the profile's own size the run is the same config (its init the same run's checkpoint,
    // and the cache keys an init by its config): the cache serves it to both studies.
    const same = cfg(`${base}-n1024`);
    assert.deepEqual({ ...same, init: "" }, { ...cfg(base), init: "" }, base);
    const big = cfg(`${base}-n16384`);
    assert.equal(big.data.trainLimit, 16384);
    assert.deepEqual({ ...big, data: { ...big.data, trainLimit: 1024 }, init: "" }, {
      ...cfg(base),
      init: "",
    });
  }
  const ft = planFor("finetune-mae-random-n4096", small);
  assert.ok(ft.kind === "train" && ft.init === "pretrain-mae-random-n4096");
  const init = (id: string) => (cfg(id) as { init?: string }).init;
  assert.equal(init("probe-random-init-n4096"), "<checkpoint of pretrain-mae-untrained-n4096>");
  assert.equal(init("scratch-n4096"), undefined);
  let err = "";
  try {
    planFor("scratch-n5000", small);
  } catch (e) {
    err = (e as Error).message;
  }
  assert.match(
    err,
    /unknown training-set size in experiment 'scratch-n5000' \(1024, 4096, 16384\)/,
  );
  assert.equal(SCALE_SIZES.length, 3);
});
