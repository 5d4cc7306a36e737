/**
 * JPEG decoding through jpeg-js (pure JavaScript, maintained on npm), always
 * to packed RGB: grayscale and CMYK files come out as three channels.
 * Tolerant decoding is off and the end-of-image marker is required, so a
 * truncated file is an error rather than an image with a grey bottom half.
 *
 * @module
 */

import jpeg from "jpeg";

/** A decoded RGB image. */
export interface RgbImage {
  width: number;
  height: number;
  /** H x W x 3 uint8. */
  data: Uint8Array;
}

function hasEndMarker(b: Uint8Array): boolean {
  // Some encoders pad after EOI; look a little way back from the end.
  for (let i = b.length - 2; i >= Math.max(0, b.length - 64); i--) {
    if (b[i] === 0xff && b[i + 1] === 0xd9) return true;
  }
  return false;
}

/** Decodes JPEG bytes to RGB; `path` names the file in any error. */
export function decodeJpeg(bytes: Uint8Array, path: string): RgbImage {
  if (bytes.length < 4 || bytes[0] !== 0xff || bytes[1] !== 0xd8) {
    throw new Error(`${path}: not a JPEG file (no start-of-image marker)`);
  }
  if (!hasEndMarker(bytes)) {
    throw new Error(`${path}: truncated JPEG (no end-of-image marker)`);
  }
  let img: { width: number; height: number; data: Uint8Array };
  try {
    img = jpeg.decode(bytes, {
      useTArray: true,
      formatAsRGBA: false,
      tolerantDecoding: false,
      maxResolutionInMP: 100,
      maxMemoryUsageInMB: 1024,
    });
  } catch (e) {
    throw new Error(`${path}: corrupt JPEG (${(e as Error).message})`);
  }
  if (!(img.width > 0 && img.height > 0) || img.data.length !== img.width * img.height * 3) {
    throw new Error(
      `${path}: corrupt JPEG (decoded to ${img.width}x${img.height}, ${img.data.length} bytes)`,
    );
  }
  return { width: img.width, height: img.height, data: img.data };
}

/** Reads and decodes a JPEG file to RGB. */
export async function readJpeg(path: string): Promise<RgbImage> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new Error(`${path}: cannot read image (${(e as Error).message})`);
  }
  return decodeJpeg(bytes, path);
}

/** Encodes packed RGB (H x W x 3) as a baseline JPEG with jpeg-js. */
export function encodeJpegRgb(
  rgb: Uint8Array,
  width: number,
  height: number,
  quality = 90,
): Uint8Array {
  const rgba = new Uint8Array(width * height * 4);
  for (let p = 0; p < width * height; p++) {
    rgba[4 * p] = rgb[3 * p];
    rgba[4 * p + 1] = rgb[3 * p + 1];
    rgba[4 * p + 2] = rgb[3 * p + 2];
    rgba[4 * p + 3] = 255;
  }
  return new Uint8Array(jpeg.encode({ data: rgba, width, height }, quality).data);
}
