/**
 * Repro profiles (repro/profiles/*.yaml): per profile, one training config
 * per stage (pretrain, probe, finetune, scratch, transfer, sweep, timing,
 * critic, smae, dino),
 * written with YAML anchors so the shared parts are stated once.
 * @module
 */

import { ConfigError, parseYaml, toConfig, type TrainConfig } from "../train/config.ts";

/** Profile names, smallest first. */
export const PROFILES = ["smoke", "ci", "short", "paper"] as const;
/** One of {@link PROFILES}. */
export type ProfileName = typeof PROFILES[number];

/** Stages a profile may define. */
export type Stage =
  | "pretrain"
  | "probe"
  | "finetune"
  | "scratch"
  | "transfer"
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
}

const HERE = new URL("../../repro/profiles/", import.meta.url);

/** Loads `repro/profiles/<name>.yaml` and validates every stage's config. */
export async function loadProfile(name: ProfileName): Promise<Profile> {
  const url = new URL(`${name}.yaml`, HERE);
  const file = url.pathname;
  const raw = parseYaml(await Deno.readTextFile(url), file) as Record<string, unknown>;
  if (raw.profile !== name) {
    throw new ConfigError(file, `profile is '${raw.profile}', expected '${name}'`);
  }
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
  };
}

/** How errors name a profile's stage: "<file> (stage <stage>)". */
export function stageFile(file: string, stage: string): string {
  return `${file} (stage ${stage})`;
}
