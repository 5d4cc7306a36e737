/**
 * Shared by the NaN-replay tests of every mode: runs `train` expecting it to
 * stop on a non-finite loss, and returns that error after checking what it
 * must always say and that the state it saved is the step it names.
 * @module
 */

import type { TrainConfig } from "../../src/train/config.ts";
import { decodeSafetensors } from "../../src/train/safetensors.ts";
import { NonFiniteLossError, train, type TrainOptions } from "../../src/train/trainer.ts";
import { assert, assertRejects } from "../_assert.ts";

/** The NaN replay's error for `config`, and the checkpoint it saved (decoded). */
export async function expectNonFinite(config: TrainConfig, opts: TrainOptions) {
  let err: unknown = null;
  await assertRejects(async () => {
    try {
      await train(config, opts);
    } catch (e) {
      err = e;
      throw e;
    }
  }, "loss became non-finite at step");
  assert.ok(err instanceof NonFiniteLossError);
  const e = err as NonFiniteLossError;
  assert.ok(e.step >= 1, `step ${e.step}`);
  assert.ok(e.op && e.op.length > 0, "an op is named");
  const saved = decodeSafetensors(await Deno.readFile(e.checkpoint), e.checkpoint);
  assert.equal(Number(saved.metadata.step), e.step);
  return { error: e, saved };
}
