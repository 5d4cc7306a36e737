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
 * The authors' transforms (MLReproHub/SMAE src/dataset/cub.py:23-66) start
 * with torchvision `Resize(64)`: the short side becomes 64 (bilinear,
 * antialiased), the long side int(64 * long / short). Test images then take
 * `CenterCrop(64)`; training images take RandomResizedCrop(64), flip and
 * RandAugment from the whole resized photo (augment.ts, CUB_TRAIN_AUGMENT).
 * So the cache holds exactly the resized photo:
 *
 * - `whole: true` (training crops): every photo at short side `size` and its
 *   own aspect ratio, a variable-size dataset (ImageDataset.sizes);
 * - otherwise: the centre `size x size` square of it (the test transform),
 *   one fixed shape.
 *
 * What the whole photos cost: bytes grow with the aspect ratio, 64 x 85 x 3
 * = 16,320 B for a 4:3 photo against 12,288 B for its square (the fixture's
 * training photos: 16,752 B a photo on average, 1.36x), so CUB's 5,994
 * training photos take about 98 MB instead of 74 MB. Time is the same
 * either way: both resize the whole photo (the centre square is then a
 * copy), and the JPEG decode dominates (a 500 x 375 photo: ~200 ms decode,
 * ~14 ms resize and crop, measured on a shared 2-core CPU).
 *
 * @module
 */

import { fingerprint, lines, readLayoutText, requireDir } from "./_files.ts";
import { cachedDataset, defaultCacheDir } from "./cache.ts";
import type { ImageDataset } from "./image_dataset.ts";
import { readJpeg } from "./jpeg.ts";
import { BILINEAR, resample } from "./resize.ts";

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

/**
 * torchvision `Resize(size)` of an `h x w x c` image: the short side becomes
 * `size`, the long side int(size * long / short); bilinear with PIL's
 * antialiasing. Returns the image and its [H, W].
 */
export function resizeShort(
  src: Uint8Array,
  h: number,
  w: number,
  c: number,
  size: number,
): { image: Uint8Array; height: number; width: number } {
  const [rh, rw] = w <= h ? [Math.trunc((size * h) / w), size] : [size, Math.trunc((size * w) / h)];
  const image = resample(src, h, w, c, [0, 0, w, h], rh, rw, BILINEAR);
  return { image, height: rh, width: rw };
}

/** Python's round(): halves go to the even neighbour (torchvision's CenterCrop offsets). */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * torchvision `CenterCrop(size)` of an `h x w x c` image (h, w >= size) into
 * `out` at `offset`: offsets int(round((h - size) / 2)), likewise for w.
 */
export function centerCrop(
  src: Uint8Array,
  h: number,
  w: number,
  c: number,
  size: number,
  out: Uint8Array,
  offset: number,
): void {
  if (h < size || w < size) throw new Error(`centerCrop: ${h}x${w} is smaller than ${size}`);
  const top = roundHalfEven((h - size) / 2), left = roundHalfEven((w - size) / 2);
  for (let y = 0; y < size; y++) {
    const s0 = ((top + y) * w + left) * c;
    out.set(src.subarray(s0, s0 + size * c), offset + y * size * c);
  }
}

/**
 * Decodes an index: every photo resized to short side `size` (torchvision
 * `Resize(size)`); then, unless `whole`, its centre `size x size` square. No
 * cache.
 */
export async function decodeCub(index: CubIndex, size = 64, whole = false): Promise<ImageDataset> {
  const n = index.files.length;
  const resized: Uint8Array[] = new Array(n);
  const sizes = new Uint16Array(2 * n);
  const t0 = performance.now();
  let last = t0;
  const chunk = 64;
  for (let i = 0; i < n; i += chunk) {
    const imgs = await Promise.all(index.files.slice(i, i + chunk).map(readJpeg));
    imgs.forEach((img, j) => {
      const r = resizeShort(img.data, img.height, img.width, 3, size);
      resized[i + j] = r.image;
      sizes[2 * (i + j)] = r.height;
      sizes[2 * (i + j) + 1] = r.width;
    });
    if (performance.now() - last > 2000) {
      last = performance.now();
      console.error(
        `cub ${index.split}: decoded ${Math.min(i + chunk, n)}/${n} images ` +
          `(${((last - t0) / 1000).toFixed(0)} s)`,
      );
    }
  }
  const base = {
    name: "cub-200-2011",
    split: index.split,
    count: n,
    channels: 3,
    labels: index.labels,
    classes: index.classes,
  };
  if (!whole) {
    const images = new Uint8Array(n * size * size * 3);
    resized.forEach((im, i) =>
      centerCrop(im, sizes[2 * i], sizes[2 * i + 1], 3, size, images, i * size * size * 3)
    );
    return { ...base, height: size, width: size, images };
  }
  const images = new Uint8Array(resized.reduce((a, im) => a + im.length, 0));
  let o = 0, maxH = 0, maxW = 0;
  resized.forEach((im, i) => {
    images.set(im, o);
    o += im.length;
    maxH = Math.max(maxH, sizes[2 * i]);
    maxW = Math.max(maxW, sizes[2 * i + 1]);
  });
  return { ...base, height: maxH, width: maxW, images, sizes };
}

/** Options for {@link loadCub}. */
export interface CubOptions {
  /** Dataset root (the CUB_200_2011 folder); default {@link defaultCubDir}. */
  root?: string;
  /** Short side (and the test square's side); default 64. */
  size?: number;
  /**
   * Keep the whole photo at short side `size` (a variable-size dataset, for
   * training crops) instead of its centre square. Default false.
   */
  whole?: boolean;
  /** Cache directory; default `.cache/`. Pass null to skip the cache. */
  cacheDir?: string | null;
}

/** Loads one CUB split (resized, then centre square or whole), through the cache. */
export async function loadCub(split: CubSplit, opts: CubOptions = {}): Promise<ImageDataset> {
  const index = await indexCub(opts.root ?? defaultCubDir(), split);
  const size = opts.size ?? 64;
  const whole = opts.whole ?? false;
  const cacheDir = opts.cacheDir === undefined ? defaultCacheDir() : opts.cacheDir;
  if (cacheDir === null) return decodeCub(index, size, whole);
  const sourceChecksum = await fingerprint(index.metaFiles, index.files);
  const variant = whole ? `short${size}-bilinear` : `short${size}-bilinear-center${size}`;
  return cachedDataset(
    `${cacheDir}/cub-200-2011-${split}-${variant}.u8cache`,
    { dataset: "cub-200-2011", split, variant, sourceChecksum },
    () => decodeCub(index, size, whole),
  );
}
