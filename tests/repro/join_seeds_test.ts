import { evaluateClaims, loadStudy, type Results } from "../../src/repro/claims.ts";
import { joinSeedRuns } from "../../src/repro/join_seeds.ts";
import type { RunReport } from "../../src/repro/report.ts";
import { assert, assertThrows } from "../_assert.ts";

/** A claims.json of seeds `seeds` where experiment `id` scored `acc(seed)` (or did not run). */
function run(
  seeds: number[],
  experiments: Record<string, ((seed: number) => number) | "notrun">,
  extra: Partial<RunReport> = {},
): RunReport {
  return {
    study: "tin",
    title: "t",
    profile: "small",
    profileReason: "chosen with --profile",
    seeds,
    seedKind: "held",
    seedRole: "held apart",
    adapter: { description: "cpu", software: true },
    commit: "abc1234",
    started: "2026-11-30T00:00:00Z",
    seconds: 1,
    shard: null,
    claims: [],
    experiments: Object.fromEntries(
      Object.entries(experiments).map(([id, f]) => [
        id,
        f === "notrun" ? { notrun: "not asked for" } : {
          seeds,
          metrics: seeds.map((s) => ({ seed: s, eval: { accuracy: f(s) } })),
        },
      ]),
    ),
    runs: [],
    figures: [],
    ...extra,
  };
}

Deno.test("joinSeedRuns() gives each experiment the seeds of every run it ran in, in order, with their own metrics", () => {
  const a = run([11, 12, 13], { probe: (s) => s / 100, scratch: (s) => s / 200, dino: "notrun" });
  const b = run([15, 14], { probe: (s) => s / 100, scratch: "notrun", dino: "notrun" }, {
    commit: "def5678",
  });
  const j = joinSeedRuns([a, b]);
  assert.deepEqual(j.seeds, [11, 12, 13, 14, 15]);
  assert.deepEqual(j.commits, ["abc1234", "def5678"]);
  const probe = j.results.get("probe")!;
  assert.ok(!("notrun" in probe));
  if ("notrun" in probe) return;
  assert.deepEqual(probe.seeds, [11, 12, 13, 14, 15]);
  // Each metric stays with its seed (run b listed 15 before 14).
  assert.deepEqual(probe.metrics.map((m) => m.seed), [11, 12, 13, 14, 15]);
  assert.deepEqual(
    probe.metrics.map((m) => (m.eval as { accuracy: number }).accuracy),
    [0.11, 0.12, 0.13, 0.14, 0.15],
  );
  // Ran in one run only: keeps that run's seeds; run in none: not run, with the reason.
  assert.deepEqual((j.results.get("scratch") as { seeds: number[] }).seeds, [11, 12, 13]);
  assert.deepEqual(j.results.get("dino"), { notrun: "not asked for" });
});

Deno.test("joinSeedRuns() refuses a shared seed, another study or profile, and design with held-apart seeds", () => {
  const a = run([11, 12], { probe: () => 0.5 });
  assertThrows(
    () => joinSeedRuns([a, run([12, 13], { probe: () => 0.5 })]),
    "seed 12 is in more than one run",
  );
  assertThrows(
    () => joinSeedRuns([a, run([14], { probe: () => 0.5 }, { profile: "ci" })]),
    "differ in study or profile (tin/ci vs tin/small)",
  );
  assertThrows(
    () => joinSeedRuns([a, run([1, 2], { probe: () => 0.5 }, { seedKind: "design" })]),
    "mix seed kinds (design seeds 1, 2 vs held seeds 11, 12)",
  );
  assertThrows(() => joinSeedRuns([]), "no runs to join");
});

