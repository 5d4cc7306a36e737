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
  /** Side of the local crops, a multiple of encoder.patch; 0: imageSize / 2 rounded to a multiple of the patch. */
  localCropSize: number;
  /** RandomResizedCrop scale range of the local crops (DINO: 0.05-0.4). */
  localCropScale: [number, number];
}

/** The local crops' side for a config: dino.localCropSize, or imageSize / 2 rounded to a multiple of the patch. */
export function dinoLocalSize(
  c: { encoder: Pick<VitConfig, "imageSize" | "patch">; dino: Pick<DinoConfig, "localCropSize"> },
): number {
  if (c.dino.localCropSize > 0) return c.dino.localCropSize;
  const p = c.encoder.patch;
  return Math.max(p, Math.round(c.encoder.imageSize / 2 / p) * p);
}

/** Datasets a run can read. */
export type DatasetName = "fashion-mnist" | "tiny-imagenet" | "cub";

/** The data a run reads (every mode). */
export interface DataConfig {
  dataset: DatasetName;
  /** Dataset root; default: the dataset's own default (env var or data/). */
  root?: string;
  /** Keep this many training images (a seeded, class-balanced subset); 0 = all. */
  trainLimit: number;
  /** Keep this many evaluation images; 0 = all. */
  evalLimit: number;
  /** Images are brought to encoder.imageSize by "pad" or "resize". */
  fit: "pad" | "resize";
  /** Per-batch standardisation (pretrain/probe in the paper's code) or fixed statistics. */
  normalize: "batch" | "imagenet" | "cub" | "none";
  /**
   * Augmentation for training batches (dino for mode dino and only there):
   * finetune and cub are the authors' (64x64 crops, RandAugment), cropflip
   * their crop and flip at the model's size without RandAugment.
   */
  augment: "none" | "finetune" | "cub" | "cropflip" | "dino";
}

/** The data of the modes that train on labels (probe, finetune, scratch, critic). */
export interface LabelledDataConfig extends DataConfig {
  /** Negative control: permute the training labels (seeded), destroying the signal. */
  shuffleLabels: boolean;
}

/** The optimizer and its schedule (every mode). */
export interface OptimConfig {
  name: "adamw" | "adam";
  lr: number;
  minLr: number;
  weightDecay: number;
  betas: [number, number];
  warmupEpochs: number;
  epochs: number;
  batchSize: number;
  stepping: "epoch" | "step";
}

/** The MAE objective (modes pretrain and smae): the decoder's shape and the masking. */
export type MaeObjective = Omit<MaeConfig, "encoder">;

/** A classifier's encoder (modes probe, finetune, scratch): the ViT and its pooling. */
export interface ClassifierEncoder extends VitConfig {
  /** Classifier features: the class token (the paper), mean-pooled or flattened patch tokens. */
  pool: Pooling;
}

/** What mode critic reads of the input and network: SqueezeNet 1.1 has no other shape. */
export type CriticInput = Pick<VitConfig, "imageSize" | "channels" | "dropout">;

/** Fields of every mode. */
interface RunBase {
  seed: number;
  data: DataConfig;
  optim: OptimConfig;
  /** Write a checkpoint every this many steps (and at the end). */
  checkpointEvery: number;
  /** Read the loss back every this many steps (progress, metrics, NaN check). */
  logEvery: number;
}

/** Mode pretrain: the MAE. */
export interface PretrainConfig extends RunBase {
  mode: "pretrain";
  encoder: VitConfig;
  mae: MaeObjective;
}

/** Mode smae: the MAE with the perceptual loss of a trained critic. */
export interface SmaeRunConfig extends RunBase {
  mode: "smae";
  encoder: VitConfig;
  mae: MaeObjective;
  smae: SmaeConfig;
  /** Trained critic checkpoint (mode critic's output); required to train. */
  critic?: string;
}

/** Modes probe and finetune: a classifier on a pre-trained encoder. */
export interface InitClassifierConfig extends RunBase {
  mode: "probe" | "finetune";
  data: LabelledDataConfig;
  /** Mode probe trains the head only, without dropout (encoder.dropout is not used). */
  encoder: ClassifierEncoder;
  /** Checkpoint to start the encoder from; required to train. */
  init?: string;
}

/** Mode scratch: a classifier from a random init. */
export interface ScratchConfig extends RunBase {
  mode: "scratch";
  data: LabelledDataConfig;
  encoder: ClassifierEncoder;
}

/** Mode critic: SqueezeNet 1.1 trained as a classifier from scratch. */
export interface CriticConfig extends RunBase {
  mode: "critic";
  data: LabelledDataConfig;
  encoder: CriticInput;
}

