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
  /**
   * Variable-size images (CUB's training photos at their own aspect ratio,
   * for crops taken from the whole photo): image i is `sizes[2i]` x
   * `sizes[2i + 1]` (H x W), packed back to back in `images`; `height` and
   * `width` are then the largest of each. Only a loader that crops every
   * image to one size (RandomResizedCrop) batches such a dataset.
   */
  sizes?: Uint16Array;
}

/** Bytes of one image of a fixed-size `ds`. */
export function imageSize(ds: ImageDataset): number {
  if (ds.sizes) throw new Error(`${ds.name}/${ds.split}: images vary in size (see imageOffsets)`);
  return ds.height * ds.width * ds.channels;
}

/** Byte offset of every image of `ds` in `images`, plus the end (count + 1 entries). */
export function imageOffsets(
  ds: Pick<ImageDataset, "count" | "height" | "width" | "channels" | "sizes">,
): Float64Array {
  const off = new Float64Array(ds.count + 1);
  const fixed = ds.height * ds.width * ds.channels;
  for (let i = 0; i < ds.count; i++) {
    off[i + 1] = off[i] + (ds.sizes ? ds.sizes[2 * i] * ds.sizes[2 * i + 1] * ds.channels : fixed);
  }
  return off;
}

/** [H, W] of image `i` of `ds`. */
export function imageShape(ds: ImageDataset, i: number): [number, number] {
  return ds.sizes ? [ds.sizes[2 * i], ds.sizes[2 * i + 1]] : [ds.height, ds.width];
}

/** A view (no copy) of image `i` of `ds`, H x W x C (H, W from {@link imageShape}). */
export function imageAt(ds: ImageDataset, i: number): Uint8Array {
  if (!(i >= 0 && i < ds.count)) {
    throw new RangeError(`imageAt: index ${i} outside 0..${ds.count - 1}`);
  }
  if (ds.sizes) {
    const off = imageOffsets(ds);
    return ds.images.subarray(off[i], off[i + 1]);
  }
  const s = imageSize(ds);
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
  if (ds.sizes && ds.sizes.length !== 2 * ds.count) {
    throw new Error(
      `${ds.name}/${ds.split}: ${ds.sizes.length} size entries for ${ds.count} images`,
    );
  }
  const want = imageOffsets(ds)[ds.count];
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
