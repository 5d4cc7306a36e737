/**
 * `deno task train --config FILE [--data DIR] [--seed N] [--epochs N] [--out DIR] [--resume | --overwrite]`
 * @module
 */

import { parseFlags, usageExit } from "./_args.ts";
import { ConfigError, loadConfig } from "../train/config.ts";
import { NonFiniteLossError, train } from "../train/trainer.ts";

const HELP = `usage: deno task train --config FILE [options]

Trains one configuration, as the config's 'mode' says: pretrain (MAE), probe,
finetune, scratch, critic (the SMAE critic: SqueezeNet 1.1 as a classifier),
smae (MAE + perceptual loss; needs 'critic: <critic run>/checkpoint.safetensors'
and reads 'smae: { alpha, scaling: paper | code, calibrationSteps }') or dino
(the DINO baseline; reads 'dino: { ... }', see README).
Example configs live in repro/configs/; every repro profile stage is one too.

options:
  --config FILE   YAML config (required)
  --data DIR      dataset root (overrides data.root and the default location)
  --seed N        seed (overrides the config's; default 42)
  --epochs N      epochs (overrides optim.epochs)
  --out DIR       output directory (default runs/<config name>-s<seed>)
  --resume        continue from DIR/checkpoint.safetensors, with its settings
                  (refused, naming the fields, if any other than data.root,
                  logEvery and checkpointEvery changed; --epochs may grow)
  --overwrite     start over in a DIR that already holds a run (without it,
                  and without --resume, such a DIR is refused)
  -h, --help      this text

writes: DIR/metrics.jsonl (one JSON object per logged step, epoch and eval),
        DIR/checkpoint.safetensors (params, optimizer state, config, step),
        DIR/summary.json`;

/** The files of a run that `dir` already holds (none when it is absent or empty of them). */
async function runFiles(dir: string): Promise<string[]> {
  const held: string[] = [];
  for (const f of ["checkpoint.safetensors", "metrics.jsonl", "summary.json"]) {
    try {
      await Deno.stat(`${dir}/${f}`);
      held.push(f);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
  return held;
}

if (import.meta.main) {
  const { values } = parseFlags("train", Deno.args, {
    config: { type: "string" },
    data: { type: "string" },
    seed: { type: "string" },
    epochs: { type: "string" },
    out: { type: "string" },
    resume: { type: "boolean", default: false },
    overwrite: { type: "boolean", default: false },
  }, HELP);
  if (!values.config) usageExit("train", "--config is required", HELP);
  const int = (name: string, v: string | undefined) => {
    if (v === undefined) return undefined;
    const n = /^\d+$/.test(v) ? Number(v) : NaN;
    if (!Number.isSafeInteger(n) || (name === "epochs" && n < 1)) {
      usageExit(
        "train",
        `--${name} must be an integer >= ${name === "epochs" ? 1 : 0}, got '${v}'`,
        HELP,
      );
    }
    return n;
  };
  const seed = int("seed", values.seed);
  const epochs = int("epochs", values.epochs);
  try {
    const config = await loadConfig(values.config, [
      { from: "the command line", value: { seed, optim: { epochs } } },
    ]);
    const name = values.config.split("/").pop()!.replace(/\.ya?ml$/, "");
    const out = values.out ?? `runs/${name}-s${config.seed}`;
    if (values.resume && values.overwrite) {
      console.error("train: --resume and --overwrite exclude each other");
      Deno.exit(2);
    }
    const held = values.resume || values.overwrite ? [] : await runFiles(out);
    if (held.length) {
      console.error(
        `train: ${out} already holds a run (${held.join(", ")}); continue it with --resume, ` +
          `or start over with --overwrite (or pass another --out)`,
      );
      Deno.exit(1);
    }
    // Starting over: the old summary must not outlive the run it described.
    if (values.overwrite) await Deno.remove(`${out}/summary.json`).catch(() => {});
    const summary = await train(config, { out, data: values.data, resume: values.resume });
    console.error(
      `train: ${summary.mode} done: ${summary.steps} steps, final loss ${
        summary.finalLoss.toFixed(4)
      }, ` +
        `eval ${JSON.stringify(summary.eval)}, ${summary.imagesPerSecond.toFixed(1)} img/s, ` +
        `params ${summary.params.trainable}/${summary.params.total} trainable`,
    );
    console.log(JSON.stringify(summary));
  } catch (e) {
    if (e instanceof ConfigError || e instanceof NonFiniteLossError || e instanceof Error) {
      console.error(`train: ${e.message}`);
      Deno.exit(1);
    }
    throw e;
  }
}
