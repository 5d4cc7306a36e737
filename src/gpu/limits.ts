/**
 * What the WGSL kernels ask of a device's limits, read from their source, and
 * the `requiredLimits` to open a device with.
 *
 * WebGPU guarantees only its default limits (16 KiB of workgroup storage, 256
 * invocations per workgroup, 8 storage buffers per stage, ...); a device gets
 * more only when it asks, and an adapter that cannot give it makes pipeline
 * creation fail far from the cause. So at start-up every entry point's
 * workgroup storage, workgroup size and storage-buffer count is measured from
 * its WGSL and checked against the adapter: a limit is raised above its
 * default only when a kernel needs it, and a kernel that fits no adapter limit
 * is named before any pipeline is built.
 *
 * The measurement follows the WebGPU rule for workgroup storage: the sum of
 * roundUp(16, SizeOf(T)) over the `var<workgroup>` a entry point statically
 * uses (directly or through the functions it calls). A name is taken as used
 * wherever it appears in a reachable function body, so a local that shadows a
 * module variable overcounts, never undercounts.
 * @module
 */

import { KERNEL_SOURCES } from "../../kernels/sources.ts";

/** What one `@compute` entry point needs from the device limits. */
export interface EntryNeeds {
  /** File under kernels/. */
  file: string;
  entry: string;
  /** Bytes of workgroup storage the entry point statically uses. */
  workgroupStorage: number;
  /** `@workgroup_size` (x, y, z), missing dimensions as 1. */
  workgroupSize: [number, number, number];
  /** Distinct `var<storage>` bindings the entry point statically uses. */
  storageBuffers: number;
}

/** The limits this file measures kernels against. */
export type KernelLimit =
  | "maxComputeWorkgroupStorageSize"
  | "maxComputeInvocationsPerWorkgroup"
  | "maxComputeWorkgroupSizeX"
  | "maxComputeWorkgroupSizeY"
  | "maxComputeWorkgroupSizeZ"
  | "maxStorageBuffersPerShaderStage";

/** WebGPU's default limits (what every adapter supports and a device gets unasked). */
export const DEFAULT_LIMITS: Readonly<Record<KernelLimit | BufferLimit, number>> = {
  maxComputeWorkgroupStorageSize: 16384,
  maxComputeInvocationsPerWorkgroup: 256,
  maxComputeWorkgroupSizeX: 256,
  maxComputeWorkgroupSizeY: 256,
  maxComputeWorkgroupSizeZ: 64,
  maxStorageBuffersPerShaderStage: 8,
  maxStorageBufferBindingSize: 134217728,
  maxBufferSize: 268435456,
};

/** The buffer-size limits: what they must be depends on the batch, not the kernels. */
export type BufferLimit = "maxStorageBufferBindingSize" | "maxBufferSize";

/** Thrown when a kernel needs more of a limit than the adapter offers; names both. */
export class LimitError extends Error {
  /** `limit` is the WebGPU limit; `entries` the `file:entry` points over it. */
  constructor(
    readonly limit: KernelLimit,
    readonly needed: number,
    readonly available: number,
    readonly entries: string[],
  ) {
    super(
      `${limit}: kernel ${entries.join(", ")} needs ${needed} but the adapter offers ` +
        `${available}`,
    );
    this.name = "LimitError";
  }
}

/** The value of a limit that `needs` asks of the device (the maximum over entry points). */
function measure(limit: KernelLimit, n: EntryNeeds): number {
  const [x, y, z] = n.workgroupSize;
  switch (limit) {
    case "maxComputeWorkgroupStorageSize":
      return n.workgroupStorage;
    case "maxComputeInvocationsPerWorkgroup":
      return x * y * z;
    case "maxComputeWorkgroupSizeX":
      return x;
    case "maxComputeWorkgroupSizeY":
      return y;
    case "maxComputeWorkgroupSizeZ":
      return z;
    case "maxStorageBuffersPerShaderStage":
      return n.storageBuffers;
  }
}

const KERNEL_LIMITS: readonly KernelLimit[] = [
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupSizeZ",
  "maxStorageBuffersPerShaderStage",
];

/**
 * The `requiredLimits` for a device that runs every entry point in `needs`:
 * each kernel limit raised above its default only as far as a kernel needs,
 * and the buffer limits at the adapter's maximum (the largest buffer depends
 * on the batch size, known only after the device is open). Throws
 * {@link LimitError} naming the limit and the entry points when the adapter's
 * limit is too small.
 *
 * @example
 * ```ts
 * import { deviceLimits } from "./limits.ts";
 * const adapter = { maxComputeWorkgroupStorageSize: 32768, maxComputeInvocationsPerWorkgroup: 1024,
 *   maxComputeWorkgroupSizeX: 1024, maxComputeWorkgroupSizeY: 1024, maxComputeWorkgroupSizeZ: 64,
 *   maxStorageBuffersPerShaderStage: 16, maxStorageBufferBindingSize: 2 ** 31, maxBufferSize: 2 ** 32 };
 * const needs = [{ file: "a.wgsl", entry: "big", workgroupStorage: 20000,
 *   workgroupSize: [64, 1, 1] as [number, number, number], storageBuffers: 3 }];
 * const limits = deviceLimits(adapter, needs);
 * if (limits.maxComputeWorkgroupStorageSize !== 20000) throw new Error("not raised");
 * if ("maxComputeInvocationsPerWorkgroup" in limits) throw new Error("raised unasked");
 * ```
 */
