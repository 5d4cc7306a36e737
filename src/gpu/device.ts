/**
 * The WebGPU runtime: one {@link Gpu} per device. It opens the adapter, compiles
 * each WGSL module once, pools buffers so a training step in steady state
 * creates none, packs kernel sizes into named uniform structs, batches
 * dispatches into one command encoder and names the kernels at fault when
 * WebGPU reports a validation error.
 *
 * Ordering rules this file relies on (WebGPU spec, queue timeline):
 * - dispatches recorded in one encoder run in order, each seeing the writes of
 *   the previous one, so a buffer released by one tensor can be reused by the
 *   next dispatch without a fence;
 * - `queue.writeBuffer` is ordered before any command buffer submitted after
 *   it, but *after* those submitted before it. An upload into a pooled buffer
 *   therefore flushes pending dispatches first ({@link Gpu.upload}).
 *
 * @module
 */

import { deviceLimits } from "./limits.ts";

/** Thrown when no WebGPU adapter can be found. */
export class NoAdapterError extends Error {
  /** Creates the error with set-up advice. */
  constructor(detail = "") {
    super(
      "No WebGPU adapter found" + (detail ? ` (${detail})` : "") + ". " +
        "Install a GPU driver with Vulkan support, or Mesa's software rasterizer: " +
        "`apt-get install -y mesa-vulkan-drivers` (lavapipe) and run with " +
        "DENO_WEBGPU_BACKEND=vulkan. Deno needs no flag for navigator.gpu since 2.0.",
    );
    this.name = "NoAdapterError";
  }
}

/** Thrown when WebGPU rejects a shader, pipeline or dispatch; names the kernels. */
export class KernelError extends Error {
  /** `kernels` are the entry points in the failing submission, oldest first. */
  constructor(readonly kernels: string[], message: string) {
    super(`WebGPU error in kernel ${kernels.join(", ")}: ${message}`);
    this.name = "KernelError";
  }
}

/** Scalar types a uniform struct field may have (all 4 bytes, so packing is trivial). */
export type ScalarType = "u32" | "i32" | "f32";

/** A uniform struct layout: field name → scalar type, in WGSL declaration order. */
export type ParamLayout = Readonly<Record<string, ScalarType>>;

/** The TypeScript values for a layout: one number per field. */
export type ParamValues<L extends ParamLayout> = { [K in keyof L]: number };

/**
 * A compute kernel: one entry point of a WGSL module, the uniform struct it
 * reads (binding 0) and its storage bindings (1, 2, ... in argument order).
 * `constants` specialise WGSL `override`s. The runtime knows no kernel files:
 * each spec carries its module's text.
 */
export interface KernelSpec<L extends ParamLayout> {
  /** The WGSL module text, includes resolved (kernels/sources.ts). */
  source: string;
  /** WGSL entry point, e.g. "matmul_forward". */
  entry: string;
  /** Uniform struct fields in declaration order. */
  params: L;
  /** Workgroup size (x*y*z threads) the entry point declares, for dispatch math. */
  workgroup: readonly [number, number?, number?];
}

/** A buffer range bound to a kernel: what a {@link Tensor} hands to a dispatch. */
export interface Binding {
  buffer: GPUBuffer;
  offset: number;
  size: number;
}

/**
 * A storage-buffer range staged into an rgba32float texture for a kernel that
 * reads it with `textureLoad` (see {@link Gpu.stageTexture}).
 */
export interface TextureBinding {
  texture: GPUTextureView;
}

/** Texels (4 f32 each) per row of a staged texture; kernels/matmul_tex.wgsl's TEX_W. */
export const STAGED_TEXELS_PER_ROW = 1024;

/** What `openGpu` found: the adapter's own words plus our classification. */
export interface AdapterSummary {
  description: string;
  vendor: string;
  architecture: string;
  /** True for CPU rasterizers (llvmpipe, lavapipe, SwiftShader, WARP) and fallback adapters. */
  software: boolean;
  backend: string;
}

const SOFTWARE = /llvmpipe|lavapipe|swiftshader|softpipe|warp|microsoft basic render/i;

/** Classifies an adapter as software (CPU) or hardware from its info. */
export function isSoftwareAdapter(info: { description: string; isFallbackAdapter?: boolean }) {
  return Boolean(info.isFallbackAdapter) || SOFTWARE.test(info.description);
}

/** Options for {@link openGpu}. */
export interface OpenOptions {
  /** Print the adapter line to stderr (default true). */
  log?: boolean;
  /** Submit after every dispatch so that an error names exactly one kernel (slow). */
  debug?: boolean;
}

