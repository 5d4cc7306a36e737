/**
 * Repro profiles (repro/profiles/*.yaml): per profile, one training config
 * per stage (pretrain, probe, finetune, scratch, transfer, cubScratch, sweep,
 * timing, critic, smae, dino),
 * written with YAML anchors so the shared parts are stated once.
 *
 * Two rules are applied to the raw YAML before any stage is validated
 * ({@link readRawProfile}):
 * - `derive: { from: <profile>, epochScale: s }` makes a profile the other
 *   one scaled: every stage of the source with its epochs and every epoch
 *   count of its schedules multiplied by `s` (see {@link scaleStage}); the
 *   profile's own `stages` entries then override fields of those stages;
 * - `warmupEpochs: auto` is the authors' rule, `epochs // 20` (their
 *   config/train/*.yaml: `LinearLR: total_iters: num_epochs // 20`).
 * @module
 */

import { ConfigError, parseYaml, toConfig, type TrainConfig } from "../train/config.ts";

/** Profile names, smallest first. */
export const PROFILES = ["smoke", "ci", "small", "short", "paper"] as const;
/** One of {@link PROFILES}. */
export type ProfileName = typeof PROFILES[number];

/** Stages a profile may define. */
export type Stage =
  | "pretrain"
  | "probe"
  | "finetune"
  | "scratch"
  | "transfer"
  | "cubScratch"
  | "sweep"
  | "timing"
  | "critic"
  | "smae"
  | "dino";

/** A loaded profile. */
export interface Profile {
  name: ProfileName;
  description: string;
  /** Dataset roots the profile pins (the smoke profile's fixtures), by dataset. */
  roots: { tin?: string; cub?: string };
  /**
   * Each stage's config as validated at load (early errors for the profile
   * file itself); for reading only. A run's config is built from `raw`.
   */
  stages: Partial<Record<Stage, TrainConfig>>;
  /**
   * Each stage as written (parsed YAML, anchors resolved, not validated): the
   * base layer onto which an experiment's overlay and the runner's seed and
   * checkpoints are merged before the one validation (src/repro/experiments.ts).
   */
  raw: Partial<Record<Stage, unknown>>;
  file: string;
  /**
   * The profile's seeds, when it keeps its assertions apart from its design:
   * `design` are the seeds whose runs set the claims' thresholds, `held` the
   * others, on which `--seeds N` runs (the first N of them) so that a claim
   * is never judged on the runs it was tuned on.
   */
  seeds?: ProfileSeeds;
}

/** A profile's design and held-apart seeds (see {@link Profile.seeds}). */
export interface ProfileSeeds {
  design: number[];
  held: number[];
}

/** `seeds: { design: [...], held: [...] }` of a profile file, checked: integers >= 0, disjoint. */
export function parseSeeds(raw: unknown, file: string): ProfileSeeds | undefined {
  if (raw === undefined) return undefined;
  const bad = (why: string): never => {
    throw new ConfigError(file, `seeds: ${why}`);
  };
  if (!isObject(raw)) return bad("must be { design: [...], held: [...] }");
  const keys = Object.keys(raw).filter((k) => k !== "design" && k !== "held");
  if (keys.length) bad(`unknown key ${keys[0]} (design, held)`);
  const list = (k: "design" | "held"): number[] => {
    const v = raw[k];
    if (!Array.isArray(v) || v.length === 0) return bad(`${k} must be a non-empty list of seeds`);
    for (const x of v) {
      if (!Number.isInteger(x) || x < 0) {
        bad(`${k}: ${JSON.stringify(x)} is not a seed (integer >= 0)`);
      }
    }
    if (new Set(v).size !== v.length) bad(`${k} repeats a seed`);
    return v as number[];
  };
  const design = list("design");
  const held = list("held");
  const both = held.filter((x) => design.includes(x));
  if (both.length) bad(`seed ${both[0]} is both a design and a held-apart seed`);
  return { design, held };
}

const HERE = new URL("../../repro/profiles/", import.meta.url);

