import assert from "node:assert/strict";
import { CUB_CLASSES, CUB_PER_CLASS, cubImages } from "../../fixtures/generate.ts";
import { loadCub } from "../../src/data/cub.ts";
import { imageAt, labelCounts } from "../../src/data/image_dataset.ts";
import { resizeShortCenterCrop } from "../../src/data/resize.ts";
import { fixtureCopy, FIXTURES, meanAbsDiff } from "./_fixture_copy.ts";

const ROOT = `${FIXTURES}CUB_200_2011`;

Deno.test("loadCub() splits the fixture by train_test_split.txt with labels from image_class_labels.txt", async () => {
  const train = await loadCub("train", { root: ROOT, cacheDir: null });
  const test = await loadCub("test", { root: ROOT, cacheDir: null });
  const all = cubImages();
  assert.equal(train.count, all.filter((m) => m.train).length);
  assert.equal(test.count, all.filter((m) => !m.train).length);
  assert.equal(train.count + test.count, CUB_CLASSES.length * CUB_PER_CLASS);
  assert.deepEqual(train.classes, CUB_CLASSES);
  assert.deepEqual([...train.labels], all.filter((m) => m.train).map((m) => m.label));
  assert.deepEqual(labelCounts(test), new Array(CUB_CLASSES.length).fill(2));
  assert.deepEqual([train.height, train.width, train.channels], [64, 64, 3]);
});

Deno.test("loadCub() resizes photos of varying sizes to 64x64 by short side and centre crop", async () => {
  const test = await loadCub("test", { root: ROOT, cacheDir: null });
  const metas = cubImages().filter((m) => !m.train);
  assert.ok(metas.some((m) => m.height !== m.width) && metas.every((m) => m.height !== 64));
  metas.forEach((m, i) => {
    const want = resizeShortCenterCrop(m.raster, m.height, m.width, 3, 64);
    const d = meanAbsDiff(imageAt(test, i), want);
    assert.ok(d < 6, `${m.path}: mean abs diff ${d}`);
  });
});

Deno.test("loadCub() names the file and id when a label line is missing", async () => {
  const root = await fixtureCopy("CUB_200_2011");
  try {
    const f = `${root}/image_class_labels.txt`;
    const text = await Deno.readTextFile(f);
    await Deno.writeTextFile(f, text.split("\n").filter((l) => !l.startsWith("7 ")).join("\n"));
    await assert.rejects(
      () => loadCub("train", { root, cacheDir: null }),
      (e: Error) => e.message === `${f}: no label line for image id 7`,
    );
    await Deno.remove(`${root}/train_test_split.txt`);
    await assert.rejects(
      () => loadCub("train", { root, cacheDir: null }),
      /train_test_split\.txt: missing/,
    );
    await assert.rejects(
      () => loadCub("train", { root: `${root}/images`, cacheDir: null }),
      /images\/classes\.txt: missing .*wrong dataset layout/,
    );
  } finally {
    await Deno.remove(root.slice(0, root.lastIndexOf("/")), { recursive: true });
  }
});
