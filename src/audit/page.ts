/**
 * The audit page's script (bundled for the browser by `deno task
 * audit:browser` and `deno task audit:serve`): it gives the test files the
 * little of `Deno` they touch, runs the kernel audits on the page's WebGPU
 * adapter, shows each check as it finishes, offers the JSON report for
 * download and leaves it in `window.__auditReport` for a driver.
 *
 * Query: `?op=NAME` audits one op's file (or the tests named `NAME(`),
 * `?auto=1` starts at once (otherwise a button does).
 * @module
 */

import {
  type AuditReport,
  auditReport,
  type AuditTestResult,
  collectTests,
  runTests,
  selectTests,
} from "./runner.ts";

type Loaders = Record<string, () => Promise<unknown>>;

/** Installs the `Deno` the test files and the GPU runtime read (env lookups return nothing). */
function installDenoShim(): void {
  const g = globalThis as unknown as { Deno?: unknown };
  if (g.Deno) return;
  g.Deno = {
    test: () => {
      throw new Error("Deno.test outside the audit collector");
    },
    env: { get: () => undefined, has: () => false, toObject: () => ({}) },
    build: { os: "browser" },
  };
}

/**
 * The little of the DOM this page uses, typed here: the project's type check
 * runs with Deno's libraries, and the DOM library would change theirs.
 */
interface Node {
  textContent: string | null;
  disabled: boolean;
  href: string;
  onclick: (() => void) | null;
  setAttribute(name: string, value: string): void;
  append(...children: (Node | string)[]): void;
}
const page = globalThis as unknown as {
  document: { body: Node; createElement(tag: string): Node };
  location: { search: string };
};

function el(tag: string, text = "", attrs: Record<string, string> = {}): Node {
  const e = page.document.createElement(tag);
  e.textContent = text;
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

function showResult(body: Node, r: AuditTestResult): void {
  const add = (cells: string[], bad: boolean) => {
    const tr = el("tr", "", bad ? { class: "fail" } : {});
    for (const c of cells) tr.append(el("td", c));
    body.append(tr);
  };
  for (const c of r.checks) {
    add([
      r.file,
      c.label,
      c.maxAbsError === 0 ? "0" : c.maxAbsError.toExponential(2),
      c.worstRatio.toFixed(3),
      `${c.atol}, ${c.rtol}`,
      c.pass ? "pass" : "FAIL",
    ], !c.pass);
  }
  if (r.status === "fail" && r.checks.every((c) => c.pass)) {
    add([r.file, r.name, "-", "-", "-", `FAIL: ${r.error ?? ""}`], true);
  }
  if (r.status === "ignored") add([r.file, r.name, "-", "-", "-", "ignored"], false);
}

/** Builds the page and runs the audit (at once with `?auto=1`). */
export async function runPage(loaders: Loaders): Promise<void> {
  installDenoShim();
  const { openGpu } = await import("../gpu/device.ts");
  const params = new URLSearchParams(page.location.search);
  const op = params.get("op");
  const root = page.document.body;
  root.append(el("h1", "Kernel audit"));
  const status = el("p", "opening the WebGPU adapter…");
  root.append(status);
  let gpu;
  try {
    gpu = await openGpu({ log: false });
  } catch (e) {
    status.textContent = `no WebGPU adapter: ${(e as Error).message}`;
    (globalThis as Record<string, unknown>).__auditReport = { error: status.textContent };
    return;
  }
  const a = gpu.adapter;
  root.append(
    el(
      "p",
      `adapter: ${a.description} — vendor ${a.vendor || "-"}, architecture ${
        a.architecture || "-"
      }${a.software ? " (software)" : ""}`,
    ),
  );
  const button = el("button", op ? `Audit ${op}` : "Audit every op");
  const download = el("a", "", { download: "audit.json" });
  root.append(button, " ", download);
  const table = el("table");
  const head = el("tr");
  for (const h of ["op file", "check", "max |err|", "err/bound", "bound (atol, rtol)", "verdict"]) {
    head.append(el("th", h));
  }
  const thead = el("thead"), body = el("tbody");
  thead.append(head);
  table.append(thead, body);
  root.append(table);

  const start = async () => {
    button.disabled = true;
    const t0 = performance.now();
    status.textContent = "loading the audits…";
    const tests = selectTests(
      await collectTests(Object.keys(loaders), (f) => loaders[f]()),
      op,
    );
    const results = await runTests(tests, (r, i, n) => {
      showResult(body, r);
      status.textContent = `${i + 1}/${n} tests run`;
    });
    const report: AuditReport = auditReport(
      `chrome ${/Chrome\/([\d.]+)/.exec(navigator.userAgent)?.[1] ?? navigator.userAgent} (dawn)`,
      a,
      t0,
      op,
      results,
    );
    status.textContent = `${report.passed} passed, ${report.failed} failed in ${
      report.seconds.toFixed(0)
    } s`;
    download.href = URL.createObjectURL(
      new Blob([JSON.stringify(report, null, 2)], { type: "application/json" }),
    );
    download.textContent = "download the JSON report";
    (globalThis as Record<string, unknown>).__auditReport = report;
  };
  button.onclick = () => void start();
  status.textContent = "ready";
  if (params.get("auto") === "1") await start();
}