export function deviceLimits(
  adapter: Readonly<Record<KernelLimit | BufferLimit, number>>,
  needs: readonly EntryNeeds[] = kernelNeeds(),
): Record<string, number> {
  const out: Record<string, number> = {
    maxStorageBufferBindingSize: adapter.maxStorageBufferBindingSize,
    maxBufferSize: adapter.maxBufferSize,
  };
  for (const limit of KERNEL_LIMITS) {
    const need = Math.max(0, ...needs.map((n) => measure(limit, n)));
    if (need > adapter[limit]) {
      const over = needs.filter((n) => measure(limit, n) > adapter[limit]);
      throw new LimitError(limit, need, adapter[limit], over.map((n) => `${n.file}:${n.entry}`));
    }
    if (need > DEFAULT_LIMITS[limit]) out[limit] = need;
  }
  return out;
}

/** The needs of every entry point of every kernel file (includes resolved). */
export function kernelNeeds(
  sources: Readonly<Record<string, string>> = KERNEL_SOURCES,
): EntryNeeds[] {
  return Object.entries(sources).flatMap(([file, src]) => wgslEntryNeeds(file, src));
}

// ---------------------------------------------------------------------------
// A small reader for the subset of WGSL the kernels use at module scope.

interface Module {
  constants: Map<string, number>;
  /** Workgroup variable → its type. */
  workgroup: Map<string, string>;
  /** Storage variable → "group:binding". */
  storage: Map<string, string>;
  /** Function → identifiers in its body. */
  functions: Map<string, Set<string>>;
}

/** The `@compute` entry points of one WGSL source and what each needs. */
export function wgslEntryNeeds(file: string, source: string): EntryNeeds[] {
  const code = stripComments(source);
  const mod = readModule(file, code);
  const out: EntryNeeds[] = [];
  for (const m of code.matchAll(/((?:@\w+\s*(?:\([^)]*\))?\s*)+)fn\s+(\w+)\s*\(/g)) {
    const attrs = m[1];
    if (!/@compute\b/.test(attrs)) continue;
    const entry = m[2];
    const size = /@workgroup_size\s*\(([^)]*)\)/.exec(attrs);
    if (!size) throw new Error(`${file}:${entry}: @compute without @workgroup_size`);
    const dims = size[1].split(",").map((s) => s.trim()).filter((s) => s !== "")
      .map((s) => evalInt(s, mod.constants, `${file}:${entry} @workgroup_size`));
    const used = reachable(entry, mod.functions);
    let storage = 0;
    const bindings = new Set<string>();
    for (const name of used) {
      const type = mod.workgroup.get(name);
      if (type !== undefined) {
        storage += roundUp(
          16,
          typeLayout(type, mod.constants, `${file}: var<workgroup> ${name}`).size,
        );
      }
      const binding = mod.storage.get(name);
      if (binding !== undefined) bindings.add(binding);
    }
    out.push({
      file,
      entry,
      workgroupStorage: storage,
      workgroupSize: [dims[0] ?? 1, dims[1] ?? 1, dims[2] ?? 1],
      storageBuffers: bindings.size,
    });
  }
  return out;
}

