/**
 * Seeded image augmentation on packed uint8 HWC images, following the
 * torchvision transforms the authors' code uses (PIL semantics):
 *
 * - RandomResizedCrop(size, scale, ratio, bicubic): torchvision's crop
 *   sampling (10 tries, then a centre crop with the ratio clamped), resampled
 *   with the PIL bicubic filter of resize.ts;
 * - RandomHorizontalFlip(p = 0.5);
 * - RandAugment(num_ops = 2, magnitude = 9, 31 bins): 14 operations, nearest
 *   sampling and black fill for geometric ones, random sign for signed ones.
 *
 * Every random draw comes from the `Rng` handed in; the loader derives one per
 * (seed, epoch, dataset index) so that any sample's augmentation can be
 * replayed alone, whatever batch or worker produced it first. Measured on the
 * CPU (bench/data.ts); these stay on the CPU because the loader already runs
 * many times faster than training (see the bench numbers in the report).
 *
 * @module
 */

import type { Rng } from "../rng.ts";
import { BICUBIC, BILINEAR, resample } from "./resize.ts";
import type { DinoAugmentSpec } from "./dino_spec.ts";

/** A serializable augmentation recipe (so workers can rebuild it). */
export interface AugmentSpec {
  /**
   * RandomResizedCrop to `size x size`; scale and ratio ranges as in
   * torchvision; resampled bicubic (the authors' TIN pipeline) unless
   * `interpolation` says bilinear (torchvision's default, their CUB pipeline).
   */
  randomResizedCrop?: {
    size: number;
    scale: [number, number];
    ratio: [number, number];
    interpolation?: "bicubic" | "bilinear";
  };
  /** Horizontal flip with probability 0.5. */
  hflip?: boolean;
  /** RandAugment with `n` ops per image at magnitude `m` (of 31 bins). */
  randAugment?: { n: number; m: number };
  /** DINO's two global views per image (src/data/dino_augment.ts); excludes the fields above. */
  dino?: DinoAugmentSpec;
}

/** The authors' fine-tune augmentation: flip, RandomResizedCrop(64, 0.6-1, 0.9-1.1), RandAugment(2, 9). */
export const FINETUNE_AUGMENT: AugmentSpec = {
  randomResizedCrop: { size: 64, scale: [0.6, 1], ratio: [0.9, 1.1] },
  hflip: true,
  randAugment: { n: 2, m: 9 },
};

/**
 * The fine-tune augmentation without RandAugment, at the model's own size:
 * flip and RandomResizedCrop(size, 0.6-1, 0.9-1.1). The `small` profile's
 * supervised runs use it on 28x28 gray images (the paper's crop and flip
 * scaled down; RandAugment's colour operations need RGB).
 */
export function cropFlipAugment(size: number): AugmentSpec {
  return {
    randomResizedCrop: { ...FINETUNE_AUGMENT.randomResizedCrop!, size },
    hflip: true,
  };
}

/**
 * The authors' CUB training augmentation (their `auto_augment` key,
 * src/dataset/cub.py:59-66 of MLReproHub/SMAE): on the photo resized to a
 * short side of 64 (src/data/cub.ts caches it so), RandomResizedCrop(64,
 * scale 0.6-1) with torchvision's default ratio 3/4-4/3 and bilinear
 * resampling, flip, RandAugment(2, 9).
 */
export const CUB_TRAIN_AUGMENT: AugmentSpec = {
  randomResizedCrop: {
    size: 64,
    scale: [0.6, 1],
    ratio: [3 / 4, 4 / 3],
    interpolation: "bilinear",
  },
  hflip: true,
  randAugment: { n: 2, m: 9 },
};

/** Side length of images produced by `spec` from `h x w` inputs. */
export function augmentOutputSize(
  spec: AugmentSpec | null | undefined,
  h: number,
  w: number,
): [number, number] {
  const s = spec?.randomResizedCrop?.size ?? spec?.dino?.size;
  return s ? [s, s] : [h, w];
}

