import { assert } from "../_assert.ts";
import { cachedDataset, readCache } from "../../src/data/cache.ts";
import type { ImageDataset } from "../../src/data/image_dataset.ts";
import { spawnDeno } from "../_spawn.ts";

const TOY: ImageDataset = {
  name: "toy",
  split: "train",
  count: 2,
  height: 2,
  width: 2,
  channels: 1,
  images: Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]),
  labels: Int32Array.from([0, 1]),
  classes: ["a", "b"],
};
const KEY = { dataset: "toy", split: "train", variant: "raw", sourceChecksum: "abc" };

/** Runs `fn` with console.error collected into the returned lines. */
async function stderrOf(fn: () => Promise<unknown>): Promise<string[]> {
  const lines: string[] = [];
  const orig = console.error;
  console.error = (...a: unknown[]) => lines.push(a.join(" "));
  try {
    await fn();
  } finally {
    console.error = orig;
  }
  return lines;
}

Deno.test({
  name:
    "a cache write killed midway leaves its .tmp-<pid> file, and the next cachedDataset() removes it with a message",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const path = `${dir}/train.u8cache`;
    // A writer as writeCache() names its file, killed by pid once it has written part of it.
    const child = `${dir}/writer.ts`;
    await Deno.writeTextFile(
      child,
      `const f = await Deno.open(Deno.args[0] + ".tmp-" + Deno.pid, { write: true, create: true });
await f.write(new Uint8Array(3 << 20));
console.error("WRITING");
setInterval(() => {}, 1 << 30);`,
    );
    const w = await spawnDeno(child, [path], { killAt: /^WRITING$/ });
    assert.ok(w.killed, w.stderr);
    const left = `${path}.tmp-${w.pid}`;
    assert.equal((await Deno.stat(left)).size, 3 << 20);
    // A temp file of a live process (this one) may still be in use: it stays.
    const live = `${dir}/val.u8cache.tmp-${Deno.pid}`;
    await Deno.writeFile(live, new Uint8Array(8));

    const lines = await stderrOf(() => cachedDataset(path, KEY, () => Promise.resolve(TOY)));
    assert.deepEqual(lines, [
      `cache: removed ${left} (3.0 MiB), left by a write of pid ${w.pid} that no longer runs`,
    ]);
    await assert.rejects(() => Deno.stat(left), Deno.errors.NotFound);
    await Deno.stat(live);
    assert.deepEqual([...(await readCache(path, KEY))!.labels], [0, 1]);
    await Deno.remove(dir, { recursive: true });
  },
});
