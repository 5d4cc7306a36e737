import { assertClose, finiteDifference } from "../src/audit.ts";
import { gelu } from "../src/ops/elementwise.ts";
import { crossEntropy } from "../src/ops/loss.ts";
import { matmul } from "../src/ops/matmul.ts";
import { AdamW } from "../src/optim.ts";
import { ParamStore } from "../src/params.ts";
import { crossEntropyRowsRef } from "../src/ref/loss.ts";
import { geluRef } from "../src/ref/elementwise.ts";
import { matmulRef } from "../src/ref/matmul.ts";
import { Rng } from "../src/rng.ts";
import { backward, noGrad, tapeLength } from "../src/tape.ts";
import { type Tensor, tensor, tidy } from "../src/tensor.ts";
import { assert } from "./_assert.ts";
import { gpuTest, rand } from "./_helpers.ts";

const N = 5, IN = 7, HID = 6, OUT = 3;

function mlpSpecs(seed: number) {
  const r = new Rng(seed);
  const u = (n: number, s: number) => Float32Array.from({ length: n }, () => r.uniform(-s, s));
  return [
    { name: "w1", shape: [HID, IN], init: u(HID * IN, 0.6), decay: true },
    { name: "b1", shape: [HID], init: u(HID, 0.1), decay: false },
    { name: "w2", shape: [OUT, HID], init: u(OUT * HID, 0.6), decay: true },
    { name: "b2", shape: [OUT], init: u(OUT, 0.1), decay: false },
  ];
}

/** The two-layer MLP on the GPU: linear -> GELU -> linear -> mean cross-entropy. */
function mlpLoss(p: ParamStore, x: Tensor, y: Tensor): Tensor {
  const h = gelu(matmul(x, p.get("w1"), { transB: true, bias: p.get("b1") }));
  return crossEntropy(matmul(h, p.get("w2"), { transB: true, bias: p.get("b2") }), y);
}

/** The same MLP in f64 from the plain-loop references, parameters flattened in spec order. */
function mlpLossRef(theta: Float64Array, x: Float32Array, y: Int32Array): number {
  let o = 0;
  const take = (n: number) => theta.subarray(o, o += n);
  const w1 = take(HID * IN), b1 = take(HID), w2 = take(OUT * HID), b2 = take(OUT);
  const h = geluRef(matmulRef(x, w1, { batch: 1, m: N, k: IN, n: HID, transB: true }, b1));
  const logits = matmulRef(h, w2, { batch: 1, m: N, k: HID, n: OUT, transB: true }, b2);
  return crossEntropyRowsRef(logits, y, OUT).reduce((a, b) => a + b, 0) / N;
}

gpuTest(
  "a two-layer MLP's parameter gradients through the tape match f64 finite differences",
  async (gpu) => {
    const specs = mlpSpecs(1);
    const store = new ParamStore(gpu, specs);
    const X = rand(2, N * IN, -2, 2), Y = Int32Array.from([0, 2, 1, 1, 0]);
    const loss = tidy(() => {
      const l = mlpLoss(store, tensor(gpu, X, [N, IN]), tensor(gpu, Y, [N], "i32"));
      backward(l);
      return l;
    });
    const theta = Float64Array.from(specs.flatMap((s) => [...s.init]));
    assertClose(
      [await loss.item()],
      [mlpLossRef(theta, X, Y)],
      { atol: 1e-5, rtol: 1e-5 },
      "MLP loss",
    );
    const fd = finiteDifference((t) => mlpLossRef(t, X, Y), theta, 1e-5);
    const grads = (await Promise.all(specs.map((s) => store.get(s.name).grad!.read()))).flatMap((
      g,
    ) => [...g]);
    assertClose(
      grads,
      fd,
      { atol: 2e-5, rtol: 1e-3 },
      "MLP parameter gradients vs finite differences",
    );
    assert.equal(tapeLength(), 0, "backward consumed the tape");
    store.destroy();
  },
);

gpuTest("gradients accumulate across backward passes until zeroGrad()", async (gpu) => {
  const store = new ParamStore(gpu, mlpSpecs(3));
  const x = tensor(gpu, rand(4, N * IN), [N, IN]), y = tensor(gpu, [0, 1, 2, 0, 1], [N], "i32");
  tidy(() => backward(mlpLoss(store, x, y)));
  const once = await store.get("w1").grad!.read();
  tidy(() => backward(mlpLoss(store, x, y)));
  const twice = await store.get("w1").grad!.read();
  assertClose(twice, once.map((v) => 2 * v), { atol: 1e-7, rtol: 1e-6 }, "twice the gradient");
  store.zeroGrad();
  assert.ok((await store.get("w1").grad!.read()).every((v) => v === 0));
  store.destroy();
});

gpuTest(
  "noGrad() records nothing, and backward() frees the intermediates' gradients",
  (gpu) => {
    const store = new ParamStore(gpu, mlpSpecs(5));
    const x = tensor(gpu, rand(6, N * IN), [N, IN]), y = tensor(gpu, [0, 1, 2, 0, 1], [N], "i32");
    const before = tapeLength();
    const l = noGrad(() => mlpLoss(store, x, y));
    assert.equal(tapeLength(), before, "nothing recorded");
    assert.ok(!l.requiresGrad);
    let hidden: Tensor | null = null;
    tidy(() => {
      hidden = gelu(matmul(x, store.get("w1"), { transB: true }));
      const out = crossEntropy(matmul(hidden, store.get("w2"), { transB: true }), y);
      backward(out);
      assert.equal(hidden.grad, null, "an intermediate's gradient is released once consumed");
    });
    assert.ok(hidden!.disposed, "tidy released the activation");
    store.destroy();
  },
);

gpuTest(
  "a few hundred AdamW steps drive a toy classification loss down, with no new buffers or readbacks in steady state",
  async (gpu) => {
    // Three Gaussian blobs in 7-D; the MLP must separate them.
    const r = new Rng(11);
    const centres = [0, 1, 2].map(() => Array.from({ length: IN }, () => r.uniform(-1.5, 1.5)));
    const labels = Int32Array.from({ length: 60 }, (_, i) => i % 3);
    const X = Float32Array.from(
      { length: 60 * IN },
      (_, i) => centres[labels[Math.floor(i / IN)]][i % IN] + 0.4 * r.normal(),
    );
    const store = new ParamStore(gpu, mlpSpecs(7));
    const opt = new AdamW(store, { lr: 1e-2, weightDecay: 0.01 });
    const x = tensor(gpu, X, [60, IN]), y = tensor(gpu, labels, [60], "i32");
    // One step: zero grads, forward, backward, update — no host readback.
    const step = () =>
      tidy(() => {
        store.zeroGrad();
        const l = mlpLoss(store, x, y);
        backward(l);
        opt.update();
        return l;
      });
    const first = step();
    const initial = await first.item();
    first.dispose();
    let created = 0, readbacks = 0;
    for (let i = 1; i < 300; i++) {
      if (i === 20) {
        await gpu.sync();
        created = gpu.buffersCreated;
        readbacks = gpu.readbacks;
      }
      step().dispose();
    }
    await gpu.sync();
    assert.equal(gpu.buffersCreated, created, "steady-state steps allocate no GPU buffers");
    assert.equal(gpu.readbacks, readbacks, "steps read nothing back");
    const last = step();
    const final = await last.item();
    assert.ok(final < 0.1 * initial, `loss ${initial} -> ${final}`);
    store.destroy();
  },
);
