/**
 * `deno task audit | audit:browser | audit:serve`: the kernel audits (the
 * test files under tests/ops/) on Deno's WebGPU engine, on Chrome's (headless
 * Chromium driven over the DevTools protocol; SwiftShader unless --gpu), or
 * served as a page any Chrome can open to audit its own GPU.
 * @module
 */

import { parseFlags } from "./_args.ts";
import { writeFileAtomic } from "../data/mod.ts";
import { openGpu } from "../gpu/device.ts";
import { buildPage, opTestFiles, servePage } from "../audit/bundle.ts";
import {
  type AuditReport,
  auditReport,
  auditTable,
  collectTests,
  runTests,
  selectTests,
} from "../audit/runner.ts";

const HELP = `usage: deno task audit [--op NAME] [--json FILE]
       deno task audit:browser [--op NAME] [--json FILE] [--gpu] [--chrome PATH] [--timeout S]
       deno task audit:serve [--port N]

Runs every kernel audit (tests/ops/*_test.ts: forward and backward against the
f64 references, odd shapes, extreme inputs) and prints one row per check:
op file, check, max |error|, worst error as a fraction of its bound, the bound,
verdict; then "N passed, N failed". Exit 1 when any test fails.

  audit           on Deno's WebGPU (wgpu, naga)
  audit:browser   on Chrome's WebGPU (Dawn, Tint), headless; SwiftShader unless --gpu
  audit:serve     serves the audit page on http://localhost:PORT/ for any Chrome

options:
  --op NAME      only the op's test file (e.g. softmax) or tests named "NAME("
  --json FILE    also write the report as JSON
  --gpu          audit:browser: let Chrome pick a hardware GPU instead of SwiftShader
  --chrome PATH  audit:browser: the browser (default $CHROME, else /usr/bin/chromium)
  --timeout S    audit:browser: give up after S seconds (default 1800)
  --port N       audit:serve: the port (default 8123)
  -h, --help     this text`;

function usage(message: string): never {
  console.error(`audit: ${message}\n\n${HELP}`);
  Deno.exit(2);
}

async function writeJson(file: string | undefined, report: AuditReport): Promise<void> {
  if (file) {
    await writeFileAtomic(file, new TextEncoder().encode(JSON.stringify(report, null, 2) + "\n"));
  }
}

/** The audit on Deno's own WebGPU. */
async function auditDeno(op: string | null): Promise<AuditReport> {
  const t0 = performance.now();
  const gpu = await openGpu();
  const files = await opTestFiles();
  const tests = selectTests(
    await collectTests(
      files,
      (f) => import(new URL(`../../tests/ops/${f}_test.ts`, import.meta.url).href),
    ),
    op,
  );
  if (!tests.length) usage(`no audit matches --op ${op}`);
  const results = await runTests(tests, (r, i, n) => {
    console.error(`audit: ${i + 1}/${n} ${r.status} ${r.file}: ${r.name}`);
  });
  return auditReport(
    `deno ${Deno.version.deno} (wgpu)`,
    gpu.adapter,
    t0,
    op,
    results,
  );
}

