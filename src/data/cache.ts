/**
 * The decoded-image cache: one file per (dataset, split, variant) holding the
 * packed uint8 pixels (N x H x W x C), the int32 labels and a JSON header with
 * the dataset, split, count, class list, a checksum of the sources it was
 * built from and a SHA-256 of the payload.
 *
 * File layout (little-endian):
 *
 * | bytes | content |
 * |---|---|
 * | 8 | magic `SMAECACH` |
 * | 4 | format version (1) |
 * | 4 | header length L |
 * | L | header, UTF-8 JSON ({@link CacheHeader}) |
 * | pad | zeros up to a multiple of 8 |
 * | N*H*W*C | pixels (variable-size datasets: the sum of H*W*C over `sizes` in the header) |
 * | pad | zeros up to a multiple of 4 |
 * | 4*N | labels, int32 |
 *
 * Writes go to `<path>.tmp-<pid>` and are renamed into place only when
 * complete, so a reader never sees half a cache; the temporary files of a
 * killed writer (whose pid no longer runs) are removed by the next
 * {@link cachedDataset} in that folder. A reader checks magic,
 * version, sizes and the payload hash; any mismatch makes the cache stale or
 * corrupt, and {@link cachedDataset} rebuilds it.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { processAlive } from "./_files.ts";
import { checkDataset, type ImageDataset, imageOffsets } from "./image_dataset.ts";

const MAGIC = "SMAECACH";
const VERSION = 1;

/** The JSON header stored in a cache file. */
export interface CacheHeader {
  dataset: string;
  split: string;
  /** What preprocessing produced the pixels, e.g. "raw" or "short64-center64". */
  variant: string;
  count: number;
  height: number;
  width: number;
  channels: number;
  classes: string[];
  /** Variable-size datasets: H, W per image (ImageDataset.sizes); absent for fixed-size ones. */
  sizes?: number[];
  /** Fingerprint of the source files (see the readers); a change means stale. */
  sourceChecksum: string;
  /** SHA-256 (hex) of the pixel bytes, then the label bytes, then (variable-size datasets) the sizes. */
  payloadChecksum: string;
}

/** What a cache must match to be used. */
export interface CacheKey {
  dataset: string;
  split: string;
  variant: string;
  sourceChecksum: string;
}

/** Thrown by {@link readCache} when the file exists but cannot be used. */
export class CacheInvalidError extends Error {}

const align = (n: number, a: number) => Math.ceil(n / a) * a;

function payloadHash(images: Uint8Array, labels: Int32Array, sizes?: Uint16Array): string {
  const h = createHash("sha256");
  h.update(images);
  h.update(new Uint8Array(labels.buffer, labels.byteOffset, labels.byteLength));
  // Variable-size datasets: the per-image sizes too (they live in the header).
  if (sizes) h.update(new Uint8Array(sizes.buffer, sizes.byteOffset, sizes.byteLength));
  return h.digest("hex");
}

/**
 * The cache file as three parts: header (magic, version, JSON, padding to 8),
 * the pixels as they are, and the labels (padded to 4, then i32 LE).
 */
function cacheParts(ds: ImageDataset, variant: string, sourceChecksum: string): Uint8Array[] {
  checkDataset(ds);
  const header: CacheHeader = {
    dataset: ds.name,
    split: ds.split,
    variant,
    count: ds.count,
    height: ds.height,
    width: ds.width,
    channels: ds.channels,
    classes: ds.classes,
    ...(ds.sizes ? { sizes: Array.from(ds.sizes) } : {}),
    sourceChecksum,
    payloadChecksum: payloadHash(ds.images, ds.labels, ds.sizes),
  };
  const hbytes = new TextEncoder().encode(JSON.stringify(header));
  const imgOff = align(16 + hbytes.length, 8);
  const lblOff = align(imgOff + ds.images.length, 4);
  const head = new Uint8Array(imgOff);
  head.set(new TextEncoder().encode(MAGIC), 0);
  const hv = new DataView(head.buffer);
  hv.setUint32(8, VERSION, true);
  hv.setUint32(12, hbytes.length, true);
  head.set(hbytes, 16);
  const lo = lblOff - imgOff - ds.images.length;
  const labels = new Uint8Array(lo + 4 * ds.count);
  const lv = new DataView(labels.buffer);
  for (let i = 0; i < ds.count; i++) lv.setInt32(lo + 4 * i, ds.labels[i], true);
  return [head, ds.images, labels];
}

