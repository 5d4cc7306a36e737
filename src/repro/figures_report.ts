/**
 * The report's PNG figures: training curves, the masking-ratio sweep against
 * the paper's points, and a Figure-2 style grid (masked input,
 * reconstruction, ground truth) for random and block masking.
 * @module
 */

import { BatchLoader, writeFileAtomic } from "../data/mod.ts";
import type { Gpu } from "../gpu/device.ts";
import { Mae } from "../models/mae.ts";
import { DropoutContext } from "../nn.ts";
import { Rng } from "../rng.ts";
import { noGrad } from "../tape.ts";
import { tensor, tidy } from "../tensor.ts";
import type { TrainConfig } from "../train/config.ts";
import { loadSplits } from "../train/data.ts";
import { decodeSafetensors } from "../train/safetensors.ts";
import type { Results } from "./claims.ts";
import { SWEEP_RATIOS } from "./experiments.ts";
import { imageGrid, lineChart } from "./figures.ts";
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
  const save = async (name: string, png: Uint8Array) => {
    await writeFileAtomic(`${out}/${name}`, png);
    written.push(name);
  };
  for (
    const [file, title, ids, field = "loss", yLabel = "loss"] of [
      ["curves_pretrain.png", "MAE pre-training loss (MSE)", [
        "pretrain-mae-random",
        "pretrain-mae-block",
      ]],
      ["curves_classify.png", "Classification loss (CE)", [
        "scratch",
        "finetune-mae-random",
        "finetune-dino",
        "probe-mae-random",
        "probe-random-init",
      ]],
      // The collapse monitor: 0 is a one-hot teacher, 1 a uniform one.
      [
        "curves_dino.png",
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
      "sweep.png",
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
  const grid = await reconstructionRows(results, profile, gpu);
  if (grid.length) {
    await save(
      "figure2.png",
      imageGrid({
        rows: grid,
        columnLabels: ["masked input", "reconstruction", "ground truth"],
        scale: 2,
        title: "Reconstructions",
      }),
    );
  }
  return written;
}

/** Rows of (masked input, reconstruction with visible patches pasted, ground truth) per masking. */
async function reconstructionRows(results: Results, profile: Profile, gpu: Gpu) {
  const rows = [];
  for (const id of ["pretrain-mae-random", "pretrain-mae-block"]) {
    const r = trained(results, id);
    const dir = r?.metrics[0]?.dir;
    if (typeof dir !== "string") continue;
    const path = `${dir}/checkpoint.safetensors`;
    const { tensors, metadata } = decodeSafetensors(await Deno.readFile(path), path);
    const c = JSON.parse(metadata.config) as TrainConfig;
    const splits = await loadSplits({ ...c, data: { ...c.data, evalLimit: 8 } }, profile.roots.tin);
    const mae = new Mae(gpu, { ...c.model, encoder: c.model }, c.seed);
    for (const store of mae.stores) {
      store.load(
        new Map([...store.params.keys()].map((n) => [n, tensors.get(n)!.data as Float32Array])),
      );
    }
    const loader = new BatchLoader(splits.eval, {
      batchSize: 2,
      seed: 0,
      shuffle: false,
      normalize: c.data.normalize,
    });
    const batch = (await loader.epoch(0).next()).value!;
    const [B, C, H, W] = batch.shape;
    const { pred, target, mask } = noGrad(() =>
      tidy(() => {
        const o = mae.forward(
          tensor(gpu, batch.images, batch.shape),
          mae.sampleMasking(new Rng(1), B),
          new DropoutContext(false, 0, 0, 0),
        );
        return { pred: o.pred, target: o.target, mask: o.mask };
      })
    );
    const [P, T, M] = [
      await pred.read() as Float32Array,
      await target.read() as Float32Array,
      await mask.read() as Float32Array,
    ];
    for (const t of [pred, target, mask]) t.dispose();
    mae.destroy();
    const p = c.model.patch, side = H / p, pd = p * p * C, tokens = side * side;
    // Patch vectors are (py, px, c); images are CHW.
    const toImage = (pick: (b: number, t: number, k: number) => number, b: number) => {
      const img = new Float32Array(C * H * W);
      for (let t = 0; t < tokens; t++) {
        const ty = Math.floor(t / side), tx = t % side;
        for (let py = 0; py < p; py++) {
          for (let px = 0; px < p; px++) {
            for (let ch = 0; ch < C; ch++) {
              img[(ch * H + ty * p + py) * W + tx * p + px] = pick(b, t, (py * p + px) * C + ch);
            }
          }
        }
      }
      return { data: img, channels: C as 1 | 3, height: H, width: W, layout: "chw" as const };
    };
    const lo = T.reduce((a, v) => Math.min(a, v), Infinity);
    const hi = T.reduce((a, v) => Math.max(a, v), -Infinity);
    for (let b = 0; b < B; b++) {
      const at = (a: Float32Array) => (bb: number, t: number, k: number) =>
        a[(bb * tokens + t) * pd + k];
      const masked = (
        bb: number,
        t: number,
        k: number,
      ) => (M[bb * tokens + t] ? lo : at(T)(bb, t, k));
      const recon = (
        bb: number,
        t: number,
        k: number,
      ) => (M[bb * tokens + t] ? at(P)(bb, t, k) : at(T)(bb, t, k));
      const range: [number, number] = [lo, hi];
      rows.push({
        label: `${id.replace("pretrain-mae-", "")} ${b + 1}`,
        images: [toImage(masked, b), toImage(recon, b), toImage(at(T), b)].map((im) => ({
          ...im,
          range,
        })),
      });
    }
  }
  return rows;
}