/** Crop box [top, left, height, width], torchvision RandomResizedCrop.get_params. */
export function sampleResizedCrop(
  h: number,
  w: number,
  scale: [number, number],
  ratio: [number, number],
  rng: Rng,
): [number, number, number, number] {
  const area = h * w;
  const logR: [number, number] = [Math.log(ratio[0]), Math.log(ratio[1])];
  for (let t = 0; t < 10; t++) {
    const target = area * rng.uniform(scale[0], scale[1]);
    const aspect = Math.exp(rng.uniform(logR[0], logR[1]));
    const cw = Math.round(Math.sqrt(target * aspect));
    const ch = Math.round(Math.sqrt(target / aspect));
    if (cw > 0 && cw <= w && ch > 0 && ch <= h) {
      return [rng.int(h - ch + 1), rng.int(w - cw + 1), ch, cw];
    }
  }
  const inRatio = w / h;
  let cw: number, ch: number;
  if (inRatio < ratio[0]) {
    cw = w;
    ch = Math.round(cw / ratio[0]);
  } else if (inRatio > ratio[1]) {
    ch = h;
    cw = Math.round(ch * ratio[1]);
  } else {
    cw = w;
    ch = h;
  }
  return [Math.trunc((h - ch) / 2), Math.trunc((w - cw) / 2), ch, cw];
}

/** Flips an HWC image left-right in place. */
export function hflipInPlace(img: Uint8Array, h: number, w: number, c: number): void {
  for (let y = 0; y < h; y++) {
    const row = y * w * c;
    for (let x = 0; x < w >> 1; x++) {
      const a = row + x * c, b = row + (w - 1 - x) * c;
      for (let k = 0; k < c; k++) {
        const t = img[a + k];
        img[a + k] = img[b + k];
        img[b + k] = t;
      }
    }
  }
}

/** The 14 RandAugment operations, in torchvision's order. */
export const RAND_AUGMENT_OPS = [
  "Identity",
  "ShearX",
  "ShearY",
  "TranslateX",
  "TranslateY",
  "Rotate",
  "Brightness",
  "Color",
  "Contrast",
  "Sharpness",
  "Posterize",
  "Solarize",
  "AutoContrast",
  "Equalize",
] as const;
/** One RandAugment operation name. */
export type RandAugmentOp = typeof RAND_AUGMENT_OPS[number];

const SIGNED = new Set<RandAugmentOp>([
  "ShearX",
  "ShearY",
  "TranslateX",
  "TranslateY",
  "Rotate",
  "Brightness",
  "Color",
  "Contrast",
  "Sharpness",
]);

/**
 * The magnitude torchvision's RandAugment uses for `op` at bin `m` of
 * `bins` (31) on an `h x w` image, before the random sign.
 */
export function randAugmentMagnitude(
  op: RandAugmentOp,
  m: number,
  h: number,
  w: number,
  bins = 31,
): number {
  const lin = (hi: number, lo = 0) => lo + ((hi - lo) * m) / (bins - 1);
  switch (op) {
    case "ShearX":
    case "ShearY":
      return lin(0.3);
    case "TranslateX":
      return Math.trunc(lin((150 / 331) * w)); // torchvision passes int(magnitude)
    case "TranslateY":
      return Math.trunc(lin((150 / 331) * h));
    case "Rotate":
      return lin(30);
    case "Brightness":
    case "Color":
    case "Contrast":
    case "Sharpness":
      return lin(0.9);
    case "Posterize":
      return 8 - Math.round(m / ((bins - 1) / 4));
    case "Solarize":
      return lin(0, 255);
    default:
      return 0;
  }
}

/**
 * Nearest-neighbour inverse affine warp with black fill: output pixel centre
 * (x+0.5, y+0.5) reads input (a*x' + b*y' + c, d*x' + e*y' + f), PIL's
 * `Image.transform(AFFINE)` convention.
 */
export function affineNearest(
  src: Uint8Array,
  dst: Uint8Array,
  h: number,
  w: number,
  ch: number,
  m: [number, number, number, number, number, number],
): void {
  const [a, b, c, d, e, f] = m;
  for (let y = 0; y < h; y++) {
    const yc = y + 0.5;
    for (let x = 0; x < w; x++) {
      const xc = x + 0.5;
      const sx = Math.floor(a * xc + b * yc + c);
      const sy = Math.floor(d * xc + e * yc + f);
      const o = (y * w + x) * ch;
      if (sx >= 0 && sx < w && sy >= 0 && sy < h) {
        const i = (sy * w + sx) * ch;
        for (let k = 0; k < ch; k++) dst[o + k] = src[i + k];
      } else {
        for (let k = 0; k < ch; k++) dst[o + k] = 0;
      }
    }
  }
}

