/**
 * Claims (repro/claims/<study>.yaml) and their verdicts. A value claim
 * compares one experiment's metric with the paper's number (tolerance) or a
 * bound (min/max); an ordering claim compares two experiments (margin), by
 * their difference or, with `combine: ratio`, their quotient; a best-of
 * claim compares one experiment with the best of a set (`bestOf`, margin):
 * per seed, its value minus the largest value of the set. A `timing` claim
 * is asserted only on a hardware adapter: measured on a software one, whose
 * timings say nothing about the paper's GPUs. With
 * several seeds a verdict needs the 95% interval to agree: `pass` when it
 * clears the bound, `fail` when it misses it entirely, `inconclusive` between.
 * A claim with a negative control is also evaluated on the control, which
 * must fail: a check that cannot fail is reported as `invalid`.
 * @module
 */

import { ConfigError, parseYaml } from "../train/config.ts";
import { summarize, type Summary } from "./stats.ts";
import type { ProfileName } from "./profiles.ts";
import { isSoftwareAdapter } from "../gpu/device.ts";

/** What a profile asserts about a claim. */
export interface Check {
  tolerance?: number;
  min?: number;
  max?: number;
  margin?: number;
  /** Run the experiments and report the value without asserting anything. */
  measure?: true;
  /** With `measure`: why this profile reports the value instead of asserting it (shown in the report). */
  why?: string;
}

/** One claim of the paper (or of its CI-scale version). */
export interface Claim {
  id: string;
  wording: string;
  source: string;
  metric: string;
  /** The paper's number (in `metric`'s unit), or null for CI-scale claims. */
  paper: number | null;
  /** Value and best-of claims: the experiment. Ordering claims use greater/lesser. */
  experiment?: string;
  greater?: string;
  lesser?: string;
  /** Ordering claims: greater - lesser (default) or greater / lesser, per seed. */
  combine?: "difference" | "ratio";
  /** Best-of claims: `experiment` minus the largest of these (per seed), against a margin. */
  bestOf?: string[];
  /** Path of the metric in an experiment's results, e.g. "eval.accuracy". */
  value: string;
  /** Multiplier from the metric to the claim's unit (100 for percent). */
  scale?: number;
  /** Negative control: an experiment that replaces `experiment` (or `greater`) and must fail. */
  control?: string;
  /**
   * The value compares wall-clock timings: on a software adapter (the GPU
   * emulated on CPU cores shared with whatever else runs) it is reported
   * (`measured`), never asserted.
   */
  timing?: boolean;
  profiles: Partial<Record<ProfileName, Check>>;
}

/** A study's claims file. */
export interface Study {
  study: string;
  title: string;
  claims: Claim[];
  file: string;
}

/**
 * Verdicts a claim can get. `measured`: the profile says `measure: true`:
 * the experiments run and the value is reported, nothing is asserted (e.g.
 * a paper number at CPU scale).
 */
export type Verdict = "pass" | "fail" | "inconclusive" | "not run" | "invalid" | "measured";

/** A claim's outcome in one run. */
export interface ClaimResult {
  id: string;
  wording: string;
  source: string;
  metric: string;
  paper: number | null;
  /** Ours: the value (mean over seeds) or the ordering's difference. */
  ours: Summary | null;
  check: Check | null;
  /** "±2", ">= 0.5", "margin 3" ... */
  tolerance: string;
  verdict: Verdict;
  reason: string;
  control?: { id: string; ours: Summary | null; verdict: Verdict };
}

/** Per experiment: one metrics object per seed (seed order shared by all experiments). */
export type Results = Map<
  string,
  { seeds: number[]; metrics: Record<string, unknown>[] } | { notrun: string }
>;

const HERE = new URL("../../repro/claims/", import.meta.url);

