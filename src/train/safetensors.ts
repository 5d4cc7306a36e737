/**
 * safetensors (Hugging Face's format, readable by PyTorch's
 * `safetensors.torch.load_file`): an 8-byte little-endian header length, a
 * JSON header {name: {dtype, shape, data_offsets: [begin, end]}, __metadata__:
 * {string: string}}, then the raw little-endian data. Writes are atomic.
 * @module
 */

import { verifyCheckpoint } from "../params.ts";

/** One tensor to write or as read. */
export interface NamedArray {
  shape: number[];
  data: Float32Array | Int32Array;
}

const DTYPE = { F32: Float32Array, I32: Int32Array } as const;

/** Serialises tensors (sorted by name, 8-byte aligned header) and string metadata. */
export function encodeSafetensors(
  tensors: Map<string, NamedArray>,
  metadata: Record<string, string> = {},
): Uint8Array {
  const names = [...tensors.keys()].sort();
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const name of names) {
    const t = tensors.get(name)!;
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length) {
      throw new Error(`safetensors: '${name}' has ${t.data.length} values for shape [${t.shape}]`);
    }
    header[name] = {
      dtype: t.data instanceof Float32Array ? "F32" : "I32",
      shape: t.shape,
      data_offsets: [offset, offset + t.data.byteLength],
    };
    offset += t.data.byteLength;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const pad = (8 - (json.length % 8)) % 8; // spaces keep the data 8-byte aligned
  if (pad) json = new TextEncoder().encode(JSON.stringify(header) + " ".repeat(pad));
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let o = 8 + json.length;
  for (const name of names) {
    const d = tensors.get(name)!.data;
    out.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), o);
    o += d.byteLength;
  }
  return out;
}

/** Parses a safetensors file; `path` only names it in errors. */
export function decodeSafetensors(bytes: Uint8Array, path = "<bytes>"): {
  tensors: Map<string, NamedArray>;
  metadata: Record<string, string>;
} {
  const fail = (why: string): never => {
    throw new Error(`${path}: not a valid safetensors file: ${why}`);
  };
  if (bytes.length < 8) fail("shorter than its 8-byte header length");
  const len = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  if (8 + len > bytes.length) fail(`header length ${len} exceeds the file (${bytes.length} bytes)`);
  let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + len)));
  } catch (e) {
    return fail(`header is not JSON (${(e as Error).message})`);
  }
  const metadata = (header.__metadata__ ?? {}) as unknown as Record<string, string>;
  const tensors = new Map<string, NamedArray>();
  const base = 8 + len;
  for (const [name, h] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const Ctor = DTYPE[h.dtype as keyof typeof DTYPE] ??
      fail(`'${name}' has unsupported dtype ${h.dtype}`);
    const [b, e] = h.data_offsets;
    if (!(b >= 0 && e >= b && base + e <= bytes.length)) {
      fail(`'${name}' data [${b}, ${e}) is out of bounds`);
    }
    const n = h.shape.reduce((x, y) => x * y, 1);
    if ((e - b) !== n * 4) fail(`'${name}' holds ${e - b} bytes for shape [${h.shape}]`);
    const copy = bytes.slice(base + b, base + e);
    tensors.set(name, { shape: h.shape, data: new Ctor(copy.buffer) });
  }
  return { tensors, metadata };
}

/**
 * Reads a safetensors checkpoint, naming the file and its role when it cannot
 * be read; verifies its checksum and that its model config has the `model`
 * fields given (the architecture the reader builds), naming any that differ.
 */
export async function readCheckpoint(file: string, role: string, model?: Record<string, unknown>) {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(file);
  } catch (e) {
    throw new Error(`${role} checkpoint ${file} cannot be read (${(e as Error).message})`);
  }
  verifyCheckpoint(bytes, `${role} checkpoint ${file}`, model ? { model } : {});
  return decodeSafetensors(bytes, file);
}