/** Mode dino: DINO self-distillation (the baseline). */
export interface DinoRunConfig extends RunBase {
  mode: "dino";
  encoder: VitConfig;
  dino: DinoConfig;
}

/**
 * A whole training run: one shape per {@link Mode}, each holding only the
 * sections its mode reads, so code reading `c.mae` or `c.dino` must first
 * have narrowed on `c.mode`.
 */
export type TrainConfig =
  | PretrainConfig
  | SmaeRunConfig
  | InitClassifierConfig
  | ScratchConfig
  | CriticConfig
  | DinoRunConfig;

/** The config of mode `M` (probe and finetune share one shape, narrowed to `M`). */
export type ConfigOf<M extends Mode> = M extends Mode
  ? TrainConfig extends infer T ? T extends { mode: infer X } ? M extends X ? T & { mode: M }
      : never
    : never
  : never
  : never;

/** `c` narrowed to mode `mode`; throws naming both modes when it is another. */
export function ofMode<M extends Mode>(c: TrainConfig, mode: M): ConfigOf<M> {
  if (c.mode !== mode) throw new Error(`a config of mode ${mode} is needed, got ${c.mode}`);
  return c as ConfigOf<M>;
}

/** A config's model fields as one flat object (see {@link modelOf}). */
export type ModelFields = Partial<ClassifierEncoder & MaeObjective>;

/**
 * The model fields of a config as one flat object: its encoder and, for the
 * MAE modes, the MAE objective. What a checkpoint is sealed with, so that an
 * init or critic checkpoint can be checked field by field.
 */
export function modelOf(c: TrainConfig): ModelFields {
  return { ...c.encoder, ...("mae" in c ? c.mae : {}) };
}

/** The configs that train a classifier from a ViT encoder (probe, finetune, scratch). */
export type ClassifierConfig = InitClassifierConfig | ScratchConfig;

/** The configs of the MAE objective (pretrain, smae). */
export type MaeRunConfig = PretrainConfig | SmaeRunConfig;

const MODE = ["pretrain", "probe", "finetune", "scratch", "critic", "smae", "dino"] as const;
const DATASETS = ["fashion-mnist", "tiny-imagenet", "cub"] as const;

const DATA_DEFAULTS: DataConfig = {
  dataset: "fashion-mnist",
  trainLimit: 0,
  evalLimit: 0,
  fit: "pad",
  normalize: "batch",
  augment: "none",
};

const OPTIM_DEFAULTS: OptimConfig = {
  name: "adamw",
  lr: 5e-4,
  minLr: 0,
  weightDecay: 0.15,
  betas: [0.9, 0.95],
  warmupEpochs: 20,
  epochs: 400,
  batchSize: 128,
  stepping: "epoch",
};

const MAE_DEFAULTS: MaeObjective = {
  ...MAE_DECODER,
  maskRatio: 0.75,
  masking: "random",
  normPixLoss: false,
};

const DINO_DEFAULTS: DinoConfig = {
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
};

/** The defaults of mode `mode`: exactly the sections and fields that mode reads. */
export function defaultsFor<M extends Mode>(mode: M): Omit<ConfigOf<M>, "mode"> {
  const base = {
    seed: 42,
    data: { ...DATA_DEFAULTS },
    optim: { ...OPTIM_DEFAULTS, betas: [...OPTIM_DEFAULTS.betas] },
    checkpointEvery: 500,
    logEvery: 10,
  };
  const labelled = { ...DATA_DEFAULTS, shuffleLabels: false };
  const vit = { ...VIT_LITE_7_4 };
  const out: Record<Mode, unknown> = {
    pretrain: { ...base, encoder: vit, mae: { ...MAE_DEFAULTS } },
    smae: { ...base, encoder: vit, mae: { ...MAE_DEFAULTS }, smae: { ...SMAE_DEFAULTS } },
    probe: { ...base, data: labelled, encoder: { ...vit, pool: "cls" } },
    finetune: { ...base, data: labelled, encoder: { ...vit, pool: "cls" } },
    scratch: { ...base, data: labelled, encoder: { ...vit, pool: "cls" } },
    critic: {
      ...base,
      data: labelled,
      encoder: { imageSize: vit.imageSize, channels: vit.channels, dropout: vit.dropout },
    },
    dino: { ...base, encoder: vit, dino: structuredClone(DINO_DEFAULTS) },
  };
  return structuredClone(out[mode]) as Omit<ConfigOf<M>, "mode">;
}

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
 * Keys a config of `mode` may set that have no default, by the section they
 * belong to ("" is the top level); any other key must be one of the mode's
 * defaults' keys ({@link defaultsFor}).
 */
