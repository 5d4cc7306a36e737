import { assertClose, finiteDifference } from "../../src/audit.ts";
import { block, blockSpecs } from "../../src/models/vit.ts";
import { DropoutContext, SpecList } from "../../src/nn.ts";
import { sumAll } from "../../src/ops/reduce.ts";
import { mul } from "../../src/ops/elementwise.ts";
import { ParamStore } from "../../src/params.ts";
import { attentionRef, splitQkvRef } from "../../src/ref/attention.ts";
import { axpbyRef, reluRef } from "../../src/ref/elementwise.ts";
import { layerNormRef } from "../../src/ref/layernorm.ts";
import { matmulRef } from "../../src/ref/matmul.ts";
import { Rng } from "../../src/rng.ts";
import { backward } from "../../src/tape.ts";
import { tensor, tidy } from "../../src/tensor.ts";
import { assert } from "../_assert.ts";
import { gpuTest, gradData, leaf, rand } from "../_helpers.ts";

const B = 2, T = 5, W = 8, H = 2, M = 12;

/**
 * One pre-norm block in f64 from the plain-loop references:
 * x + proj(attn(ln1 x)), then + fc2(relu(fc1(ln2 x))). `theta` holds the
 * parameters flattened in declaration order.
 */
function blockRef(
  x: Float64Array | Float32Array,
  theta: Float64Array,
  specs: { name: string; init: Float32Array }[],
) {
  const p = new Map<string, Float64Array>();
  let o = 0;
  for (const s of specs) {
    p.set(s.name.replace("b.", ""), theta.subarray(o, o + s.init.length));
    o += s.init.length;
  }
  const lin = (a: ArrayLike<number>, w: string, b: string | null, inp: number, out: number) =>
    matmulRef(
      a,
      p.get(w)!,
      { batch: 1, m: B * T, k: inp, n: out, transB: true },
      b ? p.get(b)! : undefined,
    );
  const h = layerNormRef(x, p.get("ln1.w")!, p.get("ln1.b")!, W).y;
  const [q, k, v] = splitQkvRef(lin(h, "qkv.w", null, W, 3 * W), B, T, W);
  const a = lin(attentionRef(q, k, v, { B, T, D: W, H }), "proj.w", "proj.b", W, W);
  const x1 = axpbyRef(x, a, 1, 1);
  const m = layerNormRef(x1, p.get("ln2.w")!, p.get("ln2.b")!, W).y;
  const f = lin(reluRef(lin(m, "fc1.w", "fc1.b", W, M)), "fc2.w", "fc2.b", M, W);
  return axpbyRef(x1, f, 1, 1);
}

gpuTest(
  "a transformer block assembled from the ops passes a finite-difference gradient check through the tape",
  async (gpu) => {
    const list = new SpecList();
    blockSpecs(list, "b", W, M, new Rng(3));
    // Non-trivial norms and biases, so their gradients are exercised too.
    const r = new Rng(4);
    for (const s of list.specs) if (!s.decay) s.init = s.init.map((v) => v + r.uniform(-0.3, 0.3));
    const store = new ParamStore(gpu, list.specs);
    const X = rand(5, B * T * W, -1.5, 1.5), Wt = rand(6, B * T * W);
    const x = leaf(gpu, X, [B, T, W]);
    const y = tidy(() => {
      const out = block(store, "b", x, H, new DropoutContext(false, 0, 0, 0));
      backward(sumAll(mul(out, tensor(gpu, Wt, out.shape))));
      return out;
    });
    const theta = Float64Array.from(list.specs.flatMap((s) => [...s.init]));
    const loss = (xx: Float64Array | Float32Array, th: Float64Array) =>
      blockRef(xx, th, list.specs).reduce((a, v, i) => a + v * Wt[i], 0);
    assertClose(
      await y.read(),
      blockRef(X, theta, list.specs),
      { atol: 1e-5, rtol: 1e-4 },
      "block forward",
    );
    const fdX = finiteDifference((v) => loss(v, theta), X, 1e-5);
    assertClose(
      await gradData(x),
      fdX,
      { atol: 1e-4, rtol: 1e-3 },
      "block dx vs finite differences",
    );
    const fdTheta = finiteDifference((th) => loss(X, th), theta, 1e-5);
    const grads = (await Promise.all(list.specs.map((s) => store.get(s.name).grad!.read())))
      .flatMap((g) => [...g]);
    assertClose(
      grads,
      fdTheta,
      { atol: 1e-4, rtol: 1e-3 },
      "block parameter gradients vs finite differences",
    );
    assert.ok(grads.some((g) => Math.abs(g) > 1e-3), "gradients are not trivially zero");
    store.destroy();
  },
);