/** Loads `repro/profiles/<name>.yaml` and validates every stage's config. */
export async function loadProfile(name: ProfileName): Promise<Profile> {
  const url = new URL(`${name}.yaml`, HERE);
  const file = url.pathname;
  const raw = await readRawProfile(name);
  const rawStages: Partial<Record<Stage, unknown>> = {};
  const stages: Partial<Record<Stage, TrainConfig>> = {};
  for (const [stage, cfg] of Object.entries((raw.stages ?? {}) as Record<string, unknown>)) {
    // A copy: YAML aliases share objects between stages.
    rawStages[stage as Stage] = structuredClone(cfg);
    // Probe and fine-tune stages get their init from the runner.
    stages[stage as Stage] = toConfig(cfg, stageFile(file, stage), false);
  }
  const root = new URL("../../", import.meta.url).pathname;
  const data = (raw.data ?? {}) as { tin?: string; cub?: string };
  const abs = (p?: string) => (p === undefined ? undefined : p.startsWith("/") ? p : root + p);
  return {
    name,
    description: String(raw.description ?? ""),
    roots: { tin: abs(data.tin), cub: abs(data.cub) },
    stages,
    raw: rawStages,
    file,
    ...(raw.seeds === undefined ? {} : { seeds: parseSeeds(raw.seeds, file) }),
  };
}

/** How errors name a profile's stage: "<file> (stage <stage>)". */
export function stageFile(file: string, stage: string): string {
  return `${file} (stage ${stage})`;
}

/** The authors' warmup rule: `num_epochs // 20` epochs of linear warmup (config/train/*.yaml). */
export function autoWarmup(epochs: number): number {
  return Math.floor(epochs / 20);
}

/** Epoch-count fields of a stage that a derived profile scales with the epochs. */
export const SCALED_EPOCH_FIELDS = [
  "optim.epochs",
  "optim.warmupEpochs",
  "dino.warmupTeacherTempEpochs",
  "dino.freezeLastLayerEpochs",
] as const;

/**
 * One stage of a source profile scaled by `s` (raw YAML, not validated):
 * `optim.epochs` becomes max(1, round(epochs s)); each other epoch count of
 * {@link SCALED_EPOCH_FIELDS} that is a number becomes round(x s), at least 1
 * where the source had one (a warmup or freeze that exists in the source
 * exists in the scaled run) and at most the scaled epochs; `auto` stays
 * `auto` and is resolved on the scaled epochs.
 */
