import assert from "node:assert/strict";
import {
  TIN_CLASSES,
  TIN_GRAY_IMAGE,
  TIN_TEST_COUNT,
  TIN_TRAIN_PER_CLASS,
  TIN_VAL_COUNT,
  tinImages,
  tinValLabels,
} from "../../fixtures/generate.ts";
import { imageAt, labelCounts } from "../../src/data/image_dataset.ts";
import { indexTinyImageNet, loadTinyImageNet } from "../../src/data/tiny_imagenet.ts";
import { fixtureCopy, FIXTURES, meanAbsDiff } from "./_fixture_copy.ts";

const ROOT = `${FIXTURES}tiny-imagenet-200`;
const nc = TIN_CLASSES.length;

Deno.test("loadTinyImageNet() reads the fixture train split with labels in wnids.txt order", async () => {
  const ds = await loadTinyImageNet("train", { root: ROOT, cacheDir: null });
  assert.equal(ds.count, nc * TIN_TRAIN_PER_CLASS);
  assert.deepEqual([ds.height, ds.width, ds.channels], [64, 64, 3]);
  assert.deepEqual(ds.classes, TIN_CLASSES.map(([w]) => w));
  assert.deepEqual(labelCounts(ds), new Array(nc).fill(TIN_TRAIN_PER_CLASS));
  const idx = await indexTinyImageNet(ROOT, "train");
  assert.equal(idx.names[0], "goldfish, Carassius auratus");
  // Natural order within a class: _0, _1, ..., _9 (not _0, _1, _10 ...).
  assert.ok(idx.files[2].endsWith("n01443537_2.JPEG"));
});

Deno.test("loadTinyImageNet() decodes fixture pixels close to the generator's rasters", async () => {
  const ds = await loadTinyImageNet("train", { root: ROOT, cacheDir: null });
  const train = tinImages().filter((m) => m.path.startsWith("train/"));
  train.forEach((m, i) => {
    const got = imageAt(ds, i);
    const want = m.gray ? Uint8Array.from([...m.raster].flatMap((g) => [g, g, g])) : m.raster;
    assert.ok(meanAbsDiff(got, want) < 6, `${m.path}: mean abs diff ${meanAbsDiff(got, want)}`);
  });
  // Class 0 is a red disc near the centre: the centre pixel is strongly red.
  const c = imageAt(ds, 0).subarray((32 * 64 + 32) * 3, (32 * 64 + 32) * 3 + 3);
  assert.ok(c[0] > 180 && c[1] < 90 && c[2] < 90, `centre pixel ${[...c]}`);
});

Deno.test("loadTinyImageNet() turns the grayscale fixture JPEG into three equal channels", async () => {
  const bytes = await Deno.readFile(
    `${ROOT}/train/${TIN_CLASSES[2][0]}/images/${TIN_CLASSES[2][0]}_3.JPEG`,
  );
  // SOF0 of a one-component file: ... FF C0 00 0B 08 00 40 00 40 01
  const sof = bytes.findIndex((b, i) => b === 0xff && bytes[i + 1] === 0xc0);
  assert.equal(bytes[sof + 9], 1, "fixture file should be a one-component JPEG");
  const ds = await loadTinyImageNet("train", { root: ROOT, cacheDir: null });
  const img = imageAt(ds, TIN_GRAY_IMAGE.cls * TIN_TRAIN_PER_CLASS + TIN_GRAY_IMAGE.k);
  for (let p = 0; p < 64 * 64; p++) {
    assert.equal(img[3 * p], img[3 * p + 1]);
    assert.equal(img[3 * p], img[3 * p + 2]);
  }
});

Deno.test("loadTinyImageNet() reads val labels from val_annotations.txt and test without labels", async () => {
  const val = await loadTinyImageNet("val", { root: ROOT, cacheDir: null });
  assert.equal(val.count, TIN_VAL_COUNT);
  assert.deepEqual([...val.labels], tinValLabels());
  const test = await loadTinyImageNet("test", { root: ROOT, cacheDir: null });
  assert.equal(test.count, TIN_TEST_COUNT);
  assert.ok(test.labels.every((l) => l === -1));
});

Deno.test("loadTinyImageNet() names the missing directory, layout file or label line", async () => {
  await assert.rejects(
    () => loadTinyImageNet("train", { root: "/nonexistent/tin", cacheDir: null }),
    /\/nonexistent\/tin: directory not found/,
  );
  const root = await fixtureCopy("tiny-imagenet-200");
  try {
    const ann = `${root}/val/val_annotations.txt`;
    const text = await Deno.readTextFile(ann);
    await Deno.writeTextFile(
      ann,
      text.split("\n").filter((l) => !l.startsWith("val_7.JPEG")).join("\n"),
    );
    await assert.rejects(
      () => loadTinyImageNet("val", { root, cacheDir: null }),
      (e: Error) => e.message === `${ann}: no label line for ${root}/val/images/val_7.JPEG`,
    );
    await Deno.remove(`${root}/wnids.txt`);
    await assert.rejects(
      () => loadTinyImageNet("train", { root, cacheDir: null }),
      /wnids\.txt: missing .*wrong dataset layout/,
    );
  } finally {
    await Deno.remove(root.slice(0, root.lastIndexOf("/")), { recursive: true });
  }
});

Deno.test("loadTinyImageNet() rejects a truncated and a corrupt JPEG, naming the file", async () => {
  const root = await fixtureCopy("tiny-imagenet-200");
  try {
    const w = TIN_CLASSES[1][0];
    const f = `${root}/train/${w}/images/${w}_4.JPEG`;
    const bytes = await Deno.readFile(f);
    await Deno.writeFile(f, bytes.subarray(0, bytes.length >> 1));
    await assert.rejects(
      () => loadTinyImageNet("train", { root, cacheDir: null }),
      (e: Error) => e.message === `${f}: truncated JPEG (no end-of-image marker)`,
    );
    const garbled = bytes.slice();
    for (let i = 200; i < 260; i++) garbled[i] = 0xff; // clobber the tables / scan header
    await Deno.writeFile(f, garbled);
    await assert.rejects(
      () => loadTinyImageNet("train", { root, cacheDir: null }),
      (e: Error) => e.message.startsWith(`${f}: corrupt JPEG`),
    );
    await Deno.writeFile(f, new TextEncoder().encode("not an image"));
    await assert.rejects(
      () => loadTinyImageNet("train", { root, cacheDir: null }),
      (e: Error) => e.message === `${f}: not a JPEG file (no start-of-image marker)`,
    );
  } finally {
    await Deno.remove(root.slice(0, root.lastIndexOf("/")), { recursive: true });
  }
});

Deno.test("indexTinyImageNet() names a class folder that wnids.txt lists but train/ lacks", async () => {
  const root = await fixtureCopy("tiny-imagenet-200");
  try {
    const w = TIN_CLASSES[4][0];
    await Deno.remove(`${root}/train/${w}`, { recursive: true });
    await assert.rejects(
      () => indexTinyImageNet(root, "train"),
      (e: Error) =>
        e.message ===
          `${root}/train/${w}/images: directory not found (expected training images of ${w})`,
    );
  } finally {
    await Deno.remove(root.slice(0, root.lastIndexOf("/")), { recursive: true });
  }
});
