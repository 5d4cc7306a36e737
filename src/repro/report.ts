/**
 * What a repro run writes: the claims table on stdout, `claims.json`
 * (machine-readable: every claim with its values and verdict, the profile,
 * seeds, adapter, commit, timings) and `report.md` (the tables beside the
 * paper's numbers, and the figures).
 * @module
 */

import { writeFileAtomic } from "../data/mod.ts";
import type { ClaimResult, Results } from "./claims.ts";
import type { RunRecord } from "./runner.ts";
import type { Summary } from "./stats.ts";

/** Everything claims.json holds. */
export interface RunReport {
  study: string;
  title: string;
  profile: string;
  profileReason: string;
  seeds: number[];
  /** What the seeds are to the thresholds, where the profile keeps design and held-apart seeds. */
  seedRole?: string;
  /** Which of the profile's seed sets the run used: its design seeds or held-apart ones. */
  seedKind?: "design" | "held" | "mixed";
  adapter: { description: string; software: boolean };
  commit: string;
  /**
   * The commit whose claims files judged these results, where it is not the
   * run's own: `deno task repro:merge` judges kept results again.
   */
  judged?: string;
  /** Reported from the experiment cache alone (`--cached-only`): nothing trained; `seconds` is the report's. */
  cachedOnly?: boolean;
  started: string;
  seconds: number;
  shard: string | null;
  claims: ClaimResult[];
  experiments: Record<string, unknown>;
  runs: RunRecord[];
  figures: string[];
}

/** Formats a summary as "55.00" or "55.00 ± 0.41 [54.6, 55.4]" (n > 1). */
export function formatSummary(s: Summary | null, digits = 2): string {
  if (!s) return "-";
  if (s.n === 1) return s.mean.toFixed(digits);
  return `${s.mean.toFixed(digits)} ± ${s.std.toFixed(digits)} [${s.ci95[0].toFixed(digits)}, ${
    s.ci95[1].toFixed(digits)
  }]`;
}

/** The claims table as aligned plain text. */
export function claimsTable(claims: ClaimResult[]): string {
  const rows = [["claim", "paper", "ours", "tolerance", "verdict"]];
  for (const c of claims) {
    const verdict = c.verdict + (c.control ? ` (control ${c.control.verdict})` : "");
    rows.push([
      c.id,
      c.paper === null ? "-" : String(c.paper),
      formatSummary(c.ours, 3),
      c.tolerance,
      verdict,
    ]);
  }
  const widths = rows[0].map((_, j) => Math.max(...rows.map((r) => r[j].length)));
  return rows.map((r) => r.map((v, j) => v.padEnd(widths[j])).join("  ").trimEnd()).join("\n");
}

/** Counts of each verdict. */
export function verdictCounts(claims: ClaimResult[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of claims) out[c.verdict] = (out[c.verdict] ?? 0) + 1;
  return out;
}

function resultsObject(results: Results): Record<string, unknown> {
  return Object.fromEntries(results);
}

/** Writes claims.json and report.md into `dir` (atomically) and returns the report. */
export async function writeReport(
  dir: string,
  r: Omit<RunReport, "experiments"> & { results: Results },
): Promise<RunReport> {
  const { results, ...rest } = r;
  const report: RunReport = { ...rest, experiments: resultsObject(results) };
  await Deno.mkdir(dir, { recursive: true });
  const enc = new TextEncoder();
  await writeFileAtomic(`${dir}/claims.json`, enc.encode(JSON.stringify(report, null, 2) + "\n"));
  await writeFileAtomic(`${dir}/report.md`, enc.encode(markdown(report)));
  return report;
}

function mdEscape(s: string): string {
  return s.replaceAll("|", "\\|");
}

/** A run's commit, and the commit whose claims judged it where that is another. */
export function judgedCommit(r: Pick<RunReport, "commit" | "judged">): string {
  return r.commit + (r.judged && r.judged !== r.commit ? ` (claims judged at ${r.judged})` : "");
}

