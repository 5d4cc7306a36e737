/**
 * The results page: `docs/results.md`, generated from the `claims.json` of
 * repro runs, never written by hand. A run is added by copying its
 * claims.json and figures into `docs/results/<study>-<profile>/` (replacing
 * the previous run of that study and profile); the page is then rebuilt from
 * every folder there, so what it says is always what a committed claims.json
 * says, with the commit and date of the run that produced it.
 * @module
 */

import { writeFileAtomic } from "../data/mod.ts";
import { formatSummary, judgedCommit, type RunReport, startedAt } from "./report.ts";
import { PROFILES } from "./profiles.ts";

/** The fields of claims.json the page reads (a subset of {@link RunReport}). */
export type PageRun =
  & Pick<
    RunReport,
    | "study"
    | "title"
    | "profile"
    | "seeds"
    | "seedRole"
    | "seedKind"
    | "adapter"
    | "commit"
    | "judged"
    | "cachedOnly"
    | "started"
    | "seconds"
    | "claims"
  >
  & { figures: string[]; shard?: string | null };

/** An error in a claims.json, naming the file and the field. */
export class ResultsError extends Error {
  constructor(readonly file: string, message: string) {
    super(`${file}: ${message}`);
    this.name = "ResultsError";
  }
}

const REQUIRED: [keyof PageRun, "string" | "number"][] = [
  ["study", "string"],
  ["title", "string"],
  ["profile", "string"],
  ["commit", "string"],
  ["started", "string"],
  ["seconds", "number"],
];

/** Parses and checks one claims.json's text; `file` names it in errors. */
export function parseRun(text: string, file: string): PageRun {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ResultsError(file, `not JSON (${(e as Error).message})`);
  }
  if (typeof raw !== "object" || raw === null) throw new ResultsError(file, "not an object");
  const r = raw as Record<string, unknown>;
  for (const [k, type] of REQUIRED) {
    const ok = type === "string" ? typeof r[k] === "string" : typeof r[k] === "number";
    if (!ok) throw new ResultsError(file, `field '${k}' must be a ${type}`);
  }
  for (const k of ["seeds", "claims", "figures"] as const) {
    if (!Array.isArray(r[k])) throw new ResultsError(file, `field '${k}' must be a list`);
  }
  const adapter = r.adapter as Record<string, unknown> | undefined;
  if (typeof adapter?.description !== "string" || typeof adapter?.software !== "boolean") {
    throw new ResultsError(file, "field 'adapter' must have a description and software flag");
  }
  (r.claims as unknown[]).forEach((c, i) => {
    const claim = c as Record<string, unknown>;
    for (const k of ["id", "wording", "verdict", "tolerance"]) {
      if (typeof claim?.[k] !== "string") {
        throw new ResultsError(file, `claims[${i}].${k} must be a string`);
      }
    }
  });
  return raw as PageRun;
}

const profileRank = (p: string) => {
  const i = (PROFILES as readonly string[]).indexOf(p);
  return i < 0 ? PROFILES.length : i;
};

/** Runs in page order: profiles smallest first, then study name. */
export function sortRuns(runs: { dir: string; run: PageRun }[]): { dir: string; run: PageRun }[] {
  return [...runs].sort((a, b) =>
    profileRank(a.run.profile) - profileRank(b.run.profile) ||
    a.run.study.localeCompare(b.run.study)
  );
}

const cell = (s: string) => s.replaceAll("|", "\\|").replaceAll("\n", " ");

function counts(run: PageRun): string {
  const n: Record<string, number> = {};
  for (const c of run.claims) n[c.verdict] = (n[c.verdict] ?? 0) + 1;
  return Object.entries(n).map(([k, v]) => `${v} ${k}`).join(", ");
}

/**
 * One benchmark result, printed as a JSON line by `deno task bench --json`.
 * `ours` and `peer` are in `unit` (GFLOP/s, GB/s or images/s; higher is
 * better); `peer` is the same work in TensorFlow.js's WebGPU backend (or
 * PyTorch, for the training steps) on the same machine in the same run, or
 * null where it has no equivalent; `ratio` is ours / peer.
 */
export interface BenchRow {
  name: string;
  shape: string;
  ours: number;
  peer: number | null;
  unit: string;
  ratio: number | null;
}

/** Benchmark rows kept for the page, with where and when they were measured. */
export interface KeptBench {
  commit: string;
  date: string;
  /** What produced the rows, e.g. "deno task bench --json --train-batch 32". */
  command: string;
  rows: BenchRow[];
}

