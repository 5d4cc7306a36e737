/// <reference lib="deno.worker" />
/**
 * Web worker half of BatchLoader's pool: receives the recipe and shared
 * pixels once, then builds the batches it is asked for with the same
 * {@link buildBatch} the main thread uses, transferring results back.
 *
 * @module
 */

import { AugmentScratch } from "./augment.ts";
import { type BatchRecipe, buildBatch } from "./batch_loader.ts";

let recipe: BatchRecipe | null = null;
let pixels: Uint8Array = new Uint8Array(0);
let labels: Int32Array = new Int32Array(0);
const scratch = new AugmentScratch();

self.onmessage = (ev: MessageEvent) => {
  const msg = ev.data;
  if (msg.init) {
    ({ recipe, pixels, labels } = msg.init);
    return;
  }
  try {
    const batch = buildBatch(recipe!, pixels, labels, msg.indices, msg.epoch, msg.step, scratch);
    self.postMessage({ id: msg.id, batch }, [
      batch.images.buffer as ArrayBuffer,
      batch.labels.buffer as ArrayBuffer,
      ...(batch.local ? [batch.local.images.buffer as ArrayBuffer] : []),
    ]);
  } catch (e) {
    self.postMessage({ id: msg.id, error: (e as Error).message });
  }
};