const PROFILE_SLOTS = 512; // timestamps per submission while profiling (2 per dispatch)

/** How the profiler names transfers (see {@link Gpu.startProfile}), apart from kernel entry points. */
export const TRANSFER_ENTRIES = {
  stage: "(copy: buffer to staged texture)",
  copy: "(copy: buffer to buffer)",
  clear: "(clear buffer)",
} as const;
const UNIFORM_SLOT = 256; // minUniformBufferOffsetAlignment on every adapter we have seen
const ARENA_SLOTS = 512;
const POOL_GRANULE = 256;

/**
 * A WebGPU device with a pipeline cache, a buffer pool and a uniform arena.
 * Create it with {@link openGpu}.
 */
export class Gpu {
  /** Buffers created since the device was opened (pooled buffers count once). */
  buffersCreated = 0;
  /** Dispatches recorded since the device was opened. */
  dispatches = 0;
  /** Host readbacks since the device was opened (a training step should make none it did not ask for). */
  readbacks = 0;

  /**
   * Whether kernels that can read operands from textures do (matmul): on by
   * default on software adapters, whose storage-buffer loads are a loop over the
   * SIMD lanes while a texel fetch is vectorised (kernels/matmul_tex.wgsl).
   * Tests and benchmarks set it to run either path.
   */
  textureOperands: boolean;