function stripComments(src: string): string {
  return src.replace(/\/\*[^]*?\*\//g, " ").replace(/\/\/[^\n]*/g, "");
}

function readModule(file: string, code: string): Module {
  const mod: Module = {
    constants: new Map(),
    workgroup: new Map(),
    storage: new Map(),
    functions: new Map(),
  };
  for (const m of code.matchAll(/\b(?:const|override)\s+(\w+)\s*(?::\s*\w+)?\s*=\s*([^;]+);/g)) {
    // Function-scope consts share the pattern; only integers are kept, and a
    // kernel-size expression that names one of another value fails loudly.
    const v = tryEvalInt(m[2], mod.constants);
    if (v !== undefined && !mod.constants.has(m[1])) mod.constants.set(m[1], v);
  }
  for (const m of code.matchAll(/var\s*<\s*workgroup\s*>\s*(\w+)\s*:\s*([^;=]+);/g)) {
    mod.workgroup.set(m[1], m[2].trim());
  }
  const storageVar =
    /@group\s*\(\s*(\d+)\s*\)\s*@binding\s*\(\s*(\d+)\s*\)\s*var\s*<\s*storage\b[^>]*>\s*(\w+)/g;
  for (const m of code.matchAll(storageVar)) mod.storage.set(m[3], `${m[1]}:${m[2]}`);
  for (const m of code.matchAll(/\bfn\s+(\w+)\s*\(/g)) {
    const open = code.indexOf("{", m.index! + m[0].length);
    if (open < 0) throw new Error(`${file}: fn ${m[1]} has no body`);
    let depth = 0;
    let end = open;
    for (; end < code.length; end++) {
      if (code[end] === "{") depth++;
      else if (code[end] === "}" && --depth === 0) break;
    }
    const body = code.slice(m.index!, end + 1);
    mod.functions.set(m[1], new Set(body.match(/[A-Za-z_]\w*/g) ?? []));
  }
  return mod;
}

/** Identifiers used by `entry` and every function it calls, transitively. */
function reachable(entry: string, functions: Map<string, Set<string>>): Set<string> {
  const used = new Set<string>();
  const todo = [entry];
  const seen = new Set<string>();
  while (todo.length > 0) {
    const f = todo.pop()!;
    if (seen.has(f)) continue;
    seen.add(f);
    for (const id of functions.get(f) ?? []) {
      used.add(id);
      if (functions.has(id)) todo.push(id);
    }
  }
  return used;
}

interface Layout {
  size: number;
  align: number;
}

const SCALARS: Record<string, Layout> = {
  f32: { size: 4, align: 4 },
  i32: { size: 4, align: 4 },
  u32: { size: 4, align: 4 },
  bool: { size: 4, align: 4 },
  f16: { size: 2, align: 2 },
};

/** SizeOf and AlignOf of a WGSL type (scalars, vectors, matrices, arrays, atomics). */
function typeLayout(type: string, constants: Map<string, number>, where: string): Layout {
  const t = type.replace(/\s+/g, "");
  if (t in SCALARS) return SCALARS[t];
  const atomic = /^atomic<(\w+)>$/.exec(t);
  if (atomic) return SCALARS[atomic[1]];
  const vec = /^vec([234])(?:<(\w+)>|([fiuh]))$/.exec(t);
  if (vec) {
    const n = Number(vec[1]);
    const elem = vec[3] === "h" || vec[2] === "f16" ? 2 : 4;
    const align = elem * (n === 2 ? 2 : 4);
    return { size: elem * n, align };
  }
  const mat = /^mat([234])x([234])(?:<(\w+)>|([fh]))$/.exec(t);
  if (mat) {
    const column = typeLayout(`vec${mat[2]}${mat[4] ?? `<${mat[3]}>`}`, constants, where);
    return { size: Number(mat[1]) * roundUp(column.align, column.size), align: column.align };
  }
  const arr = /^array<(.+),([^,<>]+)>$/.exec(t);
  if (arr) {
    const elem = typeLayout(arr[1], constants, where);
    const n = evalInt(arr[2], constants, where);
    return { size: n * roundUp(elem.align, elem.size), align: elem.align };
  }
  throw new Error(`${where}: cannot size type '${type}' (extend typeLayout in src/gpu/limits.ts)`);
}

function roundUp(k: number, n: number): number {
  return Math.ceil(n / k) * k;
}

function evalInt(expr: string, constants: Map<string, number>, where: string): number {
  const v = tryEvalInt(expr, constants);
  if (v === undefined) throw new Error(`${where}: cannot evaluate '${expr.trim()}'`);
  return v;
}

/**
 * Evaluates an integer expression of literals (`32`, `16u`, `0x10`), known
 * constants, `+ - * / %` and parentheses; undefined for anything else.
 */
function tryEvalInt(expr: string, constants: Map<string, number>): number | undefined {
  const tokens = expr.match(/0[xX][0-9a-fA-F]+[iu]?|\d+[iu]?|[A-Za-z_]\w*|[-+*/%()]|\S/g) ?? [];
  let i = 0;
  const atom = (): number | undefined => {
    const tok = tokens[i++];
    if (tok === undefined) return undefined;
    if (tok === "(") {
      const v = sum();
      return tokens[i++] === ")" ? v : undefined;
    }
    if (tok === "-") {
      const v = atom();
      return v === undefined ? undefined : -v;
    }
    if (/^(0[xX][0-9a-fA-F]+|\d+)[iu]?$/.test(tok)) return Number(tok.replace(/[iu]$/, ""));
    return constants.get(tok);
  };
  const product = (): number | undefined => {
    let v = atom();
    while (v !== undefined && (tokens[i] === "*" || tokens[i] === "/" || tokens[i] === "%")) {
      const op = tokens[i++];
      const r = atom();
      if (r === undefined) return undefined;
      v = op === "*" ? v * r : op === "/" ? Math.trunc(v / r) : v % r;
    }
    return v;
  };
  const sum = (): number | undefined => {
    let v = product();
    while (v !== undefined && (tokens[i] === "+" || tokens[i] === "-")) {
      const op = tokens[i++];
      const r = product();
      if (r === undefined) return undefined;
      v = op === "+" ? v + r : v - r;
    }
    return v;
  };
  const v = sum();
  return i === tokens.length && v !== undefined && Number.isInteger(v) ? v : undefined;
}
