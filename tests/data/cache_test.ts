import assert from "node:assert/strict";
import {
  cachedDataset,
  CacheInvalidError,
  decodeCache,
  encodeCache,
  readCache,
} from "../../src/data/cache.ts";
import type { ImageDataset } from "../../src/data/image_dataset.ts";
import { loadTinyImageNet } from "../../src/data/tiny_imagenet.ts";
import { fixtureCopy, FIXTURES } from "./_fixture_copy.ts";

function tiny(): ImageDataset {
  return {
    name: "toy",
    split: "train",
    count: 3,
    height: 2,
    width: 3,
    channels: 1,
    images: Uint8Array.from({ length: 18 }, (_, i) => i * 7),
    labels: new Int32Array([2, 0, -1]),
    classes: ["a", "b", "c"],
  };
}
const KEY = { dataset: "toy", split: "train", variant: "raw", sourceChecksum: "abc" };

Deno.test("encodeCache() and decodeCache() round-trip pixels, labels and the class list", () => {
  const ds = tiny();
  const back = decodeCache(encodeCache(ds, "raw", "abc"), "x.u8cache", KEY);
  assert.deepEqual(back, ds);
});

Deno.test("decodeCache() rejects a flipped payload byte, a truncated file and a stale key", () => {
  const bytes = encodeCache(tiny(), "raw", "abc");
  const flipped = bytes.slice();
  flipped[bytes.length - 20] ^= 1;
  assert.throws(
    () => decodeCache(flipped, "c.u8cache", KEY),
    (e: Error) =>
      e instanceof CacheInvalidError && /c\.u8cache: payload checksum mismatch/.test(e.message),
  );
  assert.throws(
    () => decodeCache(bytes.subarray(0, bytes.length - 4), "c.u8cache"),
    /c\.u8cache: size 276 bytes, header implies 280 \(truncated or padded\)/,
  );
  assert.throws(
    () => decodeCache(bytes, "c.u8cache", { ...KEY, sourceChecksum: "new" }),
    /stale: sourceChecksum/,
  );
  assert.throws(() => decodeCache(new Uint8Array(40), "c.u8cache"), /not a dataset cache/);
});

Deno.test("cachedDataset() builds once, then reads the cache without calling build", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/toy.u8cache`;
  let builds = 0;
  const build = () => Promise.resolve((builds++, tiny()));
  await cachedDataset(path, KEY, build);
  const again = await cachedDataset(path, KEY, build);
  assert.equal(builds, 1);
  assert.deepEqual(again, tiny());
  const names = [...Deno.readDirSync(dir)].map((e) => e.name);
  assert.deepEqual(names, ["toy.u8cache"], "no temporary files left behind");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("cachedDataset() rebuilds a corrupt cache and replaces it with a valid one", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/toy.u8cache`;
  let builds = 0;
  const build = () => Promise.resolve((builds++, tiny()));
  await cachedDataset(path, KEY, build);
  const bytes = await Deno.readFile(path);
  bytes[bytes.length - 30] ^= 0x55;
  await Deno.writeFile(path, bytes);
  await assert.rejects(() => readCache(path, KEY), CacheInvalidError);
  const ds = await cachedDataset(path, KEY, build);
  assert.equal(builds, 2);
  assert.deepEqual(ds, tiny());
  assert.deepEqual(await readCache(path, KEY), tiny());
  await Deno.remove(dir, { recursive: true });
});

Deno.test("loadTinyImageNet() gives identical data from the cache and detects a changed source image", async () => {
  const root = await fixtureCopy("tiny-imagenet-200");
  const cacheDir = await Deno.makeTempDir();
  try {
    const direct = await loadTinyImageNet("val", { root, cacheDir: null });
    const first = await loadTinyImageNet("val", { root, cacheDir });
    const cachePath = `${cacheDir}/tiny-imagenet-200-val.u8cache`;
    const stat1 = await Deno.stat(cachePath);
    const second = await loadTinyImageNet("val", { root, cacheDir });
    assert.deepEqual(first, direct);
    assert.deepEqual(second, direct);
    assert.equal(
      (await Deno.stat(cachePath)).mtime?.getTime(),
      stat1.mtime?.getTime(),
      "second load must not rewrite",
    );
    // Replace val_0 with val_1's bytes: the fingerprint changes, the cache is rebuilt.
    await Deno.copyFile(`${root}/val/images/val_1.JPEG`, `${root}/val/images/val_0.JPEG`);
    await Deno.utime(`${root}/val/images/val_0.JPEG`, 1, 1);
    const third = await loadTinyImageNet("val", { root, cacheDir });
    assert.deepEqual(
      third.images.subarray(0, 64 * 64 * 3),
      direct.images.subarray(64 * 64 * 3, 2 * 64 * 64 * 3),
    );
  } finally {
    await Deno.remove(root.slice(0, root.lastIndexOf("/")), { recursive: true });
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("the committed fixtures are byte-identical to a fresh run of fixtures/generate.ts", async () => {
  const { fixtureFiles } = await import("../../fixtures/generate.ts");
  for (const [rel, bytes] of fixtureFiles()) {
    const onDisk = await Deno.readFile(`${FIXTURES}${rel}`);
    assert.ok(
      onDisk.length === bytes.length && onDisk.every((b, i) => b === bytes[i]),
      `${rel} differs`,
    );
  }
});

Deno.test("writeCache() writes the same bytes as encodeCache()", async () => {
  const { writeCache } = await import("../../src/data/cache.ts");
  const dir = await Deno.makeTempDir();
  await writeCache(`${dir}/t.u8cache`, tiny(), "raw", "abc");
  assert.deepEqual(await Deno.readFile(`${dir}/t.u8cache`), encodeCache(tiny(), "raw", "abc"));
  await Deno.remove(dir, { recursive: true });
});