  /** Per WGSL source text: its module and its pipelines by entry point and constants. */
  readonly #modules = new Map<
    string,
    { module: GPUShaderModule; pipelines: Map<string, GPUComputePipeline> }
  >();
  #pipelineCount = 0;
  readonly #free = new Map<number, GPUBuffer[]>();
  /** Scratch textures for {@link stageTexture}, by slot and height. */
  readonly #stageTextures = new Map<string, { texture: GPUTexture; view: GPUTextureView }>();
  readonly #staging: GPUBuffer[] = [];
  #encoder: GPUCommandEncoder | null = null;
  #pass: GPUComputePassEncoder | null = null;
  #arenaBuffer: GPUBuffer | null = null;
  #arenaData = new ArrayBuffer(ARENA_SLOTS * UNIFORM_SLOT);
  #arenaUsed = 0;
  #pendingKernels: string[] = [];
  #errors: Promise<KernelError | null>[] = [];
  #lost = false;
  #profile: {
    queries: GPUQuerySet;
    resolve: GPUBuffer;
    names: string[];
    totals: Map<string, { ms: number; calls: number }>;
    pendingRead?: Promise<void>;
  } | null = null;

  /** The device's maxStorageBufferBindingSize, read once (every tensor allocation checks it). */
  #bindingLimit: number;

  /** @internal use {@link openGpu}. */
  constructor(
    readonly device: GPUDevice,
    readonly adapter: AdapterSummary,
    readonly debug: boolean,
  ) {
    this.#bindingLimit = device.limits.maxStorageBufferBindingSize;
    this.textureOperands = adapter.software;
    device.lost.then((info) => {
      this.#lost = true;
      if (info.reason !== "destroyed") console.error(`WebGPU device lost: ${info.message}`);
    });
  }

  /** A compiled pipeline for `spec` (compiled once per device, source, entry and constants). */
  pipeline(spec: KernelSpec<ParamLayout>, constants?: Record<string, number>): GPUComputePipeline {
    let compiled = this.#modules.get(spec.source);
    if (!compiled) {
      const label = moduleLabel(spec.source);
      this.device.pushErrorScope("validation");
      const module = this.device.createShaderModule({ label, code: spec.source });
      this.#watch([label]);
      compiled = { module, pipelines: new Map() };
      this.#modules.set(spec.source, compiled);
    }
    const key = constants ? `${spec.entry}:${JSON.stringify(constants)}` : spec.entry;
    let p = compiled.pipelines.get(key);
    if (p) return p;
    this.device.pushErrorScope("validation");
    p = this.device.createComputePipeline({
      label: spec.entry,
      layout: "auto",
      compute: {
        module: compiled.module,
        entryPoint: spec.entry,
        ...(constants ? { constants } : {}),
      },
    });
    this.#watch([spec.entry]);
    compiled.pipelines.set(key, p);
    this.#pipelineCount++;
    return p;
  }

  /** Number of compiled pipelines (for tests of the cache). */
  get pipelineCount(): number {
    return this.#pipelineCount;
  }

  /**
   * Records one dispatch of `spec` with uniform `params`, storage or texture
   * `bindings` (bound at 1, 2, ... in order) and `groups` workgroups.
   */
  dispatch<L extends ParamLayout>(
    spec: KernelSpec<L>,
    params: ParamValues<L>,
    bindings: readonly (Binding | TextureBinding)[],
    groups: readonly [number, number?, number?],
    constants?: Record<string, number>,
  ): void {
    if (this.#lost) throw new KernelError([spec.entry], "the device was lost");
    const [gx, gy = 1, gz = 1] = groups;
    if (gx === 0 || gy === 0 || gz === 0) return;
    const max = this.device.limits.maxComputeWorkgroupsPerDimension;
    if (gx > max || gy > max || gz > max) {
      throw new KernelError(
        [spec.entry],
        `dispatch grid ${gx}x${gy}x${gz} exceeds the device limit ${max} per dimension`,
      );
    }
    const pipeline = this.pipeline(spec as KernelSpec<ParamLayout>, constants);
    if (this.#arenaUsed === ARENA_SLOTS) this.flush();
    const slot = this.#arenaUsed++;
    packParams(spec, params, new DataView(this.#arenaData, slot * UNIFORM_SLOT, UNIFORM_SLOT));
    const arena = this.#arena();
    const entries: GPUBindGroupEntry[] = [{
      binding: 0,
      resource: { buffer: arena, offset: slot * UNIFORM_SLOT, size: UNIFORM_SLOT },
    }];
    bindings.forEach((b, i) =>
      entries.push({
        binding: i + 1,
        resource: "texture" in b
          ? b.texture
          : { buffer: b.buffer, offset: b.offset, size: Math.max(4, b.size) },
      })
    );
    const group = this.device.createBindGroup({
      label: spec.entry,
      layout: pipeline.getBindGroupLayout(0),
      entries,
    });
    const prof = this.#profile;
    let pass: GPUComputePassEncoder;
    if (prof) {
      // One pass per dispatch, bracketed by timestamps (profiling only).
      this.#endPass();
      const i = prof.names.length * 2;
      pass = this.#enc().beginComputePass({
        timestampWrites: {
          querySet: prof.queries,
          beginningOfPassWriteIndex: i,
          endOfPassWriteIndex: i + 1,
        },
      });
      prof.names.push(spec.entry);
    } else {
      pass = this.#computePass();
    }
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(gx, gy, gz);
    if (prof) {
      pass.end();
      if (prof.names.length * 2 >= PROFILE_SLOTS) this.flush();
    }
    this.#pendingKernels.push(spec.entry);
    this.dispatches++;
    if (this.debug) this.flush();
  }

  /**
   * Records a copy of a buffer range into a scratch rgba32float texture,
   * {@link STAGED_TEXELS_PER_ROW} texels wide (element 4 i at texel
   * (i % width, i / width)), ordered with the dispatches around it. `slot`
   * keeps the operands of one dispatch apart; a slot's texture is reused by
   * the next call, which the queue orders after the dispatches reading it.
   * Returns null where the range cannot be staged: an offset or size not a
   * multiple of 16 bytes, or more rows than the device's 2D texture limit.
   */
  stageTexture(src: Binding, slot: number): TextureBinding | null {
    const width = STAGED_TEXELS_PER_ROW, rowBytes = width * 16;
    if (src.offset % 16 !== 0 || src.size % 16 !== 0 || src.size === 0) return null;
    const texels = src.size / 16;
    const rows = Math.ceil(texels / width);
    // Heights round up to a power of two so that a few textures serve every size.
    const height = 2 ** Math.ceil(Math.log2(rows));
    if (height > this.device.limits.maxTextureDimension2D) return null;
    const key = `${slot}:${height}`;
    let staged = this.#stageTextures.get(key);
    if (!staged) {
      const texture = this.device.createTexture({
        label: `staged operand ${slot} (${width}x${height})`,
        size: [width, height],
        format: "rgba32float",
        usage: GPUTextureUsage.TEXTURE_BINDING | GPUTextureUsage.COPY_DST,
      });
      staged = { texture, view: texture.createView() };
      this.#stageTextures.set(key, staged);
    }
    const { texture } = staged;
    const full = Math.floor(texels / width), rest = texels % width;
    this.#transfer(TRANSFER_ENTRIES.stage, (enc) => {
      if (full > 0) {
        enc.copyBufferToTexture(
          { buffer: src.buffer, offset: src.offset, bytesPerRow: rowBytes },
          { texture },
          [width, full],
        );
      }
      if (rest > 0) {
        enc.copyBufferToTexture(
          { buffer: src.buffer, offset: src.offset + full * rowBytes },
          { texture, origin: [0, full] },
          [rest, 1],
        );
      }
    });
    return { texture: staged.view };
  }

  /** Records a zero-fill of a buffer range (ordered with the dispatches around it). */
  clear(b: Binding): void {
    this.#transfer(
      TRANSFER_ENTRIES.clear,
      (enc) => enc.clearBuffer(b.buffer, b.offset, align4(b.size)),
    );
  }

  /** Records a buffer-to-buffer copy (ordered with the dispatches around it). */
  copy(src: Binding, dst: Binding, bytes = src.size): void {
    this.#transfer(
      TRANSFER_ENTRIES.copy,
      (enc) =>
        enc.copyBufferToBuffer(src.buffer, src.offset, dst.buffer, dst.offset, align4(bytes)),
    );
  }

  /**
   * Records transfer commands outside any compute pass. While profiling they
   * are timed as `entry`: an empty pass writes a timestamp at its beginning
   * before them and another at its end after them (transfers have no passes
   * of their own to carry timestamps).
   */
  #transfer(entry: string, record: (enc: GPUCommandEncoder) => void): void {
    this.#endPass();
    const prof = this.#profile;
    if (!prof) {
      record(this.#enc());
      return;
    }
    const i = prof.names.length * 2;
    this.#enc().beginComputePass({
      timestampWrites: { querySet: prof.queries, beginningOfPassWriteIndex: i },
    }).end();
    record(this.#enc());
    this.#enc().beginComputePass({
      timestampWrites: { querySet: prof.queries, endOfPassWriteIndex: i + 1 },
    }).end();
    prof.names.push(entry);
    if (prof.names.length * 2 >= PROFILE_SLOTS) this.flush();
  }

  /**
   * Starts per-kernel GPU timing with timestamp queries (needs the adapter's
   * "timestamp-query" feature): every dispatch gets its own timed pass until
   * {@link stopProfile}, and every transfer (texture staging, copy, clear) is
   * timed too, under the names of {@link TRANSFER_ENTRIES}. Returns false when
   * the adapter cannot time.
   */
  startProfile(): boolean {
    if (!this.device.features.has("timestamp-query")) return false;
    this.flush();
    const usage = GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC;
    this.#profile = {
      queries: this.device.createQuerySet({ type: "timestamp", count: PROFILE_SLOTS }),
      resolve: this.device.createBuffer({ size: PROFILE_SLOTS * 8, usage }),
      names: [],
      totals: new Map(),
    };
    return true;
  }

  /** Ends profiling and returns GPU milliseconds and calls per entry point, slowest first. */
  async stopProfile(): Promise<{ entry: string; ms: number; calls: number }[]> {
    const prof = this.#profile;
    if (!prof) return [];
    this.flush();
    await this.#collectProfile();
    this.#profile = null;
    prof.queries.destroy();
    prof.resolve.destroy();
    return [...prof.totals].map(([entry, t]) => ({ entry, ...t })).sort((a, b) => b.ms - a.ms);
  }

  async #collectProfile(): Promise<void> {
    const prof = this.#profile;
    if (!prof || prof.pendingRead === undefined) return;
    await prof.pendingRead;
  }

  /** Submits everything recorded so far. Errors surface at the next {@link sync}. */
  flush(): void {
    if (!this.#encoder) return;
    this.#endPass();
    const prof = this.#profile;
    const timed = prof?.names.splice(0) ?? [];
    // Profiling only: a fresh readable buffer per submission, since the last
    // one may still be mapped when this one is submitted.
    const readBack = prof && timed.length
      ? this.device.createBuffer({
        size: timed.length * 16,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      })
      : null;
    if (prof && readBack) {
      this.#encoder.resolveQuerySet(prof.queries, 0, timed.length * 2, prof.resolve, 0);
      this.#encoder.copyBufferToBuffer(prof.resolve, 0, readBack, 0, timed.length * 16);
    }
    if (this.#arenaUsed > 0) {
      this.device.queue.writeBuffer(
        this.#arena(),
        0,
        this.#arenaData,
        0,
        this.#arenaUsed * UNIFORM_SLOT,
      );
    }
    const kernels = this.#pendingKernels;
    this.device.pushErrorScope("validation");
    this.device.pushErrorScope("out-of-memory");
    this.device.queue.submit([this.#encoder.finish()]);
    this.#watch(kernels);
    this.#watch(kernels);
    if (prof && readBack) {
      const previous = prof.pendingRead ?? Promise.resolve();
      prof.pendingRead = previous.then(async () => {
        await readBack.mapAsync(GPUMapMode.READ);
        const t = new BigUint64Array(readBack.getMappedRange().slice(0));
        readBack.destroy();
        timed.forEach((entry, i) => {
          const ms = Number(t[2 * i + 1] - t[2 * i]) / 1e6;
          const acc = prof.totals.get(entry) ?? { ms: 0, calls: 0 };
          acc.ms += ms;
          acc.calls++;
          prof.totals.set(entry, acc);
        });
      });
    }
    this.#encoder = null;
    this.#pendingKernels = [];
    // Reusing the arena at once is safe: the next writeBuffer is queued after
    // this submission, so it cannot overwrite uniforms before they are read.
    this.#arenaUsed = 0;
  }

  /** Submits pending work, waits for the GPU, and throws the first recorded error. */
  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    await this.#throwErrors();
  }

  /**
   * Allocates (or reuses) a storage buffer of at least `bytes` bytes; a
   * request over the device's binding limit stops here, naming both sizes,
   * instead of failing later as a WebGPU validation error in some kernel.
   */
  acquire(bytes: number): GPUBuffer {
    const limit = this.#bindingLimit;
    if (bytes > limit) {
      const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
      throw new RangeError(
        `a tensor of ${mib(bytes)} exceeds this device's maxStorageBufferBindingSize of ` +
          `${mib(limit)} (the adapter's maximum, as requested): lower the batch size, or use ` +
          `an adapter with a larger limit (deno task buffer-sizes measures each stage's largest)`,
      );
    }
    // Pool buckets round up; never past what a binding may hold.
    const size = Math.min(poolSize(bytes), limit - (limit % 4));
    const list = this.#free.get(size);
    const b = list?.pop();
    if (b) return b;
    this.buffersCreated++;
    return this.device.createBuffer({
      size,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
  }

  /** Returns a buffer from {@link acquire} to the pool. */
  release(b: GPUBuffer): void {
    const list = this.#free.get(b.size);
    if (list) list.push(b);
    else this.#free.set(b.size, [b]);
  }

  /** Bytes held in the free pool (for diagnostics). */
  get pooledBytes(): number {
    let n = 0;
    for (const [size, list] of this.#free) n += size * list.length;
    return n;
  }

  /**
   * Writes host data into a buffer range. Pending dispatches are submitted
   * first, since a pooled buffer may still be read by them under its old owner.
   */
  upload(dst: Binding, data: ArrayBufferView): void {
    if (data.byteLength > dst.size) {
      throw new RangeError(`upload: ${data.byteLength} bytes into a ${dst.size}-byte range`);
    }
    this.flush();
    const bytes = new Uint8Array(data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
    if (bytes.byteLength % 4 === 0) {
      this.device.queue.writeBuffer(dst.buffer, dst.offset, bytes);
    } else {
      const padded = new Uint8Array(align4(bytes.byteLength));
      padded.set(bytes);
      this.device.queue.writeBuffer(dst.buffer, dst.offset, padded);
    }
  }

  /** Reads a buffer range back to the host (submits and waits). */
  async download(src: Binding): Promise<ArrayBuffer> {
    this.readbacks++;
    const bytes = align4(src.size);
    const staging = this.#takeStaging(bytes);
    this.#endPass();
    this.#enc().copyBufferToBuffer(src.buffer, src.offset, staging, 0, bytes);
    this.flush();
    try {
      await staging.mapAsync(GPUMapMode.READ, 0, bytes);
    } catch (e) {
      await this.#throwErrors();
      throw e;
    }
    const out = staging.getMappedRange(0, bytes).slice(0, src.size);
    staging.unmap();
    this.#staging.push(staging);
    await this.#throwErrors();
    return out;
  }

  /** Destroys the device; further use throws. */
  destroy(): void {
    this.flush();
    this.device.destroy();
  }

  #enc(): GPUCommandEncoder {
    return this.#encoder ??= this.device.createCommandEncoder();
  }

  #computePass(): GPUComputePassEncoder {
    return this.#pass ??= this.#enc().beginComputePass();
  }

  #endPass(): void {
    this.#pass?.end();
    this.#pass = null;
  }

  #arena(): GPUBuffer {
    if (!this.#arenaBuffer) {
      this.buffersCreated++;
      this.#arenaBuffer = this.device.createBuffer({
        size: ARENA_SLOTS * UNIFORM_SLOT,
        usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      });
    }
    return this.#arenaBuffer;
  }

  #takeStaging(bytes: number): GPUBuffer {
    const i = this.#staging.findIndex((b) => b.size >= bytes);
    if (i >= 0) return this.#staging.splice(i, 1)[0];
    this.buffersCreated++;
    return this.device.createBuffer({
      size: poolSize(bytes),
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
  }

  #watch(kernels: string[]): void {
    const names = [...kernels];
    this.#errors.push(
      this.device.popErrorScope().then((e) => (e ? new KernelError(names, e.message) : null)),
    );
  }

  async #throwErrors(): Promise<void> {
    const pending = this.#errors;
    this.#errors = [];
    const found = (await Promise.all(pending)).filter((e): e is KernelError => e !== null);
    if (found.length > 0) throw found[0];
  }
}

