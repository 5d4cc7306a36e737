/**
 * The plan of one study or all of them (deduplicated through
 * src/repro/dag.ts) with each experiment's workload and, given training
 * rates, its estimated time and the per-level wall time with N shards:
 * what `deno task repro:plan` prints and what `deno task gpu-check`
 * projects.
 * @module
 */

import { loadStudy } from "./claims.ts";
import { buildDag, type DagNode, levelCount } from "./dag.ts";
import { estimatePlan, formatDuration, stepsPerEpoch, type Workload } from "./estimate.ts";
import { workloadsOf } from "./calibrate.ts";
import type { Profile } from "./profiles.ts";

/** The paper's studies; "all" is every one of them (what the GPU workflow plans). */
export const STUDIES = ["tin", "cub", "sweep"] as const;

/** Studies beyond the paper, planned by name only (never part of "all"). */
export const EXTRA_STUDIES = ["scale"] as const;

/** A plan before any measurement. */
export interface Plan {
  studies: string[];
  profile: Profile;
  dag: DagNode[];
  work: Map<string, Workload>;
}

/** The plan of `study` ("all" for every study) under `p`. */
export async function loadPlan(study: string, p: Profile): Promise<Plan> {
  const names = study === "all" ? [...STUDIES] : [study];
  const studies = await Promise.all(names.map((s) => loadStudy(s)));
  const dag = buildDag(studies, p);
  return { studies: names, profile: p, dag, work: await workloadsOf(dag, p) };
}

/** One experiment's row of the plan. */
export interface PlanRow {
  id: string;
  level: number;
  deps: string[];
  studies: string[];
  kind: "train" | "timing" | "notrun";
  mode: string;
  trainImages: number;
  evalImages: number;
  epochs: number;
  batchSize: number;
  steps: number;
  /** Calibrated shape whose rate prices it. */
  shape: string;
  imagesPerSecond: number | null;
  seconds: number | null;
}

/** The plan as `repro:plan --json` writes it. */
export interface PlanJson {
  profile: string;
  studies: string[];
  adapter: string | null;
  shards: number;
  levelCount: number;
  experiments: PlanRow[];
  levels: {
    level: number;
    ids: string[];
    serialSeconds: number | null;
    wallSeconds: number | null;
    shards: { ids: string[]; seconds: number | null }[];
  }[];
  serialSeconds: number | null;
  wallSeconds: number | null;
  /** Where each shape's rate came from: "measured", "cached" or "derived". */
  rates: Record<string, { imagesPerSecond: number; source: string }>;
}

/**
 * The plan's rows, levels and totals with `shards` jobs per level; times
 * are null without rates. `sources` says where each rate came from.
 */
export function planJson(
  plan: Plan,
  shards: number,
  rates: Map<string, number> | null,
  sources: Map<string, string> = new Map(),
  adapter: string | null = null,
): PlanJson {
  // The split into shards never depends on rates: a zero rate map still yields it.
  const est = estimatePlan(
    plan.dag,
    plan.work,
    rates ?? new Map([...plan.work.values()].map((w) => [w.rateKey, 1])),
    shards,
  );
  const t = (s: number) => (rates ? s : null);
  const experiments = plan.dag.map((n): PlanRow => {
    const w = plan.work.get(n.id)!;
    return {
      id: n.id,
      level: n.level,
      deps: n.deps,
      studies: n.studies,
      kind: w.kind,
      mode: w.kind === "notrun" ? "-" : w.kind === "timing" ? "timing" : w.mode,
      trainImages: w.trainImages,
      evalImages: w.evalImages,
      epochs: w.epochs,
      batchSize: w.batchSize,
      steps: w.kind === "train" ? stepsPerEpoch(w.trainImages, w.batchSize) * w.epochs : 0,
      shape: w.rateKey,
      imagesPerSecond: rates && w.kind !== "notrun" ? rates.get(w.rateKey) ?? null : null,
      seconds: t(est.seconds[n.id]),
    };
  });
  return {
    profile: plan.profile.name,
    studies: plan.studies,
    adapter,
    shards,
    levelCount: levelCount(plan.dag),
    experiments,
    levels: est.levels.map((l) => ({
      level: l.level,
      ids: plan.dag.filter((n) => n.level === l.level).map((n) => n.id),
      serialSeconds: t(l.serialSeconds),
      wallSeconds: t(l.wallSeconds),
      shards: l.shards.map((s) => ({ ids: s.ids, seconds: t(s.seconds) })),
    })),
    serialSeconds: t(est.serialSeconds),
    wallSeconds: t(est.wallSeconds),
    rates: Object.fromEntries(
      [...(rates ?? new Map<string, number>())].map(([k, v]) => [
        k,
        { imagesPerSecond: v, source: sources.get(k) ?? "measured" },
      ]),
    ),
  };
}

/** The readable table of a plan. */
export function formatPlan(j: PlanJson): string {
  const d = (s: number | null) => (s === null ? "-" : formatDuration(s));
  const lines = [
    `plan: ${
      j.studies.join(", ")
    } under profile ${j.profile}: ${j.experiments.length} experiments in ${j.levelCount} levels` +
    (j.adapter ? `, times on ${j.adapter}` : ""),
    "",
    `${"level".padEnd(5)} ${"experiment".padEnd(30)} ${"mode".padEnd(8)} ${
      "images x epochs".padStart(17)
    } ${"est.".padStart(8)}  depends on`,
  ];
  for (const r of j.experiments) {
    const size = r.kind === "notrun"
      ? "not run"
      : r.kind === "timing"
      ? `${r.evalImages} eval`
      : `${r.trainImages} x ${r.epochs}`;
    lines.push(
      `${String(r.level).padEnd(5)} ${r.id.padEnd(30)} ${r.mode.padEnd(8)} ${size.padStart(17)} ${
        d(r.seconds).padStart(8)
      }  ${r.deps.join(", ") || "-"}`,
    );
  }
  lines.push("");
  for (const l of j.levels) {
    lines.push(
      `level ${l.level}: ${l.ids.length} experiments, ${d(l.serialSeconds)} one after another, ` +
        `${d(l.wallSeconds)} on ${j.shards} shard${j.shards === 1 ? "" : "s"} (${
          l.shards.map((s) => d(s.seconds)).join(" / ")
        })`,
    );
  }
  lines.push(
    `total: ${d(j.serialSeconds)} one after another, ${d(j.wallSeconds)} with ${j.shards} shard${
      j.shards === 1 ? "" : "s"
    } per level`,
  );
  const sources = Object.entries(j.rates);
  if (sources.length) {
    lines.push("", "rates:");
    for (const [k, v] of sources) {
      lines.push(`  ${v.imagesPerSecond.toFixed(1).padStart(9)} images/s  ${k} (${v.source})`);
    }
  }
  return lines.join("\n");
}