const clamp8 = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : Math.round(v));

/** out = degenerate + factor * (img - degenerate), PIL ImageEnhance's blend; `deg` may be a constant. */
function blend(img: Uint8Array, n: number, deg: Uint8Array | number, factor: number): void {
  if (typeof deg === "number") {
    for (let i = 0; i < n; i++) img[i] = clamp8(deg + factor * (img[i] - deg));
  } else {
    for (let i = 0; i < n; i++) img[i] = clamp8(deg[i] + factor * (img[i] - deg[i]));
  }
}

/** PIL "L" conversion of pixel p of an RGB image (ITU-R 601-2, integer rounding as PIL). */
function luma(img: Uint8Array, o: number): number {
  return (img[o] * 19595 + img[o + 1] * 38470 + img[o + 2] * 7471 + 0x8000) >> 16;
}

/**
 * Applies one RandAugment operation with the given signed magnitude to an
 * `h x w x 3` image in place; `tmp` is scratch of the same size.
 */
export function applyRandAugmentOp(
  op: RandAugmentOp,
  mag: number,
  img: Uint8Array,
  tmp: Uint8Array,
  h: number,
  w: number,
): void {
  const c = 3, n = h * w * c;
  switch (op) {
    case "Identity":
      return;
    case "ShearX":
      tmp.set(img.subarray(0, n));
      return affineNearest(tmp, img, h, w, c, [1, mag, 0, 0, 1, 0]);
    case "ShearY":
      tmp.set(img.subarray(0, n));
      return affineNearest(tmp, img, h, w, c, [1, 0, 0, mag, 1, 0]);
    case "TranslateX":
      tmp.set(img.subarray(0, n));
      return affineNearest(tmp, img, h, w, c, [1, 0, -mag, 0, 1, 0]);
    case "TranslateY":
      tmp.set(img.subarray(0, n));
      return affineNearest(tmp, img, h, w, c, [1, 0, 0, 0, 1, -mag]);
    case "Rotate": {
      // Counter-clockwise by `mag` degrees about the image centre (PIL rotate).
      const t = (mag * Math.PI) / 180, cos = Math.cos(t), sin = Math.sin(t);
      const cx = w / 2, cy = h / 2;
      tmp.set(img.subarray(0, n));
      return affineNearest(tmp, img, h, w, c, [
        cos,
        -sin,
        cx - cos * cx + sin * cy,
        sin,
        cos,
        cy - sin * cx - cos * cy,
      ]);
    }
    case "Brightness":
      return blend(img, n, 0, 1 + mag);
    case "Color": {
      for (let p = 0, o = 0; p < h * w; p++, o += 3) {
        const l = luma(img, o);
        tmp[o] = l;
        tmp[o + 1] = l;
        tmp[o + 2] = l;
      }
      return blend(img, n, tmp, 1 + mag);
    }
    case "Contrast": {
      let s = 0;
      for (let p = 0; p < h * w; p++) s += luma(img, 3 * p);
      return blend(img, n, Math.trunc(s / (h * w) + 0.5), 1 + mag);
    }
    case "Sharpness": {
      // PIL SMOOTH kernel [[1,1,1],[1,5,1],[1,1,1]] / 13 inside, border pixels unchanged.
      tmp.set(img.subarray(0, n));
      for (let y = 1; y < h - 1; y++) {
        for (let x = 1; x < w - 1; x++) {
          for (let k = 0; k < c; k++) {
            const o = (y * w + x) * c + k;
            let s = 4 * img[o];
            for (let dy = -1; dy <= 1; dy++) {
              for (let dx = -1; dx <= 1; dx++) s += img[o + (dy * w + dx) * c];
            }
            tmp[o] = Math.trunc(s / 13 + 0.5);
          }
        }
      }
      return blend(img, n, tmp, 1 + mag);
    }
    case "Posterize": {
      const mask = (0xff << (8 - mag)) & 0xff;
      for (let i = 0; i < n; i++) img[i] &= mask;
      return;
    }
    case "Solarize":
      for (let i = 0; i < n; i++) if (img[i] >= mag) img[i] = 255 - img[i];
      return;
    case "AutoContrast":
      for (let k = 0; k < c; k++) {
        let lo = 255, hi = 0;
        for (let i = k; i < n; i += c) {
          if (img[i] < lo) lo = img[i];
          if (img[i] > hi) hi = img[i];
        }
        if (hi <= lo) continue;
        const s = 255 / (hi - lo);
        for (let i = k; i < n; i += c) img[i] = clamp8((img[i] - lo) * s);
      }
      return;
    case "Equalize": {
      // PIL ImageOps.equalize, per channel.
      const hist = new Int32Array(256), lut = new Uint8Array(256);
      for (let k = 0; k < c; k++) {
        hist.fill(0);
        for (let i = k; i < n; i += c) hist[img[i]]++;
        let last = 255;
        while (last > 0 && hist[last] === 0) last--;
        const step = Math.trunc((h * w - hist[last]) / 255);
        if (step === 0) continue;
        let acc = step >> 1;
        for (let v = 0; v < 256; v++) {
          lut[v] = Math.min(255, Math.trunc(acc / step));
          acc += hist[v];
        }
        for (let i = k; i < n; i += c) img[i] = lut[img[i]];
      }
      return;
    }
  }
}

