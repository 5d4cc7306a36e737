/**
 * Runs a study's experiments for a profile and some seeds, through a cache
 * keyed by (config, seed, init, data checksum): a pretrained encoder is
 * trained once and reused by its probe, fine-tune and transfer runs, and a
 * second invocation only evaluates. `--fresh` ignores the cache.
 *
 * A cache entry `<cache>/<key>/` is complete only when its `complete.json`,
 * written last, names the SHA-256 of its checkpoint and the checkpoint still
 * has it. An entry is trained in `<key>.tmp-<pid>/` and renamed into place
 * once complete, so a run killed at any point leaves the old entry (or none),
 * never a mix. The cache directory is locked while a run uses it.
 * @module
 */

import { createHash } from "node:crypto";
import { type ImageDataset, writeFileAtomic } from "../data/mod.ts";
import type { Gpu } from "../gpu/device.ts";
import type { TrainConfig } from "../train/config.ts";
import { loadSplits } from "../train/data.ts";
import { inferenceTimes, smaeTimes } from "../train/timing.ts";
import { train, type TrainSummary } from "../train/trainer.ts";
import type { Results } from "./claims.ts";
import { lockDir } from "./lock.ts";
import { DATASET_SIZES, flopsPerImage, formatDuration, kindOf, modelShape } from "./estimate.ts";
import {
  type ExperimentConfig,
  experimentConfig,
  experimentConfigs,
  planFor,
  withDependencies,
} from "./experiments.ts";
import { type LevelJob, MissingDependencyError } from "./level_run.ts";
import type { Profile } from "./profiles.ts";

/** How to run. */
export interface RunnerOptions {
  profile: Profile;
  seeds: number[];
  gpu: Gpu;
  /** Cache root (default .cache/repro). */
  cacheDir: string;
  fresh: boolean;
  /** Dataset roots given on the command line or by environment. */
  roots: { tin?: string; cub?: string };
  /** Run only the experiment families of shard i of n (0-based i). */
  shard?: { index: number; count: number };
  log: (line: string) => void;
  /** A level job of the GPU workflow: what it starts from must come from the cache, never train. */
  levelJob?: LevelJob;
  /**
   * Report from the cache alone: nothing trains, and an experiment with a seed
   * missing there (or starting from one that is) reads "not run". The cache is
   * only read, so it is neither locked nor swept: a run may be filling it.
   */
  cachedOnly?: boolean;
}

/** One experiment run (for claims.json). */
export interface RunRecord {
  experiment: string;
  seed: number;
  key: string;
  cached: boolean;
  seconds: number;
  dir: string;
}

type Splits = { train: ImageDataset; eval: ImageDataset };

/** SHA-256 of the parts in order, hashed incrementally (a TIN split is over 1 GB). */
function sha256Hex(parts: Uint8Array[]): string {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest("hex");
}

