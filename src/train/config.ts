/**
 * Training configs: YAML files mirroring the paper's Table 6 (and CPU-scale
 * variants), parsed and checked here so that a mistake names the file and
 * the field at fault before any work starts.
 * @module
 */

import { parse } from "yaml";
import { CUB_TRAIN_AUGMENT, FINETUNE_AUGMENT } from "../data/augment.ts";
import type { Pooling } from "../models/classifier.ts";
import { MAE_DECODER, type MaeConfig } from "../models/mae.ts";
import { SMAE_DEFAULTS, type SmaeConfig } from "../models/smae.ts";
import { VIT_LITE_7_4, type VitConfig } from "../models/vit.ts";
import { DINO_HEAD, type DinoHeadConfig, type TeacherInit } from "../models/dino.ts";

/**
 * What a run trains: MAE pre-training, a linear probe, fine-tuning, a
 * classifier from scratch, the SMAE critic (SqueezeNet 1.1 classifier), or
 * SMAE pre-training (MAE + perceptual loss from a trained critic), or DINO
 * pre-training (the baseline).
 */
export type Mode =
  | "pretrain"
  | "probe"
  | "finetune"
  | "scratch"
  | "critic"
  | "smae"
  | "dino";

/** DINO pre-training settings (mode dino; src/train/dino.ts). Defaults: the paper's. */
export interface DinoConfig extends DinoHeadConfig {
  /** The teacher starts as a copy of the student (DINO) or separately initialised (the authors' code). */
  teacherInit: TeacherInit;
  /** Teacher EMA momentum at step 0, rising to 1 on a cosine over the run. */
  teacherMomentum: number;
  /** Momentum of the centre's EMA. */
  centerMomentum: number;
  /** Subtract the centre from the teacher's outputs (false only for the collapse control). */
  centering: boolean;
  /** Teacher temperature: warmupTeacherTemp rising linearly to teacherTemp over warmupTeacherTempEpochs. */
  warmupTeacherTemp: number;
  teacherTemp: number;
  warmupTeacherTempEpochs: number;
  studentTemp: number;
  /** Weight decay rises from optim.weightDecay to this on a cosine over the run. */
  weightDecayEnd: number;
  /** Clip the student's gradient to this global L2 norm (0: off). */
  clipGrad: number;
  /** Epochs during which the last layer of the student's head does not learn. */
  freezeLastLayerEpochs: number;
  /** Local crops per image (multi-crop, seen by the student only); the paper used none (0). */
  localCrops: number;
  /** Side of the local crops, a multiple of model.patch; 0: imageSize / 2 rounded to a multiple of the patch. */
  localCropSize: number;
  /** RandomResizedCrop scale range of the local crops (DINO: 0.05-0.4). */
  localCropScale: [number, number];
}

/** The local crops' side for a config: dino.localCropSize, or imageSize / 2 rounded to a multiple of the patch. */
export function dinoLocalSize(c: Pick<TrainConfig, "model" | "dino">): number {
  if (c.dino.localCropSize > 0) return c.dino.localCropSize;
  const p = c.model.patch;
  return Math.max(p, Math.round(c.model.imageSize / 2 / p) * p);
}

/** Datasets a run can read. */
export type DatasetName = "fashion-mnist" | "tiny-imagenet" | "cub";

