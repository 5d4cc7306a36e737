/**
 * The experiments behind the claims: each id says which profile stage it
 * trains, what it changes, and which other experiment's checkpoint it starts
 * from. Claims name experiments by id (repro/claims/*.yaml). What an
 * experiment changes is plain data (an overlay), merged with the seed and
 * checkpoints onto the stage as the profile wrote it and validated once
 * ({@link experimentConfig}); no checked config is edited afterwards.
 *
 * SMAE ids: `pretrain-smae[1]-(random|block)` (alpha 0.5, or 1.0 with the
 * `1`; random 75% or block 50% masking), each with its `finetune-` and
 * `transfer-` runs; all of them use the critic trained by `train-critic`.
 * DINO ids: `pretrain-dino` and the `finetune-dino` / `transfer-dino` runs
 * that start from its teacher's encoder.
 * @module
 */

import { configFromLayers, type ConfigOverlay, type TrainConfig } from "../train/config.ts";
import { experimentsOf, type Study } from "./claims.ts";
import { type Profile, type Stage, stageFile } from "./profiles.ts";

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
    /** Changes to the stage's config, merged onto the stage as written before validation. */
    overlay?: ConfigOverlay;
    /** The scale study's training-set size (`data.trainLimit`), laid over `overlay`. */
    trainImages?: number;
  }
  | {
    kind: "timing";
    stage: Stage;
    /** MAE vs SMAE (reconstruction and loss) instead of classification vs reconstruction. */
    smae?: boolean;
  }
  | { kind: "notrun"; reason: string };

/** The masking ratios of the paper's sweep (percent). */
export const SWEEP_RATIOS = [25, 50, 60, 65, 70, 75, 80, 85, 90];

/** The scale study's training-set sizes (images), each a `-n<size>` suffix of an experiment. */
export const SCALE_SIZES = [1024, 4096, 16384];

/**
 * The experiments the scale study repeats at each size: the two MAE-vs-random
 * comparisons and their shuffled-label controls.
 */
export const SCALED_EXPERIMENTS = [
  "pretrain-mae-random",
  "pretrain-mae-untrained",
  "probe-mae-random",
  "probe-random-init",
  "finetune-mae-random",
  "scratch",
  "probe-mae-shuffled-labels",
  "finetune-mae-shuffled-labels",
];

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
    overlay: {
      smae: { alpha: alpha1 ? 1 : 0.5 },
      mae: { masking, maskRatio: masking === "block" ? 0.5 : 0.75 },
    },
  };
}

/**
 * The learning-rate-0 controls: one epoch of training that changes nothing,
 * so the checkpoint is the seeded random init (no warm-up: it would outlast
 * the one epoch).
 */
const UNTRAINED: ConfigOverlay = { optim: { lr: 0, minLr: 0, epochs: 1, warmupEpochs: 0 } };

/**
 * DINO's collapse control: the teacher as soft as the student (the profile's
 * dino stage's student temperature) throughout, no sharpening.
 */
function unsharpened(p: Profile): ConfigOverlay {
  const stage = p.stages.dino;
  const t = stage?.mode === "dino" ? stage.dino.studentTemp : undefined;
  return t === undefined ? {} : { dino: { warmupTeacherTemp: t, teacherTemp: t } };
}

/** The scratch stage with the epochs and warmup of the profile's MAE pre-training. */
function pretrainEpochs(p: Profile): ConfigOverlay {
  const pre = p.stages.pretrain?.optim;
  return pre === undefined ? {} : { optim: { epochs: pre.epochs, warmupEpochs: pre.warmupEpochs } };
}

