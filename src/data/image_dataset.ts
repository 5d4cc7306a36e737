/**
 * The in-memory form every reader returns: packed uint8 pixels in NHWC order
 * plus int32 labels. Packed bytes are what the cache stores and what the
 * loader slices batches from, so no reader keeps per-image objects around.
 *
 * @module
 */

/** A decoded image dataset: `count` images of `height x width x channels` uint8 pixels. */
export interface ImageDataset {
  /** Dataset name, e.g. "tiny-imagenet-200", "cub-200-2011", "fashion-mnist". */
  name: string;
  /** Split name, e.g. "train", "val", "test". */
  split: string;
  count: number;
  height: number;
  width: number;
  channels: number;
  /** Pixels, N x H x W x C, row-major. */
  images: Uint8Array;
  /** One label per image in [0, classes.length), or -1 where the split has none. */
  labels: Int32Array;
  /** Class identifiers in label order (label k is `classes[k]`). */
  classes: string[];
}

/** Bytes of one image of `ds`. */
export function imageSize(ds: ImageDataset): number {
  return ds.height * ds.width * ds.channels;
}

/** A view (no copy) of image `i` of `ds`, H x W x C. */
export function imageAt(ds: ImageDataset, i: number): Uint8Array {
  const s = imageSize(ds);
  if (!(i >= 0 && i < ds.count)) {
    throw new RangeError(`imageAt: index ${i} outside 0..${ds.count - 1}`);
  }
  return ds.images.subarray(i * s, (i + 1) * s);
}

/** Number of images per label (index = label); unlabeled (-1) images are not counted. */
export function labelCounts(ds: ImageDataset): number[] {
  const counts = new Array<number>(ds.classes.length).fill(0);
  for (const l of ds.labels) if (l >= 0) counts[l]++;
  return counts;
}

/** Throws unless the array sizes of `ds` agree with its shape fields. */
export function checkDataset(ds: ImageDataset): void {
  const want = ds.count * imageSize(ds);
  if (ds.images.length !== want) {
    throw new Error(`${ds.name}/${ds.split}: ${ds.images.length} pixel bytes, expected ${want}`);
  }
  if (ds.labels.length !== ds.count) {
    throw new Error(`${ds.name}/${ds.split}: ${ds.labels.length} labels for ${ds.count} images`);
  }
  for (let i = 0; i < ds.count; i++) {
    const l = ds.labels[i];
    if (l < -1 || l >= ds.classes.length) {
      throw new Error(`${ds.name}/${ds.split}: label ${l} of image ${i} outside the class list`);
    }
  }
}
