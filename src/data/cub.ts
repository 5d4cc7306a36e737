/**
 * CUB-200-2011 from its official layout:
 *
 * ```
 * images.txt               "<id> <class_dir>/<file>.jpg"
 * image_class_labels.txt   "<id> <class 1..200>"
 * train_test_split.txt     "<id> <1 train | 0 test>"
 * classes.txt              "<class> <class_dir>"
 * images/<class_dir>/<file>.jpg
 * ```
 *
 * Both splits are cached at `size x size` (default 64) after resizing the
 * short side to `size` and taking the centre square (bicubic, antialiased):
 * exactly the authors' test transform. Training adds RandomResizedCrop
 * (scale 0.6-1) and flip on top of these cached squares (see augment.ts);
 * the authors crop from the full photo, so our train crops see only the
 * central square of wide or tall photos, a documented difference that keeps
 * the cache one fixed shape.
 *
 * @module
 */

import { decodeAll, fingerprint, lines, readLayoutText, requireDir } from "./_files.ts";
import { cachedDataset, defaultCacheDir } from "./cache.ts";
import type { ImageDataset } from "./image_dataset.ts";
import { resizeShortCenterCrop } from "./resize.ts";

/** CUB split names. */
export type CubSplit = "train" | "test";

/** A split's file list and labels before decoding. */
export interface CubIndex {
  root: string;
  split: CubSplit;
  /** Class directory names in label order (label k = class k+1 of classes.txt). */
  classes: string[];
  /** Image ids (images.txt), ascending. */
  ids: number[];
  files: string[];
  labels: Int32Array;
  metaFiles: string[];
}

/** Default CUB root: `$CUB_DIR` or `data/CUB_200_2011`. */
export function defaultCubDir(): string {
  return Deno.env.get("CUB_DIR") ?? "data/CUB_200_2011";
}

function idTable(text: string, path: string, what: string): Map<number, string> {
  const m = new Map<number, string>();
  for (const [n, l] of lines(text)) {
    const sp = l.indexOf(" ");
    const id = Number(l.slice(0, sp));
    if (sp < 0 || !Number.isInteger(id) || id < 1) {
      throw new Error(`${path}:${n}: expected "<id> <${what}>", got ${JSON.stringify(l)}`);
    }
    if (m.has(id)) throw new Error(`${path}:${n}: id ${id} appears twice`);
    m.set(id, l.slice(sp + 1).trim());
  }
  return m;
}

/** Reads the file list and labels of one CUB split, validating the layout. */
export async function indexCub(root: string, split: CubSplit): Promise<CubIndex> {
  if (split !== "train" && split !== "test") {
    throw new Error(`CUB-200-2011 has no split ${JSON.stringify(split)} (train, test)`);
  }
  await requireDir(root, "the CUB_200_2011 folder with images.txt and images/");
  const p = (f: string) => `${root}/${f}`;
  const classesT = idTable(
    await readLayoutText(p("classes.txt"), "<class> <name>"),
    p("classes.txt"),
    "class name",
  );
  const imagesT = idTable(
    await readLayoutText(p("images.txt"), "<id> <path>"),
    p("images.txt"),
    "path",
  );
  const labelsT = idTable(
    await readLayoutText(p("image_class_labels.txt"), "<id> <class>"),
    p("image_class_labels.txt"),
    "class",
  );
  const splitT = idTable(
    await readLayoutText(p("train_test_split.txt"), "<id> <1|0>"),
    p("train_test_split.txt"),
    "1|0",
  );
  const nClasses = classesT.size;
  const classes: string[] = [];
  for (let c = 1; c <= nClasses; c++) {
    const name = classesT.get(c);
    if (name === undefined) {
      throw new Error(`${p("classes.txt")}: classes are not numbered 1..${nClasses} (no ${c})`);
    }
    classes.push(name);
  }
  await requireDir(p("images"), "one folder of JPEGs per class");
  const ids = [...imagesT.keys()].sort((a, b) => a - b);
  const files: string[] = [], labels: number[] = [], keep: number[] = [];
  for (const id of ids) {
    const lbl = labelsT.get(id);
    if (lbl === undefined) {
      throw new Error(`${p("image_class_labels.txt")}: no label line for image id ${id}`);
    }
    const cls = Number(lbl);
    if (!Number.isInteger(cls) || cls < 1 || cls > nClasses) {
      throw new Error(
        `${p("image_class_labels.txt")}: image id ${id} has class ${lbl}, not in 1..${nClasses}`,
      );
    }
    const s = splitT.get(id);
    if (s !== "0" && s !== "1") {
      throw new Error(
        `${p("train_test_split.txt")}: ${
          s === undefined ? "no line" : `value ${s}`
        } for image id ${id}`,
      );
    }
    if ((s === "1") !== (split === "train")) continue;
    keep.push(id);
    files.push(`${root}/images/${imagesT.get(id)}`);
    labels.push(cls - 1);
  }
  return {
    root,
    split,
    classes,
    ids: keep,
    files,
    labels: Int32Array.from(labels),
    metaFiles: ["classes.txt", "images.txt", "image_class_labels.txt", "train_test_split.txt"].map(
      p,
    ),
  };
}

/** Decodes an index into a `size x size x 3` dataset (short side to `size`, centre crop), no cache. */
export async function decodeCub(index: CubIndex, size = 64): Promise<ImageDataset> {
  const bytes = size * size * 3;
  const images = await decodeAll(
    index.files,
    bytes,
    (rgb, h, w, _path, out, off) => resizeShortCenterCrop(rgb, h, w, 3, size, out, off),
    `cub ${index.split}`,
  );
  return {
    name: "cub-200-2011",
    split: index.split,
    count: index.files.length,
    height: size,
    width: size,
    channels: 3,
    images,
    labels: index.labels,
    classes: index.classes,
  };
}

/** Options for {@link loadCub}. */
export interface CubOptions {
  /** Dataset root (the CUB_200_2011 folder); default {@link defaultCubDir}. */
  root?: string;
  /** Output side; default 64. */
  size?: number;
  /** Cache directory; default `.cache/`. Pass null to skip the cache. */
  cacheDir?: string | null;
}

/** Loads one CUB split at `size x size`, through the cache. */
export async function loadCub(split: CubSplit, opts: CubOptions = {}): Promise<ImageDataset> {
  const index = await indexCub(opts.root ?? defaultCubDir(), split);
  const size = opts.size ?? 64;
  const cacheDir = opts.cacheDir === undefined ? defaultCacheDir() : opts.cacheDir;
  if (cacheDir === null) return decodeCub(index, size);
  const sourceChecksum = await fingerprint(index.metaFiles, index.files);
  return cachedDataset(
    `${cacheDir}/cub-200-2011-${split}-${size}.u8cache`,
    { dataset: "cub-200-2011", split, variant: `short${size}-center${size}`, sourceChecksum },
    () => decodeCub(index, size),
  );
}
