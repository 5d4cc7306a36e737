import { parse } from "yaml";
import { stepFlopsPerImage } from "../../bench/train_step.ts";
import { loadStudy } from "../../src/repro/claims.ts";
import { buildDag, type DagNode, levelCount } from "../../src/repro/dag.ts";
import {
  deriveRates,
  estimatePlan,
  experimentSeconds,
  flopsPerImage,
  stepsPerEpoch,
  type Workload,
} from "../../src/repro/estimate.ts";
import { checkNeeds, levelJob, loadLevelJob, parseShard } from "../../src/repro/level_run.ts";
import { loadPlan, type PlanJson } from "../../src/repro/planner.ts";
import { loadProfile } from "../../src/repro/profiles.ts";
import { VIT_LITE_7_4 } from "../../src/models/vit.ts";
import { MAE_DECODER } from "../../src/models/mae.ts";
import { assert, assertRejects, assertThrows } from "../_assert.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const VIT = { ...VIT_LITE_7_4, ...MAE_DECODER, maskRatio: 0.75 };

function work(id: string, o: Partial<Workload> = {}): Workload {
  return {
    id,
    kind: "train",
    model: "mae",
    rateKey: "mae",
    mode: "pretrain",
    trainImages: 1000,
    evalImages: 300,
    epochs: 3,
    batchSize: 128,
    costFactor: 1,
    flopsPerImage: 1,
    ...o,
  };
}

Deno.test("an experiment costs its trainer's steps times the batch, plus a third of a step per evaluation image", () => {
  // 1000 images at batch 128: 7 full steps an epoch (the last partial batch is dropped).
  assert.equal(stepsPerEpoch(1000, 128), 7);
  assert.equal(experimentSeconds(work("a"), 100), (7 * 3 * 128 + 300 / 3) / 100);
  // A set smaller than the batch is one step of the whole set.
  assert.equal(stepsPerEpoch(50, 128), 1);
  assert.equal(
    experimentSeconds(work("b", { trainImages: 50, evalImages: 0, epochs: 4 }), 10),
    4 * 50 / 10,
  );
  // Twice the work per image than the calibrated shape: twice the time.
  assert.equal(
    experimentSeconds(work("c", { costFactor: 2 }), 100),
    2 * experimentSeconds(work("a"), 100),
  );
  assert.equal(experimentSeconds(work("d", { kind: "notrun" }), 0), 0);
  assertThrows(() => experimentSeconds(work("e"), 0), "e: rate of mae must be positive");
});

Deno.test("a plan's wall time is the sum over levels of each level's slowest shard", () => {
  const dag: DagNode[] = [
    { id: "big", studies: ["s"], deps: [], level: 0, kind: "train" },
    { id: "small", studies: ["s"], deps: [], level: 0, kind: "train" },
    { id: "tiny", studies: ["s"], deps: [], level: 0, kind: "train" },
    { id: "after", studies: ["s"], deps: ["big"], level: 1, kind: "train" },
  ];
  // One step per epoch of 100 images, no evaluation: seconds = epochs * 100 / rate.
  const w = (id: string, epochs: number, rateKey: string) =>
    work(id, {
      trainImages: 100,
      batchSize: 100,
      evalImages: 0,
      epochs,
      rateKey,
      flopsPerImage: epochs,
    });
  const wk = new Map([
    ["big", w("big", 30, "fast")],
    ["small", w("small", 20, "fast")],
    ["tiny", w("tiny", 5, "fast")],
    ["after", w("after", 10, "slow")],
  ]);
  const rates = new Map([["fast", 100], ["slow", 50]]);
  const est = estimatePlan(dag, wk, rates, 2);
  assert.deepEqual(est.seconds, { big: 30, small: 20, tiny: 5, after: 20 });
  // Level 0 on two shards: {big} and {small, tiny}; level 1: {after} and nothing.
  assert.deepEqual(est.levels[0].shards.map((s) => s.ids), [["big"], ["small", "tiny"]]);
  assert.equal(est.levels[0].wallSeconds, 30);
  assert.equal(est.levels[0].serialSeconds, 55);
  assert.equal(est.levels[1].wallSeconds, 20);
  assert.equal(est.wallSeconds, 50);
  assert.equal(est.serialSeconds, 75);
  assertThrows(
    () => estimatePlan(dag, wk, new Map([["fast", 100]]), 1),
    "after: no measured rate for slow",
  );
});

Deno.test("the FLOPs per image of an MAE and a classifier step match the bench's count for ViT-Lite-7/4", () => {
  const rel = (a: number, b: number) => Math.abs(a - b) / b;
  assert.ok(rel(flopsPerImage("mae", VIT), stepFlopsPerImage("mae", VIT_LITE_7_4, 0.75)) < 1e-9);
  assert.ok(rel(flopsPerImage("classifier", VIT), stepFlopsPerImage("finetune")) < 1e-9);
  // Keeping more patches costs more: the encoder sees twice as many at ratio 0.5.
  assert.ok(
    flopsPerImage("mae", { ...VIT, maskRatio: 0.5 }) > flopsPerImage("mae", VIT),
  );
  assert.ok(flopsPerImage("probe", VIT) < flopsPerImage("classifier", VIT));
  assert.ok(flopsPerImage("smae", VIT) > flopsPerImage("mae", VIT));
});