/** The audit in headless Chrome. */
export async function auditBrowser(o: {
  op: string | null;
  hardware: boolean;
  chrome: string;
  timeoutS: number;
  extraTests?: Record<string, string>;
  log?: (line: string) => void;
}): Promise<AuditReport> {
  const log = o.log ?? ((l: string) => console.error(l));
  const { default: puppeteer } = await import("puppeteer-core");
  const dir = await Deno.makeTempDir({ prefix: "audit-page-" });
  const server = servePage(dir, 0);
  try {
    log(`audit: bundling the audit page (${await buildPage(dir, o.extraTests)} test files)`);
    const args = ["--headless=new", "--enable-unsafe-webgpu", "--no-first-run"];
    if (!o.hardware) {
      args.push(
        "--enable-features=Vulkan",
        "--use-webgpu-adapter=swiftshader",
        "--enable-unsafe-swiftshader",
      );
    }
    // Chrome's sandbox needs user namespaces, which containers (and root) often lack.
    if (Deno.uid?.() === 0) args.push("--no-sandbox");
    const browser = await puppeteer.launch({
      executablePath: o.chrome,
      args,
      protocolTimeout: o.timeoutS * 1000,
    });
    try {
      const page = await browser.newPage();
      page.on("pageerror", (e) => log(`audit: page error: ${(e as Error).message}`));
      page.on("console", (m) => {
        if (m.type() === "error") log(`audit: page console: ${m.text()}`);
      });
      const url = `http://localhost:${server.addr.port}/?auto=1${
        o.op ? `&op=${encodeURIComponent(o.op)}` : ""
      }`;
      await page.goto(url);
      let seen = "";
      const deadline = Date.now() + o.timeoutS * 1000;
      while (Date.now() < deadline) {
        const state = await page.evaluate(() => {
          const g = globalThis as unknown as Record<string, unknown>;
          // Runs in the page (DOM types are not in this program's lib).
          const doc = (g as {
            document?: { querySelector(q: string): { textContent: string | null } | null };
          })
            .document;
          const s = doc?.querySelector("p")?.textContent ?? "";
          return { done: g.__auditReport !== undefined, status: s };
        });
        if (state.status !== seen) {
          seen = state.status;
          log(`audit: ${seen}`);
        }
        if (state.done) break;
        await new Promise((r) => setTimeout(r, 1000));
      }
      const report = await page.evaluate(() =>
        (globalThis as unknown as Record<string, unknown>).__auditReport
      );
      if (report === undefined) {
        throw new Error(`the audit page did not finish within ${o.timeoutS} s`);
      }
      const r = report as AuditReport & { error?: string };
      if (r.error) throw new Error(`the audit page: ${r.error}`);
      return r;
    } finally {
      await browser.close();
    }
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  const { values, positionals } = parseFlags(
    "audit",
    Deno.args,
    {
      op: { type: "string" },
      json: { type: "string" },
      gpu: { type: "boolean", default: false },
      chrome: { type: "string" },
      timeout: { type: "string", default: "1800" },
      port: { type: "string", default: "8123" },
    },
    HELP,
    true,
  );
  const where = positionals[0] ?? "deno";
  if (!["deno", "browser", "serve"].includes(where) || positionals.length > 1) {
    usage(`unknown engine '${positionals.join(" ")}' (deno, browser, serve)`);
  }
  const op = values.op ?? null;
  if (op !== null && !/^[A-Za-z0-9_]+$/.test(op)) {
    usage(`--op takes an op or file name, got '${op}'`);
  }
  if (where === "serve") {
    const port = Number(values.port);
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      usage(`--port must be 1-65535, got '${values.port}'`);
    }
    const dir = await Deno.makeTempDir({ prefix: "audit-page-" });
    const n = await buildPage(dir);
    servePage(dir, port);
    console.log(
      `audit: serving ${n} op audits on http://localhost:${port}/ — open it in Chrome (WebGPU on),\n` +
        `press the button (or add ?auto=1, ?op=NAME), and download the JSON report. Ctrl-C stops.`,
    );
  } else {
    const timeoutS = Number(values.timeout);
    if (!(timeoutS > 0)) {
      usage(`--timeout must be a positive number of seconds, got '${values.timeout}'`);
    }
    let report: AuditReport;
    try {
      report = where === "deno" ? await auditDeno(op) : await auditBrowser({
        op,
        hardware: values.gpu,
        chrome: values.chrome ?? Deno.env.get("CHROME") ?? "/usr/bin/chromium",
        timeoutS,
      });
    } catch (e) {
      console.error(`audit: ${(e as Error).message}`);
      Deno.exit(1);
    }
    if (report.tests.length === 0) usage(`no audit matches --op ${op}`);
    console.log(auditTable(report));
    await writeJson(values.json, report);
    Deno.exit(report.failed > 0 ? 1 : 0);
  }
}
