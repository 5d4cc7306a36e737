/**
 * Every kernel must compile under Tint (Chrome's WGSL compiler) as well as
 * under naga, which the other tests run them with. Dawn's null backend, under
 * Node (tools/tint/), validates without a GPU at WebGPU's default limits.
 *
 * When node or Dawn's package is missing, these tests fail under CI (CI set)
 * and are reported as ignored, by name, elsewhere.
 */

import { KERNEL_SOURCES } from "../../kernels/sources.ts";
import { kernelNeeds } from "../../src/gpu/limits.ts";
import { computeEntries, type EntryCheck, runTintCheck } from "../../tools/tint/check.ts";
import { assert } from "../_assert.ts";

// The project's kernels, checked once for all tests below.
const kernels = await runTintCheck();
const missing = kernels.kind === "missing" ? kernels.message : null;
const inCi = Boolean(Deno.env.get("CI"));

/** A test that needs Dawn: fails in CI without it, is ignored elsewhere. */
function tintTest(name: string, fn: () => Promise<void> | void): void {
  Deno.test({
    name: missing && !inCi ? `${name} (ignored: ${missing})` : name,
    ignore: missing !== null && !inCi,
    fn: async () => {
      if (missing) throw new Error(missing);
      await fn();
    },
  });
}

/** Tint's results for `sources` (each a separate module). */
async function check(sources: Record<string, string>): Promise<EntryCheck[]> {
  const run = await runTintCheck(sources);
  if (run.kind === "missing") throw new Error(run.message);
  return run.results;
}

tintTest("every @compute entry point of kernels/ compiles under Tint with default limits", () => {
  if (kernels.kind === "missing") throw new Error(kernels.message);
  const results = kernels.results;
  const expected = Object.values(KERNEL_SOURCES).reduce((n, s) => n + computeEntries(s).length, 0);
  assert.equal(results.length, expected, "one result per entry point");
  assert.ok(expected > 50, `found only ${expected} entry points`);
  const bad = results.filter((r) => !r.ok);
  assert.deepEqual(
    bad.map((r) => `${r.file}:${r.entry}: ${r.message.split("\n").slice(0, 3).join(" | ")}`),
    [],
    "entry points Tint rejects",
  );
});

const NAN_CONST = `
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(64)
fn nan_const() { out[0] = bitcast<f32>(0x7fc00000u); }
`;
const NAN_RUNTIME = `
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
var<private> NAN_BITS: u32 = 0x7fc00000u;
@compute @workgroup_size(64)
fn nan_runtime() { out[0] = bitcast<f32>(NAN_BITS); }
`;

tintTest(
  "Tint rejects a constant NaN (which naga accepts) and accepts it as a run-time value",
  async () => {
    const [constant, runtime] = await check({
      "nan_const.wgsl": NAN_CONST,
      "nan_runtime.wgsl": NAN_RUNTIME,
    });
    assert.equal(constant.entry, "nan_const");
    assert.equal(constant.ok, false, "the constant NaN must be a shader-creation error");
    assert.match(constant.message, /nan cannot be represented/);
    assert.deepEqual(runtime, {
      file: "nan_runtime.wgsl",
      entry: "nan_runtime",
      ok: true,
      message: "",
    });
  },
);

/** `source` with a workgroup array of `bytes` bytes that `entry` reads first thing. */
function withPadding(source: string, entry: string, bytes: number): string {
  const at = source.indexOf("{", source.search(new RegExp(`\\bfn\\s+${entry}\\s*\\(`))) + 1;
  return `var<workgroup> tint_pad: array<u32, ${bytes / 4}>;\n` + source.slice(0, at) +
    "\n  _ = tint_pad[0];" + source.slice(at);
}

tintTest(
  "src/gpu/limits.ts measures each entry point's workgroup storage as Dawn does",
  async () => {
    // Dawn names the total only when it is over the limit, so each entry point
    // is padded to 16 bytes past 16 KiB and the total it reports compared.
    const LIMIT = 16384;
    const needs = kernelNeeds();
    const padded: Record<string, string> = {};
    const pads = new Map<string, number>();
    for (const n of needs) {
      const source = KERNEL_SOURCES[n.file as keyof typeof KERNEL_SOURCES];
      const pad = Math.max(0, LIMIT + 16 - n.workgroupStorage);
      padded[`${n.file}:${n.entry}`] = pad > 0 ? withPadding(source, n.entry, pad) : source;
      pads.set(`${n.file}:${n.entry}`, pad);
    }
    const results = await check(padded);
    const wrong: string[] = [];
    for (const n of needs) {
      const key = `${n.file}:${n.entry}`;
      const r = results.find((r) => r.file === key && r.entry === n.entry);
      const total = r && /workgroup storage \((\d+) bytes\)/.exec(r.message)?.[1];
      const pad = pads.get(key)!;
      if (Number(total) !== n.workgroupStorage + pad) {
        wrong.push(
          `${key}: measured ${n.workgroupStorage} + ${pad} padding, Dawn says ` +
            (total ? `${total} bytes` : `'${r?.message.split("\n")[0]}'`),
        );
      }
    }
    assert.deepEqual(wrong, []);
  },
);
