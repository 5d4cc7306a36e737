/**
 * Seeded mini-batches from an {@link ImageDataset}, ready for GPU upload.
 *
 * Order: epoch e visits the dataset in `new Rng(seed).fork("order").fork(e)`
 * permutation order, so the same seed replays the same order and different
 * epochs differ. Augmentation of dataset index i in epoch e draws from
 * `new Rng(hash3(seed, e, i))`, so it does not depend on batch size,
 * prefetch depth or which worker did it.
 *
 * Prefetch: {@link BatchLoader.epoch} keeps `prefetch` batches in flight. In
 * the main thread each batch is built in its own macrotask, so the work runs
 * while the training loop awaits the GPU (mapAsync, onSubmittedWorkDone);
 * with `workers > 0` batches are built in web workers that share the
 * dataset's pixels through a SharedArrayBuffer.
 *
 * @module
 */

import { hash3, Rng } from "../rng.ts";
import { augmentImage, augmentOutputSize, AugmentScratch, type AugmentSpec } from "./augment.ts";
import { dinoLocalView, dinoView } from "./dino_augment.ts";
import { type ImageDataset, imageOffsets } from "./image_dataset.ts";
import { type Normalization, toFloatNCHW } from "./normalize.ts";

/** Output layout: float32 NCHW (normalized) or the raw uint8 NHWC pixels. */
export type BatchFormat = "f32-nchw" | "u8-nhwc";

/** One mini-batch. */
export interface Batch {
  /** float32 N x C x H x W (normalized) or uint8 N x H x W x C. */
  images: Float32Array | Uint8Array;
  labels: Int32Array;
  /** Dataset indices of the images, in batch order. */
  indices: Uint32Array;
  /** [N, C, H, W] whatever the layout. */
  shape: [number, number, number, number];
  /**
   * DINO's local crops (augment `dino` with localCrops > 0): crop-major —
   * images [k n, (k + 1) n) are local crop k of the batch's n images — in
   * the same layout as `images`.
   */
  local?: { images: Float32Array | Uint8Array; shape: [number, number, number, number] };
  epoch: number;
  /** Batch number within the epoch. */
  step: number;
}

/** Options for {@link BatchLoader}. */
export interface BatchLoaderOptions {
  batchSize: number;
  seed: number;
  /** Shuffle each epoch (default true); false keeps dataset order. */
  shuffle?: boolean;
  /** Drop a final partial batch (default false). */
  dropLast?: boolean;
  /** Default "f32-nchw". */
  format?: BatchFormat;
  /** Per-image augmentation; default none. */
  augment?: AugmentSpec | null;
  /** Normalization for "f32-nchw"; default "none" (x / 255). */
  normalize?: Normalization;
  /** Batches kept in flight by {@link BatchLoader.epoch}; default 2. */
  prefetch?: number;
  /** Web workers building batches (0 = main thread, default). */
  workers?: number;
}

/** Everything a worker needs to build batches (structured-clone friendly). */
export interface BatchRecipe {
  count: number;
  height: number;
  width: number;
  channels: number;
  batchSize: number;
  seed: number;
  format: BatchFormat;
  augment: AugmentSpec | null;
  normalize: Normalization;
  /** Variable-size datasets: H, W per image and byte offsets (ImageDataset.sizes, imageOffsets). */
  sizes?: Uint16Array;
  offsets?: Float64Array;
}

/**
 * Builds the batch of the given dataset `indices` (pure function of its
 * inputs): augments each image with its own (seed, epoch, index) stream, then
 * converts to the output layout.
 */
