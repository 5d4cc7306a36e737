/**
 * DINO's augmentation of two global views per image (Caron et al. 2021,
 * `DataAugmentationDINO`), as the paper ran it, plus optional local crops:
 *
 * - both views: RandomResizedCrop(size, scale, ratio 3/4-4/3, bicubic),
 *   horizontal flip p 0.5, ColorJitter(brightness 0.4, contrast 0.4,
 *   saturation 0.2, hue 0.1) with p 0.8 (the four in random order, as
 *   torchvision), RandomGrayscale p 0.2;
 * - Gaussian blur with sigma ~ U(0.1, 2.0): p 1.0 on view 1, p 0.1 on view 2
 *   (a separable Gaussian truncated at 3 sigma with clamped edges, where DINO
 *   calls PIL's GaussianBlur(radius = sigma), an approximation of the same);
 * - solarization (PIL threshold 128) with p 0.2 on view 2 only;
 * - local crops (multi-crop, off unless `localCrops` > 0; the paper used
 *   none): RandomResizedCrop(localSize, localScale, default 0.05-0.4), flip,
 *   the same colour jitter p 0.8 and grayscale p 0.2, blur p 0.5, no
 *   solarization.
 *
 * Images with one channel work: saturation, hue and grayscale have nothing to
 * act on and are identities there (their random draws still happen, so the
 * stream does not depend on the channel count).
 *
 * Each view draws from its own fork of the per-(seed, epoch, index) `Rng` the
 * loader hands in, so a sample's views replay alone.
 * @module
 */

import type { Rng } from "../rng.ts";
import { hflipInPlace, sampleResizedCrop } from "./augment.ts";
import type { DinoAugmentSpec } from "./dino_spec.ts";
import { BICUBIC, resample } from "./resize.ts";

export type { DinoAugmentSpec } from "./dino_spec.ts";

/** Local crop options of {@link dinoAugment}. */
export interface DinoLocalOptions {
  crops: number;
  size: number;
  scale?: [number, number];
}

/**
 * DINO's settings for a model of image size `size` (the paper's global crop
 * scale 0.6-1), with `local.crops` local crops of side `local.size` if given.
 */
export function dinoAugment(size: number, local?: DinoLocalOptions): DinoAugmentSpec {
  if (!local || local.crops === 0) return { size, scale: [0.6, 1] };
  return {
    size,
    scale: [0.6, 1],
    localCrops: local.crops,
    localSize: local.size,
    localScale: local.scale ?? [0.05, 0.4],
  };
}

const clamp8 = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : Math.round(v));

/** PIL "L" of an RGB pixel (ITU-R 601-2 luma, PIL's integer rounding). */
function luma(img: Uint8Array, o: number): number {
  return (img[o] * 19595 + img[o + 1] * 38470 + img[o + 2] * 7471 + 0x8000) >> 16;
}

/** out = deg + f (img - deg), PIL's ImageEnhance blend, with `deg` a constant or a per-pixel gray. */
function blendInPlace(img: Uint8Array, c: number, f: number, deg: number | Uint8Array): void {
  const px = img.length / c;
  for (let p = 0; p < px; p++) {
    const d = typeof deg === "number" ? deg : deg[p];
    for (let k = 0; k < c; k++) img[p * c + k] = clamp8(d + f * (img[p * c + k] - d));
  }
}

function grayOf(img: Uint8Array, c: number): Uint8Array {
  const px = img.length / c;
  const g = new Uint8Array(px);
  for (let p = 0; p < px; p++) g[p] = c === 3 ? luma(img, 3 * p) : img[p * c];
  return g;
}

/** Brightness: blend with black by factor `f`. */
export function adjustBrightness(img: Uint8Array, c: number, f: number): void {
  blendInPlace(img, c, f, 0);
}

/** Contrast: blend with the image's mean gray level (rounded, as PIL) by factor `f`. */
export function adjustContrast(img: Uint8Array, c: number, f: number): void {
  const g = grayOf(img, c);
  let s = 0;
  for (const v of g) s += v;
  blendInPlace(img, c, f, Math.trunc(s / g.length + 0.5));
}

/** Saturation: blend with the per-pixel gray by factor `f` (identity for 1 channel). */
export function adjustSaturation(img: Uint8Array, c: number, f: number): void {
  if (c !== 3) return;
  blendInPlace(img, c, f, grayOf(img, c));
}

/** Hue: rotates each pixel's hue by `shift` turns (in [-0.5, 0.5]) in HSV (identity for 1 channel). */
export function adjustHue(img: Uint8Array, c: number, shift: number): void {
  if (c !== 3) return;
  for (let o = 0; o < img.length; o += 3) {
    const r = img[o] / 255, g = img[o + 1] / 255, b = img[o + 2] / 255;
    const mx = Math.max(r, g, b), mn = Math.min(r, g, b), d = mx - mn;
    if (d === 0) continue; // gray: no hue to rotate
    let h = mx === r ? ((g - b) / d) % 6 : mx === g ? (b - r) / d + 2 : (r - g) / d + 4;
    h = ((h / 6 + shift) % 1 + 1) % 1;
    const s = d / mx, v = mx;
    const i = Math.floor(h * 6), f = h * 6 - i;
    const p = v * (1 - s), q = v * (1 - f * s), t = v * (1 - (1 - f) * s);
    const [rr, gg, bb] = [[v, t, p], [q, v, p], [p, v, t], [p, q, v], [t, p, v], [v, p, q]][i % 6];
    img[o] = clamp8(rr * 255);
    img[o + 1] = clamp8(gg * 255);
    img[o + 2] = clamp8(bb * 255);
  }
}

