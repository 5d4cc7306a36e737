import assert from "node:assert/strict";
import { gzipSync } from "fflate";
import { FASHION_MNIST_DIR, loadMnistIdx, parseIdx, readIdx } from "../../src/data/idx.ts";
import { labelCounts } from "../../src/data/image_dataset.ts";
import { fitDataset } from "../../src/data/resize.ts";

function idxBytes(dims: number[], data: number[], typeByte = 0x08): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  out.set([0, 0, typeByte, dims.length]);
  const v = new DataView(out.buffer);
  dims.forEach((d, i) => v.setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return out;
}

Deno.test("loadMnistIdx() reads the real Fashion-MNIST train split: 60,000 28x28 images, 6,000 per class", async () => {
  const ds = await loadMnistIdx("train");
  assert.equal(ds.count, 60000);
  assert.equal(ds.height, 28);
  assert.equal(ds.width, 28);
  assert.equal(ds.channels, 1);
  assert.equal(ds.images.length, 60000 * 784);
  assert.deepEqual(labelCounts(ds), new Array(10).fill(6000));
  // The first training image is an ankle boot (label 9), as in the dataset's README figures.
  assert.equal(ds.labels[0], 9);
  assert.equal(ds.classes[9], "Ankle boot");
  assert.ok(Math.max(...ds.images.subarray(0, 784)) > 200);
});

Deno.test("loadMnistIdx() reads the real Fashion-MNIST test split: 10,000 images with labels 0-9", async () => {
  const ds = await loadMnistIdx("test", { dir: FASHION_MNIST_DIR });
  assert.equal(ds.count, 10000);
  assert.deepEqual(labelCounts(ds), new Array(10).fill(1000));
  assert.ok(ds.labels.every((l) => l >= 0 && l <= 9));
});

Deno.test("readIdx() reads a plain and a gzipped file to the same dims and bytes", async () => {
  const dir = await Deno.makeTempDir();
  const raw = idxBytes([2, 3], [1, 2, 3, 4, 5, 6]);
  await Deno.writeFile(`${dir}/a`, raw);
  await Deno.writeFile(`${dir}/a.gz`, gzipSync(raw));
  for (const p of [`${dir}/a`, `${dir}/a.gz`]) {
    const r = await readIdx(p);
    assert.deepEqual(r.dims, [2, 3]);
    assert.deepEqual([...r.data], [1, 2, 3, 4, 5, 6]);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("readIdx() rejects a file with the wrong magic number, naming the file", async () => {
  const dir = await Deno.makeTempDir();
  const bad = idxBytes([2], [1, 2]);
  bad[0] = 0x12;
  await Deno.writeFile(`${dir}/bad-idx`, bad);
  await assert.rejects(() => readIdx(`${dir}/bad-idx`), (e: Error) => {
    assert.match(e.message, /bad-idx: wrong IDX magic number 0x12000801/);
    return true;
  });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("parseIdx() rejects a non-uint8 element type and a size that disagrees with the header", () => {
  assert.throws(() => parseIdx(idxBytes([2], [1, 2], 0x0d), "f.idx"), /f\.idx: .*element type 0xd/);
  assert.throws(
    () => parseIdx(idxBytes([3], [1, 2]), "g.idx"),
    /g\.idx: IDX header says 3 = 3 bytes of data, file has 2/,
  );
});

Deno.test("loadMnistIdx() names the missing file when the directory lacks one", async () => {
  const dir = await Deno.makeTempDir();
  await assert.rejects(
    () => loadMnistIdx("train", { dir }),
    /train-images-idx3-ubyte\(\.gz\): IDX file not found/,
  );
  await Deno.remove(dir);
});

Deno.test("fitDataset() pads 28x28 into the centre of 64x64 and replicates gray into RGB", () => {
  const img = new Uint8Array(28 * 28);
  img[0] = 7; // top-left
  img[27 * 28 + 27] = 9; // bottom-right
  const ds = {
    name: "t",
    split: "train",
    count: 1,
    height: 28,
    width: 28,
    channels: 1,
    images: img,
    labels: new Int32Array([0]),
    classes: ["a"],
  };
  const out = fitDataset(ds, { size: 64, mode: "pad", channels: 3 });
  assert.equal(out.images.length, 64 * 64 * 3);
  const px = (
    y: number,
    x: number,
  ) => [...out.images.subarray((y * 64 + x) * 3, (y * 64 + x) * 3 + 3)];
  assert.deepEqual(px(18, 18), [7, 7, 7]);
  assert.deepEqual(px(45, 45), [9, 9, 9]);
  assert.deepEqual(px(17, 17), [0, 0, 0]);
  assert.equal(out.images.reduce((a, b) => a + b, 0), 3 * (7 + 9));
});

Deno.test("fitDataset() resizes a constant image to the same constant", () => {
  const ds = {
    name: "t",
    split: "train",
    count: 2,
    height: 28,
    width: 28,
    channels: 1,
    images: new Uint8Array(2 * 784).fill(77),
    labels: new Int32Array([0, 1]),
    classes: ["a", "b"],
  };
  const out = fitDataset(ds, { size: 64, mode: "resize" });
  assert.equal(out.channels, 1);
  assert.ok(out.images.every((v) => v === 77));
});
