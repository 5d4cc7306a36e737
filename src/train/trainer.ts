/**
 * `train()`, the entry behind `deno task train`: a config's mode picks its
 * task (src/train/tasks/), and the one loop of src/train/loop.ts trains it
 * with the paper's schedule, seeded determinism, atomic safetensors
 * checkpoints, exact resume, JSON-lines metrics, a progress line, and
 * NaN/Inf detection that names the step and the op.
 * @module
 */

import { openGpu } from "../gpu/device.ts";
import type { TrainConfig } from "./config.ts";
import { loadSplits, shuffleLabels } from "./data.ts";
import { runTraining, type TaskFactory, type TrainOptions, type TrainSummary } from "./loop.ts";
import { classifierTask } from "./tasks/classifier.ts";
import { criticTask } from "./tasks/critic.ts";
import { dinoTask } from "./tasks/dino.ts";
import { pretrainTask } from "./tasks/mae.ts";
import { smaeTask } from "./tasks/smae.ts";

export {
  NonFiniteLossError,
  type TrainOptions,
  type TrainSummary,
  truncateMetrics,
} from "./loop.ts";

/** The task of each mode. */
export const taskOf: TaskFactory = (c, gpu, train) => {
  switch (c.mode) {
    case "pretrain":
      return pretrainTask(c, gpu);
    case "smae":
      return smaeTask(c, gpu);
    case "probe":
    case "finetune":
    case "scratch":
      return classifierTask(c, gpu, train);
    case "critic":
      return criticTask(c, gpu, train);
    case "dino":
      return dinoTask(c, gpu);
  }
};

/** Trains one config to the end (or to `stopAfterSteps`) and returns the summary. */
export async function train(c: TrainConfig, opts: TrainOptions): Promise<TrainSummary> {
  const gpu = opts.gpu ?? await openGpu();
  await Deno.mkdir(opts.out, { recursive: true });
  const loaded = opts.splits ?? await loadSplits(c, opts.data);
  const splits = "shuffleLabels" in c.data && c.data.shuffleLabels
    ? { ...loaded, train: shuffleLabels(loaded.train, c.seed) }
    : loaded;
  return await runTraining(c, { ...opts, gpu, splits }, taskOf);
}
