/**
 * The cost model of a repro plan: measured training rates (images per
 * second for one calibrated model shape) in, seconds per experiment, per
 * level and per shard out. Pure: no files, no device.
 *
 * An experiment costs its training steps (steps per epoch as the trainer
 * counts them, times epochs, times the batch) plus one forward pass over its
 * evaluation split, which is counted as a third of a training step per
 * image. An experiment whose config differs from the calibrated shape in a
 * way that changes the work per image (another masking ratio) is scaled by
 * the ratio of the two configs' FLOPs per image ({@link flopsPerImage}).
 *
 * The same FLOP counts, with no measurement at all, give each experiment's
 * nominal work ({@link workUnits}): a machine-independent cost, so that every
 * job of a sharded workflow computes the same split of a level.
 * @module
 */

import {
  type DatasetName,
  defaultsFor,
  type MaeObjective,
  type Mode,
  modelOf,
  type TrainConfig,
} from "../train/config.ts";
import type { VitConfig } from "../models/vit.ts";
import { type DagNode, levelShard } from "./dag.ts";

/** Images per split of the full datasets (train, evaluation split). */
export const DATASET_SIZES: Record<DatasetName, { train: number; eval: number }> = {
  "tiny-imagenet": { train: 100_000, eval: 10_000 },
  cub: { train: 5_994, eval: 5_794 },
  "fashion-mnist": { train: 60_000, eval: 10_000 },
};

/** The model kinds that are calibrated separately (one training step each). */
export type ModelKind = "mae" | "probe" | "classifier" | "critic" | "smae" | "dino";
/** Every {@link ModelKind}, in calibration order (MAE first: probes start from its checkpoint). */
export const MODEL_KINDS: ModelKind[] = ["mae", "probe", "classifier", "critic", "smae", "dino"];

/** The calibrated kind of a training mode. */
export function kindOf(mode: Mode): ModelKind {
  switch (mode) {
    case "pretrain":
      return "mae";
    case "probe":
      return "probe";
    case "finetune":
    case "scratch":
      return "classifier";
    case "critic":
      return "critic";
    case "smae":
      return "smae";
    case "dino":
      return "dino";
  }
}

/** Model fields that change the work of a step (the masking ratio is scaled by FLOPs instead). */
export type ModelShape = Pick<
  VitConfig & MaeObjective,
  | "imageSize"
  | "channels"
  | "patch"
  | "width"
  | "depth"
  | "heads"
  | "mlp"
  | "decoderWidth"
  | "decoderDepth"
  | "decoderMlp"
  | "maskRatio"
>;

/**
 * The model shape of a config: its encoder and MAE fields. A mode without
 * some of them (a classifier has no decoder, the critic no ViT) gets the
 * defaults there, which its kind's FLOPs do not read.
 */
export function modelShape(c: TrainConfig): ModelShape {
  const d = defaultsFor("pretrain");
  return { ...d.encoder, ...d.mae, ...modelOf(c) };
}

/** Forward FLOPs of `depth` pre-norm blocks of width w, MLP m, on T tokens. */
function blockFlops(T: number, w: number, m: number, depth: number): number {
  return depth * (2 * T * (4 * w * w + 2 * w * m) + 4 * T * T * w);
}

/** Forward FLOPs of the ViT encoder on all patches (plus the class token). */
function vitForward(m: ModelShape): number {
  const tokens = (m.imageSize / m.patch) ** 2;
  const patchDim = m.patch * m.patch * m.channels;
  return 2 * tokens * patchDim * m.width + blockFlops(tokens + 1, m.width, m.mlp, m.depth);
}