/** A whole training run. */
export interface TrainConfig {
  mode: Mode;
  seed: number;
  data: {
    dataset: DatasetName;
    /** Dataset root; default: the dataset's own default (env var or data/). */
    root?: string;
    /** Keep this many training images (a seeded, class-balanced subset); 0 = all. */
    trainLimit: number;
    /** Keep this many evaluation images; 0 = all. */
    evalLimit: number;
    /** Images are brought to model.imageSize by "pad" or "resize". */
    fit: "pad" | "resize";
    /** Per-batch standardisation (pretrain/probe in the paper's code) or fixed statistics. */
    normalize: "batch" | "imagenet" | "cub" | "none";
    /** Augmentation for training batches. */
    augment: "none" | "finetune" | "cub" | "dino";
    /** Negative control: permute the training labels (seeded), destroying the signal. */
    shuffleLabels: boolean;
  };
  /** The encoder, the MAE decoder and objective, and the classifier's pooling. */
  model: VitConfig & Omit<MaeConfig, "encoder"> & {
    /** Classifier features: the class token (the paper), mean-pooled or flattened patch tokens. */
    pool: Pooling;
  };
  optim: {
    name: "adamw" | "adam";
    lr: number;
    minLr: number;
    weightDecay: number;
    betas: [number, number];
    warmupEpochs: number;
    epochs: number;
    batchSize: number;
    stepping: "epoch" | "step";
  };
  /** The SMAE objective (mode smae). */
  smae: SmaeConfig;
  /** DINO settings (mode dino only). */
  dino: DinoConfig;
  /** Checkpoint to start the encoder from (probe, finetune). */
  init?: string;
  /** Trained critic checkpoint (mode critic's output) for mode smae. */
  critic?: string;
  /** Write a checkpoint every this many steps (and at the end). */
  checkpointEvery: number;
  /** Read the loss back every this many steps (progress, metrics, NaN check). */
  logEvery: number;
}

const MODE = ["pretrain", "probe", "finetune", "scratch", "critic", "smae", "dino"] as const;
const DATASETS = ["fashion-mnist", "tiny-imagenet", "cub"] as const;

/** Defaults that a config file overrides. */
export const DEFAULTS: Omit<TrainConfig, "mode"> = {
  seed: 42,
  data: {
    dataset: "fashion-mnist",
    trainLimit: 0,
    evalLimit: 0,
    fit: "pad",
    normalize: "batch",
    augment: "none",
    shuffleLabels: false,
  },
  model: {
    ...VIT_LITE_7_4,
    ...MAE_DECODER,
    maskRatio: 0.75,
    masking: "random",
    normPixLoss: false,
    pool: "cls",
  },
  optim: {
    name: "adamw",
    lr: 5e-4,
    minLr: 0,
    weightDecay: 0.15,
    betas: [0.9, 0.95],
    warmupEpochs: 20,
    epochs: 400,
    batchSize: 128,
    stepping: "epoch",
  },
  smae: { ...SMAE_DEFAULTS },
  dino: {
    ...DINO_HEAD,
    teacherInit: "copy",
    teacherMomentum: 0.9995,
    centerMomentum: 0.9,
    centering: true,
    warmupTeacherTemp: 0.02,
    teacherTemp: 0.04,
    warmupTeacherTempEpochs: 30,
    studentTemp: 0.1,
    weightDecayEnd: 0.4,
    clipGrad: 3,
    freezeLastLayerEpochs: 1,
    localCrops: 0,
    localCropSize: 0,
    localCropScale: [0.05, 0.4],
  },
  checkpointEvery: 500,
  logEvery: 10,
};