/** Loads and checks `repro/claims/<study>.yaml` (or a claims file given by path). */
export async function loadStudy(study: string): Promise<Study> {
  const url = study.endsWith(".yaml") ? new URL(`file://${study}`) : new URL(`${study}.yaml`, HERE);
  let text: string;
  try {
    text = await Deno.readTextFile(url);
  } catch {
    throw new ConfigError(url.pathname, `no such study '${study}'`);
  }
  const raw = parseYaml(text, url.pathname) as Study;
  const file = url.pathname;
  const ids = new Set<string>();
  for (const c of raw.claims ?? []) {
    const bad = (why: string): never => {
      throw new ConfigError(file, `claim ${c.id ?? "(no id)"}: ${why}`);
    };
    if (!c.id || ids.has(c.id)) bad("missing or duplicate id");
    ids.add(c.id);
    if (!c.wording || !c.source || !c.metric || !c.value) {
      bad("needs wording, source, metric and value");
    }
    if (!c.experiment === !(c.greater && c.lesser)) {
      bad("needs either experiment or greater + lesser");
    }
    if (c.bestOf !== undefined) {
      if (!c.experiment || !Array.isArray(c.bestOf) || c.bestOf.length === 0) {
        bad("bestOf needs experiment and a non-empty list of experiments");
      }
    }
    if (c.combine !== undefined && (!c.greater || !["difference", "ratio"].includes(c.combine))) {
      bad("combine is difference or ratio, on ordering claims only");
    }
    const compared = Boolean(c.greater) || c.bestOf !== undefined;
    if (c.timing !== undefined && typeof c.timing !== "boolean") {
      bad("timing must be true or false");
    }
    for (const [p, check] of Object.entries(c.profiles ?? {})) {
      const all = Object.keys(check ?? {});
      const keys = all.filter((k) => k !== "why");
      if (
        keys.length !== 1 || !["tolerance", "min", "max", "margin", "measure"].includes(keys[0])
      ) {
        bad(`profile ${p} must give exactly one of tolerance, min, max, margin, measure`);
      }
      if (keys[0] === "measure" && (check as Check).measure !== true) {
        bad(`profile ${p}: measure must be true`);
      }
      if (all.includes("why") && (keys[0] !== "measure" || !(check as Check).why?.trim())) {
        bad(`profile ${p}: why goes with measure only, as a non-empty sentence`);
      }
      if (keys[0] !== "measure" && (keys[0] === "margin") !== compared) {
        bad(`profile ${p}: margin goes with ordering and best-of claims only`);
      }
      if (keys[0] === "tolerance" && c.paper === null) {
        bad(`profile ${p}: a tolerance needs the paper's number`);
      }
    }
  }
  return { ...raw, file };
}

/**
 * Every experiment the claims checked in `profile` need (including
 * controls); all claims without a profile. With `asserted`, only the claims
 * the profile asserts (not those it only measures, nor, on a software
 * adapter, the timing claims, which are only measured there).
 */
export function experimentsOf(
  study: Study,
  profile?: ProfileName,
  opts: { asserted?: boolean; softwareAdapter?: boolean } = {},
): string[] {
  const ids = new Set<string>();
  for (const c of study.claims) {
    const check = profile ? c.profiles?.[profile] : undefined;
    if (profile && !check) continue;
    if (opts.asserted && (!check || check.measure || (c.timing && opts.softwareAdapter))) continue;
    // A value that is only reported needs no negative control.
    const control = check?.measure ? undefined : c.control;
    for (const id of [c.experiment, c.greater, c.lesser, control, ...(c.bestOf ?? [])]) {
      if (id) ids.add(id);
    }
  }
  return [...ids];
}

function metric(m: Record<string, unknown>, path: string): number {
  let v: unknown = m;
  for (const k of path.split(".")) v = (v as Record<string, unknown> | undefined)?.[k];
  if (typeof v !== "number") throw new Error(`metric '${path}' is missing from results`);
  return v;
}

function values(
  results: Results,
  id: string,
  path: string,
  scale: number,
  seeds?: number[],
): number[] | string {
  const r = results.get(id);
  if (!r) return `experiment ${id} was not run in this shard`;
  if ("notrun" in r) return `${id}: ${r.notrun}`;
  try {
    const ms = seeds ? seeds.map((s) => r.metrics[r.seeds.indexOf(s)]) : r.metrics;
    return ms.map((m) => metric(m, path) * scale);
  } catch (e) {
    // e.g. a run cached before the trainer recorded this metric (rerun with --fresh)
    return `${id}: ${(e as Error).message}`;
  }
}

