/**
 * Operands staged as textures for the kernels that read them so on software
 * adapters (see Gpu.stageTexture and Gpu.textureOperands).
 * @module
 */

import type { Gpu, TextureBinding } from "../gpu/device.ts";
import type { Tensor } from "../tensor.ts";

/**
 * Each distinct tensor of `inputs` staged as a texture (Gpu.stageTexture), in
 * slots `firstSlot`, `firstSlot + 1`, ... and returned in input order (a tensor
 * given twice, such as a packed qkv, is staged once); null when one cannot be
 * staged, and then the caller reads storage instead.
 */
export function stageDistinct(
  gpu: Gpu,
  inputs: Tensor[],
  firstSlot: number,
): TextureBinding[] | null {
  const staged = new Map<Tensor, TextureBinding>();
  for (const t of inputs) {
    if (staged.has(t)) continue;
    const tex = gpu.stageTexture(t.binding, firstSlot + staged.size);
    if (!tex) return null;
    staged.set(t, tex);
  }
  return inputs.map((t) => staged.get(t)!);
}