/** A config file that cannot be used; the message names the file and field. */
export class ConfigError extends Error {
  /** `file` is the YAML path (or "<inline>"). */
  constructor(file: string, message: string) {
    super(`${file}: ${message}`);
    this.name = "ConfigError";
  }
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

/**
 * Keys a config may set that have no default, by the section they belong to
 * ("" is the top level); any other key must be one of the defaults' keys.
 */
const OPTIONAL_KEYS: Record<string, string[]> = {
  "": ["mode", "init", "critic"],
  data: ["root"],
};

/** A part of a config as plain data: any fields, at any depth, none required. */
export type ConfigOverlay = {
  [K in keyof TrainConfig]?: TrainConfig[K] extends unknown[] ? TrainConfig[K]
    : TrainConfig[K] extends object ? Partial<TrainConfig[K]>
    : TrainConfig[K];
};

/**
 * One layer of a config: a parsed YAML value or a plain-data overlay, named
 * by where it comes from (a profile stage, an experiment, the runner).
 */
export interface ConfigLayer {
  from: string;
  value: unknown;
}

/**
 * Deep-merges `over` into `base`, rejecting keys that `base` does not have
 * (at every depth), and records in `setBy` which layer set each leaf.
 */
function merge(
  file: string,
  base: Record<string, unknown>,
  over: unknown,
  path: string,
  layer: string,
  setBy: Map<string, string>,
): Record<string, unknown> {
  if (over === undefined || over === null) return base;
  if (!isObject(over)) {
    throw new ConfigError(file, `${path || "the config"} must be a mapping${by(layer)}`);
  }
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue; // an overlay's unset field (YAML has no undefined)
    const here = path ? `${path}.${k}` : k;
    if (!(k in base) && !(OPTIONAL_KEYS[path] ?? []).includes(k)) {
      const known = [...Object.keys(base), ...(OPTIONAL_KEYS[path] ?? [])];
      throw new ConfigError(
        file,
        `unknown field '${here}'${by(layer)} (known: ${[...new Set(known)].join(", ")})`,
      );
    }
    if (isObject(base[k])) {
      out[k] = merge(file, base[k] as Record<string, unknown>, v, here, layer, setBy);
    } else {
      // A mapping is cloned so that no layer shares (or later sees edits to) another's objects.
      out[k] = structuredClone(v);
      setBy.set(here, layer);
    }
  }
  return out;
}

/** " (set by <layer>)", or nothing for the config file itself. */
function by(layer: string): string {
  return layer ? ` (set by ${layer})` : "";
}

/** Parses YAML text (merge keys `<<` allowed), naming the file on a syntax error. */
export function parseYaml(text: string, file = "<inline>"): unknown {
  try {
    return parse(text, { merge: true });
  } catch (e) {
    throw new ConfigError(file, `not valid YAML: ${(e as Error).message}`);
  }
}

/** Builds a validated config from parsed YAML (defaults filled in). */
export function toConfig(raw: unknown, file = "<inline>", requireInit = true): TrainConfig {
  return configFromLayers([{ from: "", value: raw }], file, requireInit);
}

/**
 * Merges `layers` in order onto the defaults and validates the result once,
 * so a config is checked on its final values. An error names `file`, the
 * field and, when a later layer set it, that layer (`from`; "" for the file
 * itself). Layers are not modified.
 *
 * @example
 * ```ts
 * import { configFromLayers } from "./config.ts";
 * const c = configFromLayers([
 *   { from: "", value: { mode: "pretrain", model: { maskRatio: 0.75 } } },
 *   { from: "experiment block", value: { model: { masking: "block", maskRatio: 0.5 } } },
 * ], "stage.yaml");
 * if (c.model.maskRatio !== 0.5 || c.model.masking !== "block") throw new Error("not merged");
 * ```
 */
export function configFromLayers(
  layers: ConfigLayer[],
  file = "<inline>",
  requireInit = true,
): TrainConfig {
  let c = structuredClone(DEFAULTS) as unknown as Record<string, unknown>;
  const setBy = new Map<string, string>();
  for (const l of layers) c = merge(file, c, l.value, "", l.from, setBy);
  validate(c as unknown as TrainConfig, file, requireInit, setBy);
  return c as unknown as TrainConfig;
}

/** Parses and validates a config from YAML text. */
export function parseConfig(text: string, file = "<inline>"): TrainConfig {
  return toConfig(parseYaml(text, file), file);
}

/**
 * Reads and parses a YAML config file and validates it with `overlays`
 * (command-line settings, say) merged on top.
 */
export async function loadConfig(path: string, overlays: ConfigLayer[] = []): Promise<TrainConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new ConfigError(path, `cannot read the config (${(e as Error).message})`);
  }
  return configFromLayers([{ from: "", value: parseYaml(text, path) }, ...overlays], path);
}

