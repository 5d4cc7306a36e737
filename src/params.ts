/**
 * Parameters live in one flat GPU buffer (and their gradients, and the
 * optimizer's moments, in buffers of the same layout) so that zeroing the
 * gradients is one clear and an optimizer step is one dispatch. Each
 * parameter is a {@link Tensor} view at a 256-byte-aligned offset (WebGPU's
 * minStorageBufferOffsetAlignment), with a per-parameter weight-decay switch.
 * @module
 */

import { createHash } from "node:crypto";
import type { Gpu } from "./gpu/device.ts";
import { Tensor } from "./tensor.ts";

/** What a model declares for one parameter before the store is built. */
export interface ParamSpec {
  name: string;
  shape: readonly number[];
  /** Initial values (length = product of shape). */
  init: Float32Array;
  /** Whether AdamW's decoupled weight decay applies (false for biases, norms, tokens). */
  decay: boolean;
}

const ALIGN_FLOATS = 64; // 256 bytes

/** The flat parameter, gradient and decay-mask buffers of one model. */
export class ParamStore {
  /** Parameters by name, in declaration order. */
  readonly params = new Map<string, Tensor>();
  /** Total f32 slots including alignment padding. */
  readonly length: number;
  readonly data: GPUBuffer;
  readonly grads: GPUBuffer;
  /** Bit i set when slot i takes weight decay. */
  readonly decayMask: GPUBuffer;
  readonly specs: readonly ParamSpec[];
  readonly offsets: readonly number[];

  /** Allocates the buffers and uploads the initial values. */
  constructor(readonly gpu: Gpu, specs: readonly ParamSpec[]) {
    this.specs = specs;
    const names = new Set<string>();
    const offsets: number[] = [];
    let n = 0;
    for (const s of specs) {
      if (names.has(s.name)) throw new Error(`ParamStore: parameter '${s.name}' declared twice`);
      names.add(s.name);
      const size = s.shape.reduce((a, b) => a * b, 1);
      if (s.init.length !== size) {
        throw new Error(`ParamStore: '${s.name}' [${s.shape}] has ${s.init.length} initial values`);
      }
      offsets.push(n);
      n += Math.ceil(size / ALIGN_FLOATS) * ALIGN_FLOATS;
    }
    this.offsets = offsets;
    this.length = Math.max(n, ALIGN_FLOATS);
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    const make = (bytes: number) => {
      gpu.buffersCreated++;
      return gpu.device.createBuffer({ size: bytes, usage });
    };
    this.data = make(this.length * 4);
    this.grads = make(this.length * 4);
    this.decayMask = make(Math.ceil(this.length / 32) * 4);
    const host = new Float32Array(this.length);
    const mask = new Uint32Array(Math.ceil(this.length / 32));
    specs.forEach((s, i) => {
      const o = offsets[i];
      host.set(s.init, o);
      if (s.decay) { for (let j = o; j < o + s.init.length; j++) mask[j >>> 5] |= 1 << (j & 31); }
      const t = new Tensor(gpu, s.shape, "f32", this.data, o * 4, false, true);
      t.name = s.name;
      t.grad = new Tensor(gpu, s.shape, "f32", this.grads, o * 4, false);
      t.grad.name = `grad(${s.name})`;
      this.params.set(s.name, t);
    });
    gpu.upload({ buffer: this.data, offset: 0, size: host.byteLength }, host);
    gpu.upload({ buffer: this.decayMask, offset: 0, size: mask.byteLength }, mask);
    this.zeroGrad();
  }

  /** The parameter called `name`; throws listing the known names otherwise. */
  get(name: string): Tensor {
    const t = this.params.get(name);
    if (!t) throw new Error(`no parameter '${name}' (have: ${[...this.params.keys()].join(", ")})`);
    return t;
  }

  /** Number of trainable values (without padding). */
  get count(): number {
    return this.specs.reduce((a, s) => a + s.init.length, 0);
  }

  /** Sets every gradient to zero (one recorded clear). */
  zeroGrad(): void {
    this.gpu.clear({ buffer: this.grads, offset: 0, size: this.length * 4 });
  }

  /** Reads every parameter's values back, by name. */
  async read(): Promise<Map<string, Float32Array>> {
    const all = new Float32Array(
      await this.gpu.download({ buffer: this.data, offset: 0, size: this.length * 4 }),
    );
    return new Map(
      this.specs.map((
        s,
        i,
      ) => [s.name, all.slice(this.offsets[i], this.offsets[i] + s.init.length)]),
    );
  }

  /** Overwrites parameters from host arrays (e.g. a checkpoint), by name. */
  load(values: Map<string, Float32Array>): void {
    this.specs.forEach((s, i) => {
      const v = values.get(s.name);
      if (!v) return;
      if (v.length !== s.init.length) {
        throw new Error(`load: '${s.name}' expects ${s.init.length} values, got ${v.length}`);
      }
      this.gpu.upload({ buffer: this.data, offset: this.offsets[i] * 4, size: v.byteLength }, v);
    });
  }