/** Serializes `ds` to cache bytes. */
export function encodeCache(ds: ImageDataset, variant: string, sourceChecksum: string): Uint8Array {
  const parts = cacheParts(ds, variant, sourceChecksum);
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * Parses cache bytes; throws {@link CacheInvalidError} naming `path` and the
 * problem if the file is corrupt or does not match `key`.
 */
export function decodeCache(bytes: Uint8Array, path: string, key?: CacheKey): ImageDataset {
  const bad = (what: string) => new CacheInvalidError(`${path}: ${what}`);
  if (bytes.length < 16 || new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) {
    throw bad("not a dataset cache (bad magic)");
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(8, true);
  if (version !== VERSION) throw bad(`cache format version ${version}, expected ${VERSION}`);
  const hlen = view.getUint32(12, true);
  if (16 + hlen > bytes.length) throw bad("truncated header");
  let h: CacheHeader;
  try {
    h = JSON.parse(new TextDecoder().decode(bytes.subarray(16, 16 + hlen)));
  } catch {
    throw bad("corrupt header");
  }
  if (key) {
    for (const k of ["dataset", "split", "variant", "sourceChecksum"] as const) {
      if (h[k] !== key[k]) {
        throw bad(`stale: ${k} is ${JSON.stringify(h[k])}, expected ${JSON.stringify(key[k])}`);
      }
    }
  }
  const imgOff = align(16 + hlen, 8);
  const sizes = h.sizes === undefined ? undefined : Uint16Array.from(h.sizes);
  if (sizes && sizes.length !== 2 * h.count) {
    throw bad(`${sizes.length} size entries for ${h.count} images (corrupt header)`);
  }
  const imgLen = imageOffsets({ ...h, sizes })[h.count];
  const lblOff = align(imgOff + imgLen, 4);
  if (bytes.length !== lblOff + 4 * h.count) {
    throw bad(
      `size ${bytes.length} bytes, header implies ${lblOff + 4 * h.count} (truncated or padded)`,
    );
  }
  // Views, not copies: a TIN train cache is 1.2 GB. Labels are 4-aligned in
  // the file; the view needs them 4-aligned in memory too, else copy.
  const images = bytes.subarray(imgOff, imgOff + imgLen);
  let labels: Int32Array;
  if ((bytes.byteOffset + lblOff) % 4 === 0) {
    labels = new Int32Array(bytes.buffer, bytes.byteOffset + lblOff, h.count);
  } else {
    labels = new Int32Array(h.count);
    for (let i = 0; i < h.count; i++) labels[i] = view.getInt32(lblOff + 4 * i, true);
  }
  if (payloadHash(images, labels, sizes) !== h.payloadChecksum) {
    throw bad("payload checksum mismatch (corrupt)");
  }
  const ds: ImageDataset = {
    name: h.dataset,
    split: h.split,
    count: h.count,
    height: h.height,
    width: h.width,
    channels: h.channels,
    images,
    labels,
    classes: h.classes,
    ...(sizes ? { sizes } : {}),
  };
  try {
    checkDataset(ds);
  } catch (e) {
    throw bad((e as Error).message);
  }
  return ds;
}

/** Writes `bytes` to `path` atomically: a `path.tmp-<pid>` file renamed into place. */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : ".";
  await Deno.mkdir(dir, { recursive: true });
  const tmp = `${path}.tmp-${Deno.pid}`;
  try {
    await Deno.writeFile(tmp, bytes);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw new Error(`${path}: cannot write (${(e as Error).message})`);
  }
}

/** Writes `ds` as a cache file at `path` (atomically), without copying the pixels. */
export async function writeCache(
  path: string,
  ds: ImageDataset,
  variant: string,
  sourceChecksum: string,
): Promise<void> {
  const parts = cacheParts(ds, variant, sourceChecksum);
  const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : ".";
  await Deno.mkdir(dir, { recursive: true });
  const tmp = `${path}.tmp-${Deno.pid}`;
  try {
    const f = await Deno.open(tmp, { write: true, create: true, truncate: true });
    try {
      for (const part of parts) {
        let w = 0;
        while (w < part.length) w += await f.write(part.subarray(w, w + (1 << 24)));
      }
    } finally {
      f.close();
    }
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw new Error(`${path}: cannot write cache (${(e as Error).message})`);
  }
}

/**
 * Reads a cache file; returns null if it does not exist, throws
 * {@link CacheInvalidError} if it is corrupt or does not match `key`.
 */
export async function readCache(path: string, key?: CacheKey): Promise<ImageDataset | null> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  return decodeCache(bytes, path, key);
}

/** Default cache directory: `$SMAE_CACHE_DIR` or `.cache/` in the working directory. */
export function defaultCacheDir(): string {
  return Deno.env.get("SMAE_CACHE_DIR") ?? ".cache";
}

/**
 * Removes the `<name>.tmp-<pid>` files in `dir` whose writer no longer runs
 * (a killed cache write leaves one as large as the split: 1.2 GB for Tiny
 * ImageNet's train split), saying which on stderr. Files of a running pid
 * stay: that process may still be writing.
 */
export async function removeStaleTemps(dir: string): Promise<string[]> {
  const removed: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch {
    return removed; // no folder yet
  }
  for (const e of entries) {
    const m = /\.tmp-(\d+)$/.exec(e.name);
    if (!e.isFile || !m || processAlive(Number(m[1]))) continue;
    const path = `${dir}/${e.name}`;
    const size = (await Deno.stat(path).catch(() => null))?.size ?? 0;
    try {
      await Deno.remove(path);
    } catch {
      continue; // another process removed it first
    }
    console.error(
      `cache: removed ${path} (${(size / 2 ** 20).toFixed(1)} MiB), left by a write of pid ${
        m[1]
      } that no longer runs`,
    );
    removed.push(path);
  }
  return removed;
}

/**
 * Returns the dataset from the cache at `path` when it matches `key`;
 * otherwise (missing, stale or corrupt, reason on stderr) calls `build`,
 * writes its result atomically and returns it. Dead writers' temporary
 * files in the folder are removed first.
 */
export async function cachedDataset(
  path: string,
  key: CacheKey,
  build: () => Promise<ImageDataset>,
): Promise<ImageDataset> {
  await removeStaleTemps(path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : ".");
  try {
    const ds = await readCache(path, key);
    if (ds) return ds;
  } catch (e) {
    if (!(e instanceof CacheInvalidError)) throw e;
    console.error(`cache: ${e.message}; rebuilding`);
  }
  const ds = await build();
  await writeCache(path, ds, key.variant, key.sourceChecksum);
  return ds;
}
