import { assert } from "../_assert.ts";

const root = (p: string) => new URL(`../../${p}`, import.meta.url).pathname;

async function cli(
  script: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", root(script), ...args],
    cwd: root(""),
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Asserts exit 2, a message naming the problem, no stack trace, and (`usage`) the usage text. */
function assertUsage(r: { code: number; stderr: string }, fragment: string, usage = false): void {
  assert.equal(r.code, 2, r.stderr);
  assert.ok(r.stderr.includes(fragment), r.stderr);
  if (usage) assert.match(r.stderr, /usage:/);
  assert.doesNotMatch(r.stderr, /TypeError|\n\s+at /);
}

const CLIS: [script: string, args: string[], options: string[]][] = [
  [
    "repro/run.ts",
    ["tin"],
    ["--profile", "--seeds", "--seed-list", "--asserted", "--shard", "--only", "--fresh"],
  ],
  ["repro/merge.ts", [], ["--out"]],
  ["src/data/fetch_cli.ts", ["tin"], ["--data-dir", "--url", "--sha256", "--no-cache"]],
  ["src/cli/train.ts", [], ["--config", "--seed", "--epochs", "--resume"]],
  ["bench/kernels.ts", [], ["--json", "--only", "--quick", "--train-batch"]],
  ["repro/plan.ts", [], ["--profile", "--shards", "--json", "--no-calibrate"]],
  ["src/cli/gpu_check.ts", [], ["--quick", "--json", "--no-audit"]],
  ["src/cli/audit.ts", [], ["--op", "--json", "--gpu", "--port"]],
  ["repro/results.ts", [], ["--add", "--bench", "--step-profile", "--docs"]],
];

for (const [script, args, options] of CLIS) {
  Deno.test(`${script} --help lists its options and exits 0`, async () => {
    const r = await cli(script, [...args, "--help"]);
    assert.equal(r.code, 0, r.stderr);
    for (const o of [...options, "--help"]) assert.ok(r.stdout.includes(o), `${o} in\n${r.stdout}`);
  });
  Deno.test(`${script} refuses an unknown flag with its usage and exit 2`, async () => {
    assertUsage(await cli(script, [...args, "--bogus"]), "unknown option '--bogus'", true);
  });
}

Deno.test("repro --seeds -1 and --seeds 0 are usage errors, not seed 42 or a TypeError", async () => {
  assertUsage(await cli("repro/run.ts", ["tin", "--seeds", "-1"]), "--seeds needs a value");
  assertUsage(await cli("repro/run.ts", ["tin", "--seeds=-1"]), "--seeds must be an integer >= 1");
  assertUsage(
    await cli("repro/run.ts", ["tin", "--seeds", "0"]),
    "--seeds must be an integer >= 1",
  );
  assertUsage(await cli("repro/run.ts", ["tin", "--seeds", "2.5"]), "got '2.5'");
  assertUsage(
    await cli("repro/run.ts", ["tin", "--seed-list", "1,x"]),
    "--seed-list must be distinct integers >= 0 like 1,2,3; got '1,x'",
  );
  assertUsage(await cli("repro/run.ts", ["tin", "--seed-list", "1,1"]), "got '1,1'");
  assertUsage(
    await cli("repro/run.ts", ["tin", "--seeds", "2", "--seed-list", "1,2"]),
    "--seeds and --seed-list: give one of them",
  );
  // The small profile holds five seeds apart from its design seeds.
  assertUsage(
    await cli("repro/run.ts", ["tin", "--profile", "small", "--seeds", "9", "--print-config"]),
    "--seeds 9: the small profile holds 5 seeds apart",
  );
});

Deno.test({
  name: "repro refuses a shard past the study's families and --data under the smoke profile",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const a = await cli("repro/run.ts", ["tin", "--profile", "smoke", "--shard", "9/9"]);
    assert.equal(a.code, 2, a.stderr);
    assert.match(a.stderr, /--shard 9\/9 is empty: the tin study has \d+ experiment families/);
    const b = await cli("repro/run.ts", ["tin", "--profile", "smoke", "--data", "/elsewhere"]);
    assert.equal(b.code, 2, b.stderr);
    assert.match(b.stderr, /--data: the smoke profile reads its fixed data .*fixtures/);
    const c = await cli("repro/run.ts", ["tin", "--profile", "smoke", "--only", "no-such-run"]);
    assert.equal(c.code, 2, c.stderr);
    assert.match(c.stderr, /--only: 'no-such-run' not among the tin study's experiments/);
    assertUsage(await cli("repro/run.ts", ["tin", "--shard", "0/2"]), "--shard must be i/n");
  },
});

Deno.test("repro:merge without shard directories is a usage error", async () => {
  assertUsage(await cli("repro/merge.ts", []), "name at least one shard directory");
});

Deno.test("train --epochs 0 and --seed x are usage errors", async () => {
  assertUsage(await cli("src/cli/train.ts", ["--config", "c.yaml", "--epochs", "0"]), "--epochs");
  assertUsage(await cli("src/cli/train.ts", ["--config", "c.yaml", "--seed", "x"]), "--seed");
  assertUsage(await cli("src/cli/train.ts", []), "--config is required");
});

Deno.test("data fetch without a dataset name, or a flag without its value, is a usage error", async () => {
  assertUsage(await cli("src/data/fetch_cli.ts", []), "name a dataset, tin or cub");
  assertUsage(await cli("src/data/fetch_cli.ts", ["tin", "--md5"]), "--md5 needs a value");
});

Deno.test("bench refuses an unknown case and a bad --train-batch", async () => {
  assertUsage(await cli("bench/kernels.ts", ["--only", "nope"]), "unknown case nope");
  assertUsage(await cli("bench/kernels.ts", ["--train-batch", "0"]), "--train-batch");
});

Deno.test("repro --print-config shows the paper profile's settled values and short as paper at 5% of the epochs", async () => {
  const show = async (study: string, profile: string) => {
    const r = await cli("repro/run.ts", [study, "--print-config", "--profile", profile]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as Record<string, Record<string, Record<string, unknown>>>;
  };
  const paper = await show("tin", "paper");
  assert.deepEqual(
    [paper["pretrain-mae-block"].mae.masking, paper["pretrain-mae-block"].mae.maskRatio],
    ["block", 0.5],
  );
  // The authors' warmup rule, epochs // 20, everywhere but DINO.
  assert.equal(paper["pretrain-mae-random"].optim.warmupEpochs, 20);
  assert.equal(paper["pretrain-mae-random"].optim.epochs, 400);
  const sweep = await show("sweep", "paper");
  assert.equal(sweep["pretrain-mae-r60"].mae.maskRatio, 0.6);
  assert.deepEqual([
    sweep["pretrain-mae-r60"].optim.epochs,
    sweep["pretrain-mae-r60"].optim.warmupEpochs,
  ], [200, 10]);
  const cub = await show("cub", "paper");
  // CUB from scratch: the authors' fromscratch_cub recipe, with no init.
  const scratch = cub["transfer-scratch"];
  assert.deepEqual([scratch.optim.epochs, scratch.optim.lr, scratch.optim.weightDecay], [
    400,
    5e-4,
    0.1,
  ]);
  assert.equal(scratch.init, undefined);
  const short = await show("tin", "short");
  assert.equal(short["pretrain-mae-random"].optim.epochs, 20);
  assert.equal(short["pretrain-mae-random"].optim.warmupEpochs, 1);
});

Deno.test("repro --level K trains nothing it depends on: a missing level-0 checkpoint is named, exit 1", async () => {
  const cache = await Deno.makeTempDir();
  try {
    const r = await cli("repro/run.ts", [
      "all",
      "--profile",
      "smoke",
      "--level",
      "1",
      "--shard",
      "1/1",
      "--cache",
      cache,
    ]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /is not complete in .*; not training it here/);
    assert.equal([...Deno.readDirSync(cache)].filter((e) => e.isDirectory).length, 0);
  } finally {
    await Deno.remove(cache, { recursive: true });
  }
});

Deno.test({
  name: "repro tin --plan prints the study's plan with estimated times, and trains no experiment",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const r = await cli("repro/run.ts", ["tin", "--plan", "--profile", "smoke", "--shards", "2"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /plan: tin under profile smoke: \d+ experiments in \d+ levels/);
    assert.match(r.stdout, /^0 +pretrain-mae-random +pretrain /m);
    assert.match(r.stdout, /level 0: \d+ experiments, .* on 2 shards/);
    assert.doesNotMatch(r.stderr, /training pretrain/);
  },
});
