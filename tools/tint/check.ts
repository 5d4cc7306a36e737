/**
 * Validates WGSL kernels with Tint, the compiler Chrome uses (through Dawn),
 * besides naga, which Deno's WebGPU uses to run them. The two disagree at the
 * edges (Tint rejects a constant expression whose value is NaN; naga accepts
 * it), so a kernel that runs here can still fail to compile in a browser.
 *
 * This side resolves the sources exactly as the runtime does (kernels/sources.ts)
 * and finds the `@compute` entry points; node/validate.mjs, under Node, compiles
 * each module and each entry point's pipeline with Dawn's null backend (no GPU
 * needed) at WebGPU's default limits, so a kernel over 16 KiB of workgroup
 * storage fails here too. Dawn comes from the npm package `webgpu`, pinned in
 * tools/tint/node/package-lock.json and installed by `.ci/setup`.
 *
 * Usage: deno task tint [--json] [--stdin] [FILE.wgsl ...]
 * @module
 */

import { parseArgs } from "cli";
import { KERNEL_SOURCES, withIncludes } from "../../kernels/sources.ts";

/** What Tint and Dawn said about one `@compute` entry point. */
export interface EntryCheck {
  file: string;
  entry: string;
  ok: boolean;
  /** Tint's or Dawn's message when not ok, else "". */
  message: string;
}

/** How a check ended: results, or why Node or Dawn could not run it. */
export type TintRun =
  | { kind: "checked"; results: EntryCheck[] }
  | { kind: "missing"; message: string };

/** The `@compute` entry point names of a WGSL source, in order. */
export function computeEntries(source: string): string[] {
  const code = source.replace(/\/\*[^]*?\*\//g, " ").replace(/\/\/[^\n]*/g, "");
  return [...code.matchAll(/@compute[^]*?\bfn\s+(\w+)\s*\(/g)].map((m) => m[1]);
}

/**
 * Compiles each source (name → WGSL, default: the project's kernels with
 * includes resolved) as its own shader module and each of its `@compute`
 * entry points as a compute pipeline (layout "auto", override defaults), in a
 * Node child process. Returns one result per entry point, or `missing` when
 * `node` or the `webgpu` package is absent; throws when the child fails any
 * other way, with its stderr.
 */
export async function runTintCheck(
  sources: Readonly<Record<string, string>> = KERNEL_SOURCES,
): Promise<TintRun> {
  const script = new URL("./node/validate.mjs", import.meta.url).pathname;
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command("node", {
      args: [script],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    return { kind: "missing", message: "node is not on PATH (Node.js 20+ runs the Tint check)" };
  }
  const modules = Object.entries(sources).map(([file, code]) => ({
    file,
    code,
    entries: computeEntries(code),
  }));
  const writing = (async () => {
    const writer = child.stdin.getWriter();
    try {
      await writer.write(new TextEncoder().encode(JSON.stringify(modules)));
      await writer.close();
    } catch {
      // The child exited without reading (Dawn missing): its status and stderr say why.
    }
  })();
  const { code, stdout, stderr } = await child.output();
  await writing;
  const err = new TextDecoder().decode(stderr).trim();
  if (code === 2) return { kind: "missing", message: err };
  if (code !== 0) {
    throw new Error(`tools/tint/node/validate.mjs exited with status ${code}: ${err}`);
  }
  return { kind: "checked", results: JSON.parse(new TextDecoder().decode(stdout)) };
}

const HELP = `Usage: deno task tint [--json] [--stdin] [FILE.wgsl ...]

Compiles every @compute entry point with Tint (Chrome's WGSL compiler, via
Dawn's null backend under Node, WebGPU default limits) and prints ok or Tint's
error per entry point. Without files: every kernel of kernels/sources.ts. A
FILE gets its //#include lines resolved as kernels/sources.ts does.
Needs node and \`npm ci --ignore-scripts --prefix tools/tint/node\` (.ci/setup runs it).

  --json   one JSON array of {file, entry, ok, message}
  --stdin  read a JSON object {name: WGSL source} from stdin instead of files
  --help   this text

Exit status: 0 all valid, 1 an entry point is invalid, 2 node or Dawn missing.`;

async function main(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      json: { type: "boolean" },
      stdin: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: true,
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const sources: Record<string, string> = {};
  if (values.stdin) {
    const given = JSON.parse(await new Response(Deno.stdin.readable).text());
    for (const [name, code] of Object.entries(given)) sources[name] = withIncludes(String(code));
  } else if (positionals.length === 0) Object.assign(sources, KERNEL_SOURCES);
  for (const path of positionals) sources[path] = withIncludes(await Deno.readTextFile(path));
  const run = await runTintCheck(sources);
  if (run.kind === "missing") {
    console.error(`tint: ${run.message}`);
    return 2;
  }
  const { results } = run;
  if (values.json) console.log(JSON.stringify(results, null, 2));
  else {
    for (const r of results) {
      console.log(
        `${r.ok ? "ok   " : "ERROR"} ${r.file}:${r.entry}${r.ok ? "" : `\n${r.message}\n`}`,
      );
    }
    const bad = results.filter((r) => !r.ok).length;
    console.log(`tint: ${results.length - bad} of ${results.length} entry points valid`);
  }
  return results.every((r) => r.ok) ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