export function buildBatch(
  r: BatchRecipe,
  pixels: Uint8Array,
  labelsAll: Int32Array,
  indices: Uint32Array,
  epoch: number,
  step: number,
  scratch: AugmentScratch = new AugmentScratch(),
): Batch {
  if (r.sizes && !r.augment?.randomResizedCrop) {
    throw new Error(
      "BatchLoader: images of varying size need a RandomResizedCrop augmentation to batch them",
    );
  }
  if (r.augment?.dino) return buildDinoBatch(r, pixels, labelsAll, indices, epoch, step);
  const n = indices.length, c = r.channels;
  const [oh, ow] = augmentOutputSize(r.augment, r.height, r.width);
  const inSz = r.height * r.width * c, outSz = oh * ow * c;
  const u8 = new Uint8Array(n * outSz);
  const labels = new Int32Array(n);
  for (let j = 0; j < n; j++) {
    const i = indices[j];
    labels[j] = labelsAll[i];
    let h = r.height, w = r.width, src: Uint8Array;
    if (r.sizes) {
      h = r.sizes[2 * i];
      w = r.sizes[2 * i + 1];
      src = pixels.subarray(r.offsets![i], r.offsets![i + 1]);
    } else src = pixels.subarray(i * inSz, (i + 1) * inSz);
    if (r.augment) {
      augmentImage(
        r.augment,
        src,
        h,
        w,
        c,
        new Rng(hash3(r.seed, epoch, i)),
        u8,
        j * outSz,
        scratch,
      );
    } else u8.set(src, j * outSz);
  }
  const images = r.format === "u8-nhwc" ? u8 : toFloatNCHW(u8, n, oh, ow, c, r.normalize);
  return { images, labels, indices, shape: [n, c, oh, ow], epoch, step };
}

/**
 * DINO's batch: two global views of each image, view-major — images [0, n)
 * are view 1 of the batch, [n, 2n) view 2 of the same images in the same
 * order; labels and indices repeat. Each view forks the sample's
 * (seed, epoch, index) stream, and so does each local crop (`local${k}`) when
 * the spec asks for local crops (then in `local`, crop-major).
 */
function buildDinoBatch(
  r: BatchRecipe,
  pixels: Uint8Array,
  labelsAll: Int32Array,
  indices: Uint32Array,
  epoch: number,
  step: number,
): Batch {
  const spec = r.augment!.dino!;
  const n = indices.length, { height: h, width: w, channels: c } = r;
  const s = spec.size, inSz = h * w * c, outSz = s * s * c;
  const u8 = new Uint8Array(2 * n * outSz);
  const nl = spec.localCrops ?? 0, ls = spec.localSize ?? 0, localSz = ls * ls * c;
  const lu8 = nl > 0 ? new Uint8Array(nl * n * localSz) : null;
  const labels = new Int32Array(2 * n);
  for (let j = 0; j < n; j++) {
    const i = indices[j];
    labels[j] = labels[n + j] = labelsAll[i];
    const src = pixels.subarray(i * inSz, (i + 1) * inSz);
    const rng = new Rng(hash3(r.seed, epoch, i));
    for (const v of [0, 1] as const) {
      dinoView(spec, v, src, h, w, c, rng.fork(`view${v}`), u8, (v * n + j) * outSz);
    }
    for (let k = 0; k < nl; k++) {
      dinoLocalView(spec, src, h, w, c, rng.fork(`local${k}`), lu8!, (k * n + j) * localSz);
    }
  }
  const images = r.format === "u8-nhwc" ? u8 : toFloatNCHW(u8, 2 * n, s, s, c, r.normalize);
  const both = new Uint32Array(2 * n);
  both.set(indices);
  both.set(indices, n);
  const batch: Batch = { images, labels, indices: both, shape: [2 * n, c, s, s], epoch, step };
  if (lu8) {
    batch.local = {
      images: r.format === "u8-nhwc" ? lu8 : toFloatNCHW(lu8, nl * n, ls, ls, c, r.normalize),
      shape: [nl * n, c, ls, ls],
    };
  }
  return batch;
}

/** Seeded, optionally augmenting, prefetching mini-batch loader. */
export class BatchLoader {
  readonly dataset: ImageDataset;
  readonly recipe: BatchRecipe;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  readonly prefetch: number;
  readonly workers: number;
  #scratch = new AugmentScratch();
  #pool: WorkerPool | null = null;

  /** A loader over `dataset`; see {@link BatchLoaderOptions}. */
  constructor(dataset: ImageDataset, opts: BatchLoaderOptions) {
    if (!(opts.batchSize >= 1)) {
      throw new RangeError(`BatchLoader: batchSize must be >= 1, got ${opts.batchSize}`);
    }
    this.dataset = dataset;
    this.recipe = {
      count: dataset.count,
      height: dataset.height,
      width: dataset.width,
      channels: dataset.channels,
      batchSize: opts.batchSize,
      seed: opts.seed >>> 0,
      format: opts.format ?? "f32-nchw",
      augment: opts.augment ?? null,
      normalize: opts.normalize ?? "none",
      ...(dataset.sizes ? { sizes: dataset.sizes, offsets: imageOffsets(dataset) } : {}),
    };
    this.shuffle = opts.shuffle ?? true;
    this.dropLast = opts.dropLast ?? false;
    this.prefetch = Math.max(1, opts.prefetch ?? 2);
    this.workers = opts.workers ?? 0;
  }

