/**
 * The data layer: dataset readers (Tiny ImageNet, CUB-200-2011,
 * Fashion-MNIST/MNIST IDX), the decoded uint8 cache, seeded augmentation,
 * the prefetching batch loader and the archive downloaders.
 *
 * @example
 * ```ts ignore
 * import { BatchLoader, FINETUNE_AUGMENT, loadTinyImageNet } from "./mod.ts";
 * const ds = await loadTinyImageNet("train", { root: "fixtures/tiny-imagenet-200", cacheDir: null });
 * const loader = new BatchLoader(ds, { batchSize: 16, seed: 42, augment: FINETUNE_AUGMENT, normalize: "imagenet" });
 * for await (const batch of loader.epoch(0)) {
 *   if (batch.shape[1] !== 3) throw new Error("expected RGB");
 * }
 * ```
 * @module
 */

export {
  checkDataset,
  imageAt,
  type ImageDataset,
  imageOffsets,
  imageShape,
  imageSize,
  labelCounts,
} from "./image_dataset.ts";
export {
  FASHION_MNIST_CLASSES,
  FASHION_MNIST_DIR,
  type IdxArray,
  loadMnistIdx,
  type MnistOptions,
  parseIdx,
  readIdx,
} from "./idx.ts";
export {
  decodeTinyImageNet,
  defaultTinDir,
  indexTinyImageNet,
  loadTinyImageNet,
  type TinIndex,
  type TinOptions,
  type TinSplit,
} from "./tiny_imagenet.ts";
export {
  type CubIndex,
  type CubOptions,
  type CubSplit,
  decodeCub,
  defaultCubDir,
  indexCub,
  loadCub,
} from "./cub.ts";
export { decodeJpeg, encodeJpegRgb, readJpeg, type RgbImage } from "./jpeg.ts";
export {
  BICUBIC,
  BILINEAR,
  type Box,
  type Filter,
  fitDataset,
  type FitOptions,
  resample,
  resizeShortCenterCrop,
} from "./resize.ts";
export {
  cachedDataset,
  type CacheHeader,
  CacheInvalidError,
  type CacheKey,
  decodeCache,
  defaultCacheDir,
  encodeCache,
  readCache,
  writeCache,
  writeFileAtomic,
} from "./cache.ts";
export {
  applyRandAugmentOp,
  augmentImage,
  type AugmentSpec,
  cropFlipAugment,
  CUB_TRAIN_AUGMENT,
  FINETUNE_AUGMENT,
  hflipInPlace,
  RAND_AUGMENT_OPS,
  type RandAugmentOp,
  sampleRandAugment,
  sampleResizedCrop,
} from "./augment.ts";
export { dinoAugment, type DinoAugmentSpec } from "./dino_augment.ts";
export { NORM_STATS, type Normalization, toFloatNCHW } from "./normalize.ts";
export {
  type Batch,
  type BatchFormat,
  BatchLoader,
  type BatchLoaderOptions,
  buildBatch,
} from "./batch_loader.ts";
export {
  type ArchiveSpec,
  CUB_ARCHIVE,
  downloadResumable,
  fetchDataset,
  type FetchOptions,
  resolveSpec,
  TIN_ARCHIVE,
  verifyArchive,
} from "./download.ts";
export { extractTar, extractTgz, extractZip, tarBytes } from "./archive.ts";
export { exists, processAlive, processStart } from "./_files.ts";
