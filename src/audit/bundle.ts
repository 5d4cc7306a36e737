/**
 * Builds the audit page: an entry module that imports every test file under
 * tests/ops/ lazily and hands them to {@link runPage}, bundled for the
 * browser by `deno bundle` (node:assert/strict and node:crypto replaced by
 * our shims, and any other node: import refused), plus
 * index.html. Also serves a built page on the loopback interface.
 * @module
 */

const ROOT = new URL("../../", import.meta.url);

/**
 * Test files under tests/ops/ that are not kernel audits: registry_test.ts
 * checks the source tree (every WGSL file and entry point declared), which
 * needs the file system and means the same on any engine; deno task test runs it.
 */
const NOT_AUDITS = new Set(["registry"]);

/** The kernel-audit test-file stems under tests/ops/ (e.g. "softmax"), sorted. */
export async function opTestFiles(): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(new URL("tests/ops/", ROOT))) {
    const m = /^(.+)_test\.ts$/.exec(e.name);
    if (e.isFile && m && !NOT_AUDITS.has(m[1])) out.push(m[1]);
  }
  return out.sort();
}

const HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Kernel audit</title>
<style>
  body { font: 14px system-ui, sans-serif; margin: 1.5em; }
  table { border-collapse: collapse; margin-top: 1em; }
  td, th { border: 1px solid #ccc; padding: 2px 8px; text-align: left; font-family: ui-monospace, monospace; }
  tr.fail td { background: #fdd; }
</style>
</head>
<body>
<script type="module" src="audit.js"></script>
</body>
</html>
`;

/**
 * Writes index.html and audit.js into `dir` (a fresh folder); returns the
 * number of test files bundled. Throws with deno bundle's output on failure.
 */
export async function buildPage(
  dir: string,
  extraTests: Record<string, string> = {},
): Promise<number> {
  const files = await opTestFiles();
  const path = (rel: string) => new URL(rel, ROOT).pathname;
  const loaders = [
    ...files.map((f) => [f, path(`tests/ops/${f}_test.ts`)]),
    ...Object.entries(extraTests),
  ].map(([f, p]) => `  ${JSON.stringify(f)}: () => import(${JSON.stringify(p)}),`);
  const entry = `${dir}/entry.ts`;
  await Deno.writeTextFile(
    entry,
    `import { runPage } from ${JSON.stringify(path("src/audit/page.ts"))};\n` +
      `await runPage({\n${loaders.join("\n")}\n});\n`,
  );
  const config = JSON.parse(await Deno.readTextFile(path("deno.json")));
  const map = `${dir}/import_map.json`;
  await Deno.writeTextFile(
    map,
    JSON.stringify({
      imports: {
        ...config.imports,
        "node:assert/strict": path("src/audit/assert_shim.ts"),
        "node:crypto": path("src/audit/crypto_shim.ts"),
      },
    }),
  );
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "bundle",
      "--quiet",
      "--platform",
      "browser",
      "--import-map",
      map,
      "-o",
      `${dir}/audit.js`,
      entry,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `deno bundle of the audit page failed:\n${new TextDecoder().decode(out.stderr)}`,
    );
  }
  // A Node built-in left in the bundle would stop the page from loading, silently.
  const node = /from\s*"(node:[^"]+)"/.exec(await Deno.readTextFile(`${dir}/audit.js`));
  if (node) {
    throw new Error(
      `the audit page's bundle imports ${node[1]}: give it a browser shim in src/audit/`,
    );
  }
  await Deno.writeTextFile(`${dir}/index.html`, HTML);
  return files.length + Object.keys(extraTests).length;
}

/** Serves `dir`'s index.html and audit.js on 127.0.0.1 (`port` 0: any free port). */
export function servePage(dir: string, port: number): Deno.HttpServer<Deno.NetAddr> {
  const types: Record<string, string> = {
    "/": "text/html",
    "/index.html": "text/html",
    "/audit.js": "text/javascript",
  };
  return Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, async (req) => {
    const p = new URL(req.url).pathname;
    const type = types[p];
    // Browsers ask for an icon the page does not have; no content, not an error.
    if (p === "/favicon.ico") return new Response(null, { status: 204 });
    if (!type) return new Response("not found", { status: 404 });
    const file = p === "/audit.js" ? "audit.js" : "index.html";
    return new Response(await Deno.readFile(`${dir}/${file}`), {
      headers: { "content-type": type, "cache-control": "no-store" },
    });
  });
}
