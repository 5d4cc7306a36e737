/**
 * Tiny ImageNet (tiny-imagenet-200) from its official directory layout:
 *
 * ```
 * wnids.txt                       one wnid per line; label k = line k
 * words.txt                       wnid TAB names (all of WordNet)
 * train/<wnid>/images/<wnid>_<k>.JPEG
 * val/images/val_<i>.JPEG
 * val/val_annotations.txt         file TAB wnid TAB x0 y0 x1 y1
 * test/images/test_<i>.JPEG       no labels (label -1)
 * ```
 *
 * Images are 64x64; grayscale files become RGB. Decoded splits are cached
 * (see cache.ts) under a fingerprint of the sources.
 *
 * @module
 */

import { decodeAll, fingerprint, lines, listFiles, readLayoutText, requireDir } from "./_files.ts";
import { cachedDataset, defaultCacheDir } from "./cache.ts";
import type { ImageDataset } from "./image_dataset.ts";

/** Tiny ImageNet split names. */
export type TinSplit = "train" | "val" | "test";

/** A split's file list and labels before decoding. */
export interface TinIndex {
  root: string;
  split: TinSplit;
  /** wnids in label order (wnids.txt order). */
  wnids: string[];
  /** Human-readable names from words.txt, parallel to `wnids`. */
  names: string[];
  /** Image paths, in a fixed order (class then natural file order; val/test by index). */
  files: string[];
  /** Label per file, -1 for test. */
  labels: Int32Array;
  /** Label and layout files the index was read from (part of the cache fingerprint). */
  metaFiles: string[];
}

/** Default TIN root: `$TIN_DIR` or `data/tiny-imagenet-200`. */
export function defaultTinDir(): string {
  return Deno.env.get("TIN_DIR") ?? "data/tiny-imagenet-200";
}

const JPEG_EXTS = [".jpeg", ".jpg"];

/** Reads the file list and labels of one TIN split, validating the layout. */
export async function indexTinyImageNet(root: string, split: TinSplit): Promise<TinIndex> {
  await requireDir(root, "the tiny-imagenet-200 folder with wnids.txt, train/, val/, test/");
  const wnidsPath = `${root}/wnids.txt`, wordsPath = `${root}/words.txt`;
  const wnids = lines(await readLayoutText(wnidsPath, "one wnid per line")).map(([, l]) =>
    l.trim()
  );
  if (wnids.length === 0) throw new Error(`${wnidsPath}: no wnids`);
  const labelOf = new Map<string, number>();
  wnids.forEach((w, i) => {
    if (labelOf.has(w)) throw new Error(`${wnidsPath}: wnid ${w} listed twice`);
    labelOf.set(w, i);
  });
  const nameOf = new Map<string, string>();
  for (const [n, l] of lines(await readLayoutText(wordsPath, "wnid TAB names"))) {
    const tab = l.indexOf("\t");
    if (tab < 0) throw new Error(`${wordsPath}:${n}: expected "wnid<TAB>names"`);
    nameOf.set(l.slice(0, tab), l.slice(tab + 1));
  }
  const names = wnids.map((w) => {
    const name = nameOf.get(w);
    if (name === undefined) throw new Error(`${wordsPath}: no line for wnid ${w} (from wnids.txt)`);
    return name;
  });
  const files: string[] = [];
  const labels: number[] = [];
  const metaFiles = [wnidsPath, wordsPath];
  if (split === "train") {
    for (const [label, w] of wnids.entries()) {
      const dir = `${root}/train/${w}/images`;
      const names = await listFiles(dir, JPEG_EXTS, `training images of ${w}`);
      if (names.length === 0) throw new Error(`${dir}: no JPEG files for class ${w}`);
      for (const f of names) {
        files.push(`${dir}/${f}`);
        labels.push(label);
      }
    }
  } else if (split === "val") {
    const annPath = `${root}/val/val_annotations.txt`;
    const ann = new Map<string, number>();
    for (const [n, l] of lines(await readLayoutText(annPath, "file TAB wnid TAB box"))) {
      const [file, wnid] = l.split("\t");
      const label = labelOf.get(wnid ?? "");
      if (!file || label === undefined) {
        throw new Error(
          `${annPath}:${n}: expected "<file>\\t<wnid from wnids.txt>\\t...", got ${
            JSON.stringify(l)
          }`,
        );
      }
      ann.set(file, label);
    }
    metaFiles.push(annPath);
    const dir = `${root}/val/images`;
    for (const f of await listFiles(dir, JPEG_EXTS, "validation images")) {
      const label = ann.get(f);
      if (label === undefined) throw new Error(`${annPath}: no label line for ${dir}/${f}`);
      files.push(`${dir}/${f}`);
      labels.push(label);
    }
    if (files.length === 0) throw new Error(`${dir}: no JPEG files`);
  } else if (split === "test") {
    const dir = `${root}/test/images`;
    for (const f of await listFiles(dir, JPEG_EXTS, "test images")) {
      files.push(`${dir}/${f}`);
      labels.push(-1);
    }
    if (files.length === 0) throw new Error(`${dir}: no JPEG files`);
  } else {
    throw new Error(`Tiny ImageNet has no split ${JSON.stringify(split)} (train, val, test)`);
  }
  return { root, split, wnids, names, files, labels: Int32Array.from(labels), metaFiles };
}

/** Decodes an index into a 64x64x3 dataset (no cache). Every file must be 64x64. */
export async function decodeTinyImageNet(index: TinIndex): Promise<ImageDataset> {
  const size = 64 * 64 * 3;
  const images = await decodeAll(index.files, size, (rgb, h, w, path, out, off) => {
    if (h !== 64 || w !== 64) {
      throw new Error(`${path}: image is ${w}x${h}, Tiny ImageNet images are 64x64`);
    }
    out.set(rgb, off);
  }, `tiny-imagenet ${index.split}`);
  return {
    name: "tiny-imagenet-200",
    split: index.split,
    count: index.files.length,
    height: 64,
    width: 64,
    channels: 3,
    images,
    labels: index.labels,
    classes: index.wnids,
  };
}

/** Options for {@link loadTinyImageNet}. */
export interface TinOptions {
  /** Dataset root (the tiny-imagenet-200 folder); default {@link defaultTinDir}. */
  root?: string;
  /** Cache directory; default `.cache/`. Pass null to skip the cache. */
  cacheDir?: string | null;
}

/**
 * Loads one Tiny ImageNet split, from the cache when it matches the sources,
 * otherwise by decoding every JPEG and writing the cache.
 */
export async function loadTinyImageNet(
  split: TinSplit,
  opts: TinOptions = {},
): Promise<ImageDataset> {
  const index = await indexTinyImageNet(opts.root ?? defaultTinDir(), split);
  const cacheDir = opts.cacheDir === undefined ? defaultCacheDir() : opts.cacheDir;
  if (cacheDir === null) return decodeTinyImageNet(index);
  const sourceChecksum = await fingerprint(index.metaFiles, index.files);
  return cachedDataset(
    `${cacheDir}/tiny-imagenet-200-${split}.u8cache`,
    { dataset: "tiny-imagenet-200", split, variant: "raw64", sourceChecksum },
    () => decodeTinyImageNet(index),
  );
}