function optionalKeys(mode: Mode): Record<string, string[]> {
  const top = ["mode"];
  if (mode === "probe" || mode === "finetune") top.push("init");
  if (mode === "smae") top.push("critic");
  return { "": top, data: ["root"] };
}

/** Keys deep-merged over every mode's defaults: what some mode reads. */
function unionOf(objs: Record<string, unknown>[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const o of objs) {
    for (const [k, v] of Object.entries(o)) {
      out[k] = isObject(v) && isObject(out[k])
        ? unionOf([out[k] as Record<string, unknown>, v])
        : out[k] ?? v;
    }
  }
  return out;
}

/** Every field some mode reads (with init and critic), to tell a misplaced field from a typo. */
const ANY_MODE = unionOf([
  ...MODE.map((m) => defaultsFor(m) as unknown as Record<string, unknown>),
  { init: "", critic: "", data: { root: "" } },
]);

/** Every field of any mode, each section's fields optional. */
interface AnyModeFields {
  mode: Mode;
  seed: number;
  data: LabelledDataConfig;
  encoder: ClassifierEncoder;
  mae: MaeObjective;
  optim: OptimConfig;
  smae: SmaeConfig;
  dino: DinoConfig;
  init: string;
  critic: string;
  checkpointEvery: number;
  logEvery: number;
}

/**
 * A part of a config as plain data: any fields of any mode, at any depth,
 * none required (a field the final mode does not read is refused when the
 * layers are merged).
 */
export type ConfigOverlay = {
  [K in keyof AnyModeFields]?: AnyModeFields[K] extends object ? Partial<AnyModeFields[K]>
    : AnyModeFields[K];
};

/**
 * One layer of a config: a parsed YAML value or a plain-data overlay, named
 * by where it comes from (a profile stage, an experiment, the runner).
 */
export interface ConfigLayer {
  from: string;
  value: unknown;
}

/** The leaf paths of `v` under `path` ("mae.maskRatio, mae.masking"). */
function leaves(v: unknown, path: string): string[] {
  if (!isObject(v) || Object.keys(v).length === 0) return [path];
  return Object.entries(v).flatMap(([k, x]) => leaves(x, `${path}.${k}`));
}

/**
 * Deep-merges `over` into `base`, rejecting keys that `base` does not have
 * (at every depth): a key that another mode reads is named as not read by
 * `mode`, any other as unknown. Records in `setBy` which layer set each leaf.
 */