function validate(
  c: TrainConfig,
  file: string,
  requireInit: boolean,
  setBy: Map<string, string>,
): void {
  const bad = (field: string, why: string): never => {
    throw new ConfigError(
      file,
      `${field} ${why}${by(setBy.get(field.replace(/\[\d+\]$/, "")) ?? "")}`,
    );
  };
  const num = (field: string, v: unknown, lo: number, hi = Infinity, int = false) => {
    if (typeof v !== "number" || !(v >= lo && v <= hi) || (int && !Number.isInteger(v))) {
      bad(
        field,
        `must be ${int ? "an integer" : "a number"} in [${lo}, ${hi}], got ${JSON.stringify(v)}`,
      );
    }
  };
  if (!MODE.includes(c.mode)) {
    bad("mode", `must be one of ${MODE.join(", ")}, got ${JSON.stringify(c.mode)}`);
  }
  num("seed", c.seed, 0, 2 ** 32 - 1, true);
  for (const k of ["init", "critic"] as const) {
    if (c[k] !== undefined && (typeof c[k] !== "string" || c[k] === "")) {
      bad(k, `must be a checkpoint path, got ${JSON.stringify(c[k])}`);
    }
  }
  if (c.data.root !== undefined && (typeof c.data.root !== "string" || c.data.root === "")) {
    bad("data.root", `must be a directory, got ${JSON.stringify(c.data.root)}`);
  }
  if (!DATASETS.includes(c.data.dataset)) {
    bad("data.dataset", `must be one of ${DATASETS.join(", ")}`);
  }
  num("data.trainLimit", c.data.trainLimit, 0, Infinity, true);
  num("data.evalLimit", c.data.evalLimit, 0, Infinity, true);
  if (!["pad", "resize"].includes(c.data.fit)) bad("data.fit", "must be pad or resize");
  if (!["batch", "imagenet", "cub", "none"].includes(c.data.normalize)) {
    bad("data.normalize", "must be batch, imagenet, cub or none");
  }
  if (!["none", "finetune", "cub", "dino"].includes(c.data.augment)) {
    bad("data.augment", "must be none, finetune, cub or dino");
  }
  if (typeof c.data.shuffleLabels !== "boolean") bad("data.shuffleLabels", "must be true or false");
  const m = c.model;
  for (
    const k of [
      "imageSize",
      "channels",
      "patch",
      "width",
      "depth",
      "heads",
      "mlp",
      "decoderWidth",
      "decoderDepth",
      "decoderHeads",
      "decoderMlp",
    ] as const
  ) {
    num(`model.${k}`, m[k], 1, 100000, true);
  }
  if (m.imageSize % m.patch !== 0) {
    bad("model.patch", `${m.patch} does not divide imageSize ${m.imageSize}`);
  }
  if (m.width % m.heads !== 0) bad("model.heads", `${m.heads} does not divide width ${m.width}`);
  if (m.decoderWidth % m.decoderHeads !== 0) {
    bad("model.decoderHeads", `does not divide decoderWidth ${m.decoderWidth}`);
  }
  num("model.dropout", m.dropout, 0, 0.99);
  num("model.maskRatio", m.maskRatio, 0, 1);
  if (!["random", "block"].includes(m.masking)) bad("model.masking", "must be random or block");
  // The MAE masks exactly round(ratio * tokens) patches (src/ops/patch.ts keptTokens):
  // none masked leaves no loss, none kept leaves the encoder nothing to read.
  const tokens = (m.imageSize / m.patch) ** 2;
  const masked = Math.round(m.maskRatio * tokens);
  if (masked < 1 || masked > tokens - 1) {
    bad(
      "model.maskRatio",
      `${m.maskRatio} masks ${masked} of the ${tokens} patches of a ${m.imageSize / m.patch}x${
        m.imageSize / m.patch
      } grid (${m.masking} masking); at least one must be masked and one visible`,
    );
  }
  validateData(c, bad);
  if (!["cls", "mean", "flat"].includes(m.pool)) bad("model.pool", "must be cls, mean or flat");
  const o = c.optim;
  if (!["adamw", "adam"].includes(o.name)) bad("optim.name", "must be adamw or adam");
  num("optim.lr", o.lr, 0, 10);
  num("optim.minLr", o.minLr, 0, 10);
  if (o.minLr > o.lr) {
    bad("optim.minLr", `${o.minLr} is above optim.lr ${o.lr} (the schedule decays lr to minLr)`);
  }
  num("optim.weightDecay", o.weightDecay, 0, 10);
  if (!Array.isArray(o.betas) || o.betas.length !== 2) bad("optim.betas", "must be [beta1, beta2]");
  num("optim.betas[0]", o.betas[0], 0, 0.999999);
  num("optim.betas[1]", o.betas[1], 0, 0.999999);
  num("optim.epochs", o.epochs, 1, 100000, true);
  num("optim.warmupEpochs", o.warmupEpochs, 0, 100000);
  if (o.warmupEpochs > o.epochs) {
    const epochsBy = setBy.get("optim.epochs");
    bad(
      "optim.warmupEpochs",
      `${o.warmupEpochs} is more than optim.epochs ${o.epochs}${epochsBy ? by(epochsBy) : ""}`,
    );
  }
  num("optim.batchSize", o.batchSize, 1, 65535, true);
  if (!["epoch", "step"].includes(o.stepping)) bad("optim.stepping", "must be epoch or step");
  num("checkpointEvery", c.checkpointEvery, 1, Infinity, true);
  num("logEvery", c.logEvery, 1, Infinity, true);
  validateDino(c, bad, num);
  if (requireInit && (c.mode === "probe" || c.mode === "finetune") && !c.init) {
    bad("init", `is required for mode ${c.mode} (a pretrain checkpoint)`);
  }
  num("smae.alpha", c.smae.alpha, 0, 1);
  if (!["paper", "code"].includes(c.smae.scaling)) bad("smae.scaling", "must be paper or code");
  num("smae.calibrationSteps", c.smae.calibrationSteps, 1, 100000, true);
  if (requireInit && c.mode === "smae" && !c.critic) {
    bad("critic", "is required for mode smae (a checkpoint written by mode critic)");
  }
  // Other modes would silently ignore them, training from scratch or without the critic.
  if (c.init !== undefined && c.mode !== "probe" && c.mode !== "finetune") {
    bad("init", `is read only by modes probe and finetune, not ${c.mode}`);
  }
  if (c.critic !== undefined && c.mode !== "smae") {
    bad("critic", `is read only by mode smae, not ${c.mode}`);
  }
}

