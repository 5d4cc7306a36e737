import { type GpuCheckReport, parseBenchRows, parseTestSummary } from "../../src/cli/gpu_check.ts";
import { assert } from "../_assert.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

Deno.test("gpu-check reads Deno's test summary and the bench's JSON rows among log lines", () => {
  assert.deepEqual(
    parseTestSummary("...\n\x1b[0m\x1b[32mok\x1b[0m | 12 passed | 0 failed (3s)\n"),
    {
      passed: 12,
      failed: 0,
    },
  );
  assert.deepEqual(parseTestSummary("FAILED | 3 passed (2 steps) | 1 failed (9s)"), {
    passed: 3,
    failed: 1,
  });
  assert.equal(parseTestSummary("error: Module not found"), null);
  const rows = parseBenchRows(
    'gpu: llvmpipe\n{"name":"add","shape":"4","ours":1.5,"peer":null,"unit":"GB/s","ratio":null}\n{bad\n',
  );
  assert.deepEqual(rows.map((r) => [r.name, r.ours]), [["add", 1.5]]);
});

Deno.test({
  name:
    "gpu-check --quick --json runs the audit, the bench, a measured MAE epoch and writes projections of both profiles",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const file = `${dir}/report.json`;
    // CI-sized: one op's audit, one bench row, the smoke model's pre-training, no PyTorch.
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${ROOT}src/cli/gpu_check.ts`, "--quick", "--json", file]
        .concat(["--audit-op", "softmax", "--bench-only", "add", "--epoch-profile", "smoke"])
        .concat(["--epoch-steps", "2", "--no-torch", "--cache", `${dir}/calibration.json`]),
      stdout: "piped",
      stderr: "piped",
      env: { XDG_RUNTIME_DIR: "/tmp" },
    }).output();
    const dec = new TextDecoder();
    const stdout = dec.decode(out.stdout);
    assert.equal(out.code, 0, dec.decode(out.stderr) + stdout);
    const r = JSON.parse(await Deno.readTextFile(file)) as GpuCheckReport;
    assert.equal(r.version, 1);
    assert.equal(r.quick, true);
    assert.ok(r.adapter.description.length > 0);
    assert.ok(r.adapter.limits.maxStorageBufferBindingSize > 0);
    assert.ok(r.audit!.passed > 0 && r.audit!.failed === 0 && r.audit!.ok, JSON.stringify(r.audit));
    assert.ok(r.audit!.command.includes("softmax"));
    assert.deepEqual(r.bench!.rows.map((b) => b.name), ["add"]);
    assert.ok(r.bench!.rows[0].ours > 0);
    assert.equal(r.epoch.profile, "smoke");
    assert.equal(r.epoch.steps, 3);
    assert.ok(r.epoch.fixtures || r.epoch.images >= 100_000);
    assert.ok(r.epoch.imagesPerSecond > 0);
    assert.equal(r.torch.available, false);
    for (const name of ["short", "paper"] as const) {
      const p = r.projections[name];
      assert.equal(p.levels.length, 3);
      assert.ok(p.wallSeconds > 0 && p.wallSeconds <= p.serialSeconds, `${name}: ${p.wallSeconds}`);
      assert.ok(
        Math.abs(p.levels.reduce((a, l) => a + l.wallSeconds, 0) - p.wallSeconds) <
          1e-6 * p.wallSeconds,
      );
      // --quick measures nothing more: every paper-sized rate comes from this run's FLOP/s.
      assert.ok(Object.values(p.rates).every((x) => x.source.startsWith("derived")), name);
    }
    // The paper profile trains more than the short one at the same rates.
    assert.ok(r.projections.paper.serialSeconds > r.projections.short.serialSeconds);
    assert.ok(stdout.includes("projected paper:"), stdout);
    await Deno.remove(dir, { recursive: true });
  },
});
