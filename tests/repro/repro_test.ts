import { assert } from "../_assert.ts";

const RUN = new URL("../../repro/run.ts", import.meta.url).pathname;
const MERGE = new URL("../../repro/merge.ts", import.meta.url).pathname;

async function deno(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** `repro:tin --profile smoke` with this cache and output folder, then `extra`. */
function smoke(cache: string, out: string, ...extra: string[]) {
  return deno([RUN, "tin", "--profile", "smoke", "--cache", cache, "--out", out, ...extra]);
}

interface ClaimJson {
  id: string;
  verdict: string;
  control?: { id: string; verdict: string };
}

Deno.test({
  name:
    "the smoke profile runs every stage, writes the report, and its negative controls fail their claims",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const cache = await Deno.makeTempDir(), out = await Deno.makeTempDir();
    const r = await smoke(cache, out);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /^repro tin: profile smoke — chosen with --profile/);
    assert.match(r.stdout, /claim +paper +ours +tolerance +verdict/);
    // Progress: experiment i of N, and the study's remaining time after each run.
    const starts = [...r.stderr.matchAll(/experiment (\d+) of (\d+): /g)];
    assert.ok(starts.length > 1, r.stderr);
    assert.deepEqual(starts.map((m) => Number(m[1])), starts.map((_, i) => i + 1));
    assert.ok(starts.every((m) => m[2] === starts[0][2]));
    assert.match(r.stderr, /1 of \d+ done; about [^;\n]+ left at this run's speed/);
    const report = JSON.parse(await Deno.readTextFile(`${out}/claims.json`));
    assert.equal(report.profile, "smoke");
    const checked = (report.claims as ClaimJson[]).filter((c) => c.verdict !== "not run");
    assert.ok(checked.length > 0, "smoke checks at least one claim");
    for (const c of checked) {
      if (c.control) {
        assert.equal(c.control.verdict, "fail", `${c.id}: control ${c.control.id} must fail`);
      }
    }
    // Paper numbers at fixture scale are reported (`measured`) with a value, never judged.
    for (const id of ["tab1-dino-tin", "tab1-smae-tin"]) {
      const c = (report.claims as (ClaimJson & { ours: { mean: number } | null })[]).find((x) =>
        x.id === id
      )!;
      assert.equal(c.verdict, "measured", id);
      assert.ok(Number.isFinite(c.ours!.mean), id);
    }
    const paperOnly = (report.claims as ClaimJson[]).find((c) => c.id === "tab1-supervised-tin")!;
    assert.equal(paperOnly.verdict, "not run");
    // The smoke-scale DINO claim runs DINO and its collapsing control.
    const noCollapse = (report.claims as (ClaimJson & { ours: { mean: number } | null })[]).find(
      (c) => c.id === "ci-dino-no-collapse",
    )!;
    assert.equal(noCollapse.verdict, "pass");
    assert.ok(noCollapse.ours!.mean >= 0.2 && noCollapse.ours!.mean <= 0.5);
    assert.equal(noCollapse.control!.verdict, "fail");
    for (
      const f of [
        "report.md",
        "curves_pretrain.svg",
        "curves_dino.svg",
        "figure2.svg",
        "figure2.png",
      ]
    ) {
      await Deno.stat(`${out}/${f}`);
    }

    // Two shards, then a merge, give the verdicts of the whole run (from the cache).
    const s1 = await Deno.makeTempDir(),
      s2 = await Deno.makeTempDir(),
      merged = await Deno.makeTempDir();
    for (const [shard, dir] of [["1/2", s1], ["2/2", s2]]) {
      const rs = await smoke(cache, dir, "--shard", shard);
      assert.ok(rs.code === 0 || rs.code === 1, rs.stderr);
      assert.match(rs.stderr, /cached/);
    }
    const m = await deno([MERGE, "--out", merged, s1, s2]);
    assert.equal(m.code, 0, m.stderr + m.stdout);
    const mergedReport = JSON.parse(await Deno.readTextFile(`${merged}/claims.json`));
    const verdicts = (x: { claims: ClaimJson[] }) => x.claims.map((c) => `${c.id}:${c.verdict}`);
    assert.deepEqual(verdicts(mergedReport), verdicts(report));

    // --cached-only trains nothing: from the full cache the same verdicts, except the
    // timing, which every run measures afresh; from an empty cache, nothing run.
    const fromCache = await Deno.makeTempDir(), empty = await Deno.makeTempDir();
    const c = await smoke(cache, fromCache, "--cached-only");
    assert.equal(c.code, 0, c.stderr + c.stdout);
    assert.doesNotMatch(c.stderr, /: training /);
    const cachedReport = JSON.parse(await Deno.readTextFile(`${fromCache}/claims.json`));
    assert.equal(cachedReport.cachedOnly, true);
    assert.equal(report.cachedOnly, undefined);
    const timing = (cachedReport.claims as (ClaimJson & { reason: string })[]).find((x) =>
      x.id === "tab2-smae-recon-time"
    )!;
    assert.equal(timing.verdict, "not run");
    assert.match(timing.reason, /a timing, measured afresh by every run \(--cached-only\)/);
    const notTiming = (x: { claims: ClaimJson[] }) =>
      verdicts(x).filter((v) => !v.startsWith("tab2-smae-recon-time:"));
    assert.deepEqual(notTiming(cachedReport), notTiming(report));
    const e = await smoke(empty, fromCache, "--cached-only");
    const emptyReport = JSON.parse(await Deno.readTextFile(`${fromCache}/claims.json`));
    assert.ok(
      (emptyReport.claims as ClaimJson[]).every((x) => x.verdict === "not run"),
      e.stderr + e.stdout,
    );
    const mae = emptyReport.experiments["pretrain-mae-random"] as { notrun: string };
    assert.match(mae.notrun, /^seed 42 is not in the cache \(--cached-only\)$/);
    const ft = emptyReport.experiments["finetune-mae-random"] as { notrun: string };
    assert.match(ft.notrun, /starts from pretrain-mae-random, not in the cache/);
    const both = await deno([RUN, "tin", "--profile", "smoke", "--cached-only", "--fresh"]);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /--cached-only .* cannot go with --fresh/);
  },
});

Deno.test({
  name:
    "repro refuses the paper profile on a software adapter without --force, naming the estimate",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const r = await deno([RUN, "tin", "--profile", "paper", "--data", "/nonexistent-tin"]);
    // On a hardware GPU the profile would start: this check is for the CPU adapter CI uses.
    if (/software rasterizer/.test(r.stderr) || /llvmpipe|lavapipe/.test(r.stderr)) {
      assert.equal(r.code, 2);
      assert.match(
        r.stderr,
        /would take roughly \d+ hours on this software adapter .* add --force/,
      );
    }
  },
});

Deno.test({
  name: "repro with a missing dataset fails with one line naming the file, not a stack trace",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    // Both splits load at once, so either missing file may be the one reported.
    const cache = await Deno.makeTempDir(), out = await Deno.makeTempDir();
    const r = await deno([
      RUN,
      "tin",
      "--profile",
      "ci",
      "--data",
      "/nonexistent-fmnist",
      "--cache",
      cache,
      "--out",
      out,
    ]);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /repro: \/nonexistent-fmnist\/(train|t10k)-images-idx3-ubyte\(\.gz\): IDX file not found/,
    );
    assert.doesNotMatch(r.stderr, /Uncaught| {4}at /);
    assert.deepEqual(
      [...Deno.readDirSync(out)],
      [],
      "no report is written for a run that could not start",
    );
  },
});