/** Parses `deno task bench --json` output (one JSON object per line; other lines are refused). */
export function parseBench(text: string, file: string): BenchRow[] {
  const rows: BenchRow[] = [];
  text.split("\n").forEach((line, i) => {
    if (!line.trim()) return;
    let r: Record<string, unknown>;
    try {
      r = JSON.parse(line);
    } catch {
      throw new ResultsError(file, `line ${i + 1} is not a JSON object`);
    }
    for (const k of ["name", "shape", "unit"]) {
      if (typeof r[k] !== "string") {
        throw new ResultsError(file, `line ${i + 1}: field '${k}' must be a string`);
      }
    }
    if (typeof r.ours !== "number") {
      throw new ResultsError(file, `line ${i + 1}: field 'ours' must be a number`);
    }
    rows.push({
      name: r.name as string,
      shape: r.shape as string,
      ours: r.ours,
      peer: typeof r.peer === "number" ? r.peer : null,
      unit: r.unit as string,
      ratio: typeof r.ratio === "number" ? r.ratio : null,
    });
  });
  if (!rows.length) throw new ResultsError(file, "holds no benchmark rows");
  return rows;
}

const num = (x: number) =>
  x >= 1000 ? Math.round(x).toLocaleString("en-US") : x >= 100 ? x.toFixed(1) : x.toFixed(2);

function benchSection(b: KeptBench): string[] {
  return [
    "## Benchmarks",
    "",
    `\`${b.command}\` at commit ${b.commit}, ${b.date}. \`ours\` and its \`peer\` ran in the same`,
    "process: TensorFlow.js's WebGPU backend on the same adapter for the kernel rows, PyTorch on",
    "the CPU (same model, batch and threads) for the `vs pytorch` rows; `ratio` = ours / peer.",
    "",
    "| name | shape | ours | peer | unit | ratio |",
    "|---|---|---|---|---|---|",
    ...b.rows.map((r) =>
      `| ${cell(r.name)} | ${cell(r.shape)} | ${num(r.ours)} | ${
        r.peer === null ? "-" : num(r.peer)
      } | ${r.unit} | ${r.ratio === null ? "-" : `${r.ratio.toFixed(2)}x`} |`
    ),
    "",
  ];
}

/** Step profile tables kept for the page (the Markdown of `deno task bench:profile --markdown`). */
export interface KeptProfile {
  commit: string;
  date: string;
  command: string;
  markdown: string;
}

function profileSection(p: KeptProfile): string[] {
  return [
    "## Where a training step's time goes",
    "",
    `\`${p.command}\` at commit ${p.commit}, ${p.date}. GPU time per kernel and per kind of transfer`,
    "(in parentheses) from timestamp queries; read the shares, since absolute times move with the",
    "machine's load.",
    "",
    p.markdown.trim(),
    "",
  ];
}

/** The page's Markdown for these runs (`dir` is each run's folder relative to the page). */
export function renderPage(
  runs: { dir: string; run: PageRun }[],
  bench?: KeptBench,
  profile?: KeptProfile,
): string {
  const sorted = sortRuns(runs);
  const lines = [
    "# Results",
    "",
    "Generated by `deno task results` from the `claims.json` files under `docs/results/`;",
    "do not edit by hand. Each section is one repro run: its profile, seeds, adapter, and the",
    "commit and date it ran on. `ours` is the mean over seeds, with the sample standard",
    "deviation and the 95% t-interval when there is more than one seed; a claim passes only when",
    "the whole interval clears its check. `measured` claims are reported, not asserted.",
    "",
  ];
  if (!sorted.length) {
    lines.push("No runs have been added yet (`deno task results --add runs/<folder>`).", "");
    if (bench) lines.push(...benchSection(bench));
    if (profile) lines.push(...profileSection(profile));
    return lines.join("\n");
  }
  lines.push("| study | profile | seeds | commit | date | verdicts |", "|---|---|---|---|---|---|");
  for (const { run } of sorted) {
    lines.push(
      `| ${run.study} | ${run.profile} | ${run.seeds.join(", ")} | ${run.commit} | ${
        run.started.slice(0, 10)
      } | ${counts(run)} |`,
    );
  }
  lines.push("");
  for (const { dir, run } of sorted) {
    lines.push(
      `## ${run.study}, profile \`${run.profile}\`${
        run.seedKind === "design" ? ", design seeds" : ""
      }`,
      "",
      `${cell(run.title)}. Commit ${judgedCommit(run)}, ${startedAt(run)}${
        run.cachedOnly ? "" : `, ${Math.round(run.seconds)} s`
      } on ${run.adapter.description}${run.adapter.software ? " (software adapter)" : ""}; seeds ${
        run.seeds.join(", ")
      }${run.seedRole ? ` (${run.seedRole})` : ""}${run.shard ? `; shard ${run.shard}` : ""}.`,
      "",
      "| claim | paper | ours | check | verdict | negative control |",
      "|---|---|---|---|---|---|",
    );
    for (const c of run.claims) {
      const control = c.control
        ? `\`${c.control.id}\`: ${formatSummary(c.control.ours, 3)}, ${c.control.verdict}`
        : "-";
      lines.push(
        `| \`${c.id}\`: ${cell(c.wording)} | ${c.paper ?? "-"} | ${formatSummary(c.ours, 3)} | ${
          cell(c.tolerance || "-")
        } | **${c.verdict}** | ${cell(control)} |`,
      );
    }
    lines.push("");
    const why = run.claims.filter((c) => c.reason && c.verdict !== "pass");
    if (why.length) {
      for (const c of why) lines.push(`- \`${c.id}\` (${c.verdict}): ${cell(c.reason)}`);
      lines.push("");
    }
    for (const f of run.figures) lines.push(`![${f}](${dir}/${f})`, "");
  }
  if (bench) lines.push(...benchSection(bench));
  if (profile) lines.push(...profileSection(profile));
  return lines.join("\n");
}