/** Builds the plan for experiment `id` under profile `p`, or throws naming the id. */
export function planFor(id: string, p: Profile): Plan {
  const fixed: Record<string, Plan> = {
    "pretrain-mae-random": { kind: "train", stage: "pretrain", data: "tin" },
    "pretrain-mae-block": {
      kind: "train",
      stage: "pretrain",
      data: "tin",
      overlay: { mae: { masking: "block", maskRatio: 0.5 } },
    },
    // Negative control: the same MAE with learning rate 0 is its random init.
    "pretrain-mae-untrained": { kind: "train", stage: "pretrain", data: "tin", overlay: UNTRAINED },
    "probe-mae-random": { kind: "train", stage: "probe", data: "tin", init: "pretrain-mae-random" },
    "probe-random-init": {
      kind: "train",
      stage: "probe",
      data: "tin",
      init: "pretrain-mae-untrained",
    },
    // The class token's row of the probe comparison (the paper's head), for
    // profiles whose probe stage reads pooled tokens.
    "probe-mae-random-cls": {
      kind: "train",
      stage: "probe",
      data: "tin",
      init: "pretrain-mae-random",
      overlay: { encoder: { pool: "cls" } },
    },
    "probe-random-init-cls": {
      kind: "train",
      stage: "probe",
      data: "tin",
      init: "pretrain-mae-untrained",
      overlay: { encoder: { pool: "cls" } },
    },
    "probe-mae-shuffled-labels": {
      kind: "train",
      stage: "probe",
      data: "tin",
      init: "pretrain-mae-random",
      overlay: { data: { shuffleLabels: true } },
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
      overlay: { data: { shuffleLabels: true } },
    },
    "finetune-mae-block": {
      kind: "train",
      stage: "finetune",
      data: "tin",
      init: "pretrain-mae-block",
    },
    "scratch": { kind: "train", stage: "scratch", data: "tin" },
    // The paper's budget: training from scratch as many epochs as MAE
    // pre-training takes (400 and 400 in the paper), against MAE pre-training plus
    // fine-tuning.
    "scratch-paper-budget": {
      kind: "train",
      stage: "scratch",
      data: "tin",
      overlay: pretrainEpochs(p),
    },
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
      overlay: { data: { shuffleLabels: true } },
    },
    // Negative control: SMAE with learning rate 0 is its random init.
    "pretrain-smae-untrained": {
      kind: "train",
      stage: "smae",
      data: "tin",
      critic: "train-critic",
      overlay: UNTRAINED,
    },
    // --- DINO: the baseline of Table 1, fine-tuned from the teacher's encoder ---
    "pretrain-dino": { kind: "train", stage: "dino", data: "tin" },
    // Negative control for the no-collapse claim: the teacher as soft as the
    // student (no sharpening), the ablation that DINO shows collapsing to uniform.
    "pretrain-dino-unsharpened": {
      kind: "train",
      stage: "dino",
      data: "tin",
      overlay: unsharpened(p),
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
    const overlay: ConfigOverlay = { mae: { maskRatio: ratio / 100 } };
    return withStage(
      sweep[1] === "pretrain"
        ? { kind: "train", stage: "sweep", data: "tin", overlay }
        : { kind: "train", stage: "probe", data: "tin", init: `pretrain-mae-r${ratio}` },
      p,
      id,
    );
  }
  const scaled = /^(.+)-n(\d+)$/.exec(id);
  if (scaled && SCALED_EXPERIMENTS.includes(scaled[1])) {
    const n = Number(scaled[2]);
    if (!SCALE_SIZES.includes(n)) {
      throw new Error(
        `unknown training-set size in experiment '${id}' (${SCALE_SIZES.join(", ")})`,
      );
    }
    const base = planFor(scaled[1], p);
    if (base.kind !== "train") return base;
    return { ...base, trainImages: n, ...(base.init ? { init: `${base.init}-n${n}` } : {}) };
  }
  const grid = /^(pretrain|probe)-hp-(.+)$/.exec(id);
  if (grid) {
    const cell = TABLE5_GRID.find(([lr, wd]) => gridId(lr, wd) === grid[2]);
    if (!cell) throw new Error(`unknown Table 5 cell in experiment '${id}'`);
    const overlay: ConfigOverlay = { optim: { lr: cell[0], weightDecay: cell[1] } };
    return withStage(
      grid[1] === "pretrain"
        ? { kind: "train", stage: "sweep", data: "tin", overlay }
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

/** Where a dependency's checkpoint lies (the runner's cache), by experiment id and role. */
export type CheckpointOf = (dep: string, role: "init" | "critic") => string;

/**
 * The final, validated config of experiment `id` for one seed: the profile's
 * stage as written, then the experiment's overlay, then the seed and the
 * checkpoints of the experiments it starts from, validated once. An error
 * names the profile file, the stage, the experiment, the field and the layer
 * that set it. Throws for an experiment that does not run in this profile.
 */
export function experimentConfig(
  p: Profile,
  id: string,
  seed: number,
  checkpointOf: CheckpointOf,
): TrainConfig {
  const plan = planFor(id, p);
  if (plan.kind === "notrun") throw new Error(`${id} does not run: ${plan.reason}`);
  const runner: ConfigOverlay = { seed };
  if (plan.kind === "train" && plan.init) runner.init = checkpointOf(plan.init, "init");
  if (plan.kind === "train" && plan.critic) runner.critic = checkpointOf(plan.critic, "critic");
  return configFromLayers(
    [
      { from: "", value: p.raw[plan.stage] },
      { from: `experiment ${id}`, value: plan.kind === "train" ? plan.overlay : undefined },
      {
        from: `the scale study for ${id}`,
        value: plan.kind === "train" && plan.trainImages
          ? { data: { trainLimit: plan.trainImages } }
          : undefined,
      },
      { from: `the runner for ${id}`, value: runner },
    ],
    `${stageFile(p.file, plan.stage)}, experiment ${id}`,
  );
}

/** A stand-in for a checkpoint that does not exist yet: the experiment that writes it. */
export const checkpointPlaceholder: CheckpointOf = (dep) => `<checkpoint of ${dep}>`;

/** One experiment's entry in {@link experimentConfigs}. */
export type ExperimentConfig = TrainConfig | { notrun: string };

/**
 * Every experiment of `ids` and its dependencies (dependencies first), as its
 * final validated config for `seed`, with checkpoints named by the
 * experiment that writes them; an experiment the profile does not run maps
 * to `{ notrun: reason }`. Building this validates every config, so it is
 * also the check that no run will be refused for its config once work has
 * started. Plain JSON (what `--print-config` prints).
 */
export function experimentConfigs(
  ids: string[],
  p: Profile,
  seed: number,
): Record<string, ExperimentConfig> {
  const out: Record<string, ExperimentConfig> = {};
  for (const id of withDependencies(ids, p)) {
    const plan = planFor(id, p);
    out[id] = plan.kind === "notrun"
      ? { notrun: plan.reason }
      : experimentConfig(p, id, seed, checkpointPlaceholder);
  }
  return out;
}

/** {@link experimentConfigs} for every experiment a study's claims need in profile `p`. */
export function studyConfigs(
  study: Study,
  p: Profile,
  seed: number,
): Record<string, ExperimentConfig> {
  return experimentConfigs(experimentsOf(study, p.name), p, seed);
}