export function scaleStage(stage: Record<string, unknown>, s: number): Record<string, unknown> {
  const out = structuredClone(stage);
  const optim = out.optim as Record<string, unknown> | undefined;
  if (typeof optim?.epochs !== "number") return out;
  const epochs = Math.max(1, Math.round(optim.epochs * s));
  for (const path of SCALED_EPOCH_FIELDS) {
    const [group, key] = path.split(".");
    const g = out[group] as Record<string, unknown> | undefined;
    const v = g?.[key];
    if (!g || typeof v !== "number") continue;
    g[key] = key === "epochs"
      ? epochs
      : v > 0
      ? Math.min(epochs, Math.max(1, Math.round(v * s)))
      : 0;
  }
  return out;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** `over`'s fields laid over `base`, objects merged key by key (arrays and values replace). */
function overlay(base: unknown, over: unknown): unknown {
  if (!isObject(base) || !isObject(over)) return structuredClone(over);
  const out: Record<string, unknown> = structuredClone(base);
  for (const [k, v] of Object.entries(over)) out[k] = k in out ? overlay(out[k], v) : v;
  return out;
}

/**
 * A profile's raw YAML with `derive` resolved (see the module doc); `load`
 * reads another profile's raw YAML by name, derived but with `auto` left
 * unresolved, so that `auto` is computed on the scaled epochs.
 */
export async function deriveRaw(
  raw: Record<string, unknown>,
  file: string,
  load: (name: ProfileName) => Promise<Record<string, unknown>>,
): Promise<Record<string, unknown>> {
  const out = structuredClone(raw);
  if (out.derive === undefined) return out;
  const d = out.derive as { from?: unknown; epochScale?: unknown };
  if (!isObject(d) || !PROFILES.includes(d.from as ProfileName) || d.from === out.profile) {
    throw new ConfigError(file, `derive.from must name another profile (${PROFILES.join(", ")})`);
  }
  const s = d.epochScale;
  if (typeof s !== "number" || !(s > 0 && s <= 1)) {
    throw new ConfigError(file, `derive.epochScale must be a number in (0, 1], got ${s}`);
  }
  const src = await load(d.from as ProfileName);
  const stages: Record<string, unknown> = {};
  for (const [k, v] of Object.entries((src.stages ?? {}) as Record<string, unknown>)) {
    stages[k] = scaleStage(v as Record<string, unknown>, s);
  }
  for (const [k, v] of Object.entries((out.stages ?? {}) as Record<string, unknown>)) {
    if (!(k in stages)) {
      throw new ConfigError(file, `stage ${k}: not a stage of ${d.from}, so nothing to change`);
    }
    stages[k] = overlay(stages[k], v);
  }
  const merged: Record<string, unknown> = { ...src, ...out, stages };
  delete merged.derive;
  return merged;
}

/** `warmupEpochs: auto` of every stage replaced by {@link autoWarmup} of its epochs. */
export function resolveAuto(raw: Record<string, unknown>, file: string): Record<string, unknown> {
  const out = structuredClone(raw);
  for (const [k, v] of Object.entries((out.stages ?? {}) as Record<string, unknown>)) {
    const optim = isObject(v) ? v.optim : undefined;
    if (!isObject(optim) || optim.warmupEpochs !== "auto") continue;
    if (typeof optim.epochs !== "number") {
      throw new ConfigError(file, `stage ${k}: optim.warmupEpochs auto needs numeric optim.epochs`);
    }
    optim.warmupEpochs = autoWarmup(optim.epochs);
  }
  return out;
}

async function derivedProfile(name: ProfileName): Promise<Record<string, unknown>> {
  const url = new URL(`${name}.yaml`, HERE);
  const file = url.pathname;
  const raw = parseYaml(await Deno.readTextFile(url), file) as Record<string, unknown>;
  if (raw.profile !== name) {
    throw new ConfigError(file, `profile is '${raw.profile}', expected '${name}'`);
  }
  return deriveRaw(raw, file, derivedProfile);
}

/**
 * `repro/profiles/<name>.yaml` as plain YAML values, with `derive` and then
 * `warmupEpochs: auto` resolved: what every stage's config is built from.
 */
export async function readRawProfile(name: ProfileName): Promise<Record<string, unknown>> {
  return resolveAuto(await derivedProfile(name), new URL(`${name}.yaml`, HERE).pathname);
}

/** The seeds a repro run trains, and what they are to the profile's thresholds. */
export interface RunSeeds {
  seeds: number[];
  /** One line for the report, e.g. "held apart from the design seeds 1, 2, 3". */
  role: string;
  /** Which of the profile's seed sets the run used (none: the profile keeps no such sets). */
  kind?: "design" | "held" | "mixed";
}

/**
 * The seeds of a run: `list` as given (`--seed-list`); else `n` seeds
 * (`--seeds N`): the first N held-apart seeds of a profile that keeps them
 * ({@link Profile.seeds}), otherwise 1..N; else the profile's own seed once.
 * Throws when N is more than the profile holds apart.
 */
export function runSeeds(p: Profile, n?: number, list?: number[]): RunSeeds {
  const held = p.seeds?.held ?? [];
  const design = p.seeds?.design ?? [];
  if (n !== undefined && p.seeds && n > held.length) {
    throw new ConfigError(
      p.file,
      `--seeds ${n}: the ${p.name} profile holds ${held.length} seeds apart (seeds.held: ` +
        `${held.join(", ")}); use at most ${held.length}, or name seeds with --seed-list`,
    );
  }
  const seeds = list ??
    (n === undefined
      ? [p.stages.pretrain?.seed ?? 42]
      : p.seeds
      ? held.slice(0, n)
      : Array.from({ length: n }, (_, i) => i + 1));
  if (!p.seeds) return { seeds, role: "" };
  const d = seeds.filter((s) => design.includes(s));
  const kind = d.length === 0 ? "held" : d.length === seeds.length ? "design" : "mixed";
  const role = d.length === 0
    ? `held apart: the thresholds were set on the design seeds ${design.join(", ")}`
    : d.length === seeds.length
    ? `the design seeds, on which the thresholds were set: not a held-apart check`
    : `seeds ${d.join(", ")} are design seeds, on which the thresholds were set: ` +
      "not a held-apart check";
  return { seeds, role, kind };
}
