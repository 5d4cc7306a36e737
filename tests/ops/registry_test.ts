import { KERNEL_SOURCES, withIncludes } from "../../kernels/sources.ts";
import { OPS } from "../../src/ops/registry.ts";
import { assert } from "../_assert.ts";

/** Entry points a WGSL source declares (`@compute ... fn name(`). */
function entryPoints(src: string): string[] {
  return [...src.matchAll(/@compute[^]*?\bfn\s+(\w+)\s*\(/g)].map((m) => m[1]);
}

Deno.test("every WGSL entry point belongs to exactly one registered op, and every registered entry exists", () => {
  const claimed = new Map<string, string>();
  for (const [op, audit] of Object.entries(OPS)) {
    const declared = entryPoints(KERNEL_SOURCES[audit.kernel]);
    for (const e of audit.entries) {
      assert.ok(declared.includes(e), `${op}: ${audit.kernel} has no entry point ${e}`);
      const key = `${audit.kernel}:${e}`;
      assert.ok(!claimed.has(key), `${key} is claimed by both ${claimed.get(key)} and ${op}`);
      claimed.set(key, op);
    }
  }
  for (const [file, src] of Object.entries(KERNEL_SOURCES)) {
    for (const e of entryPoints(src)) {
      assert.ok(
        claimed.has(`${file}:${e}`),
        `${file}:${e} is a dead entry point: no registered op launches it`,
      );
    }
  }
});

Deno.test("every kernel file opens with a header saying what it computes, its shapes and its dispatch", () => {
  for (const [file, src] of Object.entries(KERNEL_SOURCES)) {
    const header = src.split("\n").filter((l) => l.startsWith("//")).join("\n");
    assert.ok(
      src.startsWith(`// ${file} — `),
      `${file} must start with '// ${file} — <what it computes>'`,
    );
    assert.match(header, /workgroup/i, `${file}: header names the workgroup size`);
    assert.match(header, /grid/i, `${file}: header names the dispatch grid`);
  }
});

Deno.test("every tolerance in the registry is explicit and sane", () => {
  for (const [op, audit] of Object.entries(OPS)) {
    for (const pass of ["forward", "backward"] as const) {
      const t = audit.tolerance[pass];
      assert.ok(
        t.atol >= 0 && t.atol < 1e-2 && t.rtol >= 0 && t.rtol < 1e-2,
        `${op} ${pass}: ${JSON.stringify(t)}`,
      );
    }
  }
});

Deno.test("kernel includes are resolved, and an unknown include names itself", () => {
  for (const [file, src] of Object.entries(KERNEL_SOURCES)) {
    assert.ok(!src.includes("//#include"), `${file} has an unresolved include`);
  }
  assert.ok(
    KERNEL_SOURCES["softmax.wgsl"].includes("fn reduce_max("),
    "softmax gets the shared reductions",
  );
  assert.throws(() => withIncludes("//#include nope.wgsl\n"), /unknown WGSL include 'nope\.wgsl'/);
});
