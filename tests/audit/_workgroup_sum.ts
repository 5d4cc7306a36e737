/**
 * A test-only kernel for the audit's own tests: a workgroup tree sum, once
 * as written and once with its barriers removed (a data race: invocations
 * read partial sums that others have not written yet). The audit must pass
 * the first and fail the second on at least one engine. Not an op of the
 * harness, and not a *_test.ts file, so `deno task test` does not run it
 * directly; the audit runner loads it on demand.
 * @module
 */

import { assertClose } from "../../src/audit.ts";
import { openGpu } from "../../src/gpu/device.ts";
import { rand } from "../_helpers.ts";

const WG = 64;

function source(barriers: boolean): string {
  const barrier = barriers ? "workgroupBarrier();" : "";
  return `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
var<workgroup> s: array<f32, ${WG}>;
@compute @workgroup_size(${WG})
fn workgroup_sum(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  s[lid] = x[wg.x * ${WG}u + lid];
  ${barrier}
  for (var stride = ${WG / 2}u; stride > 0u; stride = stride / 2u) {
    if (lid < stride) { s[lid] = s[lid] + s[lid + stride]; }
    ${barrier}
  }
  if (lid == 0u) { y[wg.x] = s[0]; }
}`;
}

async function workgroupSums(values: Float32Array, barriers: boolean): Promise<Float32Array> {
  const { device } = await openGpu({ log: false });
  const groups = values.length / WG;
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  const x = device.createBuffer({ size: values.byteLength, usage });
  device.queue.writeBuffer(x, 0, values as Float32Array<ArrayBuffer>);
  const y = device.createBuffer({ size: groups * 4, usage });
  const read = device.createBuffer({
    size: groups * 4,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const pipeline = device.createComputePipeline({
    layout: "auto",
    compute: {
      module: device.createShaderModule({ code: source(barriers) }),
      entryPoint: "workgroup_sum",
    },
  });
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(
    0,
    device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [{ binding: 0, resource: { buffer: x } }, { binding: 1, resource: { buffer: y } }],
    }),
  );
  pass.dispatchWorkgroups(groups);
  pass.end();
  enc.copyBufferToBuffer(y, 0, read, 0, groups * 4);
  device.queue.submit([enc.finish()]);
  await read.mapAsync(GPUMapMode.READ);
  const out = new Float32Array(read.getMappedRange().slice(0));
  read.unmap();
  for (const b of [x, y, read]) b.destroy();
  return out;
}

function check(barriers: boolean): () => Promise<void> {
  return async () => {
    const groups = 37;
    const values = rand(11, groups * WG, 0.5, 1.5);
    const want = new Float64Array(groups);
    for (let i = 0; i < values.length; i++) want[Math.floor(i / WG)] += values[i];
    const got = await workgroupSums(values, barriers);
    // 64 positive terms summed in a tree: error well under 64 ulp of the sum.
    assertClose(
      got,
      want,
      { atol: 0, rtol: 1e-5 },
      `workgroup sum ${barriers ? "with" : "without"} barriers`,
    );
  };
}

Deno.test("workgroupSum() with its barriers matches the f64 sum", check(true));
Deno.test(
  "workgroupSum() without its barriers matches the f64 sum (a data race: must fail)",
  check(false),
);
