/**
 * IDX files (the MNIST / Fashion-MNIST format), plain or gzipped.
 *
 * Layout: two zero bytes, a type byte (0x08 = uint8 is the only one these
 * datasets use), a byte with the number of dimensions, then one big-endian
 * uint32 per dimension, then the data in row-major order.
 *
 * @module
 */

import { gunzipSync } from "fflate";
import type { ImageDataset } from "./image_dataset.ts";

/** Default Fashion-MNIST location (Debian package dataset-fashion-mnist). */
export const FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist";

/** Fashion-MNIST class names in label order. */
export const FASHION_MNIST_CLASSES = [
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
];

/** A parsed IDX uint8 array. */
export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

let crcTable: Uint32Array | null = null;

/** CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), as gzip's trailer records it. */
export function crc32(bytes: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = crcTable[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/**
 * Gunzips a single-member gzip file and checks its trailer: the CRC-32 and
 * the length (mod 2^32) of the output (fflate checks neither, so a flipped
 * byte in a stored or still-decodable block would pass as data).
 */
export function gunzipChecked(bytes: Uint8Array, path: string): Uint8Array {
  let out: Uint8Array;
  try {
    out = gunzipSync(bytes);
  } catch (e) {
    throw new Error(`${path}: corrupt gzip stream (${(e as Error).message})`);
  }
  if (bytes.length < 18) throw new Error(`${path}: gzip file too short for its trailer`);
  const trailer = new DataView(bytes.buffer, bytes.byteOffset + bytes.length - 8, 8);
  const wantCrc = trailer.getUint32(0, true), wantSize = trailer.getUint32(4, true);
  const size = out.length % 2 ** 32;
  if (size !== wantSize) {
    throw new Error(
      `${path}: gzip length check failed: ${out.length} bytes decompressed, trailer says ${wantSize} (mod 2^32); truncated or corrupt file`,
    );
  }
  const crc = crc32(out);
  if (crc !== wantCrc) {
    const hex = (x: number) => "0x" + x.toString(16).padStart(8, "0");
    throw new Error(
      `${path}: gzip CRC-32 mismatch: data has ${hex(crc)}, trailer says ${
        hex(wantCrc)
      }; the file is corrupt, fetch it again`,
    );
  }
  return out;
}

/** Parses IDX bytes (gunzipping first if they start with the gzip magic); `path` names errors. */
export function parseIdx(bytes: Uint8Array, path: string): IdxArray {
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    bytes = gunzipChecked(bytes, path);
  }
  if (bytes.length < 4) {
    throw new Error(`${path}: too short for an IDX header (${bytes.length} bytes)`);
  }
  const magic = ((bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3]) >>> 0;
  const magicHex = "0x" + magic.toString(16).padStart(8, "0");
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    throw new Error(`${path}: wrong IDX magic number ${magicHex} (expected 0x000008NN)`);
  }
  if (bytes[2] !== 0x08) {
    throw new Error(
      `${path}: IDX magic number ${magicHex} has element type 0x${bytes[2].toString(16)}; ` +
        `only 0x08 (uint8) is supported`,
    );
  }
  const nd = bytes[3];
  if (nd < 1 || nd > 4) {
    throw new Error(`${path}: IDX magic number ${magicHex} gives ${nd} dimensions`);
  }
  const headerLen = 4 + 4 * nd;
  if (bytes.length < headerLen) throw new Error(`${path}: truncated IDX header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < nd; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const n = dims.reduce((a, b) => a * b, 1);
  if (bytes.length - headerLen !== n) {
    throw new Error(
      `${path}: IDX header says ${dims.join("x")} = ${n} bytes of data, file has ${
        bytes.length - headerLen
      }`,
    );
  }
  return { dims, data: bytes.subarray(headerLen) };
}

/** Reads and parses an IDX file, gzipped or not. */
export async function readIdx(path: string): Promise<IdxArray> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new Error(`${path}: cannot read IDX file (${(e as Error).message})`);
  }
  return parseIdx(bytes, path);
}

/** Options for {@link loadMnistIdx}. */
export interface MnistOptions {
  /** Directory with the four IDX files; default {@link FASHION_MNIST_DIR}. */
  dir?: string;
  /** Dataset name recorded in the result; default "fashion-mnist". */
  name?: string;
  /** Class names; default {@link FASHION_MNIST_CLASSES}. */
  classes?: string[];
}

async function findIdx(dir: string, stem: string): Promise<string> {
  for (const p of [`${dir}/${stem}.gz`, `${dir}/${stem}`]) {
    try {
      await Deno.stat(p);
      return p;
    } catch { /* try the next name */ }
  }
  throw new Error(`${dir}/${stem}(.gz): IDX file not found`);
}

/**
 * Loads the train (60,000) or test (10,000) split of MNIST-format IDX files
 * (`train-images-idx3-ubyte[.gz]`, `t10k-labels-idx1-ubyte[.gz]`, ...) as a
 * 1-channel {@link ImageDataset}.
 */
export async function loadMnistIdx(
  split: "train" | "test",
  opts: MnistOptions = {},
): Promise<ImageDataset> {
  const dir = opts.dir ?? FASHION_MNIST_DIR;
  const prefix = split === "train" ? "train" : "t10k";
  const imgPath = await findIdx(dir, `${prefix}-images-idx3-ubyte`);
  const lblPath = await findIdx(dir, `${prefix}-labels-idx1-ubyte`);
  const img = await readIdx(imgPath);
  const lbl = await readIdx(lblPath);
  if (img.dims.length !== 3) {
    throw new Error(`${imgPath}: expected 3 dimensions, got ${img.dims.length}`);
  }
  if (lbl.dims.length !== 1) {
    throw new Error(`${lblPath}: expected 1 dimension, got ${lbl.dims.length}`);
  }
  const [count, height, width] = img.dims;
  if (lbl.dims[0] !== count) {
    throw new Error(`${lblPath}: ${lbl.dims[0]} labels for ${count} images in ${imgPath}`);
  }
  const classes = opts.classes ?? FASHION_MNIST_CLASSES;
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const l = lbl.data[i];
    if (l >= classes.length) {
      throw new Error(`${lblPath}: label ${l} at index ${i} is not below ${classes.length}`);
    }
    labels[i] = l;
  }
  return {
    name: opts.name ?? "fashion-mnist",
    split,
    count,
    height,
    width,
    channels: 1,
    images: img.data,
    labels,
    classes,
  };
}
