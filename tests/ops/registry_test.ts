import { KERNEL_SOURCES, withIncludes } from "../../kernels/sources.ts";
import type { OpDeclarations } from "../../src/ops/_op.ts";
import { OP_MODULES, type OpName, OPS } from "../../src/ops/registry.ts";
import { matmulRef } from "../../src/ref/matmul.ts";
import { assert } from "../_assert.ts";

/** Entry points a WGSL source declares (`@compute ... fn name(`). */
function entryPoints(src: string): string[] {
  return [...src.matchAll(/@compute[^]*?\bfn\s+(\w+)\s*\(/g)].map((m) => m[1]);
}

/** The kernels/ file whose text a spec carries (sources are shared by identity). */
const FILE_OF = new Map<string, string>(Object.entries(KERNEL_SOURCES).map(([f, s]) => [s, f]));

const KERNELS_DIR = new URL("../../kernels/", import.meta.url);

Deno.test("every declared kernel's entry point exists in the source it carries", () => {
  for (const [op, decl] of Object.entries(OPS)) {
    assert.ok(decl.kernels.length > 0, `${op} declares no kernels`);
    for (const k of decl.kernels) {
      const file = FILE_OF.get(k.source);
      assert.ok(file, `${op}: ${k.entry}'s source is not a kernel file of kernels/sources.ts`);
      assert.ok(entryPoints(k.source).includes(k.entry), `${op}: ${file} has no entry ${k.entry}`);
    }
  }
});

Deno.test("every WGSL entry point in kernels/ is launched by exactly one declared op", () => {
  const claimed = new Map<string, string>();
  for (const [op, decl] of Object.entries(OPS)) {
    for (const k of decl.kernels) {
      const key = `${FILE_OF.get(k.source)}:${k.entry}`;
      assert.ok(!claimed.has(key), `${key} is claimed by both ${claimed.get(key)} and ${op}`);
      claimed.set(key, op);
    }
  }
  for (const [file, src] of Object.entries(KERNEL_SOURCES)) {
    for (const e of entryPoints(src)) {
      assert.ok(
        claimed.has(`${file}:${e}`),
        `${file}:${e} is a dead entry point: no op declares it`,
      );
    }
  }
});

Deno.test("every .wgsl file in kernels/ is imported by kernels/sources.ts", async () => {
  for await (const f of Deno.readDir(KERNELS_DIR)) {
    if (!f.name.endsWith(".wgsl") || f.name.startsWith("_")) continue; // _*: include snippets
    assert.ok(f.name in KERNEL_SOURCES, `kernels/${f.name} is missing from kernels/sources.ts`);
  }
});

/** Fields of `struct name { a: u32, ... }` in a WGSL source, in declaration order. */
function structFields(src: string, name: string): [string, string][] {
  const body = new RegExp(`struct ${name}\\s*\\{([^}]*)\\}`).exec(src)?.[1];
  if (body === undefined) throw new Error(`no struct ${name}`);
  return [...body.replace(/\/\/.*$/gm, "").matchAll(/(\w+)\s*:\s*(\w+)/g)].map((m) => [m[1], m[2]]);
}

/** The uniform struct an entry point reads: the one whose variable its body uses. */
function uniformOf(src: string, entry: string): string {
  const uniforms = [...src.matchAll(/var<uniform>\s+(\w+)\s*:\s*(\w+)/g)].map((m) => [m[1], m[2]]);
  if (uniforms.length === 1) return uniforms[0][1];
  const start = src.search(new RegExp(`fn ${entry}\\s*\\(`));
  const end = src.indexOf("\n}\n", start);
  const body = src.slice(start, end);
  const used = uniforms.filter(([v]) => new RegExp(`\\b${v}\\.`).test(body));
  if (used.length !== 1) throw new Error(`${entry} reads ${used.length} uniform structs`);
  return used[0][1];
}

Deno.test("every kernel's TypeScript params match its WGSL uniform struct, field by field", () => {
  for (const [op, decl] of Object.entries(OPS)) {
    for (const k of decl.kernels) {
      const struct = uniformOf(k.source, k.entry);
      assert.deepEqual(
        Object.entries(k.params),
        structFields(k.source, struct),
        `${op}: ${FILE_OF.get(k.source)}:${k.entry} params vs struct ${struct}`,
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
  for (const [op, decl] of Object.entries(OPS)) {
    const audited = Object.entries(
      decl.tolerance as Record<string, { atol: number; rtol: number }>,
    );
    const want = {
      differentiable: ["forward", "backward"],
      forward: ["forward"],
      update: ["update"],
    };
    for (const part of want[decl.kind]) {
      assert.ok(audited.some(([k]) => k === part), `${op} (${decl.kind}) has no ${part} tolerance`);
    }
    for (const [pass, t] of audited) {
      assert.ok(
        t.atol >= 0 && t.atol < 1e-2 && t.rtol >= 0 && t.rtol < 1e-2,
        `${op} ${pass}: ${JSON.stringify(t)}`,
      );
    }
  }
});

Deno.test("every declaration names a test under tests/ops/ that uses the op", async () => {
  for (const [op, decl] of Object.entries(OPS)) {
    const text = await Deno.readTextFile(new URL(decl.test, import.meta.url));
    assert.match(text, new RegExp(`\\b${op}\\b`), `${decl.test} never mentions ${op}`);
  }
});

Deno.test("the registry holds every module's declarations under their own names", () => {
  const names = Object.values(OP_MODULES).flatMap((m) => Object.keys(m));
  assert.deepEqual(Object.keys(OPS).sort(), [...names].sort(), "an op declared twice is lost");
  assert.equal(new Set(names).size, names.length, "op names are unique");
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

// Type-level checks, enforced by `deno check` (and so by `deno test`): each
// `@ts-expect-error` fails the check if the line below it compiles.
const tolerance = { atol: 0, rtol: 0 };
export const REFUSED = {
  // @ts-expect-error a differentiable op without its backward reference
  noBackward: {
    kind: "differentiable",
    kernels: [],
    reference: { forward: matmulRef },
    tolerance: { forward: tolerance, backward: tolerance },
    test: "matmul_test.ts",
  },
  // @ts-expect-error a differentiable op without its backward tolerance
  noBackwardTolerance: {
    kind: "differentiable",
    kernels: [],
    reference: { forward: matmulRef, backward: matmulRef },
    tolerance: { forward: tolerance },
    test: "matmul_test.ts",
  },
  noUpdateTolerance: {
    kind: "update",
    kernels: [],
    reference: { update: matmulRef },
    // @ts-expect-error an update without its tolerance
    tolerance: {},
    test: "optim_test.ts",
  },
  // @ts-expect-error an op without its test
  noTest: {
    kind: "forward",
    kernels: [],
    reference: { forward: matmulRef },
    tolerance: { forward: tolerance },
  },
} as const satisfies OpDeclarations;
// @ts-expect-error a forward-only op has no backward reference
OPS.randomMasking.reference.backward;
// @ts-expect-error an update has no forward reference to misuse as one
OPS.adamw.reference.forward;
// @ts-expect-error no such op
export const UNKNOWN: OpName = "axpby";
