import { experimentsOf, loadStudy } from "../../src/repro/claims.ts";
import { buildDag, levelCount, levelShard } from "../../src/repro/dag.ts";
import { withDependencies } from "../../src/repro/experiments.ts";
import { loadProfile } from "../../src/repro/profiles.ts";
import { assert, assertThrows } from "../_assert.ts";

const studies = await Promise.all(["tin", "cub", "sweep"].map((s) => loadStudy(s)));

Deno.test("the paper plan over all studies holds each experiment once, after what it starts from", async () => {
  const p = await loadProfile("paper");
  const dag = buildDag(studies, p);
  const ids = dag.map((n) => n.id);
  assert.equal(new Set(ids).size, ids.length, "an experiment appears twice");
  const perStudy = studies.map((s) => withDependencies(experimentsOf(s, "paper"), p));
  // Run study by study, the pre-trainings that several studies need would train once per study.
  const separately = perStudy.reduce((n, s) => n + s.length, 0);
  assert.ok(
    separately > ids.length,
    `${separately} runs study by study vs ${ids.length} in one plan`,
  );
  assert.deepEqual(new Set(perStudy.flat()), new Set(ids));
  const level = new Map(dag.map((n) => [n.id, n.level]));
  for (const n of dag) {
    for (const d of n.deps) {
      assert.ok(level.get(d)! < n.level, `${n.id} before its dependency ${d}`);
    }
  }
  const mae = dag.find((n) => n.id === "pretrain-mae-random")!;
  assert.equal(mae.level, 0);
  assert.deepEqual(mae.studies.sort(), ["cub", "tin"]);
  const transfer = dag.find((n) => n.id === "transfer-smae-block")!;
  assert.deepEqual(transfer.deps, ["pretrain-smae-block"]);
  assert.equal(transfer.level, 2); // critic -> SMAE pre-training -> CUB transfer
  assert.equal(levelCount(dag), 3);
});

Deno.test("levelShard() splits a level into disjoint shards that cover it, balanced by cost", async () => {
  const p = await loadProfile("paper");
  const dag = buildDag(studies, p);
  const cost = (id: string) => (id.startsWith("pretrain") ? 10 : 1);
  for (let level = 0; level < levelCount(dag); level++) {
    const want = dag.filter((n) => n.level === level && n.kind !== "notrun").map((n) => n.id);
    const shards = [0, 1, 2].map((i) => levelShard(dag, level, i, 3, cost));
    assert.deepEqual(shards.flat().sort(), [...want].sort(), `level ${level}`);
    const loads = shards.map((s) => s.reduce((a, id) => a + cost(id), 0));
    const biggest = Math.max(...want.map(cost), 0);
    assert.ok(Math.max(...loads) - Math.min(...loads) <= biggest, `level ${level}: ${loads}`);
  }
  assertThrows(() => levelShard(dag, 0, 3, 3, cost), "shard 4/3 does not exist");
});