/** RGB to gray, the gray copied to all three channels (identity for 1 channel). */
export function grayscaleInPlace(img: Uint8Array, c: number): void {
  if (c !== 3) return;
  for (let o = 0; o < img.length; o += 3) {
    const l = luma(img, o);
    img[o] = l;
    img[o + 1] = l;
    img[o + 2] = l;
  }
}

/** PIL ImageOps.solarize: every value >= threshold becomes 255 - value. */
export function solarizeInPlace(img: Uint8Array, threshold = 128): void {
  for (let i = 0; i < img.length; i++) if (img[i] >= threshold) img[i] = 255 - img[i];
}

/**
 * Separable Gaussian blur of an `h x w x c` image with std `sigma` pixels,
 * truncated at radius ceil(3 sigma), edges clamped; weights normalised to 1.
 */
export function gaussianBlurInPlace(
  img: Uint8Array,
  h: number,
  w: number,
  c: number,
  sigma: number,
): void {
  const r = Math.max(1, Math.ceil(3 * sigma));
  const k = new Float64Array(2 * r + 1);
  let s = 0;
  for (let i = -r; i <= r; i++) s += k[i + r] = Math.exp(-(i * i) / (2 * sigma * sigma));
  for (let i = 0; i < k.length; i++) k[i] /= s;
  const tmp = new Float64Array(h * w * c);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let ch = 0; ch < c; ch++) {
        let v = 0;
        for (let i = -r; i <= r; i++) {
          const xx = Math.min(w - 1, Math.max(0, x + i));
          v += k[i + r] * img[(y * w + xx) * c + ch];
        }
        tmp[(y * w + x) * c + ch] = v;
      }
    }
  }
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let ch = 0; ch < c; ch++) {
        let v = 0;
        for (let i = -r; i <= r; i++) {
          const yy = Math.min(h - 1, Math.max(0, y + i));
          v += k[i + r] * tmp[(yy * w + x) * c + ch];
        }
        img[(y * w + x) * c + ch] = clamp8(v);
      }
    }
  }
}

/** ColorJitter(0.4, 0.4, 0.2, 0.1): factors drawn as torchvision, applied in a random order. */
function colorJitter(img: Uint8Array, c: number, rng: Rng): void {
  const order = rng.permutation(4);
  const b = rng.uniform(0.6, 1.4), ct = rng.uniform(0.6, 1.4);
  const sat = rng.uniform(0.8, 1.2), hue = rng.uniform(-0.1, 0.1);
  for (const op of order) {
    if (op === 0) adjustBrightness(img, c, b);
    else if (op === 1) adjustContrast(img, c, ct);
    else if (op === 2) adjustSaturation(img, c, sat);
    else adjustHue(img, c, hue);
  }
}

/**
 * The distortions every DINO crop shares, drawn from `rng` in this order:
 * RandomResizedCrop of `scale` to `size` x `size` (into `out` at `offset`),
 * flip p 0.5, colour jitter p 0.8, grayscale p 0.2, blur with probability
 * `blurP`, then solarization with probability `solarizeP` (no draw when 0).
 */
function dinoCrop(
  src: Uint8Array,
  h: number,
  w: number,
  c: number,
  size: number,
  scale: [number, number],
  blurP: number,
  solarizeP: number,
  rng: Rng,
  out: Uint8Array,
  offset: number,
): void {
  const s = size;
  const img = out.subarray(offset, offset + s * s * c);
  const [top, left, ch, cw] = sampleResizedCrop(h, w, scale, [3 / 4, 4 / 3], rng);
  resample(src, h, w, c, [left, top, left + cw, top + ch], s, s, BICUBIC, img, 0);
  if (rng.float() < 0.5) hflipInPlace(img, s, s, c);
  if (rng.float() < 0.8) colorJitter(img, c, rng);
  if (rng.float() < 0.2) grayscaleInPlace(img, c);
  const sigma = rng.uniform(0.1, 2.0);
  if (rng.float() < blurP) gaussianBlurInPlace(img, s, s, c, sigma);
  if (solarizeP > 0 && rng.float() < solarizeP) solarizeInPlace(img);
}

/**
 * Writes global view `view` (0 or 1) of one `h x w x c` image into `out` at
 * `offset` (spec.size^2 * c bytes), drawing from `rng`: blur p 1.0 on view 0
 * and 0.1 on view 1, solarization p 0.2 on view 1 only.
 */
export function dinoView(
  spec: DinoAugmentSpec,
  view: 0 | 1,
  src: Uint8Array,
  h: number,
  w: number,
  c: number,
  rng: Rng,
  out: Uint8Array,
  offset: number,
): void {
  const [blurP, solarizeP] = view === 0 ? [1.0, 0] : [0.1, 0.2];
  dinoCrop(src, h, w, c, spec.size, spec.scale, blurP, solarizeP, rng, out, offset);
}

/**
 * Writes one local crop of an `h x w x c` image into `out` at `offset`
 * (spec.localSize^2 * c bytes), drawing from `rng`: RandomResizedCrop at the
 * local scale, flip, colour jitter p 0.8, grayscale p 0.2, blur p 0.5.
 */
export function dinoLocalView(
  spec: DinoAugmentSpec,
  src: Uint8Array,
  h: number,
  w: number,
  c: number,
  rng: Rng,
  out: Uint8Array,
  offset: number,
): void {
  const scale = spec.localScale ?? [0.05, 0.4];
  dinoCrop(src, h, w, c, spec.localSize!, scale, 0.5, 0, rng, out, offset);
}
