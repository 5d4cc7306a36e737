import {
  addBench,
  addRun,
  addStepProfile,
  type PageRun,
  parseBench,
  parseRun,
  renderPage,
  runFolder,
  writePage,
} from "../../src/repro/results_page.ts";
import { summarize } from "../../src/repro/stats.ts";
import { assert, assertRejects, assertThrows } from "../_assert.ts";

function run(study: string, profile: string, over: Partial<PageRun> = {}): PageRun {
  return {
    study,
    title: `Study ${study}`,
    profile,
    seeds: [1, 2, 3],
    adapter: { description: "llvmpipe", software: true },
    commit: "abc1234",
    started: "2026-11-30T10:00:00.000Z",
    seconds: 61.4,
    figures: [],
    claims: [
      {
        id: `${study}-probe`,
        wording: "MAE | probe beats random init",
        source: "Table 1",
        metric: "pp",
        paper: 4.2,
        ours: summarize([5, 6, 7]),
        check: { margin: 2 },
        tolerance: "margin 2",
        verdict: "pass",
        reason: "",
        control: { id: `${study}-shuffled`, ours: summarize([-3, -2, -1]), verdict: "fail" },
      },
      {
        id: `${study}-sweep`,
        wording: "75% is near the best ratio",
        source: "Figure 3",
        metric: "pp",
        paper: null,
        ours: summarize([0.1, 0.5, 0.9]),
        check: { measure: true },
        tolerance: "",
        verdict: "measured",
        reason: "the interval spans zero at this scale",
      },
    ],
    ...over,
  };
}

Deno.test("renderPage() lists each run's claims with the interval, check, verdict and control", () => {
  const page = renderPage([{ dir: "results/tin-small", run: run("tin", "small") }]);
  // mean 6, sd 1, 95% t-interval with 2 degrees of freedom: 6 ± 4.303 / sqrt(3)
  assert.ok(page.includes("6.000 ± 1.000 [3.516, 8.484]"), page);
  assert.ok(page.includes("| `tin-probe`: MAE \\| probe beats random init | 4.2 |"), page);
  assert.ok(page.includes("| margin 2 | **pass** | `tin-shuffled`: -2.000 ± 1.000"), page);
  assert.ok(page.includes("**measured**"));
  assert.ok(page.includes("- `tin-sweep` (measured): the interval spans zero at this scale"));
  assert.ok(page.includes("Commit abc1234, started 2026-11-30T10:00:00.000Z, 61 s on llvmpipe"));
  assert.ok(page.includes("| tin | small | 1, 2, 3 | abc1234 | 2026-11-30 | 1 pass, 1 measured |"));
  // A run judged again later (repro:merge) names the commit whose claims judged it.
  const judged = renderPage([
    { dir: "results/tin-small", run: run("tin", "small", { judged: "fed4321" }) },
  ]);
  assert.ok(judged.includes("Commit abc1234 (claims judged at fed4321), started"), judged);
  // A report made from the cache alone says so instead of giving a run time.
  const cached = renderPage([
    { dir: "results/tin-small", run: run("tin", "small", { cachedOnly: true }) },
  ]);
  assert.ok(
    cached.includes(
      "Commit abc1234, reported from the experiment cache (--cached-only) at 2026-11-30T10:00:00.000Z on llvmpipe",
    ),
    cached,
  );
});

Deno.test("a run on the design seeds is kept beside the held-apart run, and each says which it is", () => {
  const held = run("tin", "small", {
    seeds: [11, 12, 13],
    seedKind: "held",
    seedRole: "held apart: the thresholds were set on the design seeds 1, 2, 3",
  });
  const design = run("tin", "small", {
    seedKind: "design",
    seedRole: "the design seeds, on which the thresholds were set: not a held-apart check",
  });
  assert.deepEqual([runFolder(held), runFolder(design)], ["tin-small", "tin-small-design"]);
  const page = renderPage([
    { dir: "results/tin-small", run: held },
    { dir: "results/tin-small-design", run: design },
  ]);
  assert.ok(page.includes("## tin, profile `small`\n"), page);
  assert.ok(page.includes("## tin, profile `small`, design seeds\n"), page);
  assert.ok(page.includes("seeds 11, 12, 13 (held apart: the thresholds were set on the design"));
  assert.ok(page.includes("seeds 1, 2, 3 (the design seeds, on which the thresholds were set"));
});

