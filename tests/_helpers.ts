/**
 * Shared test set-up: one device per test process, seeded inputs, leaf tensors.
 * @module
 */

import { type Gpu, openGpu } from "../src/gpu/device.ts";
import { Rng } from "../src/rng.ts";
import { type Tensor, tensor } from "../src/tensor.ts";

/** The process-wide test device (opened quietly once). */
export function testGpu(): Promise<Gpu> {
  return openGpu({ log: false });
}

/**
 * Registers a test that needs the GPU. WebGPU keeps the device and its
 * callbacks alive across tests by design, so Deno's leak sanitizers are off.
 */
export function gpuTest(name: string, fn: (gpu: Gpu) => Promise<void> | void): void {
  Deno.test({
    name,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      const gpu = await testGpu();
      await fn(gpu);
      await gpu.sync();
    },
  });
}

/** Seeded uniform values in [lo, hi). */
export function rand(seed: number, n: number, lo = -1, hi = 1): Float32Array {
  return new Rng(seed).uniformArray(n, lo, hi);
}

/** A leaf tensor that requires a gradient. */
export function leaf(gpu: Gpu, data: ArrayLike<number>, shape: readonly number[]): Tensor {
  const t = tensor(gpu, data, shape);
  t.requiresGrad = true;
  return t;
}

/** Reads a tensor's gradient (zeros when it never received one). */
export async function gradData(t: Tensor): Promise<Float32Array> {
  if (!t.grad) return new Float32Array(t.size);
  return await t.grad.read() as Float32Array;
}
