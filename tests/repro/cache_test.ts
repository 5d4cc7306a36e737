import { assert } from "../_assert.ts";
import { fileSha256 } from "../../src/repro/runner.ts";
import { lockDir, LockedError } from "../../src/repro/lock.ts";
import { spawnDeno } from "../_spawn.ts";

const CHILD = new URL("./_cache_child.ts", import.meta.url).pathname;

interface ChildResult {
  cached: boolean;
  eval: Record<string, number>;
}

/** The child's result, without the evaluation's wall-clock seconds. */
function resultOf(stdout: string): ChildResult {
  const line = stdout.split("\n").find((l) => l.startsWith("RESULT "));
  assert.ok(line, `no RESULT line in\n${stdout}`);
  const r = JSON.parse(line.slice(7));
  delete r.eval.seconds;
  return r;
}

/** The cache's only entry folder (the key is the one subfolder without a suffix). */
async function entryOf(cache: string): Promise<string> {
  const names: string[] = [];
  for await (const e of Deno.readDir(cache)) if (e.isDirectory) names.push(e.name);
  const entries = names.filter((n) => /^[0-9a-f]{20}$/.test(n));
  assert.equal(entries.length, 1, `one entry in ${names.join(", ")}`);
  return `${cache}/${entries[0]}`;
}

const noSanitize = { sanitizeResources: false, sanitizeOps: false };

Deno.test({
  name:
    "a --fresh retrain killed midway or before its completion record leaves the old entry served; killed mid-swap, it is rebuilt",
  ...noSanitize,
  fn: async () => {
    const cache = await Deno.makeTempDir();
    const first = await spawnDeno(CHILD, [cache]);
    assert.equal(first.code, 0, first.stderr);
    const entry = await entryOf(cache);
    const sha = await fileSha256(`${entry}/checkpoint.safetensors`);
    const firstEval = resultOf(first.stdout).eval;
    const record = JSON.parse(await Deno.readTextFile(`${entry}/complete.json`));
    assert.equal(record.checkpointSha256, sha);

    // Killed while the retrain is writing its checkpoints and metrics.
    const mid = await spawnDeno(CHILD, [cache, "--fresh"], { killAt: /pretrain: step \d+\/\d+/ });
    assert.ok(mid.killed, mid.stderr);
    assert.equal(await fileSha256(`${entry}/checkpoint.safetensors`), sha);
    // Killed with the new checkpoint finished but no completion record yet.
    const late = await spawnDeno(CHILD, [cache, "--fresh"], {
      env: { REPRO_PAUSE_AT: "pretrain-mae-random:trained" },
      killAt: /paused at pretrain-mae-random:trained/,
    });
    assert.ok(late.killed, late.stderr);
    assert.equal(await fileSha256(`${entry}/checkpoint.safetensors`), sha);

    const again = await spawnDeno(CHILD, [cache]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /\.tmp-\d+: removing what an interrupted run left/);
    const r = resultOf(again.stdout);
    assert.equal(r.cached, true);
    assert.deepEqual(r.eval, firstEval);
    assert.equal(await fileSha256(`${entry}/checkpoint.safetensors`), sha);

    // Killed between setting the old entry aside and renaming the new one in: rebuilt, not served.
    const swap = await spawnDeno(CHILD, [cache, "--fresh"], {
      env: { REPRO_PAUSE_AT: "pretrain-mae-random:swap" },
      killAt: /paused at pretrain-mae-random:swap/,
    });
    assert.ok(swap.killed, swap.stderr);
    const rebuilt = await spawnDeno(CHILD, [cache]);
    assert.equal(rebuilt.code, 0, rebuilt.stderr);
    assert.match(rebuilt.stderr, /\.old-\d+: removing what an interrupted run left/);
    const r2 = resultOf(rebuilt.stdout);
    assert.equal(r2.cached, false, "rebuilt");
    assert.deepEqual(r2.eval, firstEval);
    assert.equal(await fileSha256(`${entry}/checkpoint.safetensors`), sha, "same training");
    await Deno.remove(cache, { recursive: true });
  },
});

