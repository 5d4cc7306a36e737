/**
 * Runs the kernel audits (the test files under tests/ops/) on whatever
 * WebGPU engine hosts this module: Deno's (wgpu, naga) from the command line,
 * or Chrome's (Dawn, Tint) in the audit page. The test files are the same in
 * both: they register their tests with `Deno.test`, which is replaced here by
 * a collector while they load, and every comparison they make through
 * `assertClose` is recorded, so one table (test, check, max error, bound,
 * verdict) comes out of either engine.
 * @module
 */

import { type AuditRecord, setAuditRecorder } from "../audit.ts";

/** One collected test. */
export interface CollectedTest {
  /** The test file's stem, e.g. "softmax" for tests/ops/softmax_test.ts. */
  file: string;
  name: string;
  fn: () => unknown | Promise<unknown>;
  ignore: boolean;
}

/** The outcome of one test. */
export interface AuditTestResult {
  file: string;
  name: string;
  status: "pass" | "fail" | "ignored";
  /** The first error's message, for a failure. */
  error: string | null;
  seconds: number;
  /** Every closeness check the test made. */
  checks: AuditRecord[];
}

/** A whole audit: the engine, the adapter and every test's outcome. */
export interface AuditReport {
  engine: string;
  adapter: { description: string; vendor: string; architecture: string; software: boolean };
  started: string;
  seconds: number;
  filter: string | null;
  tests: AuditTestResult[];
  passed: number;
  failed: number;
}

type TestFn = () => unknown | Promise<unknown>;
type TestDefinition = { name: string; fn: TestFn; ignore?: boolean; only?: boolean };

/** Turns any of Deno.test's call shapes into one definition. */
function definition(a: unknown, b?: unknown, c?: unknown): TestDefinition {
  if (typeof a === "string") {
    if (typeof b === "function") return { name: a, fn: b as TestFn };
    return { ...(b as object), name: a, fn: c as TestFn };
  }
  if (typeof a === "function") {
    if (typeof b === "function") return { ...(a as object), fn: b as TestFn, name: a.name };
    return { name: a.name, fn: a as TestFn };
  }
  const d = a as TestDefinition;
  return typeof b === "function" ? { ...d, fn: b as TestFn } : d;
}

/**
 * Loads test modules with `Deno.test` replaced by a collector; `load(file)`
 * imports the module of that file stem. Returns the tests in file order.
 */
export async function collectTests(
  files: string[],
  load: (file: string) => Promise<unknown>,
): Promise<CollectedTest[]> {
  const g = globalThis as unknown as { Deno: { test: unknown } };
  const real = g.Deno.test;
  const out: CollectedTest[] = [];
  try {
    for (const file of files) {
      g.Deno.test = (a: unknown, b?: unknown, c?: unknown) => {
        const d = definition(a, b, c);
        out.push({ file, name: d.name, fn: d.fn, ignore: d.ignore === true });
      };
      await load(file);
    }
  } finally {
    g.Deno.test = real;
  }
  return out;
}

/** Tests selected by `--op NAME`: its test file, or tests named after `NAME(`. */
export function selectTests(tests: CollectedTest[], op: string | null): CollectedTest[] {
  if (!op) return tests;
  return tests.filter((t) => t.file === op || t.name.includes(`${op}(`));
}

/** Runs tests one after another, recording their checks; `progress` sees each result. */
export async function runTests(
  tests: CollectedTest[],
  progress: (r: AuditTestResult, i: number, n: number) => void = () => {},
): Promise<AuditTestResult[]> {
  const results: AuditTestResult[] = [];
  for (const [i, t] of tests.entries()) {
    const checks: AuditRecord[] = [];
    const t0 = performance.now();
    let error: string | null = null;
    if (!t.ignore) {
      setAuditRecorder((r) => checks.push(r));
      try {
        await t.fn();
      } catch (e) {
        error = e instanceof Error ? e.message : String(e);
      } finally {
        setAuditRecorder(null);
      }
    }
    const r: AuditTestResult = {
      file: t.file,
      name: t.name,
      status: t.ignore ? "ignored" : error === null ? "pass" : "fail",
      error,
      seconds: (performance.now() - t0) / 1000,
      checks,
    };
    results.push(r);
    progress(r, i, tests.length);
  }
  return results;
}

const fmt = (x: number) => (x === 0 ? "0" : x.toExponential(2));

/**
 * The audit table, one row per check (test file, check label, max |error|,
 * the worst error as a fraction of its bound, the bound, verdict), and one
 * row per test that failed outside any check.
 */
export function auditTable(report: AuditReport): string {
  const rows = [["op file", "check", "max |err|", "err/bound", "bound (atol, rtol)", "verdict"]];
  for (const t of report.tests) {
    for (const c of t.checks) {
      rows.push([
        t.file,
        c.label,
        fmt(c.maxAbsError),
        c.worstRatio.toFixed(3),
        `${c.atol}, ${c.rtol}`,
        c.pass ? "pass" : "FAIL",
      ]);
    }
    if (t.status === "fail" && t.checks.every((c) => c.pass)) {
      rows.push([t.file, t.name, "-", "-", "-", `FAIL: ${t.error?.split("\n")[0] ?? ""}`]);
    }
    if (t.status === "ignored") rows.push([t.file, t.name, "-", "-", "-", "ignored"]);
  }
  const widths = rows[0].map((_, j) => Math.max(...rows.map((r) => r[j].length)));
  const lines = rows.map((r) => r.map((v, j) => v.padEnd(widths[j])).join("  ").trimEnd());
  return [
    `engine: ${report.engine}; adapter: ${report.adapter.description || "-"} (vendor ${
      report.adapter.vendor || "-"
    }, architecture ${report.adapter.architecture || "-"}${
      report.adapter.software ? ", software" : ""
    })`,
    ...lines,
    `${report.passed} passed, ${report.failed} failed`,
  ].join("\n");
}

/** Builds the report from results. */
export function auditReport(
  engine: string,
  adapter: AuditReport["adapter"],
  started: number,
  filter: string | null,
  tests: AuditTestResult[],
): AuditReport {
  const { description, vendor, architecture, software } = adapter;
  return {
    engine,
    adapter: { description, vendor, architecture, software },
    started: new Date(Date.now() - (performance.now() - started)).toISOString(),
    seconds: (performance.now() - started) / 1000,
    filter,
    tests,
    passed: tests.filter((t) => t.status === "pass").length,
    failed: tests.filter((t) => t.status === "fail").length,
  };
}