/** Packs uniform values in declaration order, 4 bytes each, checking every field. */
export function packParams<L extends ParamLayout>(
  spec: KernelSpec<L>,
  values: ParamValues<L>,
  view: DataView,
): void {
  let o = 0;
  for (const [name, type] of Object.entries(spec.params)) {
    const v = values[name];
    if (typeof v !== "number" || Number.isNaN(v) && type !== "f32") {
      throw new TypeError(`${spec.entry}: uniform field '${name}' is ${v}`);
    }
    if (type === "u32") {
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
        throw new RangeError(`${spec.entry}: uniform field '${name}' = ${v} is not a u32`);
      }
      view.setUint32(o, v, true);
    } else if (type === "i32") view.setInt32(o, v, true);
    else view.setFloat32(o, v, true);
    o += 4;
  }
}

/** A module's name for errors: the file its header names (`// name.wgsl — ...`), else "WGSL module". */
export function moduleLabel(source: string): string {
  return /^\/\/ (\S+\.wgsl)\b/.exec(source)?.[1] ?? "WGSL module";
}

function align4(n: number): number {
  return Math.ceil(n / 4) * 4;
}

/**
 * Pool bucket for a request: exact multiples of 256 bytes up to 64 KiB, then
 * steps of 1/8 of the power of two, so reuse is likely and waste under 12.5%.
 */