  /** Number of batches in one epoch. */
  get batchesPerEpoch(): number {
    const { count, batchSize } = this.recipe;
    return this.dropLast ? Math.floor(count / batchSize) : Math.ceil(count / batchSize);
  }

  /** The visiting order of epoch `epoch` (dataset indices). */
  order(epoch: number): Uint32Array {
    const n = this.recipe.count;
    if (!this.shuffle) return Uint32Array.from({ length: n }, (_, i) => i);
    return new Rng(this.recipe.seed).fork("order").fork(epoch).permutation(n);
  }

  #indices(order: Uint32Array, step: number): Uint32Array {
    const b = this.recipe.batchSize;
    return order.slice(step * b, Math.min((step + 1) * b, order.length));
  }

  /** Builds batch `step` of `epoch` synchronously in this thread. */
  batch(epoch: number, step: number, order: Uint32Array = this.order(epoch)): Batch {
    const ds = this.dataset;
    return buildBatch(
      this.recipe,
      ds.images,
      ds.labels,
      this.#indices(order, step),
      epoch,
      step,
      this.#scratch,
    );
  }

  /** Yields the batches of `epoch` in order, keeping `prefetch` batches in flight. */
  async *epoch(epoch: number): AsyncGenerator<Batch> {
    const order = this.order(epoch);
    const total = this.batchesPerEpoch;
    const make = (step: number): Promise<Batch> => {
      if (this.workers > 0) {
        this.#pool ??= new WorkerPool(this.workers, this.dataset, this.recipe);
        return this.#pool.run(this.#indices(order, step), epoch, step);
      }
      // A macrotask of its own: runs while the consumer awaits GPU work.
      return new Promise((resolve, reject) =>
        setTimeout(() => {
          try {
            resolve(this.batch(epoch, step, order));
          } catch (e) {
            reject(e);
          }
        }, 0)
      );
    };
    const queue: Promise<Batch>[] = [];
    let next = 0;
    const inFlight = this.workers > 0 ? Math.max(this.prefetch, 2 * this.workers) : this.prefetch;
    while (next < total && queue.length < inFlight) queue.push(make(next++));
    while (queue.length > 0) {
      const b = await queue.shift()!;
      if (next < total) queue.push(make(next++));
      yield b;
    }
  }

  /** Stops the worker pool, if any. */
  close(): void {
    this.#pool?.close();
    this.#pool = null;
  }
}

interface Job {
  resolve: (b: Batch) => void;
  reject: (e: Error) => void;
}

/** Web workers sharing the dataset pixels through SharedArrayBuffers. */
class WorkerPool {
  #workers: Worker[] = [];
  #jobs = new Map<number, Job>();
  #nextId = 0;
  #rr = 0;

  constructor(n: number, ds: ImageDataset, recipe: BatchRecipe) {
    const pixels = new Uint8Array(new SharedArrayBuffer(ds.images.length));
    pixels.set(ds.images);
    const labels = new Int32Array(new SharedArrayBuffer(ds.labels.byteLength));
    labels.set(ds.labels);
    for (let k = 0; k < n; k++) {
      const w = new Worker(new URL("./_batch_worker.ts", import.meta.url).href, { type: "module" });
      w.onmessage = (ev: MessageEvent) => {
        const { id, batch, error } = ev.data;
        const job = this.#jobs.get(id)!;
        this.#jobs.delete(id);
        if (error) job.reject(new Error(error));
        else job.resolve(batch);
      };
      w.onerror = (ev) => {
        ev.preventDefault();
        for (const job of this.#jobs.values()) {
          job.reject(new Error(`batch worker failed: ${ev.message}`));
        }
        this.#jobs.clear();
      };
      w.postMessage({ init: { recipe, pixels, labels } });
      this.#workers.push(w);
    }
  }

  run(indices: Uint32Array, epoch: number, step: number): Promise<Batch> {
    const id = this.#nextId++;
    const w = this.#workers[this.#rr++ % this.#workers.length];
    return new Promise((resolve, reject) => {
      this.#jobs.set(id, { resolve, reject });
      w.postMessage({ id, indices, epoch, step });
    });
  }

  close(): void {
    for (const w of this.#workers) w.terminate();
    this.#workers = [];
  }
}
