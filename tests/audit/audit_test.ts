import { auditBrowser } from "../../src/cli/audit.ts";
import {
  auditReport,
  auditTable,
  collectTests,
  runTests,
  selectTests,
} from "../../src/audit/runner.ts";
import { assert } from "../_assert.ts";
import { testGpu } from "../_helpers.ts";

const race = new URL("./_workgroup_sum.ts", import.meta.url);
const CHROME = Deno.env.get("CHROME") ?? "/usr/bin/chromium";
const haveChrome = await Deno.stat(CHROME).then(() => true, () => false);
// In CI the browser must be there (.ci/setup installs it); elsewhere its absence skips by name.
const ignoreBrowser = !haveChrome && Deno.env.get("CI") !== "true";
const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test("collectTests() takes every Deno.test call shape and restores Deno.test", async () => {
  const real = Deno.test;
  const tests = await collectTests(["a"], () => {
    const noop = () => {};
    Deno.test("by name", noop);
    Deno.test("with options", { sanitizeOps: false }, noop);
    Deno.test({ name: "as an object", fn: noop, ignore: true });
    Deno.test(function named() {});
    return Promise.resolve();
  });
  assert.equal(Deno.test, real);
  assert.deepEqual(tests.map((t) => [t.file, t.name, t.ignore]), [
    ["a", "by name", false],
    ["a", "with options", false],
    ["a", "as an object", true],
    ["a", "named", false],
  ]);
  assert.deepEqual(selectTests(tests, "a").length, 4);
  assert.deepEqual(selectTests(tests, "b").length, 0);
});

Deno.test(
  "on Deno's engine the audit records each check, passes the sum and fails the racy one",
  opts,
  async () => {
    const gpu = await testGpu();
    const t0 = performance.now();
    const results = await runTests(await collectTests(["race"], () => import(race.href)));
    const report = auditReport("deno", { ...gpu.adapter }, t0, null, results);
    assert.deepEqual(results.map((r) => r.status), ["pass", "fail"]);
    assert.equal(results[0].checks.length, 1);
    assert.ok(results[0].checks[0].worstRatio <= 1);
    assert.equal(results[1].checks[0].pass, false);
    assert.ok(results[1].error?.includes("workgroup sum without barriers"));
    const table = auditTable(report);
    assert.match(table, /race +workgroup sum with barriers +\S+ +\S+ +0, 0\.00001 +pass/);
    assert.match(table, /race +workgroup sum without barriers .* FAIL/);
    assert.match(table, /1 passed, 1 failed$/);
  },
);

Deno.test({
  name:
    "on Chrome's engine (headless, SwiftShader) the same audit passes the sum and fails the racy one",
  ignore: ignoreBrowser,
  ...opts,
  fn: async () => {
    const lines: string[] = [];
    const report = await auditBrowser({
      op: "race",
      hardware: false,
      chrome: CHROME,
      timeoutS: 300,
      extraTests: { race: race.pathname },
      log: (l) => lines.push(l),
    });
    assert.equal(report.adapter.architecture, "swiftshader", lines.join("\n"));
    assert.match(report.engine, /^chrome /);
    assert.deepEqual(report.tests.map((t) => t.status), ["pass", "fail"], auditTable(report));
    assert.equal(report.tests[1].checks[0].pass, false);
  },
});

Deno.test("deno task audit --json writes the report into a folder it creates", opts, async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/new/audit.json`;
    const cli = new URL("../../src/cli/audit.ts", import.meta.url).pathname;
    const r = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", cli, "deno", "--op", "softmax", "--json", file],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
    const report = JSON.parse(await Deno.readTextFile(file));
    assert.ok(report.passed > 0 && report.failed === 0);
    assert.ok(report.tests.every((t: { checks: unknown[] }) => Array.isArray(t.checks)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test(
  "the audit page (audit:serve) bundles every op's test file and serves the page and its script",
  opts,
  async () => {
    const { buildPage, opTestFiles, servePage } = await import("../../src/audit/bundle.ts");
    const dir = await Deno.makeTempDir();
    const server = servePage(dir, 0);
    try {
      const files = await opTestFiles();
      assert.ok(files.includes("attention") && !files.includes("registry"), files.join(", "));
      assert.equal(await buildPage(dir), files.length);
      const base = `http://127.0.0.1:${server.addr.port}`;
      const page = await (await fetch(`${base}/`)).text();
      assert.match(page, /<script type="module" src="audit.js">/);
      const script = await (await fetch(`${base}/audit.js`)).text();
      // One lazy loader per test file, each bundled in (esbuild inlines the dynamic imports).
      for (const f of files) assert.ok(script.includes(`// tests/ops/${f}_test.ts`), f);
      assert.match(script, /await runPage\(\{/);
      assert.doesNotMatch(script, /from\s*"node:/);
      assert.equal((await fetch(`${base}/nothing`)).status, 404);
    } finally {
      await server.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
);
