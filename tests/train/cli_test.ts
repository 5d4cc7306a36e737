import { assert } from "../_assert.ts";

const CLI = new URL("../../src/cli/train.ts", import.meta.url).pathname;
const ROOT = new URL("../../fixtures/tiny-imagenet-200", import.meta.url).pathname;

const CONFIG = `
mode: scratch
seed: 7
data: { dataset: tiny-imagenet, normalize: batch }
encoder: { imageSize: 64, channels: 3, patch: 8, width: 16, depth: 1, heads: 2, mlp: 32, dropout: 0 }
optim: { name: adamw, lr: 1.0e-3, weightDecay: 0.05, betas: [0.9, 0.95], warmupEpochs: 0, epochs: 1, batchSize: 10 }
checkpointEvery: 1000
logEvery: 1
`;

async function cli(args: string[]): Promise<{ code: number; stderr: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: r.code, stderr: new TextDecoder().decode(r.stderr) };
}

Deno.test({
  name:
    "deno task train over an existing run folder without --resume refuses, naming the folder and both ways on, and leaves the run as it was",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const config = `${dir}/tiny.yaml`;
    await Deno.writeTextFile(config, CONFIG);
    const out = `${dir}/run`;
    // A run folder as a stopped run leaves it (its contents are not read).
    await Deno.mkdir(out);
    const ckpt = new Uint8Array([1, 2, 3]), metrics = '{"type":"train","step":0}\n';
    await Deno.writeFile(`${out}/checkpoint.safetensors`, ckpt);
    await Deno.writeTextFile(`${out}/metrics.jsonl`, metrics);
    const r = await cli(["--config", config, "--data", ROOT, "--out", out]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`train: ${out} already holds a run`));
    assert.match(r.stderr, /--resume/);
    assert.match(r.stderr, /--overwrite/);
    assert.deepEqual(await Deno.readFile(`${out}/checkpoint.safetensors`), ckpt);
    assert.equal(await Deno.readTextFile(`${out}/metrics.jsonl`), metrics);
    // --overwrite starts over; an empty folder needs nothing.
    const o = await cli(["--config", config, "--data", ROOT, "--out", out, "--overwrite"]);
    assert.equal(o.code, 0, o.stderr);
    const lines = (await Deno.readTextFile(`${out}/metrics.jsonl`)).trim().split("\n");
    assert.equal(lines.filter((l) => JSON.parse(l).type === "train").length, 5);
    const empty = `${dir}/empty`;
    await Deno.mkdir(empty);
    const e = await cli(["--config", config, "--data", ROOT, "--out", empty, "--epochs", "1"]);
    assert.equal(e.code, 0, e.stderr);
    await Deno.remove(dir, { recursive: true });
  },
});