Deno.test("the paper workloads read the datasets' sizes, the experiments' epochs and their masking ratios", async () => {
  const plan = await loadPlan("all", await loadProfile("paper"));
  const w = (id: string) => plan.work.get(id)!;
  assert.equal(w("pretrain-mae-random").trainImages, 100_000);
  assert.equal(w("pretrain-mae-random").epochs, 400);
  assert.equal(w("pretrain-mae-random").costFactor, 1);
  assert.equal(w("pretrain-mae-untrained").epochs, 1);
  assert.equal(w("transfer-mae-random").trainImages, 5_994);
  assert.equal(w("transfer-mae-random").evalImages, 5_794);
  assert.ok(w("pretrain-mae-r50").costFactor > 1, "ratio 0.5 keeps more patches than 0.75");
  assert.ok(w("pretrain-mae-r90").costFactor < 1);
  assert.equal(w("timing").kind, "timing");
  // The smoke profile counts its fixtures instead.
  const smoke = await loadPlan("tin", await loadProfile("smoke"));
  let fixtures = 0;
  for await (const c of Deno.readDir(`${ROOT}fixtures/tiny-imagenet-200/train`)) {
    for await (
      const _ of Deno.readDir(`${ROOT}fixtures/tiny-imagenet-200/train/${c.name}/images`)
    ) {
      fixtures++;
    }
  }
  assert.equal(smoke.work.get("pretrain-mae-random")!.trainImages, fixtures);
});

Deno.test("the paper plan trains each experiment once over its levels' shards, and the workflow has one job per level", async () => {
  const plan = await loadPlan("all", await loadProfile("paper"));
  const trained: string[] = [];
  for (let level = 0; level < levelCount(plan.dag); level++) {
    for (let i = 0; i < 4; i++) {
      const job = levelJob(plan.dag, plan.work, level, { index: i, count: 4 });
      trained.push(...job.ids);
      const levelOf = new Map(plan.dag.map((n) => [n.id, n.level]));
      for (const need of job.needs) {
        assert.ok(levelOf.get(need)! < level, `level ${level} needs ${need} of its own level`);
      }
    }
  }
  const want = plan.dag.filter((n) => n.kind === "train").map((n) => n.id);
  assert.equal(trained.length, want.length, "an experiment trains twice or never");
  assert.deepEqual([...trained].sort(), [...want].sort());

  const yml = parse(
    await Deno.readTextFile(`${ROOT}.github/workflows/repro-gpu.yml`),
  ) as { jobs: Record<string, { needs?: string | string[]; steps: { run?: string }[] }> };
  const levelJobs = Object.keys(yml.jobs).filter((k) => /^level-\d+$/.test(k)).sort();
  assert.deepEqual(
    levelJobs,
    Array.from({ length: levelCount(plan.dag) }, (_, k) => `level-${k}`),
  );
  for (const [k, name] of levelJobs.entries()) {
    const needs = [yml.jobs[name].needs ?? []].flat();
    assert.ok(needs.includes("plan"), `${name} needs the plan`);
    if (k > 0) assert.ok(needs.includes(`level-${k - 1}`), `${name} needs level-${k - 1}`);
    const run = yml.jobs[name].steps.map((s) => s.run ?? "").join("\n");
    assert.ok(run.includes(`--level ${k} --shard`), `${name} runs level ${k}`);
  }
  const merge = yml.jobs.merge as unknown as {
    needs: string[];
    strategy: { matrix: { study: string[] } };
  };
  assert.deepEqual(merge.strategy.matrix.study, ["tin", "cub", "sweep"]);
  assert.deepEqual(merge.needs, levelJobs);
});