/** Native side of each dataset's images before fitting (CUB is read at the model's size). */
const NATIVE_SIZE: Record<DatasetName, number | null> = {
  "fashion-mnist": 28,
  "tiny-imagenet": 64,
  "cub": null,
};

/** Side of the crops of the finetune and cub augmentations, which do not follow the model. */
const AUGMENT_CROP = {
  finetune: FINETUNE_AUGMENT.randomResizedCrop!.size,
  cub: CUB_TRAIN_AUGMENT.randomResizedCrop!.size,
};

/**
 * Smallest image side the whole SqueezeNet 1.1 (mode critic) takes: its third
 * 3x3 stride-2 max pool needs a 3x3 map (25 -> conv 12 -> pool 6 -> pool 3 ->
 * pool 1); at 24 that pool gets 2x2 and the first step fails. (SMAE's
 * perceptual loss reads only features[:5], which need 7.)
 */
export const SQUEEZENET_MIN_SIZE = 25;

/**
 * The dataset against the model's input: channels, the fit, the fixed
 * statistics and augmentations that need RGB or a given size. Each of these
 * otherwise fails only once the data is loaded.
 */
function validateData(c: TrainConfig, bad: (field: string, why: string) => never): void {
  const { data: d, model: m } = c;
  if (m.channels !== 1 && m.channels !== 3) {
    bad("model.channels", `must be 1 (gray) or 3 (RGB), got ${m.channels}`);
  }
  if (d.dataset !== "fashion-mnist" && m.channels !== 3) {
    // Gray images can be replicated into RGB, but not RGB reduced to gray.
    bad("model.channels", `must be 3 for data.dataset ${d.dataset} (RGB images), got 1`);
  }
  if ((d.normalize === "imagenet" || d.normalize === "cub") && m.channels !== 3) {
    bad(
      "data.normalize",
      `${d.normalize} uses per-channel RGB statistics and needs model.channels 3, got 1`,
    );
  }
  if (d.augment === "finetune" && m.channels !== 3) {
    bad("data.augment", `finetune (RandAugment) needs model.channels 3, got 1`);
  }
  if (d.augment === "finetune" || d.augment === "cub") {
    const crop = AUGMENT_CROP[d.augment];
    if (m.imageSize !== crop) {
      bad(
        "data.augment",
        `${d.augment} crops to ${crop}x${crop} and needs model.imageSize ${crop}, got ${m.imageSize}`,
      );
    }
  }
  if (c.mode === "critic" && m.imageSize < SQUEEZENET_MIN_SIZE) {
    bad(
      "model.imageSize",
      `${m.imageSize} is below ${SQUEEZENET_MIN_SIZE}, the smallest input of SqueezeNet (mode critic)`,
    );
  }
  const native = NATIVE_SIZE[d.dataset];
  if (d.fit === "pad" && native !== null && m.imageSize < native) {
    bad(
      "data.fit",
      `pad cannot fit ${d.dataset}'s ${native}x${native} images into model.imageSize ${m.imageSize} (use resize)`,
    );
  }
}

