/**
 * The experiments behind the claims: each id says which profile stage it
 * trains, what it changes, and which other experiment's checkpoint it starts
 * from. Claims name experiments by id (repro/claims/*.yaml).
 *
 * SMAE ids: `pretrain-smae[1]-(random|block)` (alpha 0.5, or 1.0 with the
 * `1`; random 75% or block 50% masking), each with its `finetune-` and
 * `transfer-` runs; all of them use the critic trained by `train-critic`.
 * DINO ids: `pretrain-dino` and the `finetune-dino` / `transfer-dino` runs
 * that start from its teacher's encoder.
 * @module
 */

import type { TrainConfig } from "../train/config.ts";
import type { Profile, Stage } from "./profiles.ts";

/** How to produce one experiment's metrics. */
export type Plan =
  | {
    kind: "train";
    stage: Stage;
    /** Dataset the stage reads ("tin" unless it is the CUB transfer). */
    data: "tin" | "cub";
    /** Experiment whose checkpoint initialises the encoder. */
    init?: string;
    /** Experiment whose checkpoint is the frozen SMAE critic. */
    critic?: string;
    /** Changes to the stage's config. */
    edit?: (c: TrainConfig) => void;
  }
  | {
    kind: "timing";
    stage: Stage;
    /** MAE vs SMAE (reconstruction and loss) instead of classification vs reconstruction. */
    smae?: boolean;
  }
  | { kind: "notrun"; reason: string };

/** The masking ratios of the paper's sweep (percent). */
export const SWEEP_RATIOS = [50, 60, 65, 70, 75, 80, 85, 90];

/** Table 5's grid: (lr, weight decay) pairs with a reported probe accuracy. */
export const TABLE5_GRID: [lr: number, wd: number][] = [
  [1e-3, 0.05],
  [1.5e-4, 0.05],
  [5e-4, 0.05],
  [1.5e-4, 0.15],
  [5e-4, 0.15],
];

/** Short id fragment for a Table 5 cell, e.g. "lr5e-4-wd0.15". */
export function gridId(lr: number, wd: number): string {
  return `lr${lr.toExponential()}-wd${wd}`;
}

/** The SMAE pre-training of an `smae[1]-(random|block)` id fragment. */
function smaePretrain(alpha1: boolean, masking: "random" | "block"): Plan {
  return {
    kind: "train",
    stage: "smae",
    data: "tin",
    critic: "train-critic",
    edit: (c) => {
      c.smae.alpha = alpha1 ? 1 : 0.5;
      c.model.masking = masking;
      c.model.maskRatio = masking === "block" ? 0.5 : 0.75;
    },
  };
}