  /**
   * Overwrites every parameter with `valueOf(prefix + name)` (e.g. from a
   * checkpoint's tensors); a missing or mis-sized value throws naming
   * `source`, the parameter and, for a missing one, `hint` (what `source`
   * should have been). Nothing is uploaded unless every value fits.
   */
  loadAll(
    valueOf: (name: string) => Float32Array | undefined,
    source: string,
    hint: string,
    prefix = "",
  ): void {
    const values = new Map<string, Float32Array>();
    for (const s of this.specs) {
      const name = prefix + s.name;
      const v = valueOf(name);
      if (!v) throw new Error(`${source} has no parameter '${name}' (${hint})`);
      if (v.length !== s.init.length) {
        throw new Error(
          `${source}: '${name}' has ${v.length} values, the model wants ${s.init.length}`,
        );
      }
      values.set(s.name, v);
    }
    this.load(values);
  }

  /** Frees the GPU buffers (after submitting work that may still use them). */
  destroy(): void {
    // Destroying a buffer that an unsubmitted encoder references makes the
    // submit invalid (and panics wgpu 29), so submit first.
    this.gpu.flush();
    this.data.destroy();
    this.grads.destroy();
    this.decayMask.destroy();
  }
}

/**
 * Checkpoint integrity. A checkpoint (safetensors) is sealed by two metadata
 * entries: `model_config`, the JSON of the model config it was written with,
 * and `checksum_sha256`, the SHA-256 over that JSON and every tensor's name,
 * dtype, shape and data bytes in name order. {@link verifyCheckpoint} checks
 * the header's structure, the checksum (flipped data bytes, or a shape
 * rewritten to another with the same element count, refuse) and, given the
 * expected model config, the fields that must agree (naming each). Files
 * written before checkpoints were sealed load with a one-line note: they
 * cannot be verified, and refusing them would orphan every existing run.
 */

/** A tensor as a checkpoint holds it (the shape of safetensors' NamedArray). */
export interface CheckpointTensor {
  shape: number[];
  data: Float32Array | Int32Array;
}

/** The metadata keys of a checkpoint's seal. */
export const SEAL_KEYS = { checksum: "checksum_sha256", config: "model_config" } as const;

/** Model fields that fix the encoder's parameter shapes and meaning. */
export const ENCODER_FIELDS = [
  "imageSize",
  "channels",
  "patch",
  "width",
  "depth",
  "heads",
  "mlp",
] as const;

/** The encoder fields of a model config (what an init checkpoint must agree on). */
export function encoderFields(model: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(ENCODER_FIELDS.map((k) => [k, model[k]]));
}

function sealDigest(
  modelJson: string,
  entries: { name: string; dtype: string; shape: number[]; bytes: Uint8Array }[],
): string {
  const h = createHash("sha256");
  h.update(modelJson + "\0");
  for (const e of [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    h.update(`${e.name}\0${e.dtype}\0${e.shape.join(",")}\0`);
    h.update(e.bytes);
  }
  return h.digest("hex");
}

/**
 * The metadata entries that seal a checkpoint of `tensors` written with
 * `model` (merge them into the safetensors metadata before encoding).
 */
export function sealCheckpoint(
  tensors: Map<string, CheckpointTensor>,
  model: object,
): Record<string, string> {
  const modelJson = JSON.stringify(model);
  const entries = [...tensors].map(([name, t]) => ({
    name,
    dtype: t.data instanceof Int32Array ? "I32" : "F32",
    shape: t.shape,
    bytes: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength),
  }));
  return { [SEAL_KEYS.config]: modelJson, [SEAL_KEYS.checksum]: sealDigest(modelJson, entries) };
}

/**
 * The model fields of a trainer's `config` metadata: its `encoder` and `mae`
 * sections (the config's sections by mode), or the one `model` section of
 * files written before the config was split by mode.
 */
function trainerModel(c: Record<string, unknown>): Record<string, unknown> | undefined {
  if (c.model !== undefined) return c.model as Record<string, unknown>;
  if (c.encoder === undefined) return undefined;
  return { ...(c.encoder as object), ...(c.mae as object | undefined) };
}

/** What {@link verifyCheckpoint} found. */
export interface CheckpointCheck {
  /** The metadata (string to string). */
  metadata: Record<string, string>;
  /** False for a file written before checkpoints were sealed (nothing could be verified). */
  sealed: boolean;
}

/** Thrown for a checkpoint that is malformed, fails its checksum, or was written for another model. */
export class CheckpointError extends Error {
  constructor(readonly file: string, why: string) {
    super(`${file}: ${why}`);
  }
}

const isCount = (x: unknown) => Number.isSafeInteger(x) && (x as number) >= 0;
const shown = (x: unknown) => (x === undefined ? "missing" : JSON.stringify(x));