/** SHA-256 of a file, read in chunks (hex). */
export async function fileSha256(path: string): Promise<string> {
  const h = createHash("sha256");
  const f = await Deno.open(path, { read: true });
  try {
    const buf = new Uint8Array(1 << 20);
    for (;;) {
      const n = await f.read(buf);
      if (n === null) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    f.close();
  }
  return h.digest("hex");
}

/** What `complete.json` holds: the entry's key and its checkpoint's checksum. */
export interface CompletionRecord {
  key: string;
  checkpointSha256: string;
  finished: string;
}

/**
 * The summary of a complete cache entry, or null (with a message naming
 * what is wrong) when `dir` is missing, has no completion record, or its
 * checkpoint no longer matches the recorded checksum.
 */
export async function readEntry(
  dir: string,
  key: string,
  log: (line: string) => void,
): Promise<TrainSummary | null> {
  try {
    await Deno.stat(dir);
  } catch {
    return null;
  }
  let record: CompletionRecord;
  try {
    record = JSON.parse(await Deno.readTextFile(`${dir}/complete.json`));
  } catch {
    log(`${dir}: no completion record (an interrupted or older run); rebuilding`);
    return null;
  }
  const ckpt = `${dir}/checkpoint.safetensors`;
  const sha = await fileSha256(ckpt).catch(() => "missing");
  if (record.key !== key || sha !== record.checkpointSha256) {
    log(
      `${ckpt}: fails its checksum (sha256 ${sha.slice(0, 16)}, recorded ${
        String(record.checkpointSha256).slice(0, 16)
      }); rebuilding`,
    );
    return null;
  }
  try {
    return JSON.parse(await Deno.readTextFile(`${dir}/summary.json`));
  } catch {
    log(`${dir}/summary.json: unreadable; rebuilding`);
    return null;
  }
}

/**
 * Test hook: when REPRO_PAUSE_AT names `point`, says so on stderr and
 * waits forever, so a test can kill this process by pid at that point.
 */
async function pausePoint(point: string): Promise<void> {
  if (Deno.env.get("REPRO_PAUSE_AT") !== point) return;
  console.error(`repro: paused at ${point} (pid ${Deno.pid})`);
  await new Promise(() => setInterval(() => {}, 1 << 30));
}

/**
 * Removes what killed runs left in the (locked) cache: `<key>.tmp-<pid>`
 * training folders and `<key>.old-<pid>` entries set aside for replacement.
 */
async function sweepCache(cacheDir: string, log: (line: string) => void): Promise<void> {
  for await (const e of Deno.readDir(cacheDir)) {
    if (!e.isDirectory || !/\.(tmp|old)-\d+$/.test(e.name)) continue;
    log(`${cacheDir}/${e.name}: removing what an interrupted run left`);
    await Deno.remove(`${cacheDir}/${e.name}`, { recursive: true });
  }
}

/**
 * Trains one entry in `<dir>.tmp-<pid>`, records its completion and renames
 * it to `dir`, replacing an old entry only then.
 */
async function trainEntry(
  id: string,
  key: string,
  dir: string,
  build: (out: string) => Promise<TrainSummary>,
): Promise<TrainSummary> {
  const tmp = `${dir}.tmp-${Deno.pid}`;
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
  const summary = await build(tmp);
  // The trainer names its own output folder; the entry's checkpoint lives at `dir`.
  summary.checkpoint = `${dir}/checkpoint.safetensors`;
  const enc = new TextEncoder();
  await writeFileAtomic(`${tmp}/summary.json`, enc.encode(JSON.stringify(summary, null, 2) + "\n"));
  await pausePoint(`${id}:trained`);
  const record: CompletionRecord = {
    key,
    checkpointSha256: await fileSha256(`${tmp}/checkpoint.safetensors`),
    finished: new Date().toISOString(),
  };
  await writeFileAtomic(`${tmp}/complete.json`, enc.encode(JSON.stringify(record, null, 2) + "\n"));
  await pausePoint(`${id}:complete`);
  const old = `${dir}.old-${Deno.pid}`;
  let hadOld = true;
  await Deno.rename(dir, old).catch((e) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    hadOld = false;
  });
  await pausePoint(`${id}:swap`);
  await Deno.rename(tmp, dir);
  if (hadOld) await Deno.remove(old, { recursive: true });
  return summary;
}

/** The experiment families (an experiment plus those initialised from it), for sharding. */
export function families(ids: string[], p: Profile): string[][] {
  // An SMAE run joins its critic's family: the critic must run in its shard.
  const root = (id: string): string => {
    const plan = planFor(id, p);
    if (plan.kind !== "train") return id;
    const parent = plan.init ?? plan.critic;
    return parent ? root(parent) : id;
  };
  const groups = new Map<string, string[]>();
  for (const id of withDependencies(ids, p)) {
    const r = root(id);
    groups.set(r, [...(groups.get(r) ?? []), id]);
  }
  return [...groups.values()];
}

