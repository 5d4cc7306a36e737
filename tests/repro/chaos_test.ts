import { assert } from "../_assert.ts";
import { type ChildRun, spawnDeno } from "../_spawn.ts";

const RUN = new URL("../../repro/run.ts", import.meta.url).pathname;
const ONLY = "pretrain-mae-random,finetune-mae-random";

/** claims.json's claims and experiments, without wall-clock values and with the cache path named. */
async function comparable(out: string, cache: string): Promise<unknown> {
  const text = (await Deno.readTextFile(`${out}/claims.json`)).replaceAll(cache, "<cache>");
  const report = JSON.parse(text);
  const strip = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(strip);
    if (v && typeof v === "object") {
      return Object.fromEntries(
        Object.entries(v)
          .filter(([k]) => !/seconds|PerSecond|per_s$/i.test(k))
          .map(([k, x]) => [k, strip(x)]),
      );
    }
    return v;
  };
  return strip({ claims: report.claims, experiments: report.experiments });
}

function run(cache: string, out: string, extra: string[], opts = {}): Promise<ChildRun> {
  return spawnDeno(
    RUN,
    ["tin", "--profile", "smoke", "--only", ONLY, "--cache", cache, "--out", out, ...extra],
    opts,
  );
}

Deno.test({
  name:
    "a smoke run killed mid-training, after a completion record and mid --fresh swap, then re-run, reports what an uninterrupted run does",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const cacheA = await Deno.makeTempDir(), outA = await Deno.makeTempDir();
    const clean = await run(cacheA, outA, []);
    assert.ok(clean.code === 0 || clean.code === 1, clean.stderr);

    const cache = await Deno.makeTempDir(), out = await Deno.makeTempDir();
    const kills: [string[], Record<string, string>, RegExp][] = [
      [[], {}, /pretrain: step 30\/100/],
      [[], { REPRO_PAUSE_AT: "finetune-mae-random:complete" }, /paused at finetune-mae-random/],
      [["--fresh"], { REPRO_PAUSE_AT: "pretrain-mae-random:swap" }, /paused at pretrain-mae/],
    ];
    for (const [extra, env, killAt] of kills) {
      const r = await run(cache, out, extra, { env, killAt });
      assert.ok(r.killed, `not killed at ${killAt}:\n${r.stderr}`);
    }
    const last = await run(cache, out, []);
    assert.equal(last.code, clean.code, last.stderr);
    assert.match(last.stderr, /\.lock: taking over the lock of pid \d+ .*which no longer runs/);
    assert.deepEqual(await comparable(out, cache), await comparable(outA, cacheA));
    for (const d of [cacheA, outA, cache, out]) await Deno.remove(d, { recursive: true });
  },
});