/** Builds the plan for experiment `id` under profile `p`, or throws naming the id. */
export function planFor(id: string, p: Profile): Plan {
  const fixed: Record<string, Plan> = {
    "pretrain-mae-random": { kind: "train", stage: "pretrain", data: "tin" },
    "pretrain-mae-block": {
      kind: "train",
      stage: "pretrain",
      data: "tin",
      edit: (c) => {
        c.model.masking = "block";
        c.model.maskRatio = 0.5;
      },
    },
    // Negative control: the same MAE with learning rate 0 is its random init.
    "pretrain-mae-untrained": {
      kind: "train",
      stage: "pretrain",
      data: "tin",
      edit: (c) => {
        c.optim.lr = 0;
        c.optim.epochs = 1;
      },
    },
    "probe-mae-random": { kind: "train", stage: "probe", data: "tin", init: "pretrain-mae-random" },
    "probe-random-init": {
      kind: "train",
      stage: "probe",
      data: "tin",
      init: "pretrain-mae-untrained",
    },
    "probe-mae-shuffled-labels": {
      kind: "train",
      stage: "probe",
      data: "tin",
      init: "pretrain-mae-random",
      edit: (c) => {
        c.data.shuffleLabels = true;
      },
    },
    "finetune-mae-random": {
      kind: "train",
      stage: "finetune",
      data: "tin",
      init: "pretrain-mae-random",
    },
    // Negative control: fine-tuning on permuted labels cannot beat anything.
    "finetune-mae-shuffled-labels": {
      kind: "train",
      stage: "finetune",
      data: "tin",
      init: "pretrain-mae-random",
      edit: (c) => {
        c.data.shuffleLabels = true;
      },
    },
    "finetune-mae-block": {
      kind: "train",
      stage: "finetune",
      data: "tin",
      init: "pretrain-mae-block",
    },
    "scratch": { kind: "train", stage: "scratch", data: "tin" },
    "transfer-mae-random": {
      kind: "train",
      stage: "transfer",
      data: "cub",
      init: "pretrain-mae-random",
    },
    "transfer-mae-block": {
      kind: "train",
      stage: "transfer",
      data: "cub",
      init: "pretrain-mae-block",
    },
    // Table 1's CUB "supervised from scratch": the authors' CUB scratch recipe.
    "transfer-scratch": { kind: "train", stage: "cubScratch", data: "cub" },
    "timing": { kind: "timing", stage: "timing" },
    "timing-smae": { kind: "timing", stage: "timing", smae: true },
    // The SMAE critic: SqueezeNet 1.1 trained as a classifier from scratch.
    "train-critic": { kind: "train", stage: "critic", data: "tin" },
    // Negative control: the same critic trained on permuted labels.
    "train-critic-shuffled-labels": {
      kind: "train",
      stage: "critic",
      data: "tin",
      edit: (c) => {
        c.data.shuffleLabels = true;
      },
    },
    // Negative control: SMAE with learning rate 0 is its random init.
    "pretrain-smae-untrained": {
      kind: "train",
      stage: "smae",
      data: "tin",
      critic: "train-critic",
      edit: (c) => {
        c.optim.lr = 0;
        c.optim.epochs = 1;
      },
    },
    // --- DINO (issue 8): the baseline of Table 1, fine-tuned from the teacher's encoder ---
    "pretrain-dino": { kind: "train", stage: "dino", data: "tin" },
    // Negative control for the no-collapse claim: the teacher as soft as the
    // student (no sharpening), the ablation that DINO shows collapsing to uniform.
    "pretrain-dino-unsharpened": {
      kind: "train",
      stage: "dino",
      data: "tin",
      edit: (c) => {
        c.dino.warmupTeacherTemp = c.dino.studentTemp;
        c.dino.teacherTemp = c.dino.studentTemp;
      },
    },
    "finetune-dino": { kind: "train", stage: "finetune", data: "tin", init: "pretrain-dino" },
    "transfer-dino": { kind: "train", stage: "transfer", data: "cub", init: "pretrain-dino" },
  };
  if (fixed[id]) return withStage(fixed[id], p, id);
  const smae = /^(pretrain|finetune|transfer)-smae(1?)-(random|block)$/.exec(id);
  if (smae) {
    const [, kind, one, masking] = smae;
    const pre = `pretrain-smae${one}-${masking}`;
    const plan: Plan = kind === "pretrain"
      ? smaePretrain(one === "1", masking as "random" | "block")
      : kind === "finetune"
      ? { kind: "train", stage: "finetune", data: "tin", init: pre }
      : { kind: "train", stage: "transfer", data: "cub", init: pre };
    return withStage(plan, p, id);
  }
  const sweep = /^(pretrain|probe)-mae-r(\d+)$/.exec(id);
  if (sweep) {
    const ratio = Number(sweep[2]);
    if (!SWEEP_RATIOS.includes(ratio)) {
      throw new Error(`unknown masking ratio in experiment '${id}'`);
    }
    const edit = (c: TrainConfig) => {
      c.model.maskRatio = ratio / 100;
    };
    return withStage(
      sweep[1] === "pretrain"
        ? { kind: "train", stage: "sweep", data: "tin", edit }
        : { kind: "train", stage: "probe", data: "tin", init: `pretrain-mae-r${ratio}` },
      p,
      id,
    );
  }
  const grid = /^(pretrain|probe)-hp-(.+)$/.exec(id);
  if (grid) {
    const cell = TABLE5_GRID.find(([lr, wd]) => gridId(lr, wd) === grid[2]);
    if (!cell) throw new Error(`unknown Table 5 cell in experiment '${id}'`);
    const edit = (c: TrainConfig) => {
      c.optim.lr = cell[0];
      c.optim.weightDecay = cell[1];
    };
    return withStage(
      grid[1] === "pretrain"
        ? { kind: "train", stage: "sweep", data: "tin", edit }
        : { kind: "train", stage: "probe", data: "tin", init: `pretrain-hp-${grid[2]}` },
      p,
      id,
    );
  }
  throw new Error(`unknown experiment '${id}'`);
}

/** A plan whose stage the profile lacks becomes `not run` with that reason. */
function withStage(plan: Plan, p: Profile, id: string): Plan {
  if (plan.kind === "notrun" || p.stages[plan.stage]) return plan;
  return { kind: "notrun", reason: `profile ${p.name} has no '${plan.stage}' stage for ${id}` };
}

/** `id` and every experiment it depends on, dependencies first. */
export function withDependencies(ids: string[], p: Profile): string[] {
  const order: string[] = [];
  const visit = (id: string) => {
    if (order.includes(id)) return;
    const plan = planFor(id, p);
    if (plan.kind === "train" && plan.init) visit(plan.init);
    if (plan.kind === "train" && plan.critic) visit(plan.critic);
    order.push(id);
  };
  ids.forEach(visit);
  return order;
}