Deno.test("renderPage() orders runs by profile size, then study", () => {
  const page = renderPage([
    { dir: "results/tin-paper", run: run("tin", "paper") },
    { dir: "results/cub-ci", run: run("cub", "ci") },
    { dir: "results/tin-ci", run: run("tin", "ci") },
    { dir: "results/tin-smoke", run: run("tin", "smoke") },
  ]);
  const heads = [...page.matchAll(/^## (\w+), profile `(\w+)`/gm)].map((m) => `${m[1]}-${m[2]}`);
  assert.deepEqual(heads, ["tin-smoke", "cub-ci", "tin-ci", "tin-paper"]);
});

Deno.test("parseRun() names the file and the field of a malformed claims.json", () => {
  const good = run("tin", "ci");
  assertThrows(() => parseRun("{", "x/claims.json"), "x/claims.json: not JSON");
  assertThrows(
    () => parseRun(JSON.stringify({ ...good, commit: 7 }), "x/claims.json"),
    "x/claims.json: field 'commit' must be a string",
  );
  assertThrows(
    () => parseRun(JSON.stringify({ ...good, claims: [{ id: "a" }] }), "y.json"),
    "y.json: claims[0].wording must be a string",
  );
  assert.equal(parseRun(JSON.stringify(good), "z").study, "tin");
});

Deno.test("addRun() keeps a run's claims.json and figures, and the page is rebuilt from what is kept", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const src = `${tmp}/runs/repro-tin-ci`;
    await Deno.mkdir(src, { recursive: true });
    await Deno.writeTextFile(`${src}/curves.svg`, "<svg/>");
    const first = run("tin", "ci", { figures: ["curves.svg"], commit: "1111111" });
    await Deno.writeTextFile(`${src}/claims.json`, JSON.stringify(first));
    const docs = `${tmp}/docs`;
    assert.equal(await addRun(src, docs), "tin-ci");
    assert.equal(await Deno.readTextFile(`${docs}/results/tin-ci/curves.svg`), "<svg/>");
    // A newer run of the same study and profile replaces the kept one.
    await Deno.writeTextFile(
      `${src}/claims.json`,
      JSON.stringify({ ...first, figures: [], commit: "2222222" }),
    );
    await addRun(src, docs);
    const { page, runs } = await writePage(docs);
    assert.equal(runs, 1);
    assert.ok(page.includes("Commit 2222222"));
    assert.ok(!page.includes("1111111"));
    assert.equal(await Deno.readTextFile(`${docs}/results.md`), page);
    const left = [...Deno.readDirSync(`${docs}/results`)].map((e) => e.name);
    assert.deepEqual(left, ["tin-ci"]);
    // A figure the claims.json lists but the folder lacks fails, naming it, and keeps the old run.
    await Deno.writeTextFile(
      `${src}/claims.json`,
      JSON.stringify({ ...first, figures: ["gone.svg"], commit: "3333333" }),
    );
    await assertRejects(() => addRun(src, docs), `${src}/gone.svg`);
    assert.ok((await writePage(docs)).page.includes("Commit 2222222"));
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("deno task results: --help exits 0 and a bad flag exits 2 with the usage", async () => {
  const cli = new URL("../../repro/results.ts", import.meta.url).pathname;
  const go = (args: string[]) =>
    new Deno.Command(Deno.execPath(), { args: ["run", "-A", cli, ...args] }).output();
  const help = await go(["--help"]);
  assert.equal(help.code, 0);
  assert.ok(new TextDecoder().decode(help.stdout).includes("--add DIR"));
  const bad = await go(["--bogus"]);
  assert.equal(bad.code, 2);
  assert.ok(new TextDecoder().decode(bad.stderr).includes("usage: deno task results"));
  assert.ok(new TextDecoder().decode(bad.stderr).includes("unknown option '--bogus'"));
});

Deno.test("addBench() keeps bench --json rows and the page shows them with the peer ratio", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const file = `${tmp}/bench.jsonl`;
    await Deno.writeTextFile(
      file,
      [
        JSON.stringify({
          name: "matmul",
          shape: "256x256x256",
          ours: 14.54,
          peer: 5.06,
          unit: "GFLOP/s",
          ratio: 14.54 / 5.06,
        }),
        JSON.stringify({
          name: "finetune-step",
          shape: "b32",
          ours: 0.88,
          peer: null,
          unit: "images/s",
          ratio: null,
        }),
        "",
      ].join("\n"),
    );
    const docs = `${tmp}/docs`;
    const meta = { commit: "abc1234", date: "2026-11-30", command: "deno task bench --json" };
    assert.equal(await addBench(file, docs, meta), 2);
    const { page } = await writePage(docs);
    assert.ok(page.includes("| matmul | 256x256x256 | 14.54 | 5.06 | GFLOP/s | 2.87x |"), page);
    assert.ok(page.includes("| finetune-step | b32 | 0.88 | - | images/s | - |"), page);
    assert.ok(page.includes("`deno task bench --json` at commit abc1234, 2026-11-30"));
    assertThrows(() => parseBench("gpu: llvmpipe\n", "b.jsonl"), "b.jsonl: line 1 is not a JSON");
    assertThrows(
      () => parseBench(JSON.stringify({ name: "x", shape: "y", unit: "z" }), "b.jsonl"),
      "b.jsonl: line 1: field 'ours' must be a number",
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("addStepProfile() keeps bench:profile's tables and the page shows them after the runs", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const file = `${tmp}/profile.md`;
    await Deno.writeTextFile(
      file,
      "| kernel | share |\n|---|--:|\n| attention_forward | 12.4% |\n",
    );
    const docs = `${tmp}/docs`;
    const meta = {
      commit: "abc1234",
      date: "2026-11-30",
      command: "deno task bench:profile --markdown",
    };
    await addStepProfile(file, docs, meta);
    const { page } = await writePage(docs);
    assert.ok(page.includes("## Where a training step's time goes"), page);
    assert.ok(page.includes("| attention_forward | 12.4% |"), page);
    await Deno.writeTextFile(file, "no table here\n");
    await assertRejects(() => addStepProfile(file, docs, meta), "holds no Markdown table");
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