Deno.test({
  name:
    "an entry whose checkpoint fails its checksum, or that has no completion record, is rebuilt with a message",
  ...noSanitize,
  fn: async () => {
    const cache = await Deno.makeTempDir();
    const first = await spawnDeno(CHILD, [cache]);
    assert.equal(first.code, 0, first.stderr);
    const entry = await entryOf(cache);
    const ckpt = `${entry}/checkpoint.safetensors`;
    const sha = await fileSha256(ckpt);
    const bytes = await Deno.readFile(ckpt);
    bytes[bytes.length - 5] ^= 0x40; // a data byte of the last tensor
    await Deno.writeFile(ckpt, bytes);

    const corrupt = await spawnDeno(CHILD, [cache]);
    assert.equal(corrupt.code, 0, corrupt.stderr);
    assert.match(corrupt.stderr, /checkpoint\.safetensors: fails its checksum .*; rebuilding/);
    assert.equal(resultOf(corrupt.stdout).cached, false);
    assert.equal(await fileSha256(ckpt), sha);

    // The state a killed run used to leave: a summary beside a checkpoint nobody vouches for.
    await Deno.remove(`${entry}/complete.json`);
    const unrecorded = await spawnDeno(CHILD, [cache]);
    assert.equal(unrecorded.code, 0, unrecorded.stderr);
    assert.match(unrecorded.stderr, /no completion record .*; rebuilding/);
    assert.equal(resultOf(unrecorded.stdout).cached, false);
    await Deno.remove(cache, { recursive: true });
  },
});

Deno.test({
  name:
    "a second run on a cache in use stops naming the holder's pid; a dead holder's lock is taken over",
  ...noSanitize,
  fn: async () => {
    const cache = await Deno.makeTempDir();
    let second: Awaited<ReturnType<typeof spawnDeno>> | null = null;
    let holder = 0;
    const first = await spawnDeno(CHILD, [cache], {
      env: { REPRO_PAUSE_AT: "pretrain-mae-random:trained" },
      readyAt: /paused at pretrain-mae-random:trained/,
      onReady: async (pid) => {
        holder = pid;
        second = await spawnDeno(CHILD, [cache]);
      },
      killAt: /paused at pretrain-mae-random:trained/,
    });
    assert.ok(first.killed);
    const s = second! as Awaited<ReturnType<typeof spawnDeno>>;
    assert.equal(s.code, 3, s.stderr);
    assert.ok(s.stderr.includes(`${cache} is in use by pid ${holder}`), s.stderr);

    // The holder is dead now: its lock is stale.
    const third = await spawnDeno(CHILD, [cache]);
    assert.equal(third.code, 0, third.stderr);
    assert.ok(
      third.stderr.includes(`taking over the lock of pid ${holder}`) &&
        third.stderr.includes("which no longer runs"),
      third.stderr,
    );
    await Deno.remove(cache, { recursive: true });
  },
});

Deno.test("lockDir() refuses a directory this live process holds and frees it on release", async () => {
  const dir = await Deno.makeTempDir();
  const lines: string[] = [];
  const lock = await lockDir(dir, "test", (l) => lines.push(l));
  const info = JSON.parse(await Deno.readTextFile(`${dir}/.lock`));
  assert.equal(info.pid, Deno.pid);
  let err: unknown = null;
  await lockDir(dir, "test", (l) => lines.push(l)).catch((e) => (err = e));
  assert.ok(err instanceof LockedError);
  assert.match((err as Error).message, new RegExp(`in use by pid ${Deno.pid} \\(test`));
  lock.release();
  (await lockDir(dir, "test", (l) => lines.push(l))).release();
  assert.deepEqual(lines, []);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("lockDir() takes over a lock whose pid runs a different process (a reused pid)", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(
    `${dir}/.lock`,
    JSON.stringify({ pid: Deno.pid, processStart: "1", started: "then", what: "old run" }),
  );
  const lines: string[] = [];
  const lock = await lockDir(dir, "test", (l) => lines.push(l));
  assert.match(lines.join("\n"), new RegExp(`taking over the lock of pid ${Deno.pid} \\(old run`));
  lock.release();
  await Deno.remove(dir, { recursive: true });
});