/**
 * The folder a run is kept under: `<study>-<profile>`, plus `-design` for a
 * run on a profile's design seeds (kept beside, not instead of, the
 * held-apart run that judges the claims) and the shard if any.
 */
export function runFolder(run: PageRun): string {
  return `${run.study}-${run.profile}${run.seedKind === "design" ? "-design" : ""}${
    run.shard ? `-shard${run.shard.replace("/", "of")}` : ""
  }`;
}

async function readRun(path: string): Promise<PageRun> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new ResultsError(path, `cannot read (${(e as Error).message})`);
  }
  return parseRun(text, path);
}

/**
 * Copies a repro output folder's claims.json and figures into
 * `<docs>/results/<study>-<profile>/`, replacing what was there only once
 * the copy is complete. Returns the folder name.
 */
export async function addRun(src: string, docs: string): Promise<string> {
  const run = await readRun(`${src}/claims.json`);
  const name = runFolder(run);
  const root = `${docs}/results`;
  await Deno.mkdir(root, { recursive: true });
  const tmp = `${root}/.${name}.tmp-${Deno.pid}`;
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
  await Deno.mkdir(tmp);
  await Deno.copyFile(`${src}/claims.json`, `${tmp}/claims.json`);
  for (const f of run.figures) {
    if (f.includes("/") || f.startsWith(".")) {
      throw new ResultsError(`${src}/claims.json`, `figure '${f}' is not a plain file name`);
    }
    try {
      await Deno.copyFile(`${src}/${f}`, `${tmp}/${f}`);
    } catch (e) {
      throw new ResultsError(
        `${src}/${f}`,
        `figure listed in claims.json cannot be copied (${(e as Error).message})`,
      );
    }
  }
  const dest = `${root}/${name}`;
  const old = `${root}/.${name}.old-${Deno.pid}`;
  const hadOld = await Deno.rename(dest, old).then(() => true, () => false);
  await Deno.rename(tmp, dest);
  if (hadOld) await Deno.remove(old, { recursive: true });
  return name;
}

/** Keeps benchmark rows (the text of `deno task bench --json`) as `<docs>/results/bench.json`. */
export async function addBench(
  file: string,
  docs: string,
  meta: { commit: string; date: string; command: string },
): Promise<number> {
  const rows = parseBench(await Deno.readTextFile(file), file);
  await Deno.mkdir(`${docs}/results`, { recursive: true });
  const kept: KeptBench = { ...meta, rows };
  await writeFileAtomic(
    `${docs}/results/bench.json`,
    new TextEncoder().encode(JSON.stringify(kept, null, 2) + "\n"),
  );
  return rows.length;
}

/** Keeps `deno task bench:profile --markdown` output as `<docs>/results/step_profile.json`. */
export async function addStepProfile(
  file: string,
  docs: string,
  meta: { commit: string; date: string; command: string },
): Promise<void> {
  const markdown = await Deno.readTextFile(file);
  if (!/^\|.*\|$/m.test(markdown)) throw new ResultsError(file, "holds no Markdown table");
  await Deno.mkdir(`${docs}/results`, { recursive: true });
  const kept: KeptProfile = { ...meta, markdown };
  await writeFileAtomic(
    `${docs}/results/step_profile.json`,
    new TextEncoder().encode(JSON.stringify(kept, null, 2) + "\n"),
  );
}

/** Rebuilds `<docs>/results.md` from every `<docs>/results/<name>/claims.json`; returns the page. */
export async function writePage(docs: string): Promise<{ page: string; runs: number }> {
  const runs: { dir: string; run: PageRun }[] = [];
  try {
    for await (const e of Deno.readDir(`${docs}/results`)) {
      if (!e.isDirectory || e.name.startsWith(".")) continue;
      runs.push({
        dir: `results/${e.name}`,
        run: await readRun(`${docs}/results/${e.name}/claims.json`),
      });
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  let bench: KeptBench | undefined;
  try {
    bench = JSON.parse(await Deno.readTextFile(`${docs}/results/bench.json`)) as KeptBench;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      throw new ResultsError(`${docs}/results/bench.json`, (e as Error).message);
    }
  }
  let profile: KeptProfile | undefined;
  try {
    profile = JSON.parse(
      await Deno.readTextFile(`${docs}/results/step_profile.json`),
    ) as KeptProfile;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      throw new ResultsError(`${docs}/results/step_profile.json`, (e as Error).message);
    }
  }
  const page = renderPage(runs, bench, profile);
  await writeFileAtomic(`${docs}/results.md`, new TextEncoder().encode(page));
  return { page, runs: runs.length };
}