/** Runs `ids` (and their dependencies) for every seed; returns metrics per experiment. */
export async function runExperiments(
  ids: string[],
  o: RunnerOptions,
): Promise<{ results: Results; runs: RunRecord[] }> {
  if (o.cachedOnly) return await runInCache(ids, o); // only reads the cache
  const lock = await lockDir(o.cacheDir, "repro (experiment cache)", o.log);
  try {
    await sweepCache(o.cacheDir, o.log);
    return await runInCache(ids, o);
  } finally {
    lock.release();
  }
}

/** Runs (or, cachedOnly, looks up) every experiment; the caller holds the cache's lock to train. */
async function runInCache(
  ids: string[],
  o: RunnerOptions,
): Promise<{ results: Results; runs: RunRecord[] }> {
  let fams = families(ids, o.profile);
  if (o.shard) fams = fams.filter((_, i) => i % o.shard!.count === o.shard!.index);
  const order = fams.flat();
  // Every run's config is checked before any data is read or anything written.
  const planned = o.seeds.map((seed) => experimentConfigs(order, o.profile, seed));
  const progress = new Progress(planned.flatMap((byId) => order.map((id) => byId[id])), o.log);
  const results: Results = new Map();
  const runs: RunRecord[] = [];
  const splitCache = new Map<string, Promise<{ splits: Splits; checksum: string }>>();
  const keys = new Map<string, string>(); // `${id}@${seed}` -> cache key

  const splitsFor = (c: TrainConfig, root: string | undefined) => {
    const k = JSON.stringify([
      c.data.dataset,
      root,
      c.data.trainLimit,
      c.data.evalLimit,
      c.data.fit,
      c.data.augment, // CUB's training photos are kept whole for augment cub
      c.encoder.imageSize,
      c.encoder.channels,
      c.seed,
    ]);
    let v = splitCache.get(k);
    if (!v) {
      v = loadSplits(c, root).then((splits) => ({
        splits,
        checksum: sha256Hex([
          splits.train.images,
          // A view: a dataset read from the cache points into the whole file's buffer.
          new Uint8Array(
            splits.train.labels.buffer,
            splits.train.labels.byteOffset,
            splits.train.labels.byteLength,
          ),
          splits.eval.images,
        ]),
      }));
      splitCache.set(k, v);
    }
    return v;
  };

  for (const id of order) {
    const plan = planFor(id, o.profile);
    if (plan.kind === "notrun") {
      results.set(id, { notrun: plan.reason });
      continue;
    }
    if (o.cachedOnly) {
      const dep = plan.kind === "train"
        ? [plan.init, plan.critic].find((d) => d && "notrun" in (results.get(d) ?? {}))
        : undefined;
      const why = plan.kind === "timing"
        ? "a timing, measured afresh by every run"
        : dep
        ? `starts from ${dep}, not in the cache`
        : null;
      if (why) {
        results.set(id, { notrun: `${why} (--cached-only)` });
        continue;
      }
    }
    const metrics: Record<string, unknown>[] = [];
    let uncached: number | undefined;
    for (const seed of o.seeds) {
      const t0 = performance.now();
      progress.start(id, seed);
      let initKey = "", criticKey = "";
      const c = experimentConfig(o.profile, id, seed, (dep, role) => {
        const k = keys.get(`${dep}@${seed}`);
        if (!k) throw new Error(`${id}: its ${role} ${dep} (seed ${seed}) has not run`);
        if (role === "init") initKey = k;
        else criticKey = k;
        return `${o.cacheDir}/${k}/checkpoint.safetensors`;
      });
      const dataKey = plan.kind === "train" ? plan.data : "tin";
      const root = o.profile.roots[dataKey] ?? o.roots[dataKey];
      if (plan.kind === "timing") {
        const { splits } = await splitsFor(c, root);
        o.log(`${id} (seed ${seed}): timing inference over ${splits.eval.count} images`);
        const t = plan.smae
          ? await smaeTimes(c, splits.eval, o.gpu)
          : await inferenceTimes(c, splits.eval, o.gpu);
        metrics.push({ ...t });
        progress.done(c, performance.now() - t0, false);
        runs.push({
          experiment: id,
          seed,
          key: "-",
          cached: false,
          seconds: (performance.now() - t0) / 1000,
          dir: "-",
        });
        continue;
      }
      const { splits, checksum } = await splitsFor(c, root);
      const key = (sha256Hex([
        new TextEncoder().encode(JSON.stringify({
          ...c,
          init: initKey,
          ...(criticKey ? { critic: criticKey } : {}),
          data: c.data,
          checksum,
        })),
      ])).slice(0, 20);
      keys.set(`${id}@${seed}`, key);
      const dir = `${o.cacheDir}/${key}`;
      let summary = o.fresh ? null : await readEntry(dir, key, o.log);
      const cached = summary !== null;
      if (!cached && o.levelJob?.needs.includes(id)) {
        throw new MissingDependencyError([id], o.levelJob, o.cacheDir);
      }
      if (!cached && o.cachedOnly) {
        uncached = seed;
        break;
      }
      if (!summary) {
        o.log(
          `${id} (seed ${seed}): training ${c.mode}, ${c.optim.epochs} epochs on ${splits.train.count} images`,
        );
        summary = await trainEntry(
          id,
          key,
          dir,
          (out) => train(c, { out, gpu: o.gpu, splits, quiet: false }),
        );
      } else {
        o.log(`${id} (seed ${seed}): cached (${dir})`);
      }
      const ev = summary.eval as Record<string, number>;
      if (ev.mse !== undefined && ev.mse_zero_predictor) {
        ev.mse_ratio = ev.mse / ev.mse_zero_predictor;
      }
      metrics.push({ ...summary, dir });
      progress.done(c, performance.now() - t0, cached);
      runs.push({
        experiment: id,
        seed,
        key,
        cached,
        seconds: (performance.now() - t0) / 1000,
        dir,
      });
    }
    results.set(
      id,
      uncached === undefined
        ? { seeds: o.seeds, metrics }
        : { notrun: `seed ${uncached} is not in the cache (--cached-only)` },
    );
  }
  return { results, runs };
}