export function poolSize(bytes: number): number {
  const n = Math.max(POOL_GRANULE, Math.ceil(bytes / POOL_GRANULE) * POOL_GRANULE);
  if (n <= 65536) return n;
  const step = 2 ** (Math.floor(Math.log2(n)) - 3);
  return Math.ceil(n / step) * step;
}

let shared: Promise<Gpu> | null = null;

/**
 * Opens (once per process) the default adapter and device and prints which
 * adapter runs the kernels. Throws {@link NoAdapterError} when there is none.
 */
export function openGpu(options: OpenOptions = {}): Promise<Gpu> {
  return shared ??= createGpu(options).catch((e) => {
    shared = null;
    throw e;
  });
}

/** Opens a new, separate device (for tests of cross-device errors). */
export async function createGpu(options: OpenOptions = {}): Promise<Gpu> {
  if (typeof navigator === "undefined" || !("gpu" in navigator) || !navigator.gpu) {
    throw new NoAdapterError("navigator.gpu is missing in this runtime");
  }
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) {
    const backend = Deno.env.get("DENO_WEBGPU_BACKEND");
    throw new NoAdapterError(backend ? `DENO_WEBGPU_BACKEND=${backend}` : "");
  }
  const device = await adapter.requestDevice({
    requiredFeatures: adapter.features.has("timestamp-query") ? ["timestamp-query"] : [],
    // Throws naming the limit and the kernels when the adapter cannot run one.
    requiredLimits: deviceLimits(adapter.limits),
  });
  const info = adapter.info;
  const summary: AdapterSummary = {
    description: info.description || info.device || "unknown adapter",
    vendor: info.vendor,
    architecture: info.architecture,
    software: isSoftwareAdapter(info),
    backend: Deno.env.get("DENO_WEBGPU_BACKEND") ?? "default",
  };
  const debug = options.debug ?? Deno.env.get("GPU_DEBUG") === "1";
  if (options.log ?? Deno.env.get("GPU_QUIET") !== "1") {
    console.error(
      `gpu: ${summary.description} (${summary.software ? "software rasterizer" : "hardware"}` +
        `, backend ${summary.backend}${debug ? ", debug: one submit per dispatch" : ""})`,
    );
  }
  return new Gpu(device, summary, debug);
}
