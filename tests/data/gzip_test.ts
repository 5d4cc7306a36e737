import { assert } from "../_assert.ts";
import { gunzipSync, gzipSync } from "fflate";
import { crc32, loadMnistIdx, readIdx } from "../../src/data/idx.ts";

function idxBytes(dims: number[], data: number[]): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  out.set([0, 0, 0x08, dims.length]);
  const v = new DataView(out.buffer);
  dims.forEach((d, i) => v.setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return out;
}

/** A two-image, 2x2 Fashion-MNIST-layout folder with gzipped files stored uncompressed (level 0). */
async function tinySplit(): Promise<{ dir: string; labels: Uint8Array }> {
  const dir = await Deno.makeTempDir();
  const images = idxBytes([2, 2, 2], [1, 2, 3, 4, 5, 6, 7, 8]);
  const labels = gzipSync(idxBytes([2], [3, 7]), { level: 0 });
  await Deno.writeFile(`${dir}/t10k-images-idx3-ubyte.gz`, gzipSync(images));
  await Deno.writeFile(`${dir}/t10k-labels-idx1-ubyte.gz`, labels);
  return { dir, labels };
}

Deno.test("crc32() gives the standard check value and agrees with fflate's gzip trailers", () => {
  assert.equal(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
  const data = Uint8Array.from({ length: 3000 }, (_, i) => (i * 37 + (i >> 3)) & 0xff);
  const gz = gzipSync(data);
  assert.equal(crc32(data), new DataView(gz.buffer).getUint32(gz.length - 8, true));
});

Deno.test("a gzipped IDX label file with a flipped label byte is refused, naming the file", async () => {
  const { dir, labels } = await tinySplit();
  assert.deepEqual([...(await loadMnistIdx("test", { dir })).labels], [3, 7]);
  // In a stored block the label bytes sit as they are, just before the 8-byte trailer.
  const bad = labels.slice();
  const at = bad.length - 8 - 1; // the second label, 7
  assert.equal(bad[at], 7);
  bad[at] = 2;
  // fflate alone hands back the altered label: the trailer is what catches it.
  assert.equal(gunzipSync(bad).at(-1), 2);
  const path = `${dir}/t10k-labels-idx1-ubyte.gz`;
  await Deno.writeFile(path, bad);
  await assert.rejects(
    () => loadMnistIdx("test", { dir }),
    (e: Error) => e.message.startsWith(`${path}: gzip CRC-32 mismatch`),
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a gzip file whose trailer length disagrees with its data is refused, naming the file", async () => {
  const { dir, labels } = await tinySplit();
  const bad = labels.slice();
  new DataView(bad.buffer).setUint32(bad.length - 4, 11, true);
  const path = `${dir}/t10k-labels-idx1-ubyte.gz`;
  await Deno.writeFile(path, bad);
  await assert.rejects(
    () => readIdx(path),
    (e: Error) => e.message.startsWith(`${path}: gzip length check failed: 10 bytes`),
  );
  await Deno.remove(dir, { recursive: true });
});
