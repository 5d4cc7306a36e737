// validate.mjs — the Node side of tools/tint/check.ts: compiles WGSL with
// Tint through Dawn (npm package `webgpu`, installed here by `npm ci`) on
// Dawn's null backend, which validates shader modules and pipelines fully
// without a GPU, with WebGPU's default limits.
//
// stdin: JSON [{file, code, entries}] (entries: the @compute entry points,
// found by check.ts). stdout: JSON [{file, entry, ok, message}], one per
// entry point; a module that fails to compile fails each of its entries with
// Tint's message (one row named "(module)" when it has none).
// Exit status: 0 when it ran (valid or not), 2 when Dawn could not load.
// A separate Node process keeps Dawn's native addon (and its threads) out of
// the Deno test runner.

import { readFileSync } from "node:fs";

let create;
try {
  ({ create } = await import("webgpu"));
} catch (e) {
  console.error(
    `cannot load the npm package 'webgpu' (Dawn): ${String(e.message).split("\n")[0]}; ` +
      "install it with `npm ci --ignore-scripts --prefix tools/tint/node`",
  );
  process.exit(2);
}

// The GPU object owns Dawn's instance: once unreachable, the garbage collector
// destroys the instance under the live device and the process crashes, so it
// stays referenced until exit.
const gpu = create(["backend=null"]);
process.on("exit", () => gpu);
const adapter = await gpu.requestAdapter();
if (!adapter) {
  console.error("Dawn's null backend gave no adapter");
  process.exit(2);
}
const device = await adapter.requestDevice();

const modules = JSON.parse(readFileSync(0, "utf8"));
const out = [];
for (const { file, code, entries } of modules) {
  device.pushErrorScope("validation");
  const module = device.createShaderModule({ label: file, code });
  const moduleError = await device.popErrorScope();
  if (moduleError) {
    for (const entry of entries.length ? entries : ["(module)"]) {
      out.push({ file, entry, ok: false, message: moduleError.message.trim() });
    }
    continue;
  }
  for (const entry of entries) {
    device.pushErrorScope("validation");
    device.createComputePipeline({
      label: `${file}:${entry}`,
      layout: "auto",
      compute: { module, entryPoint: entry },
    });
    const e = await device.popErrorScope();
    out.push({ file, entry, ok: !e, message: e ? e.message.trim() : "" });
  }
}
device.destroy();
process.stdout.write(JSON.stringify(out) + "\n");