/** Forward FLOPs of the MAE: encoder on the kept patches, decoder on all of them. */
function maeForward(m: ModelShape): number {
  const tokens = (m.imageSize / m.patch) ** 2;
  const patchDim = m.patch * m.patch * m.channels;
  const kept = tokens - Math.round(m.maskRatio * tokens);
  return 2 * tokens * patchDim * m.width + blockFlops(kept + 1, m.width, m.mlp, m.depth) +
    2 * (kept + 1) * m.width * m.decoderWidth +
    blockFlops(tokens + 1, m.decoderWidth, m.decoderMlp, m.decoderDepth) +
    2 * (tokens + 1) * m.decoderWidth * patchDim;
}

/** SqueezeNet 1.1's forward FLOPs at 224x224 (0.35 G multiply-adds), scaled by pixel count. */
function squeezeForward(m: ModelShape): number {
  return 0.7e9 * (m.imageSize / 224) ** 2;
}

/**
 * FLOPs of one training step per image (a backward pass counted as twice
 * its forward): the MAE; the probe (frozen encoder, forward only); the
 * classifier; the SqueezeNet critic; SMAE (the MAE plus the critic on the
 * target and, with gradients, on the reconstruction); DINO (two views
 * through the student with gradients and through the teacher without).
 */
export function flopsPerImage(kind: ModelKind, m: ModelShape): number {
  switch (kind) {
    case "mae":
      return 3 * maeForward(m);
    case "probe":
      return vitForward(m);
    case "classifier":
      return 3 * vitForward(m);
    case "critic":
      return 3 * squeezeForward(m);
    case "smae":
      return 3 * maeForward(m) + 4 * squeezeForward(m);
    case "dino":
      return 2 * (3 * vitForward(m) + vitForward(m));
  }
}

/** Training steps of one epoch, as the trainer counts them (a short set is one step). */
export function stepsPerEpoch(images: number, batch: number): number {
  return batch > images ? 1 : Math.floor(images / batch);
}

/** One experiment's work, as the cost model sees it. */
export interface Workload {
  id: string;
  kind: "train" | "timing" | "notrun";
  /** The calibrated model kind whose rate applies. */
  model: ModelKind;
  /** Key of the calibrated shape (see src/repro/calibrate.ts) whose rate applies. */
  rateKey: string;
  mode: Mode;
  trainImages: number;
  evalImages: number;
  epochs: number;
  batchSize: number;
  /** FLOPs per image of this experiment's config over its calibrated shape's (1 when equal). */
  costFactor: number;
  /** FLOPs of one training step per image of this experiment's config (timing: one image's forward passes). */
  flopsPerImage: number;
}

/** The timing experiments' passes over the evaluation split: one untimed, one timed, per task. */
export const TIMING_PASSES = 2;

/**
 * Seconds of one experiment at `imagesPerSecond` (the calibrated training
 * rate of its shape). A timing experiment runs classification and
 * reconstruction forward over its evaluation split {@link TIMING_PASSES}
 * times each; its `costFactor` prices one such image against a training
 * step of its MAE shape.
 */
export function experimentSeconds(w: Workload, imagesPerSecond: number): number {
  if (w.kind === "notrun") return 0;
  if (!(imagesPerSecond > 0)) {
    throw new Error(`${w.id}: rate of ${w.rateKey} must be positive, got ${imagesPerSecond}`);
  }
  if (w.kind === "timing") {
    return TIMING_PASSES * w.evalImages * w.costFactor / imagesPerSecond;
  }
  const trained = stepsPerEpoch(w.trainImages, w.batchSize) * w.epochs *
    Math.min(w.batchSize, w.trainImages);
  return (trained + w.evalImages / 3) * w.costFactor / imagesPerSecond;
}

/** Machine-independent work of an experiment: its FLOPs (training and evaluation). */
export function workUnits(w: Workload): number {
  if (w.kind === "notrun") return 0;
  if (w.kind === "timing") return TIMING_PASSES * w.evalImages * w.flopsPerImage;
  const trained = stepsPerEpoch(w.trainImages, w.batchSize) * w.epochs *
    Math.min(w.batchSize, w.trainImages);
  return (trained + w.evalImages / 3) * w.flopsPerImage;
}