/**
 * "experiment i of N" lines and the study's remaining time: the work left
 * (images x epochs x FLOPs per image of each remaining config) at the speed
 * this run has shown so far. Cached entries count as work, so it errs long.
 */
class Progress {
  #total: number;
  #index = 0;
  #left: number;
  #work = 0;
  #ms = 0;
  constructor(readonly configs: ExperimentConfig[], readonly log: (line: string) => void) {
    const runs = configs.filter((c): c is TrainConfig => !("notrun" in c));
    this.#total = runs.length;
    this.#left = runs.reduce((a, c) => a + Progress.work(c), 0);
  }

  /** Planned work; a wrong image count (fixtures) scales every experiment of a dataset alike. */
  static work(c: TrainConfig): number {
    const n = c.data.trainLimit || DATASET_SIZES[c.data.dataset].train;
    return n * c.optim.epochs * flopsPerImage(kindOf(c.mode), modelShape(c));
  }

  start(id: string, seed: number): void {
    this.#index++;
    this.log(`experiment ${this.#index} of ${this.#total}: ${id} (seed ${seed})`);
  }

  done(c: TrainConfig, ms: number, cached: boolean): void {
    const work = Progress.work(c);
    this.#left = Math.max(0, this.#left - work);
    if (!cached) {
      this.#work += work;
      this.#ms += ms;
    }
    if (this.#index < this.#total && this.#work > 0) {
      const eta = this.#left * (this.#ms / this.#work) / 1000;
      this.log(
        `${this.#index} of ${this.#total} done; about ${
          formatDuration(eta)
        } left at this run's speed`,
      );
    }
  }
}
