/**
 * One job of the level-by-level GPU workflow: `--level K --shard i/n` runs
 * exactly the experiments that {@link levelShard} assigns to shard i of
 * level K of the plan over all studies, split by machine-independent work
 * ({@link workUnits}) so that every job computes the same split. What they
 * start from (lower levels) must already be complete in the cache, handed
 * over by the previous levels' jobs: a missing one stops the job with an
 * error naming it; it is never trained here.
 * @module
 */

import { type DagNode, levelCount, levelShard } from "./dag.ts";
import { type Workload, workUnits } from "./estimate.ts";
import { loadPlan } from "./planner.ts";
import type { Profile } from "./profiles.ts";

/** A `--shard i/n` value (1-based i) as 0-based index and count; throws naming the value. */
export function parseShard(text: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(text);
  if (!m || Number(m[1]) < 1 || Number(m[1]) > Number(m[2])) {
    throw new Error(`--shard must look like 1/4 (i of n, 1 <= i <= n), got '${text}'`);
  }
  return { index: Number(m[1]) - 1, count: Number(m[2]) };
}

/** What one level job runs and what it needs from the cache. */
export interface LevelJob {
  level: number;
  shard: { index: number; count: number };
  /** The experiments this job trains. */
  ids: string[];
  /**
   * Timing experiments of the shard: not cached by the runner, so they run
   * in each study's final job instead.
   */
  timing: string[];
  /** Every experiment they start from, directly or through others: must be cached. */
  needs: string[];
}

/** The experiments of shard `shard` of level `level`, and what they need. */
export function levelJob(
  dag: DagNode[],
  work: Map<string, Workload>,
  level: number,
  shard: { index: number; count: number },
): LevelJob {
  const levels = levelCount(dag);
  if (!Number.isInteger(level) || level < 0 || level >= levels) {
    throw new Error(
      `--level must be 0..${levels - 1} (the plan has ${levels} levels), got ${level}`,
    );
  }
  const cost = (id: string) => {
    const w = work.get(id);
    if (!w) throw new Error(`no workload for experiment '${id}'`);
    return workUnits(w);
  };
  const assigned = levelShard(dag, level, shard.index, shard.count, cost);
  const ids = assigned.filter((id) => work.get(id)!.kind === "train");
  const timing = assigned.filter((id) => work.get(id)!.kind === "timing");
  const byId = new Map(dag.map((n) => [n.id, n]));
  const needs = new Set<string>();
  const visit = (id: string) => {
    for (const d of byId.get(id)?.deps ?? []) {
      if (!needs.has(d)) {
        needs.add(d);
        visit(d);
      }
    }
  };
  ids.forEach(visit);
  return { level, shard, ids, timing, needs: [...needs].sort() };
}

/** A dependency of a level job that is not complete in the cache. */
export class MissingDependencyError extends Error {
  constructor(readonly missing: string[], readonly job: LevelJob, cacheDir: string) {
    super(
      `level ${job.level} shard ${job.shard.index + 1}/${job.shard.count}: ` +
        `${missing.join(", ")} ${
          missing.length === 1 ? "is" : "are"
        } not complete in ${cacheDir} ` +
        `(run the levels below ${job.level} first and bring their cache entries); not training ${
          missing.length === 1 ? "it" : "them"
        } here`,
    );
    this.name = "MissingDependencyError";
  }
}

/**
 * Throws {@link MissingDependencyError} naming every experiment of
 * `job.needs` for which `isComplete` (the runner's cache lookup) is false.
 */
export async function checkNeeds(
  job: LevelJob,
  isComplete: (id: string) => boolean | Promise<boolean>,
  cacheDir: string,
): Promise<void> {
  const missing: string[] = [];
  for (const id of job.needs) if (!(await isComplete(id))) missing.push(id);
  if (missing.length) throw new MissingDependencyError(missing, job, cacheDir);
}

/**
 * The job of `--level K --shard i/n` (as given on the command line) over
 * all studies under `p`; throws naming the flag when a value is malformed.
 */
export async function loadLevelJob(p: Profile, level: string, shard: string): Promise<LevelJob> {
  if (!/^\d+$/.test(level)) throw new Error(`--level must be a level number, got '${level}'`);
  const plan = await loadPlan("all", p);
  return levelJob(plan.dag, plan.work, Number(level), parseShard(shard));
}