Deno.test("deno task repro:merge --join-seeds judges the claims on every run's seeds; without it other seeds are refused", async () => {
  const dirs = [await Deno.makeTempDir(), await Deno.makeTempDir()];
  const out = await Deno.makeTempDir();
  try {
    const acc = (base: number) => (s: number) => base + s / 1000;
    const runs = [
      run([11, 12, 13], {
        "probe-mae-random": acc(0.6),
        "probe-random-init": acc(0.5),
        "finetune-mae-random": acc(0.7),
        scratch: acc(0.6),
      }),
      run([14, 15], {
        "probe-mae-random": acc(0.6),
        "probe-random-init": acc(0.5),
        "finetune-mae-random": acc(0.7),
      }),
    ];
    for (const [i, r] of runs.entries()) {
      await Deno.writeTextFile(`${dirs[i]}/claims.json`, JSON.stringify(r));
    }
    const merge = (...args: string[]) =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", new URL("../../repro/merge.ts", import.meta.url).pathname, ...args],
        stdout: "piped",
        stderr: "piped",
      }).output();
    const refused = await merge("--out", out, ...dirs);
    assert.equal(refused.code, 2);
    assert.match(new TextDecoder().decode(refused.stderr), /--join-seeds/);
    const joined = await merge("--join-seeds", "--out", out, ...dirs);
    assert.equal(joined.code, 0, new TextDecoder().decode(joined.stderr));
    const report = JSON.parse(await Deno.readTextFile(`${out}/claims.json`)) as RunReport;
    assert.deepEqual(report.seeds, [11, 12, 13, 14, 15]);
    const probe = report.claims.find((c) => c.id === "mae-probe-beats-random-init")!;
    // Every seed's difference is exactly 10 pp: n = 5, mean 10.
    assert.equal(probe.ours!.n, 5);
    assert.ok(Math.abs(probe.ours!.mean - 10) < 1e-9, JSON.stringify(probe.ours));
    // Fine-tuning ran on five seeds, scratch on three: paired on the three, and said so.
    const ft = report.claims.find((c) => c.id === "mae-beats-supervised-tin")!;
    assert.equal(ft.ours!.n, 3);
    assert.ok(Math.abs(ft.ours!.mean - 10) < 1e-9, JSON.stringify(ft.ours));
    assert.match(
      ft.reason,
      /paired on seeds 11, 12, 13, the ones finetune-mae-random, scratch all ran/,
    );
  } finally {
    for (const d of [...dirs, out]) await Deno.remove(d, { recursive: true });
  }
});

Deno.test("deno task repro:merge on one run judges it again with today's claims, keeping its shard and figures, and names the judging commit", async () => {
  const dir = await Deno.makeTempDir(), out = await Deno.makeTempDir();
  try {
    const acc = (base: number) => (s: number) => base + s / 1000;
    const kept = {
      ...run([11, 12, 13], { "probe-mae-random": acc(0.6), "probe-random-init": acc(0.5) }),
      shard: "1/2",
      figures: ["curve.svg"],
    };
    // A kept run whose claim carries an outdated reason and tolerance.
    kept.claims = [{ id: "mae-probe-beats-random-init", reason: "old", tolerance: "old" } as never];
    await Deno.writeTextFile(`${dir}/claims.json`, JSON.stringify(kept));
    await Deno.writeTextFile(`${dir}/curve.svg`, "<svg/>");
    const merged = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL("../../repro/merge.ts", import.meta.url).pathname,
        "--out",
        out,
        dir,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(merged.code, 0, new TextDecoder().decode(merged.stderr));
    const report = JSON.parse(await Deno.readTextFile(`${out}/claims.json`)) as RunReport;
    assert.equal(report.shard, "1/2");
    assert.equal(report.commit, kept.commit);
    assert.ok(report.judged && report.judged !== "", `judged: ${report.judged}`);
    assert.deepEqual(report.figures, ["curve.svg"]);
    assert.equal(await Deno.readTextFile(`${out}/curve.svg`), "<svg/>");
    const probe = report.claims.find((c) => c.id === "mae-probe-beats-random-init")!;
    const study = await loadStudy("tin");
    const why = study.claims.find((c) => c.id === probe.id)!.profiles.small!.why!;
    assert.ok(probe.reason.startsWith(why), probe.reason);
    assert.ok(Math.abs(probe.ours!.mean - 10) < 1e-9, JSON.stringify(probe.ours));
  } finally {
    for (const d of [dir, out]) await Deno.remove(d, { recursive: true });
  }
});

Deno.test("a comparison of experiments with no seed in common is not run, and says why", async () => {
  const study = await loadStudy("tin");
  const acc = (seeds: number[]) => ({
    seeds,
    metrics: seeds.map((s) => ({ seed: s, eval: { accuracy: 0.5 } })),
  });
  const results: Results = new Map([
    ["probe-mae-random", acc([1, 2])],
    ["probe-random-init", acc([3])],
  ]);
  const c = evaluateClaims(study, "small", results)
    .find((c) => c.id === "mae-probe-beats-random-init")!;
  assert.equal(c.verdict, "not run");
  assert.match(c.reason, /probe-mae-random, probe-random-init ran on no seed in common/);
});