/**
 * The seeds a comparison of experiments `ids` pairs on: all of them when the
 * experiments ran on the same seeds, else the ones every experiment ran (a
 * run joined from others may hold some experiments on more seeds), with a
 * note saying so; an experiment that did not run is left to values().
 */
function pairedSeeds(results: Results, ids: string[]): { seeds?: number[]; note: string } {
  const ran = ids.map((id) => results.get(id))
    .filter((r): r is { seeds: number[]; metrics: Record<string, unknown>[] } =>
      !!r && !("notrun" in r)
    );
  if (ran.length < ids.length || ran.every((r) => r.seeds.join() === ran[0].seeds.join())) {
    return { note: "" };
  }
  const seeds = ran[0].seeds.filter((s) => ran.every((r) => r.seeds.includes(s)))
    .sort((a, b) => a - b);
  return {
    seeds,
    note: seeds.length
      ? `paired on seeds ${seeds.join(", ")}, the ones ${ids.join(", ")} all ran`
      : `${ids.join(", ")} ran on no seed in common`,
  };
}

/** The software adapters among the runs of `ids` (summary field `adapter`), by description. */
function softwareAdapters(results: Results, ids: string[]): string[] {
  const found = new Set<string>();
  for (const id of ids) {
    const r = results.get(id);
    if (!r || "notrun" in r) continue;
    for (const m of r.metrics) {
      const a = m.adapter;
      if (typeof a === "string" && isSoftwareAdapter({ description: a })) found.add(a);
    }
  }
  return [...found];
}

function describe(check: Check): string {
  if (check.tolerance !== undefined) return `±${check.tolerance}`;
  if (check.min !== undefined) return `>= ${check.min}`;
  if (check.max !== undefined) return `<= ${check.max}`;
  if (check.measure) return "reported only";
  return `margin ${check.margin}`;
}

/** pass / fail / inconclusive of a summary against a check (interval-aware). */
function judge(s: Summary, check: Check, paper: number | null): Verdict {
  if (check.measure) return "measured";
  const [lo, hi] = s.ci95;
  let inside: (x: number) => boolean;
  if (check.tolerance !== undefined) inside = (x) => Math.abs(x - paper!) <= check.tolerance!;
  else if (check.min !== undefined) inside = (x) => x >= check.min!;
  else if (check.max !== undefined) inside = (x) => x <= check.max!;
  else inside = (x) => x >= check.margin!;
  if (s.n === 1) return inside(s.mean) ? "pass" : "fail";
  if (check.tolerance !== undefined) {
    if (inside(lo) && inside(hi)) return "pass";
    if (hi < paper! - check.tolerance || lo > paper! + check.tolerance) return "fail";
    return "inconclusive";
  }
  if (inside(lo) && inside(hi)) return "pass";
  if (!inside(lo) && !inside(hi)) return "fail";
  return "inconclusive";
}

function evaluateWith(
  c: Claim,
  check: Check,
  results: Results,
  main: string,
): { ours: Summary | null; verdict: Verdict; reason: string } {
  const scale = c.scale ?? 1;
  const paired = pairedSeeds(results, [main, ...(c.lesser ? [c.lesser] : []), ...(c.bestOf ?? [])]);
  if (paired.seeds?.length === 0) return { ours: null, verdict: "not run", reason: paired.note };
  const a = values(results, main, c.value, scale, paired.seeds);
  if (typeof a === "string") return { ours: null, verdict: "not run", reason: a };
  let xs = a;
  if (c.lesser) {
    const b = values(results, c.lesser, c.value, scale, paired.seeds);
    if (typeof b === "string") return { ours: null, verdict: "not run", reason: b };
    xs = c.combine === "ratio"
      ? a.map((v, i) => v / b[i]) // paired by seed
      : a.map((v, i) => v - b[i]);
  }
  let reason = "";
  if (c.bestOf) {
    const sets: number[][] = [];
    for (const id of c.bestOf) {
      const b = values(results, id, c.value, scale, paired.seeds);
      if (typeof b === "string") return { ours: null, verdict: "not run", reason: b };
      sets.push(b);
    }
    const best = a.map((_, i) => Math.max(...sets.map((b) => b[i]))); // per seed
    xs = a.map((v, i) => v - best[i]);
    const means = sets.map((b) => b.reduce((x, y) => x + y, 0) / b.length);
    reason = `best of the set (mean over seeds): ${c.bestOf[means.indexOf(Math.max(...means))]}`;
  }
  const ours = summarize(xs);
  reason = [reason, paired.note].filter(Boolean).join("; ");
  return { ours, verdict: judge(ours, check, c.paper), reason };
}