function merge(
  file: string,
  mode: Mode,
  base: Record<string, unknown>,
  over: unknown,
  path: string,
  layer: string,
  setBy: Map<string, string>,
  anyMode: Record<string, unknown> | undefined,
): Record<string, unknown> {
  if (over === undefined || over === null) return base;
  if (!isObject(over)) {
    throw new ConfigError(file, `${path || "the config"} must be a mapping${by(layer)}`);
  }
  const optional = optionalKeys(mode)[path] ?? [];
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue; // an overlay's unset field (YAML has no undefined)
    const here = path ? `${path}.${k}` : k;
    if (!(k in base) && !optional.includes(k)) {
      if (anyMode !== undefined && k in anyMode) {
        const fields = leaves(v, here);
        throw new ConfigError(
          file,
          `${fields.join(", ")} ${fields.length > 1 ? "are" : "is"} not read by mode ${mode}${
            by(layer)
          }`,
        );
      }
      const known = [...Object.keys(base), ...optional];
      // The one section of configs written before the split by mode.
      const moved = here === "model"
        ? "; its fields are now under encoder (the network) and mae (decoder and masking)"
        : "";
      throw new ConfigError(
        file,
        `unknown field '${here}'${by(layer)} (known: ${[...new Set(known)].join(", ")})${moved}`,
      );
    }
    if (isObject(base[k])) {
      const sub = anyMode?.[k];
      out[k] = merge(
        file,
        mode,
        base[k] as Record<string, unknown>,
        v,
        here,
        layer,
        setBy,
        isObject(sub) ? sub : undefined,
      );
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
 * Merges `layers` in order onto the defaults of their mode (the last layer
 * that sets `mode` decides) and validates the result once, so a config is
 * checked on its final values. A field the mode does not read is refused
 * ("mae.maskRatio is not read by mode probe"). An error names `file`, the
 * field and, when a later layer set it, that layer (`from`; "" for the file
 * itself). Layers are not modified.
 *
 * @example
 * ```ts
 * import { configFromLayers } from "./config.ts";
 * const c = configFromLayers([
 *   { from: "", value: { mode: "pretrain", mae: { maskRatio: 0.75 } } },
 *   { from: "experiment block", value: { mae: { masking: "block", maskRatio: 0.5 } } },
 * ], "stage.yaml");
 * if (c.mode !== "pretrain" || c.mae.maskRatio !== 0.5 || c.mae.masking !== "block") {
 *   throw new Error("not merged");
 * }
 * ```
 */
export function configFromLayers(
  layers: ConfigLayer[],
  file = "<inline>",
  requireInit = true,
): TrainConfig {
  let mode: unknown, modeBy = "";
  for (const l of layers) {
    if (isObject(l.value) && l.value.mode !== undefined) [mode, modeBy] = [l.value.mode, l.from];
  }
  if (!MODE.includes(mode as Mode)) {
    throw new ConfigError(
      file,
      `mode must be one of ${MODE.join(", ")}, got ${JSON.stringify(mode)}${by(modeBy)}`,
    );
  }
  const m = mode as Mode;
  let c = defaultsFor(m) as unknown as Record<string, unknown>;
  const setBy = new Map<string, string>();
  for (const l of layers) c = merge(file, m, c, l.value, "", l.from, setBy, ANY_MODE);
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

type Bad = (field: string, why: string) => never;
type Num = (field: string, v: unknown, lo: number, hi?: number, int?: boolean) => void;

function validate(
  c: TrainConfig,
  file: string,
  requireInit: boolean,
  setBy: Map<string, string>,
): void {
  const bad: Bad = (field, why) => {
    throw new ConfigError(
      file,
      `${field} ${why}${by(setBy.get(field.replace(/\[\d+\]$/, "")) ?? "")}`,
    );
  };
  const num: Num = (field, v, lo, hi = Infinity, int = false) => {
    if (typeof v !== "number" || !(v >= lo && v <= hi) || (int && !Number.isInteger(v))) {
      bad(
        field,
        `must be ${int ? "an integer" : "a number"} in [${lo}, ${hi}], got ${JSON.stringify(v)}`,
      );
    }
  };
  num("seed", c.seed, 0, 2 ** 32 - 1, true);
  for (const k of ["init", "critic"] as const) {
    const v = (c as Partial<Record<typeof k, unknown>>)[k];
    if (v !== undefined && (typeof v !== "string" || v === "")) {
      bad(k, `must be a checkpoint path, got ${JSON.stringify(v)}`);
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
  if (!["none", "finetune", "cub", "cropflip", "dino"].includes(c.data.augment)) {
    bad("data.augment", "must be none, finetune, cub, cropflip or dino");
  }
  if ("shuffleLabels" in c.data && typeof c.data.shuffleLabels !== "boolean") {
    bad("data.shuffleLabels", "must be true or false");
  }
  if (c.mode === "critic") {
    for (const k of ["imageSize", "channels"] as const) {
      num(`encoder.${k}`, c.encoder[k], 1, 100000, true);
    }
  } else {
    validateVit(c.encoder, bad, num);
  }
  num("encoder.dropout", c.encoder.dropout, 0, 0.99);
  if (c.mode === "pretrain" || c.mode === "smae") validateMae(c, bad, num);
  validateData(c, bad);
  if (c.mode === "probe" || c.mode === "finetune" || c.mode === "scratch") {
    if (!["cls", "mean", "flat"].includes(c.encoder.pool)) {
      bad("encoder.pool", "must be cls, mean or flat");
    }
  }
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
  if ((c.mode === "dino") !== (c.data.augment === "dino")) {
    bad(
      "data.augment",
      c.mode === "dino"
        ? "must be dino for mode dino (two global views per image)"
        : `dino is only for mode dino, not ${c.mode}`,
    );
  }
  if (c.mode === "dino") validateDino(c, bad, num);
  if (requireInit && (c.mode === "probe" || c.mode === "finetune") && !c.init) {
    bad("init", `is required for mode ${c.mode} (a pretrain checkpoint)`);
  }
  if (c.mode === "smae") {
    num("smae.alpha", c.smae.alpha, 0, 1);
    if (!["paper", "code"].includes(c.smae.scaling)) bad("smae.scaling", "must be paper or code");
    num("smae.calibrationSteps", c.smae.calibrationSteps, 1, 100000, true);
    if (requireInit && !c.critic) {
      bad("critic", "is required for mode smae (a checkpoint written by mode critic)");
    }
  }
}

/** The ViT encoder's shape: positive integers, the patch dividing the image, the heads the width. */
function validateVit(e: VitConfig, bad: Bad, num: Num): void {
  for (
    const k of ["imageSize", "channels", "patch", "width", "depth", "heads", "mlp"] as const
  ) {
    num(`encoder.${k}`, e[k], 1, 100000, true);
  }
  if (e.imageSize % e.patch !== 0) {
    bad("encoder.patch", `${e.patch} does not divide imageSize ${e.imageSize}`);
  }
  if (e.width % e.heads !== 0) bad("encoder.heads", `${e.heads} does not divide width ${e.width}`);
}

/** The MAE objective: the decoder's shape and a masking that leaves a patch on each side. */
function validateMae(c: MaeRunConfig, bad: Bad, num: Num): void {
  const m = c.mae, e = c.encoder;
  for (const k of ["decoderWidth", "decoderDepth", "decoderHeads", "decoderMlp"] as const) {
    num(`mae.${k}`, m[k], 1, 100000, true);
  }
  if (m.decoderWidth % m.decoderHeads !== 0) {
    bad("mae.decoderHeads", `does not divide decoderWidth ${m.decoderWidth}`);
  }
  num("mae.maskRatio", m.maskRatio, 0, 1);
  if (!["random", "block"].includes(m.masking)) bad("mae.masking", "must be random or block");
  if (typeof m.normPixLoss !== "boolean") bad("mae.normPixLoss", "must be true or false");
  // The MAE masks exactly round(ratio * tokens) patches (src/ops/patch.ts keptTokens):
  // none masked leaves no loss, none kept leaves the encoder nothing to read.
  const side = e.imageSize / e.patch;
  const tokens = side ** 2;
  const masked = Math.round(m.maskRatio * tokens);
  if (masked < 1 || masked > tokens - 1) {
    bad(
      "mae.maskRatio",
      `${m.maskRatio} masks ${masked} of the ${tokens} patches of a ${side}x${side} grid ` +
        `(${m.masking} masking); at least one must be masked and one visible`,
    );
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
function validateData(c: TrainConfig, bad: Bad): void {
  const { data: d, encoder: m } = c;
  if (m.channels !== 1 && m.channels !== 3) {
    bad("encoder.channels", `must be 1 (gray) or 3 (RGB), got ${m.channels}`);
  }
  if (d.dataset !== "fashion-mnist" && m.channels !== 3) {
    // Gray images can be replicated into RGB, but not RGB reduced to gray.
    bad("encoder.channels", `must be 3 for data.dataset ${d.dataset} (RGB images), got 1`);
  }
  if ((d.normalize === "imagenet" || d.normalize === "cub") && m.channels !== 3) {
    bad(
      "data.normalize",
      `${d.normalize} uses per-channel RGB statistics and needs encoder.channels 3, got 1`,
    );
  }
  if (d.augment === "finetune" && m.channels !== 3) {
    bad("data.augment", `finetune (RandAugment) needs encoder.channels 3, got 1`);
  }
  if (d.augment === "finetune" || d.augment === "cub") {
    const crop = AUGMENT_CROP[d.augment];
    if (m.imageSize !== crop) {
      bad(
        "data.augment",
        `${d.augment} crops to ${crop}x${crop} and needs encoder.imageSize ${crop}, got ${m.imageSize}`,
      );
    }
  }
  if (c.mode === "critic" && m.imageSize < SQUEEZENET_MIN_SIZE) {
    bad(
      "encoder.imageSize",
      `${m.imageSize} is below ${SQUEEZENET_MIN_SIZE}, the smallest input of SqueezeNet (mode critic)`,
    );
  }
  const native = NATIVE_SIZE[d.dataset];
  if (d.fit === "pad" && native !== null && m.imageSize < native) {
    bad(
      "data.fit",
      `pad cannot fit ${d.dataset}'s ${native}x${native} images into encoder.imageSize ${m.imageSize} (use resize)`,
    );
  }
}

/** The `dino` section (mode dino). */
function validateDino(c: DinoRunConfig, bad: Bad, num: Num): void {
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
  num("dino.localCropSize", d.localCropSize, 0, c.encoder.imageSize, true);
  if (d.localCropSize % c.encoder.patch !== 0) {
    bad(
      "dino.localCropSize",
      `${d.localCropSize} is not a multiple of encoder.patch ${c.encoder.patch} (0: imageSize / 2)`,
    );
  }
  const ls = d.localCropScale;
  if (!Array.isArray(ls) || ls.length !== 2) bad("dino.localCropScale", "must be [min, max]");
  num("dino.localCropScale[0]", ls[0], 1e-4, 1);
  num("dino.localCropScale[1]", ls[1], ls[0], 1);
}