/** Scratch buffers reused across images by {@link augmentImage}. */
export class AugmentScratch {
  a = new Uint8Array(0);
  b = new Uint8Array(0);
  /** Makes both buffers at least `n` bytes. */
  ensure(n: number): void {
    if (this.a.length < n) {
      this.a = new Uint8Array(n);
      this.b = new Uint8Array(n);
    }
  }
}

/** The RandAugment choices for one image: ops and their signed magnitudes. */
export function sampleRandAugment(
  n: number,
  m: number,
  h: number,
  w: number,
  rng: Rng,
): [RandAugmentOp, number][] {
  const out: [RandAugmentOp, number][] = [];
  for (let i = 0; i < n; i++) {
    const op = RAND_AUGMENT_OPS[rng.int(RAND_AUGMENT_OPS.length)];
    let mag = randAugmentMagnitude(op, m, h, w);
    if (SIGNED.has(op) && rng.int(2) === 1) mag = -mag;
    out.push([op, mag]);
  }
  return out;
}

/**
 * Augments one `h x w x c` image by `spec`, drawing from `rng`, into `out` at
 * `offset` (output size from {@link augmentOutputSize}). Order as in the
 * authors' fine-tune pipeline: flip, crop, RandAugment.
 */
export function augmentImage(
  spec: AugmentSpec,
  src: Uint8Array,
  h: number,
  w: number,
  c: number,
  rng: Rng,
  out: Uint8Array,
  offset: number,
  scratch: AugmentScratch = new AugmentScratch(),
): void {
  const [oh, ow] = augmentOutputSize(spec, h, w);
  const n = oh * ow * c;
  scratch.ensure(Math.max(n, h * w * c));
  const flip = spec.hflip ? rng.float() < 0.5 : false;
  const img = scratch.a.subarray(0, n);
  const rrc = spec.randomResizedCrop;
  if (rrc) {
    const [top, left, ch, cw] = sampleResizedCrop(h, w, rrc.scale, rrc.ratio, rng);
    const filter = rrc.interpolation === "bilinear" ? BILINEAR : BICUBIC;
    resample(src, h, w, c, [left, top, left + cw, top + ch], oh, ow, filter, img, 0);
  } else {
    img.set(src.subarray(0, n));
  }
  if (flip) hflipInPlace(img, oh, ow, c);
  if (spec.randAugment) {
    if (c !== 3) throw new Error(`RandAugment needs RGB images, got ${c} channels`);
    for (
      const [op, mag] of sampleRandAugment(spec.randAugment.n, spec.randAugment.m, oh, ow, rng)
    ) {
      applyRandAugmentOp(op, mag, img, scratch.b, oh, ow);
    }
  }
  out.set(img, offset);
}
