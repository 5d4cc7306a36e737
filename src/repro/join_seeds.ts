/**
 * Joining repro runs of one study and profile made with different seeds into
 * one run over all of them (`deno task repro:merge --join-seeds`): more seeds
 * for an interval without retraining the ones already run.
 * @module
 */

import type { Results } from "./claims.ts";
import type { RunReport } from "./report.ts";

/** The joined experiments and seeds, and what the parts had in common. */
export interface JoinedSeeds {
  results: Results;
  seeds: number[];
  /** The commits the parts ran at, in order, each once. */
  commits: string[];
}

type Ran = { seeds: number[]; metrics: Record<string, unknown>[] };

/**
 * Joins `parts` (claims.json of runs with disjoint seeds) experiment by
 * experiment: each gets the seeds of every part it ran in, in increasing
 * order with their metrics, so experiments some part did not run keep fewer
 * seeds (the claims refuse to pair experiments of different seeds). Throws,
 * naming what differs, when the parts differ in study or profile, share a
 * seed, or mix a profile's design seeds with its held-apart ones (an interval
 * that judges a threshold must not include the seeds it was set on).
 */
export function joinSeedRuns(parts: RunReport[]): JoinedSeeds {
  if (parts.length === 0) throw new Error("join-seeds: no runs to join");
  const first = parts[0];
  const seen = new Set<number>();
  for (const p of parts) {
    if (p.study !== first.study || p.profile !== first.profile) {
      throw new Error(
        `join-seeds: runs differ in study or profile (${p.study}/${p.profile} vs ${first.study}/${first.profile})`,
      );
    }
    if (p.seedKind !== first.seedKind) {
      throw new Error(
        `join-seeds: runs mix seed kinds (${p.seedKind ?? "none"} seeds ${p.seeds.join(", ")} vs ` +
          `${first.seedKind ?? "none"} seeds ${first.seeds.join(", ")})`,
      );
    }
    for (const s of p.seeds) {
      if (seen.has(s)) throw new Error(`join-seeds: seed ${s} is in more than one run`);
      seen.add(s);
    }
  }
  const ids = [...new Set(parts.flatMap((p) => Object.keys(p.experiments)))];
  const results: Results = new Map();
  for (const id of ids) {
    const entries = parts.map((p) => p.experiments[id] as Ran | { notrun: string } | undefined);
    const ran = entries.filter((e): e is Ran => !!e && !("notrun" in e));
    if (ran.length === 0) {
      const why = entries.find((e) => e && "notrun" in e) as { notrun: string } | undefined;
      results.set(id, { notrun: why?.notrun ?? "not run in any of the joined runs" });
      continue;
    }
    const pairs = ran.flatMap((e) => e.seeds.map((seed, i) => [seed, e.metrics[i]] as const)).sort((
      a,
      b,
    ) => a[0] - b[0]);
    results.set(id, { seeds: pairs.map(([s]) => s), metrics: pairs.map(([, m]) => m) });
  }
  return {
    results,
    seeds: [...seen].sort((a, b) => a - b),
    commits: [...new Set(parts.map((p) => p.commit))],
  };
}
