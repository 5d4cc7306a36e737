/**
 * Learning-rate schedule of the paper's code: linear warmup from lr/3 to lr
 * over the warmup epochs, then a half cosine down to `minLr` at the last
 * epoch; stepped per epoch (the code) or per step (smoother, optional).
 * lr/3 is PyTorch LinearLR's default start_factor, which the authors'
 * configs keep (config/train/*.yaml); their DINO uses DINO's
 * cosine_scheduler, whose warmup starts at 0 (`warmupStartFactor: 0`).
 * @module
 */

/** Schedule settings. */
export interface ScheduleConfig {
  lr: number;
  epochs: number;
  warmupEpochs: number;
  /** Floor of the cosine (default 0). */
  minLr?: number;
  /** "epoch" (the paper's code) or "step". */
  stepping?: "epoch" | "step";
  /** Warmup starts at lr times this (default 1/3, PyTorch LinearLR; DINO: 0). */
  warmupStartFactor?: number;
}

/**
 * The learning rate for `step` (0-based, within `stepsPerEpoch`) of `epoch`
 * (0-based).
 */
export function learningRate(
  c: ScheduleConfig,
  epoch: number,
  step = 0,
  stepsPerEpoch = 1,
): number {
  const t = c.stepping === "step" ? epoch + step / Math.max(1, stepsPerEpoch) : epoch;
  const minLr = c.minLr ?? 0;
  if (t < c.warmupEpochs) {
    const from = c.lr * (c.warmupStartFactor ?? 1 / 3);
    return from + (c.lr - from) * (t / c.warmupEpochs);
  }
  const span = Math.max(1, c.epochs - c.warmupEpochs);
  const progress = Math.min(1, (t - c.warmupEpochs) / span);
  return minLr + 0.5 * (c.lr - minLr) * (1 + Math.cos(Math.PI * progress));
}
