/**
 * One plan over several studies: every experiment the studies' claims need
 * in a profile, each once, with the experiments it is initialised from (its
 * encoder's pre-training, its SMAE critic). Experiments are grouped in
 * levels: level 0 needs nothing, level k needs only levels below k. A GPU
 * workflow runs the levels in order, handing each level's checkpoints to the
 * next, so no pre-training runs twice; within a level, shards are balanced
 * by estimated cost.
 * @module
 */

import { experimentsOf, type Study } from "./claims.ts";
import { planFor } from "./experiments.ts";
import type { Profile } from "./profiles.ts";

/** One experiment of the plan. */
export interface DagNode {
  id: string;
  /** The studies whose claims need it (directly or as a dependency). */
  studies: string[];
  /** Experiments whose checkpoints it starts from. */
  deps: string[];
  /** 0 for no dependencies, else 1 + the highest level among its deps. */
  level: number;
  /** "train", "timing" or "notrun" (a stage the profile lacks). */
  kind: "train" | "timing" | "notrun";
}

/** The deduplicated plan of `studies` under `p`, dependencies before dependents. */
export function buildDag(studies: Study[], p: Profile): DagNode[] {
  const nodes = new Map<string, DagNode>();
  const visit = (id: string, study: string, path: string[]): DagNode => {
    if (path.includes(id)) {
      throw new Error(`experiment '${id}' depends on itself: ${[...path, id].join(" -> ")}`);
    }
    const known = nodes.get(id);
    if (known) {
      if (!known.studies.includes(study)) known.studies.push(study);
      for (const d of known.deps) visit(d, study, [...path, id]);
      return known;
    }
    const plan = planFor(id, p);
    const deps = plan.kind === "train"
      ? [plan.init, plan.critic].filter((d): d is string => d !== undefined)
      : [];
    const levels = deps.map((d) => visit(d, study, [...path, id]).level);
    const node: DagNode = {
      id,
      studies: [study],
      deps,
      level: levels.length ? 1 + Math.max(...levels) : 0,
      kind: plan.kind,
    };
    nodes.set(id, node);
    return node;
  };
  for (const s of studies) {
    for (const id of experimentsOf(s, p.name)) visit(id, s.study, []);
  }
  return [...nodes.values()].sort((a, b) => a.level - b.level);
}

/** The number of levels of a plan. */
export function levelCount(dag: DagNode[]): number {
  return dag.length ? 1 + Math.max(...dag.map((n) => n.level)) : 0;
}

/**
 * Shard `index` (0-based) of `count` of one level: the level's experiments
 * assigned greedily, costliest first, to the shard with the least work so
 * far (ties by id, so every job computes the same split).
 */
export function levelShard(
  dag: DagNode[],
  level: number,
  index: number,
  count: number,
  cost: (id: string) => number,
): string[] {
  if (!Number.isInteger(count) || count < 1 || index < 0 || index >= count) {
    throw new Error(`shard ${index + 1}/${count} does not exist`);
  }
  const todo = dag.filter((n) => n.level === level && n.kind !== "notrun")
    .map((n) => ({ id: n.id, cost: cost(n.id) }))
    .sort((a, b) => b.cost - a.cost || a.id.localeCompare(b.id));
  const load = new Array<number>(count).fill(0);
  const out: string[][] = Array.from({ length: count }, () => []);
  for (const t of todo) {
    let best = 0;
    for (let i = 1; i < count; i++) if (load[i] < load[best]) best = i;
    load[best] += t.cost;
    out[best].push(t.id);
  }
  return out[index];
}
