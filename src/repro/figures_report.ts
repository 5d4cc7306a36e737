/**
 * The report's figures: training curves and the masking-ratio sweep against
 * the paper's points (SVG), and a Figure-2 style grid (masked input,
 * reconstruction, ground truth) for random and block masking (a PNG of the
 * pixels and an SVG that labels it).
 *
 * The grid's model is loaded through the strict by-name checkpoint loader
 * (`ParamStore.loadAll`, as the trainer loads an init checkpoint) and its images are composed and unpatchified
 * on the GPU with the ops MAE itself uses.
 * @module
 */

import { BatchLoader, writeFileAtomic } from "../data/mod.ts";
import type { Gpu } from "../gpu/device.ts";
import { Mae } from "../models/mae.ts";
import { DropoutContext } from "../nn.ts";
import { add, sub } from "../ops/elementwise.ts";
import { gatherTokens, type Masking, unpatchify, unshuffleTokens } from "../ops/patch.ts";
import { Rng } from "../rng.ts";
import { noGradAsync } from "../tape.ts";
import { type Tensor, tensor, tidy, tidyAsync } from "../tensor.ts";
import type { MaeRunConfig, TrainConfig } from "../train/config.ts";
import { loadSplits } from "../train/data.ts";
import { readCheckpoint } from "../train/safetensors.ts";
import type { Results } from "./claims.ts";
import { SCALE_SIZES, SWEEP_RATIOS } from "./experiments.ts";
import { gridFigure, type GridRow, lineChart, type LineSeries } from "./figures.ts";
import { summarize } from "./stats.ts";
import type { Profile } from "./profiles.ts";

/** The paper's masking-ratio sweep (probe top-1 %, TIN, 200 + 50 epochs). */
export const PAPER_SWEEP: Record<number, number> = {
  50: 31.32,
  60: 32.03,
  65: 32.32,
  70: 30.58,
  75: 32.04,
  80: 31.66,
  85: 29.61,
  90: 28.14,
};

/** Column titles of the reconstruction grid, in the order of {@link reconstructionRow}'s cells. */
export const GRID_COLUMNS = ["masked input", "reconstruction", "ground truth"] as const;

type Runs = { seeds: number[]; metrics: Record<string, unknown>[] };

function trained(results: Results, id: string): Runs | null {
  const r = results.get(id);
  return r && !("notrun" in r) ? r : null;
}

async function lossCurve(dir: string, field = "loss"): Promise<[number, number][]> {
  const text = await Deno.readTextFile(`${dir}/metrics.jsonl`);
  return text.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l))
    .filter((r) => r.type === "train").map((r) => [r.step, r[field]] as [number, number]);
}

