import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { initTfjsWebgpu, tfMatmulGflops } from "../../bench/peer_tfjs.ts";

// tfjs keeps its WebGPU device and buffer pool alive for the whole process.
const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test("the TensorFlow.js WebGPU peer initialises on the CPU adapter", opts, async () => {
  assert.equal(await initTfjsWebgpu(), true);
  assert.equal(tf.getBackend(), "webgpu");
});

Deno.test("the peer matmul benchmark returns a finite positive GFLOP/s", opts, async () => {
  const gflops = await tfMatmulGflops(64, 64, 64, { minMs: 50, minIters: 3, stepMs: 20 });
  assert.ok(Number.isFinite(gflops) && gflops > 0, `got ${gflops}`);
});

Deno.test("the peer's matmul matches a plain-loop reference on a seeded case", opts, async () => {
  assert.equal(await initTfjsWebgpu(), true);
  const [m, k, n] = [13, 37, 21]; // odd sizes exercise tile edges
  let s = 12345; // LCG, so the inputs don't depend on tfjs's RNG
  const rand = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  const a = Float32Array.from({ length: m * k }, rand);
  const b = Float32Array.from({ length: k * n }, rand);
  const ref = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let acc = 0;
      for (let p = 0; p < k; p++) acc += a[i * k + p] * b[p * n + j];
      ref[i * n + j] = acc;
    }
  }
  const ta = tf.tensor2d(a, [m, k]);
  const tb = tf.tensor2d(b, [k, n]);
  const tc = tf.matMul(ta, tb);
  const got = await tc.data();
  tf.dispose([ta, tb, tc]);
  assert.equal(got.length, m * n);
  for (let i = 0; i < m * n; i++) {
    assert.ok(
      Math.abs(got[i] - ref[i]) <= 1e-4 * (1 + Math.abs(ref[i])),
      `element ${i}: ${got[i]} vs ${ref[i]}`,
    );
  }
});