/** When the run started, or (--cached-only) when its report was made from the cache. */
export function startedAt(r: Pick<RunReport, "started" | "cachedOnly">): string {
  return `${
    r.cachedOnly ? "reported from the experiment cache (--cached-only) at" : "started"
  } ${r.started}`;
}

/** report.md: the claims beside the paper, experiment details, figures. */
export function markdown(r: RunReport): string {
  const counts = verdictCounts(r.claims);
  const lines = [
    `# ${r.title} — repro report (${r.study})`,
    "",
    `- profile: **${r.profile}** (${r.profileReason})`,
    `- seeds: ${r.seeds.join(", ")}${r.seeds.length > 1 ? " (mean ± sd [95% interval])" : ""}${
      r.seedRole ? `; ${r.seedRole}` : ""
    }`,
    `- adapter: ${r.adapter.description}${r.adapter.software ? " (software rasterizer)" : ""}`,
    `- commit: ${judgedCommit(r)}; ${startedAt(r)}; ${r.seconds.toFixed(0)} s${
      r.shard ? `; shard ${r.shard}` : ""
    }`,
    `- verdicts: ${Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(", ")}`,
    "",
    "## Claims",
    "",
    "| claim | source | paper | ours | tolerance | verdict | note |",
    "|---|---|---|---|---|---|---|",
    ...r.claims.map((c) =>
      `| ${mdEscape(c.wording)} (\`${c.id}\`) | ${mdEscape(c.source)} | ${c.paper ?? "-"} | ${
        formatSummary(c.ours, 3)
      } | ${c.tolerance} | **${c.verdict}** | ${
        mdEscape(
          [
            c.reason,
            c.control
              ? `negative control \`${c.control.id}\`: ${
                formatSummary(c.control.ours, 3)
              } → ${c.control.verdict}`
              : "",
          ]
            .filter(Boolean).join("; "),
        )
      } |`
    ),
    "",
    "## Experiments",
    "",
    "| experiment | seeds | result |",
    "|---|---|---|",
    ...Object.entries(r.experiments).map(([id, v]) => {
      const e = v as { notrun?: string; seeds?: number[]; metrics?: Record<string, unknown>[] };
      if (e.notrun) return `| ${id} | - | not run: ${mdEscape(e.notrun)} |`;
      const m = e.metrics!.map((x) => JSON.stringify((x as { eval?: unknown }).eval ?? x)).join(
        "; ",
      );
      return `| ${id} | ${e.seeds!.join(", ")} | ${mdEscape(m)} |`;
    }),
    "",
  ];
  if (r.figures.length) {
    // Charts are SVG and shown inline; other files (the PNG of the
    // reconstruction grid's pixels, which figure2.svg labels) are linked.
    lines.push("## Figures", "");
    for (const f of r.figures.filter((f) => f.endsWith(".svg"))) lines.push(`![${f}](${f})`, "");
    const other = r.figures.filter((f) => !f.endsWith(".svg"));
    if (other.length) lines.push(`Also: ${other.map((f) => `[${f}](${f})`).join(", ")}`, "");
  }
  return lines.join("\n");
}

/**
 * The checked-out commit (short), with "-dirty" when tracked files differ from
 * it; "unknown" outside a git checkout. A run reads it when it starts (a long run
 * may outlive it).
 */
export async function commitId(): Promise<string> {
  try {
    const git = (...args: string[]) =>
      new Deno.Command("git", { args, stdout: "piped", stderr: "null" }).output();
    const head = new TextDecoder().decode((await git("rev-parse", "--short", "HEAD")).stdout)
      .trim();
    if (!head) return "unknown";
    const dirty = (await git("diff", "--quiet", "HEAD", "--")).code === 1;
    return dirty ? `${head}-dirty` : head;
  } catch {
    return "unknown";
  }
}