/** Where the results were measured. */
export interface RunContext {
  /** The adapter is a software rasterizer: timing claims are reported, not asserted. */
  softwareAdapter?: boolean;
}

/** Evaluates every claim of `study` for `profile` on `results`. */
export function evaluateClaims(
  study: Study,
  profile: ProfileName,
  results: Results,
  context: RunContext = {},
): ClaimResult[] {
  return study.claims.map((c) => {
    const asserted = c.profiles?.[profile] ?? null;
    // Timings from a software adapter (this run's, or any run a merged report holds) are reported only.
    const timed = c.timing && asserted && !asserted.measure;
    const found = timed
      ? softwareAdapters(
        results,
        [c.experiment, c.greater, c.lesser, ...(c.bestOf ?? [])].filter((x): x is string =>
          Boolean(x)
        ),
      )
      : [];
    const demoted = Boolean(timed && (context.softwareAdapter || found.length > 0));
    const check: Check | null = demoted ? { measure: true } : asserted;
    const base = {
      id: c.id,
      wording: c.wording,
      source: c.source,
      metric: c.metric,
      paper: c.paper,
      check,
      tolerance: check ? describe(check) : "-",
    };
    if (!check) {
      const checked = Object.keys(c.profiles ?? {}).join(", ") || "none";
      return {
        ...base,
        ours: null,
        verdict: "not run",
        reason: `not checked in profile ${profile} (checked in: ${checked})`,
      };
    }
    const main = c.experiment ?? c.greater!;
    const r: ClaimResult = { ...base, ...evaluateWith(c, check, results, main) };
    if (check.why && r.verdict === "measured") {
      r.reason = r.reason ? `${check.why.trim()}; ${r.reason}` : check.why.trim();
    }
    if (demoted && r.verdict === "measured") {
      r.tolerance = `${describe(asserted!)} (not asserted)`;
      r.reason = `a timing on a software adapter${found.length ? ` (${found.join(", ")})` : ""}, ` +
        "whose CPU cores other work shares: reported, not asserted";
    }
    if (c.control && !check.measure && r.verdict !== "not run") {
      const ctl = evaluateWith(c, check, results, c.control);
      r.control = { id: c.control, ours: ctl.ours, verdict: ctl.verdict };
      if (ctl.verdict === "pass") {
        r.verdict = "invalid";
        r.reason = `negative control ${c.control} passes too: this check cannot fail`;
      }
    }
    return r;
  });
}

/**
 * The claims `profile` asserts (not `measure`) whose verdict is not `pass`,
 * as "id (verdict)": what `--strict` fails on. Timing claims on a software
 * adapter are only measured there, so they are left out.
 */
export function strictFailures(
  results: ClaimResult[],
  study: Study,
  profile: ProfileName,
  context: RunContext = {},
): string[] {
  const asserted = new Set(
    study.claims.filter((c) =>
      c.profiles?.[profile] && !c.profiles[profile]!.measure &&
      !(c.timing && context.softwareAdapter)
    ).map((c) => c.id),
  );
  return results
    .filter((r) => asserted.has(r.id) && r.verdict !== "pass" && r.verdict !== "measured")
    .map((r) => `${r.id} (${r.verdict})`);
}