/** Renders every figure the results allow into `out`; returns the file names written. */
export async function renderFigures(
  out: string,
  results: Results,
  profile: Profile,
  gpu: Gpu,
): Promise<string[]> {
  await Deno.mkdir(out, { recursive: true });
  const written: string[] = [];
  const save = async (name: string, data: Uint8Array | string) => {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    await writeFileAtomic(`${out}/${name}`, bytes);
    written.push(name);
  };
  for (
    const [file, title, ids, field = "loss", yLabel = "loss"] of [
      ["curves_pretrain.svg", "MAE pre-training loss (MSE)", [
        "pretrain-mae-random",
        "pretrain-mae-block",
      ]],
      ["curves_classify.svg", "Classification loss (CE)", [
        "scratch",
        "finetune-mae-random",
        "finetune-dino",
        "probe-mae-random",
        "probe-random-init",
      ]],
      // The collapse monitor: 0 is a one-hot teacher, 1 a uniform one.
      [
        "curves_dino.svg",
        "DINO teacher entropy / log K",
        [
          "pretrain-dino",
          "pretrain-dino-unsharpened",
        ],
        "entropy_fraction",
        "entropy / log K",
      ],
    ] as const
  ) {
    const series = [];
    for (const id of ids) {
      const r = trained(results, id);
      const dir = r?.metrics[0]?.dir;
      if (typeof dir === "string") {
        series.push({ name: `${id} (seed ${r!.seeds[0]})`, points: await lossCurve(dir, field) });
      }
    }
    if (series.length) {
      await save(file, lineChart({ title, xLabel: "step", yLabel, series }));
    }
  }
  const sweep = SWEEP_RATIOS.map((r) => [r, trained(results, `probe-mae-r${r}`)] as const).filter((
    [, v],
  ) => v);
  if (sweep.length) {
    const ours = sweep.map(([r, v]) => {
      const accs = v!.metrics.map((m) => 100 * ((m.eval as Record<string, number>).accuracy));
      return [r, accs.reduce((a, b) => a + b, 0) / accs.length] as [number, number];
    });
    await save(
      "sweep.svg",
      lineChart({
        title: "Masking-ratio sweep: linear-probe top-1 (%)",
        xLabel: "masking ratio (%)",
        yLabel: "top-1 (%)",
        series: [
          {
            name: "paper (TIN)",
            points: Object.entries(PAPER_SWEEP).map(([r, a]) => [Number(r), a]),
            style: "points",
          },
          { name: `ours (${profile.name})`, points: ours, style: "line+points" },
        ],
      }),
    );
  }
  const scale = scaleSeries(results);
  if (scale.length) {
    await save(
      "scale.svg",
      lineChart({
        title: "MAE's margin over a random init by training-set size (mean, 95% interval)",
        xLabel: "training images (x1024)",
        yLabel: "accuracy difference (pp)",
        series: scale,
      }),
    );
  }
  const rows = await reconstructionRows(results, profile, gpu);
  if (rows.length) {
    const { png, svg } = gridFigure({
      rows,
      columnLabels: GRID_COLUMNS,
      scale: 2,
      title: "Reconstructions",
    });
    await save("figure2.svg", svg);
    await save("figure2.png", png);
  }
  return written;
}

/**
 * The scale study's curves: per comparison (probe, fine-tune vs scratch) the
 * mean over seeds of the paired difference in pp at each size that ran, and
 * the ends of its 95% interval as markers; none when no size ran.
 */
export function scaleSeries(results: Results): LineSeries[] {
  const out: LineSeries[] = [];
  for (
    const [name, greater, lesser] of [
      ["probe: MAE - random init", "probe-mae-random", "probe-random-init"],
      ["fine-tune: MAE - scratch", "finetune-mae-random", "scratch"],
    ] as const
  ) {
    const mean: [number, number][] = [], ends: [number, number][] = [];
    for (const n of SCALE_SIZES) {
      const g = trained(results, `${greater}-n${n}`), l = trained(results, `${lesser}-n${n}`);
      if (!g || !l) continue;
      const acc = (m: Record<string, unknown>) => 100 * (m.eval as Record<string, number>).accuracy;
      const s = summarize(g.metrics.map((m, i) => acc(m) - acc(l.metrics[i])));
      const x = n / 1024;
      mean.push([x, s.mean]);
      ends.push([x, s.ci95[0]], [x, s.ci95[1]]);
    }
    if (mean.length) {
      out.push({ name, points: mean, style: "line+points" });
      out.push({ name: `${name}, 95% interval ends`, points: ends, style: "points" });
    }
  }
  return out;
}

/** The MAE of a pre-training checkpoint and the config it was trained with. */
export async function loadMae(path: string, gpu: Gpu): Promise<{ mae: Mae; config: MaeRunConfig }> {
  const { tensors, metadata } = await readCheckpoint(path, "figure");
  if (!metadata.config) throw new Error(`${path}: checkpoint metadata has no 'config'`);
  const config = JSON.parse(metadata.config) as TrainConfig;
  if (config.mode !== "pretrain" && config.mode !== "smae") {
    throw new Error(`${path}: a '${config.mode}' checkpoint holds no MAE (want pretrain or smae)`);
  }
  const mae = new Mae(gpu, { ...config.mae, encoder: config.encoder }, config.seed);
  try {
    for (const store of mae.stores) {
      store.loadAll(
        (name) => tensors.get(name)?.data as Float32Array | undefined,
        `checkpoint ${path}`,
        "not an MAE checkpoint of this config?",
      );
    }
  } catch (e) {
    mae.destroy();
    throw e;
  }
  return { mae, config };
}

