import {
  DEFAULT_LIMITS,
  deviceLimits,
  type EntryNeeds,
  type KernelLimit,
  kernelNeeds,
  LimitError,
  wgslEntryNeeds,
} from "../../src/gpu/limits.ts";
import { assert, assertThrows } from "../_assert.ts";
import { gpuTest } from "../_helpers.ts";

const SAMPLE = `
const N = 10u;
override K: u32 = 3u;
var<workgroup> a: array<vec3f, N>;  // vec3 has stride 16: 160 bytes
var<workgroup> b: array<f32, 5>;    // 20 bytes, counted as 32
var<workgroup> c: vec2<f32>;        // 8 bytes, counted as 16
var<workgroup> unused: array<f32, 1000>;
// var<workgroup> commented: array<f32, 99999>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> z: array<f32>;
fn helper() -> f32 { return b[0] + x[0]; }
@compute @workgroup_size(N * 2u, K)
fn first(@builtin(local_invocation_id) l: vec3u) {
  a[l.x] = vec3f(helper());
  c = vec2f(0.0);
  y[0] = 1.0;
}
@workgroup_size(4) @compute fn second() { z[0] = 2.0; }
`;

Deno.test("wgslEntryNeeds() sizes workgroup arrays by WebGPU's layout rules, counting what each entry point reaches", () => {
  assert.deepEqual(wgslEntryNeeds("sample.wgsl", SAMPLE), [
    {
      file: "sample.wgsl",
      entry: "first",
      workgroupStorage: 160 + 32 + 16,
      workgroupSize: [20, 3, 1],
      storageBuffers: 2,
    },
    {
      file: "sample.wgsl",
      entry: "second",
      workgroupStorage: 0,
      workgroupSize: [4, 1, 1],
      storageBuffers: 1,
    },
  ]);
});

Deno.test("wgslEntryNeeds() names the file and variable of a type it cannot size", () => {
  const src =
    "struct S { a: f32 }\nvar<workgroup> s: S;\n@compute @workgroup_size(1) fn e() { _ = s.a; }";
  assertThrows(() => wgslEntryNeeds("odd.wgsl", src), "odd.wgsl: var<workgroup> s");
});

const BIG_ADAPTER: Record<KernelLimit | "maxStorageBufferBindingSize" | "maxBufferSize", number> = {
  maxComputeWorkgroupStorageSize: 32768,
  maxComputeInvocationsPerWorkgroup: 1024,
  maxComputeWorkgroupSizeX: 1024,
  maxComputeWorkgroupSizeY: 1024,
  maxComputeWorkgroupSizeZ: 64,
  maxStorageBuffersPerShaderStage: 16,
  maxStorageBufferBindingSize: 2 ** 31,
  maxBufferSize: 2 ** 32,
};

function needs(workgroupStorage: number, size: [number, number, number]): EntryNeeds {
  return { file: "a.wgsl", entry: "big", workgroupStorage, workgroupSize: size, storageBuffers: 3 };
}

Deno.test("deviceLimits() raises a kernel limit above its default only as far as a kernel needs", () => {
  const limits = deviceLimits(BIG_ADAPTER, [needs(20000, [512, 1, 1]), needs(64, [8, 8, 1])]);
  assert.deepEqual(limits, {
    maxStorageBufferBindingSize: 2 ** 31,
    maxBufferSize: 2 ** 32,
    maxComputeWorkgroupStorageSize: 20000,
    maxComputeInvocationsPerWorkgroup: 512,
    maxComputeWorkgroupSizeX: 512,
  });
});

Deno.test("deviceLimits() names the limit and the entry point when the adapter offers too little", () => {
  const small = { ...BIG_ADAPTER, maxComputeWorkgroupStorageSize: 16384 };
  let err: unknown = null;
  try {
    deviceLimits(small, [needs(20000, [64, 1, 1]), { ...needs(100, [64, 1, 1]), entry: "small" }]);
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof LimitError, `expected a LimitError, got ${err}`);
  assert.equal(err.limit, "maxComputeWorkgroupStorageSize");
  assert.deepEqual(err.entries, ["a.wgsl:big"]);
  assert.match(
    err.message,
    /maxComputeWorkgroupStorageSize: kernel a\.wgsl:big needs 20000 .* offers 16384/,
  );
});

Deno.test("every kernel fits WebGPU's default limits, so a device needs none raised for them", () => {
  const all = kernelNeeds();
  assert.ok(all.length > 50, `found only ${all.length} entry points`);
  const limits = deviceLimits(DEFAULT_LIMITS, all);
  assert.deepEqual(Object.keys(limits).sort(), ["maxBufferSize", "maxStorageBufferBindingSize"]);
  // The largest user is known: attention's and matmul's two 16 KiB tiles.
  const top = Math.max(...all.map((n) => n.workgroupStorage));
  assert.equal(top, 16384);
});

gpuTest("the opened device offers every limit a kernel needs", (gpu) => {
  const l = gpu.device.limits;
  for (const n of kernelNeeds()) {
    const [x, y, z] = n.workgroupSize;
    const at = `${n.file}:${n.entry}`;
    assert.ok(n.workgroupStorage <= l.maxComputeWorkgroupStorageSize, at);
    assert.ok(x * y * z <= l.maxComputeInvocationsPerWorkgroup, at);
    assert.ok(x <= l.maxComputeWorkgroupSizeX && y <= l.maxComputeWorkgroupSizeY, at);
    assert.ok(z <= l.maxComputeWorkgroupSizeZ, at);
    assert.ok(n.storageBuffers <= l.maxStorageBuffersPerShaderStage, at);
  }
});