/**
 * Checks a checkpoint's bytes before anything reads its tensors: the header
 * (every tensor has a dtype F32/I32, a shape that is a list of counts, and
 * data_offsets [begin, end] inside the file that hold exactly that shape),
 * the seal's checksum, and, when `expected.model` is given, that every field
 * in it equals the model config the checkpoint was written with (the seal's
 * `model_config`, else the trainer's `config` metadata). One error names the
 * file and what is wrong; an unsealed file is accepted with `note`.
 */
export function verifyCheckpoint(
  bytes: Uint8Array,
  file: string,
  expected: { model?: Record<string, unknown> } = {},
  note: (line: string) => void = (l) => console.error(l),
): CheckpointCheck {
  const fail = (why: string): never => {
    throw new CheckpointError(file, why);
  };
  if (bytes.length < 8) fail("not a safetensors file: shorter than its 8-byte header length");
  const len = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  if (8 + len > bytes.length) {
    fail(`not a safetensors file: header length ${len} exceeds the file (${bytes.length} bytes)`);
  }
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + len)));
  } catch (e) {
    fail(`header is not JSON (${(e as Error).message})`);
  }
  if (!header || typeof header !== "object" || Array.isArray(header)) {
    fail("header is not a JSON object");
  }
  const base = 8 + len;
  const entries: { name: string; dtype: string; shape: number[]; bytes: Uint8Array }[] = [];
  let metadata: Record<string, string> = {};
  for (const [name, h] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (!h || typeof h !== "object" || Array.isArray(h)) fail("__metadata__ is not an object");
      for (const [k, v] of Object.entries(h as object)) {
        if (typeof v !== "string") fail(`__metadata__.${k} is not a string`);
      }
      metadata = h as Record<string, string>;
      continue;
    }
    if (!h || typeof h !== "object" || Array.isArray(h)) fail(`tensor '${name}' is not an object`);
    const { dtype, shape, data_offsets: offsets } = h as Record<string, unknown>;
    if (dtype !== "F32" && dtype !== "I32") {
      fail(`tensor '${name}': dtype is ${shown(dtype)}, expected "F32" or "I32"`);
    }
    if (!Array.isArray(shape) || !shape.every(isCount)) {
      fail(`tensor '${name}': shape is ${shown(shape)}, not a list of sizes`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
      fail(
        `tensor '${name}': data_offsets is ${shown(offsets)}, expected [begin, end]`,
      );
    }
    const unknownKeys = Object.keys(h as object).filter(
      (k) => !["dtype", "shape", "data_offsets"].includes(k),
    );
    if (unknownKeys.length) {
      fail(`tensor '${name}' has unknown field(s) ${unknownKeys.join(", ")}`);
    }
    const [b, e] = offsets as number[];
    const n = (shape as number[]).reduce((x, y) => x * y, 1);
    if (e < b || base + e > bytes.length) {
      fail(
        `tensor '${name}': data [${b}, ${e}) lies outside the file's ${
          bytes.length - base
        } data bytes`,
      );
    }
    if (e - b !== n * 4) fail(`tensor '${name}' holds ${e - b} bytes for shape [${shape}]`);
    entries.push({
      name,
      dtype: dtype as string,
      shape: shape as number[],
      bytes: bytes.subarray(base + b, base + e),
    });
  }
  const recorded = metadata[SEAL_KEYS.checksum];
  const modelJson = metadata[SEAL_KEYS.config];
  const sealed = recorded !== undefined;
  if (sealed) {
    if (modelJson === undefined) fail(`has ${SEAL_KEYS.checksum} but no ${SEAL_KEYS.config}`);
    const actual = sealDigest(modelJson, entries);
    if (actual !== recorded) {
      fail(
        `fails its checksum (sha256 ${actual.slice(0, 16)}…, recorded ${
          recorded.slice(0, 16)
        }…): its tensors, shapes or model config changed since it was written`,
      );
    }
  } else {
    note(`${file}: written before checkpoints carried a checksum; loaded unverified`);
  }
  if (expected.model) {
    let stored: Record<string, unknown> | undefined;
    try {
      stored = modelJson !== undefined
        ? JSON.parse(modelJson)
        : metadata.config !== undefined
        ? trainerModel(JSON.parse(metadata.config))
        : undefined;
    } catch {
      fail(`its model config metadata is not JSON`);
    }
    // A sealed file always records its config; an old unsealed one may not (noted above).
    if (!stored && sealed) fail("records no model config to compare with the expected one");
    if (!stored) return { metadata, sealed };
    const diff = Object.entries(expected.model)
      .filter(([k, v]) => JSON.stringify(stored![k]) !== JSON.stringify(v))
      .map(([k, v]) =>
        `model.${k}: checkpoint ${JSON.stringify(stored![k])}, expected ${JSON.stringify(v)}`
      );
    if (diff.length) fail(`written for another model (${diff.join("; ")})`);
  }
  return { metadata, sealed };
}