/** The three images of a reconstruction grid row, (B, C, H, W) each, and their display range. */
export interface Reconstruction {
  shape: [number, number, number, number];
  /** The target with masked patches set to mid-gray (the middle of `range`), as in MAE's Figure 2. */
  masked: Float32Array;
  /** The prediction on masked patches, the target on visible ones. */
  recon: Float32Array;
  /** The target (the images, or their per-patch normalisation with normPixLoss). */
  truth: Float32Array;
  /** The finite minimum and maximum of `truth`. */
  range: [number, number];
}

/**
 * Runs `mae` (no dropout) on `images` (B, C, H, W) under `masking` and lays
 * its prediction out as images on the GPU: the visible patches are put back
 * with the decoder's own gather / unshuffle ops, and {@link unpatchify} turns
 * patches into pixels. Only the finished images are read back.
 */
export async function reconstruct(
  mae: Mae,
  images: Tensor,
  masking: Masking,
): Promise<Reconstruction> {
  const e = mae.config.encoder;
  const image = [e.channels, e.imageSize, e.imageSize] as const;
  const B = images.shape[0], P = mae.patchDim, gpu = mae.gpu;
  return await noGradAsync(() =>
    tidyAsync(async () => {
      const { pred, target } = mae.forward(images, masking, new DropoutContext(false, 0, 0, 0));
      const truth = await unpatchify(target, e.patch, image).read() as Float32Array;
      let lo = Infinity, hi = -Infinity;
      for (const v of truth) {
        if (!Number.isFinite(v)) continue;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      // Kept patches of x in place, `fill` (one patch vector) on masked ones.
      const keptOnly = (x: Tensor, fill: number) =>
        unshuffleTokens(
          gatherTokens(x, masking.idsKeep),
          tensor(gpu, new Float32Array(P).fill(fill), [P]),
          masking.idsRestore,
        );
      const masked = keptOnly(target, (lo + hi) / 2);
      // Exact on both kinds of patch: on a kept one pred - pred = 0 leaves the
      // target; on a masked one both kept-only terms are 0, leaving pred.
      const recon = add(keptOnly(target, 0), sub(pred, keptOnly(pred, 0)));
      return {
        shape: [B, ...image] as [number, number, number, number],
        masked: await unpatchify(masked, e.patch, image).read() as Float32Array,
        recon: await unpatchify(recon, e.patch, image).read() as Float32Array,
        truth,
        range: [lo, hi] as [number, number],
      };
    })
  );
}

/** Grid row `b` of a reconstruction: masked input, reconstruction, ground truth on one scale. */
export function reconstructionRow(label: string, r: Reconstruction, b: number): GridRow {
  const [, C, H, W] = r.shape, n = C * H * W;
  const cell = (a: Float32Array) => ({
    data: a.subarray(b * n, (b + 1) * n),
    channels: C as 1 | 3,
    height: H,
    width: W,
    layout: "chw" as const,
    range: r.range,
  });
  return { label, images: [cell(r.masked), cell(r.recon), cell(r.truth)] };
}

/** Two held-out images per pre-trained MAE (random and block masking), reconstructed. */
async function reconstructionRows(
  results: Results,
  profile: Profile,
  gpu: Gpu,
): Promise<GridRow[]> {
  const rows: GridRow[] = [];
  for (const id of ["pretrain-mae-random", "pretrain-mae-block"]) {
    const dir = trained(results, id)?.metrics[0]?.dir;
    if (typeof dir !== "string") continue;
    const { mae, config: c } = await loadMae(`${dir}/checkpoint.safetensors`, gpu);
    try {
      const splits = await loadSplits(
        { ...c, data: { ...c.data, evalLimit: 8 } },
        profile.roots.tin,
      );
      const loader = new BatchLoader(splits.eval, {
        batchSize: 2,
        seed: 0,
        shuffle: false,
        normalize: c.data.normalize,
      });
      const batch = (await loader.epoch(0).next()).value!;
      const B = batch.shape[0];
      const images = tensor(gpu, batch.images, batch.shape);
      const masking = tidy(() => mae.sampleMasking(new Rng(1), B));
      const r = await reconstruct(mae, images, masking);
      for (const t of [images, masking.idsKeep, masking.idsRestore, masking.mask]) t.dispose();
      for (let b = 0; b < B; b++) {
        rows.push(reconstructionRow(`${id.replace("pretrain-mae-", "")} ${b + 1}`, r, b));
      }
    } finally {
      mae.destroy();
    }
  }
  return rows;
}