/** One shard of a level: its experiments and their seconds. */
export interface ShardEstimate {
  ids: string[];
  seconds: number;
}

/** One level of the plan. */
export interface LevelEstimate {
  level: number;
  /** Seconds of the level's experiments one after another. */
  serialSeconds: number;
  /** Seconds until the level's slowest shard ends. */
  wallSeconds: number;
  shards: ShardEstimate[];
}

/** The estimate of a whole plan. */
export interface PlanEstimate {
  seconds: Record<string, number>;
  levels: LevelEstimate[];
  /** All experiments one after another. */
  serialSeconds: number;
  /** Levels one after another, each as long as its slowest shard. */
  wallSeconds: number;
}

/**
 * The estimate of a plan run with `shards` jobs per level. Shards are the
 * plan's cost-balanced shards ({@link levelShard} by {@link workUnits}, the
 * split every workflow job computes); `rates` maps a workload's `rateKey`
 * to images per second, and a workload whose key has no rate throws.
 */
export function estimatePlan(
  dag: DagNode[],
  work: Map<string, Workload>,
  rates: Map<string, number>,
  shards: number,
): PlanEstimate {
  const seconds: Record<string, number> = {};
  for (const n of dag) {
    const w = work.get(n.id);
    if (!w) throw new Error(`no workload for experiment '${n.id}'`);
    if (w.kind === "notrun") {
      seconds[n.id] = 0;
      continue;
    }
    const rate = rates.get(w.rateKey);
    if (rate === undefined) throw new Error(`${n.id}: no measured rate for ${w.rateKey}`);
    seconds[n.id] = experimentSeconds(w, rate);
  }
  const levelsOf = [...new Set(dag.map((n) => n.level))].sort((a, b) => a - b);
  const levels = levelsOf.map((level) => {
    const parts = Array.from({ length: shards }, (_, i) => {
      const ids = levelShard(dag, level, i, shards, (id) => workUnits(work.get(id)!));
      return { ids, seconds: ids.reduce((a, id) => a + seconds[id], 0) };
    });
    return {
      level,
      serialSeconds: parts.reduce((a, s) => a + s.seconds, 0),
      wallSeconds: Math.max(...parts.map((s) => s.seconds)),
      shards: parts,
    };
  });
  return {
    seconds,
    levels,
    serialSeconds: levels.reduce((a, l) => a + l.serialSeconds, 0),
    wallSeconds: levels.reduce((a, l) => a + l.wallSeconds, 0),
  };
}

/** "3 s", "12 min", "4.2 h", "3.1 d". */
export function formatDuration(s: number): string {
  if (s < 90) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  if (s < 90 * 60) return `${(s / 60).toFixed(0)} min`;
  if (s < 48 * 3600) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} d`;
}

/** A measured training rate and the FLOPs per image of what it measured. */
export interface Anchor {
  label: string;
  imagesPerSecond: number;
  flopsPerImage: number;
}

/**
 * Rates for the workloads' shapes that `known` lacks, from the FLOP/s the
 * anchors achieved (their mean): a shape's rate is that over its FLOPs per
 * image. Coarse (kernels differ in efficiency) but measured on the adapter.
 */
export function deriveRates(
  work: Map<string, Workload>,
  known: Map<string, number>,
  anchors: Anchor[],
): { rates: Map<string, number>; derived: string[] } {
  const rates = new Map(known);
  const derived: string[] = [];
  const good = anchors.filter((a) => a.imagesPerSecond > 0 && a.flopsPerImage > 0);
  if (!good.length) return { rates, derived };
  const flops = good.reduce((s, a) => s + a.imagesPerSecond * a.flopsPerImage, 0) / good.length;
  for (const w of work.values()) {
    if (w.kind === "notrun" || rates.has(w.rateKey)) continue;
    rates.set(w.rateKey, flops / (w.flopsPerImage / w.costFactor));
    derived.push(w.rateKey);
  }
  return { rates, derived };
}