Deno.test("a level job needs what its experiments start from, transitively, and stops naming a missing one", async () => {
  const plan = await loadPlan("all", await loadProfile("paper"));
  const level2 = [0, 1].flatMap((i) => levelJob(plan.dag, plan.work, 2, { index: i, count: 2 }));
  const holder = level2.find((j) => j.ids.includes("transfer-smae-block"))!;
  assert.ok(holder.needs.includes("pretrain-smae-block"));
  assert.ok(holder.needs.includes("train-critic"), "the SMAE pre-training's critic");
  const level0 = levelJob(plan.dag, plan.work, 0, { index: 0, count: 1 });
  assert.deepEqual(level0.needs, []);
  assert.ok(!level0.ids.includes("timing") && level0.timing.includes("timing"));
  const cached = new Set(holder.needs.filter((id) => id !== "train-critic"));
  await assertRejects(
    () => checkNeeds(holder, (id) => cached.has(id), ".cache/repro"),
    "train-critic is not complete in .cache/repro",
  );
  await checkNeeds(holder, () => true, ".cache/repro");
  assertThrows(
    () => levelJob(plan.dag, plan.work, 3, { index: 0, count: 1 }),
    "--level must be 0..2",
  );
  assert.deepEqual(parseShard("2/4"), { index: 1, count: 4 });
  const fromFlags = await loadLevelJob(await loadProfile("paper"), "1", "2/4");
  assert.deepEqual(fromFlags.ids, levelJob(plan.dag, plan.work, 1, { index: 1, count: 4 }).ids);
  await assertRejects(
    async () => loadLevelJob(await loadProfile("paper"), "one", "1/1"),
    "--level must be a level number, got 'one'",
  );
  assertThrows(() => parseShard("5/4"), "--shard must look like 1/4");
});

Deno.test({
  name:
    "repro:plan prints the smoke plan with calibrated times, and a second run reads the calibration from its cache",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const run = async () => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", `${ROOT}repro/plan.ts`, "tin", "--profile", "smoke", "--shards", "2"]
          .concat(["--steps", "1", "--json", "--cache", `${dir}/calibration.json`]),
        stdout: "piped",
        stderr: "piped",
        env: { XDG_RUNTIME_DIR: "/tmp", GPU_QUIET: "1" },
      }).output();
      const dec = new TextDecoder();
      const stderr = dec.decode(out.stderr);
      assert.equal(out.code, 0, stderr);
      return { j: JSON.parse(dec.decode(out.stdout)) as PlanJson, stderr };
    };
    const first = await run();
    const j = first.j;
    const dag = buildDag([await loadStudy("tin")], await loadProfile("smoke"));
    assert.deepEqual(j.experiments.map((e) => e.id), dag.map((n) => n.id));
    assert.equal(j.levelCount, levelCount(dag));
    for (const e of j.experiments) {
      if (e.kind === "notrun") continue;
      assert.ok(e.seconds! > 0 && e.imagesPerSecond! > 0, `${e.id}: ${e.seconds} s`);
    }
    const mae = j.experiments.find((e) => e.id === "pretrain-mae-random")!;
    assert.equal(
      mae.seconds,
      (mae.steps * Math.min(mae.batchSize, mae.trainImages) + mae.evalImages / 3) /
        mae.imagesPerSecond!,
    );
    for (const l of j.levels) {
      assert.equal(l.shards.length, 2);
      assert.ok(l.wallSeconds! <= l.serialSeconds! + 1e-9);
      assert.ok(l.wallSeconds! >= l.serialSeconds! / 2 - 1e-9);
    }
    assert.ok(first.stderr.includes("calibrating mae"), first.stderr);
    assert.ok(Object.values(j.rates).every((r) => r.source === "measured"));
    const second = await run();
    assert.ok(!second.stderr.includes("calibrating "), second.stderr);
    assert.ok(Object.values(second.j.rates).every((r) => r.source === "cached"));
    assert.equal(second.j.wallSeconds, j.wallSeconds);
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test("rates missing from the calibration are derived from the FLOP/s the measurements achieved", () => {
  const wk = new Map([
    ["a", work("a", { rateKey: "known", flopsPerImage: 10 })],
    // A sweep run at twice its shape's FLOPs: its shape's rate is priced at the base FLOPs.
    ["b", work("b", { rateKey: "other", flopsPerImage: 40, costFactor: 2 })],
    ["c", work("c", { kind: "notrun", rateKey: "-" })],
  ]);
  const anchors = [
    { label: "x", imagesPerSecond: 100, flopsPerImage: 10 }, // 1000 FLOP/s
    { label: "y", imagesPerSecond: 30, flopsPerImage: 100 }, // 3000 FLOP/s
  ];
  const { rates, derived } = deriveRates(wk, new Map([["known", 7]]), anchors);
  assert.equal(rates.get("known"), 7);
  assert.equal(rates.get("other"), 2000 / 20);
  assert.deepEqual(derived, ["other"]);
  assert.ok(!rates.has("-"));
  assert.equal(deriveRates(wk, new Map(), []).rates.size, 0);
});

Deno.test("the scale study plans by name in the small profile, and stays out of 'all'", async () => {
  const small = await loadProfile("small");
  const plan = await loadPlan("scale", small);
  const ids = plan.dag.map((n) => n.id);
  for (const n of [1024, 4096, 16384]) {
    assert.ok(ids.includes(`finetune-mae-random-n${n}`) && ids.includes(`scratch-n${n}`), `${n}`);
  }
  assert.equal(plan.work.get("pretrain-mae-random-n16384")?.trainImages, 16384);
  const all = await loadPlan("all", small);
  assert.ok(!all.dag.some((n) => /-n\d+$/.test(n.id)));
});