/** The `dino` section, and the pairing of mode dino with augment dino. */
function validateDino(
  c: TrainConfig,
  bad: (field: string, why: string) => never,
  num: (field: string, v: unknown, lo: number, hi?: number, int?: boolean) => void,
): void {
  if ((c.mode === "dino") !== (c.data.augment === "dino")) {
    bad(
      "data.augment",
      c.mode === "dino"
        ? "must be dino for mode dino (two global views per image)"
        : `dino is only for mode dino, not ${c.mode}`,
    );
  }
  const d = c.dino;
  for (const k of ["outDim", "hidden", "bottleneck"] as const) {
    num(`dino.${k}`, d[k], 1, 65536, true);
  }
  if (!["copy", "separate"].includes(d.teacherInit)) {
    bad("dino.teacherInit", `must be copy or separate, got ${JSON.stringify(d.teacherInit)}`);
  }
  num("dino.teacherMomentum", d.teacherMomentum, 0, 1);
  num("dino.centerMomentum", d.centerMomentum, 0, 1);
  if (typeof d.centering !== "boolean") bad("dino.centering", "must be true or false");
  for (const k of ["warmupTeacherTemp", "teacherTemp", "studentTemp"] as const) {
    num(`dino.${k}`, d[k], 1e-4, 100);
  }
  num("dino.warmupTeacherTempEpochs", d.warmupTeacherTempEpochs, 0, 100000, true);
  num("dino.weightDecayEnd", d.weightDecayEnd, 0, 10);
  num("dino.clipGrad", d.clipGrad, 0, 1e6);
  num("dino.freezeLastLayerEpochs", d.freezeLastLayerEpochs, 0, 100000, true);
  num("dino.localCrops", d.localCrops, 0, 16, true);
  num("dino.localCropSize", d.localCropSize, 0, c.model.imageSize, true);
  if (d.localCropSize % c.model.patch !== 0) {
    bad(
      "dino.localCropSize",
      `${d.localCropSize} is not a multiple of model.patch ${c.model.patch} (0: imageSize / 2)`,
    );
  }
  const ls = d.localCropScale;
  if (!Array.isArray(ls) || ls.length !== 2) bad("dino.localCropScale", "must be [min, max]");
  num("dino.localCropScale[0]", ls[0], 1e-4, 1);
  num("dino.localCropScale[1]", ls[1], ls[0], 1);
}
