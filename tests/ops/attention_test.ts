import { assertClose, dot, finiteDifference } from "../../src/audit.ts";
import {
  attention,
  attentionFlops,
  type AttentionKernel,
  attentionKernels,
  type AttentionOptions,
  attentionQKV,
} from "../../src/ops/attention.ts";
import { OpError } from "../../src/ops/_check.ts";
import { OPS, type Tolerance } from "../../src/ops/registry.ts";
import { type AttentionShape, packQkvRef, splitQkvRef } from "../../src/ref/attention.ts";
import { backward } from "../../src/tape.ts";
import { tensor, tidy } from "../../src/tensor.ts";
import { assert, assertThrows } from "../_assert.ts";
import { gpuTest, gradData, leaf, rand } from "../_helpers.ts";

const { forward: ref, backward: refBack } = OPS.attention.reference;
const tol = OPS.attention.tolerance;

Deno.test("attentionBackwardRef() agrees with finite differences in f64", () => {
  for (const s of [{ B: 2, T: 3, D: 4, H: 2 }, { B: 1, T: 5, D: 6, H: 3 }]) {
    const n = s.B * s.T * s.D;
    const q = rand(1, n, -2, 2), k = rand(2, n, -2, 2), v = rand(3, n), w = rand(4, n);
    const g = refBack(q, k, v, w, s);
    const fq = finiteDifference((x) => dot(ref(x, k, v, s), w), q);
    const fk = finiteDifference((x) => dot(ref(q, x, v, s), w), k);
    const fv = finiteDifference((x) => dot(ref(q, k, x, s), w), v);
    const t = { atol: 1e-8, rtol: 1e-6 };
    assertClose(g.dq, fq, t, `dq ${JSON.stringify(s)}`);
    assertClose(g.dk, fk, t, `dk ${JSON.stringify(s)}`);
    assertClose(g.dv, fv, t, `dv ${JSON.stringify(s)}`);
  }
});

Deno.test("attentionRef() of one token returns v, and of equal keys the mean of v", () => {
  const v = [1, 2, 3, 4];
  assertClose(
    ref([9, 9, 9, 9], [5, 5, 5, 5], v, { B: 1, T: 1, D: 4, H: 2 }),
    v,
    tol.forward,
    "T=1",
  );
  const out = ref([1, 2, 3, 4], [0, 0, 0, 0], [2, 4, 6, 8], { B: 1, T: 2, D: 2, H: 1 });
  assertClose(out, [4, 6, 4, 6], { atol: 1e-12, rtol: 0 }, "uniform weights");
});

/** Runs packed attention forward and backward on the GPU; compares with the reference. */
async function checkPacked(
  gpu: Parameters<Parameters<typeof gpuTest>[1]>[0],
  s: AttentionShape,
  X: Float32Array,
  label: string,
  bound: { forward: Tolerance; backward: Tolerance } = tol,
  kernels: AttentionOptions = {},
): Promise<void> {
  const { B, T, D, H } = s;
  const W = rand(7, B * T * D);
  const x = leaf(gpu, X, [B, T, 3 * D]);
  const y = tidy(() => {
    const out = attention(x, H, kernels);
    backward(out, tensor(gpu, W, out.shape));
    return out;
  });
  const [q, k, v] = splitQkvRef(X, B, T, D);
  const Y = await y.read();
  assert.ok(Y.every(Number.isFinite), `${label}: finite output`);
  assertClose(Y, ref(q, k, v, s), bound.forward, `attention ${label}`);
  const g = refBack(q, k, v, W, s);
  const G = await gradData(x);
  assert.ok(G.every(Number.isFinite), `${label}: finite gradient`);
  assertClose(G, packQkvRef(g.dq, g.dk, g.dv, B, T, D), bound.backward, `dattention ${label}`);
  y.dispose();
  x.dispose();
}

// Every implementation, on every shape each takes: rows and matmul need dh % 4 == 0.
const KERNELS: AttentionKernel[] = ["fused", "rows", "matmul"];
const takes = (kernel: AttentionKernel, s: AttentionShape) =>
  kernel === "fused" || (s.D / s.H) % 4 === 0;
const both = (kernel: AttentionKernel): AttentionOptions => ({ forward: kernel, backward: kernel });

for (const kernel of KERNELS) {
  gpuTest(
    `attention() (${kernel}) on packed qkv matches the f64 reference for T = 1, 17, 65, 257`,
    async (gpu) => {
      const shapes: AttentionShape[] = [
        { B: 2, T: 1, D: 16, H: 2 },
        { B: 2, T: 17, D: 12, H: 4 }, // dh = 3: not a multiple of 4
        { B: 3, T: 17, D: 24, H: 3 }, // dh = 8, T not a multiple of 4, odd B
        { B: 1, T: 65, D: 32, H: 4 },
        { B: 1, T: 257, D: 16, H: 1 },
        { B: 2, T: 50, D: 64, H: 4 }, // the small profile's attention: dh = 16
        { B: 1, T: 33, D: 256, H: 4 }, // the encoder's width: dh = 64, the largest supported
      ];
      for (const s of shapes.filter((s) => takes(kernel, s))) {
        const X = rand(s.T, s.B * s.T * 3 * s.D, -2, 2);
        await checkPacked(gpu, s, X, `${kernel} ${JSON.stringify(s)}`, tol, both(kernel));
      }
    },
  );
}

for (const kernel of KERNELS) {
  gpuTest(
    `attentionQKV() (${kernel}) on separate q, k, v matches the f64 reference`,
    async (gpu) => {
      for (
        const s of [{ B: 2, T: 17, D: 12, H: 4 }, { B: 1, T: 65, D: 16, H: 2 }].filter((s) =>
          takes(kernel, s)
        )
      ) {
        const { B, T, D, H } = s;
        const n = B * T * D;
        const Q = rand(11, n, -2, 2), K = rand(12, n, -2, 2), V = rand(13, n), W = rand(14, n);
        const [q, k, v] = [
          leaf(gpu, Q, [B, T, D]),
          leaf(gpu, K, [B, T, D]),
          leaf(gpu, V, [B, T, D]),
        ];
        const y = tidy(() => {
          const out = attentionQKV(q, k, v, H, both(kernel));
          backward(out, tensor(gpu, W, out.shape));
          return out;
        });
        const label = `${kernel} ${JSON.stringify(s)}`;
        assertClose(await y.read(), ref(Q, K, V, s), tol.forward, `attentionQKV ${label}`);
        const g = refBack(Q, K, V, W, s);
        assertClose(await gradData(q), g.dq, tol.backward, `dq ${label}`);
        assertClose(await gradData(k), g.dk, tol.backward, `dk ${label}`);
        assertClose(await gradData(v), g.dv, tol.backward, `dv ${label}`);
        for (const t of [y, q, k, v]) t.dispose();
      }
    },
  );

  gpuTest(
    `attentionQKV() (${kernel}) gives gradients only to the inputs that need them`,
    async (gpu) => {
      const s = { B: 1, T: 20, D: 8, H: 2 };
      const n = 20 * 8;
      const Q = rand(41, n, -2, 2), K = rand(42, n, -2, 2), V = rand(43, n), W = rand(44, n);
      const q = tensor(gpu, Q, [1, 20, 8]), k = tensor(gpu, K, [1, 20, 8]);
      const v = leaf(gpu, V, [1, 20, 8]);
      tidy(() => backward(attentionQKV(q, k, v, 2, both(kernel)), tensor(gpu, W, [1, 20, 8])));
      assert.equal(q.grad, null);
      assert.equal(k.grad, null);
      assertClose(await gradData(v), refBack(Q, K, V, W, s).dv, tol.backward, "dv alone");
      for (const t of [q, k, v]) t.dispose();
    },
  );

  gpuTest(
    `attention() (${kernel}) stays finite and accurate with large logits (near one-hot rows)`,
    async (gpu) => {
      const s = { B: 1, T: 40, D: 8, H: 2 };
      const X = rand(21, s.B * s.T * 3 * s.D, -1, 1);
      // q and k entries of +-30 give scaled scores up to ~1800: exp overflows without the max shift.
      for (let r = 0; r < s.B * s.T; r++) {
        for (let c = 0; c < 2 * s.D; c++) X[r * 3 * s.D + c] *= 30;
      }
      // f32 rounds a score s to within ~|s| eps = 1e-4, which moves each p by that relative
      // amount: the bound scales with the logits, not with the registry's unit-scale inputs.
      const wide = { atol: 2e-5, rtol: 1e-4 };
      await checkPacked(
        gpu,
        s,
        X,
        `${kernel} large logits`,
        { forward: wide, backward: wide },
        both(kernel),
      );
    },
  );

  gpuTest(`attention() (${kernel}) accumulates into existing gradients`, async (gpu) => {
    const s = { B: 1, T: 9, D: 8, H: 2 };
    const X = rand(31, 9 * 24), W = rand(32, 9 * 8);
    const x = leaf(gpu, X, [1, 9, 24]);
    for (let i = 0; i < 2; i++) {
      tidy(() => backward(attention(x, 2, both(kernel)), tensor(gpu, W, [1, 9, 8])));
    }
    const [q, k, v] = splitQkvRef(X, 1, 9, 8);
    const g = refBack(q, k, v, W, s);
    const want = packQkvRef(g.dq, g.dk, g.dv, 1, 9, 8).map((d) => 2 * d);
    assertClose(await gradData(x), want, tol.backward, `${kernel} twice`);
    x.dispose();
  });
}

gpuTest(
  "each implementation's backward follows each other's forward (shared stats)",
  async (gpu) => {
    const mixed: AttentionOptions[] = KERNELS.flatMap((forward) =>
      KERNELS.filter((backward) => backward !== forward).map((backward) => ({ forward, backward }))
    );
    for (const kernels of mixed) {
      for (const s of [{ B: 2, T: 17, D: 24, H: 3 }, { B: 1, T: 66, D: 64, H: 4 }]) {
        const X = rand(s.T + 5, s.B * s.T * 3 * s.D, -2, 2);
        await checkPacked(
          gpu,
          s,
          X,
          `${JSON.stringify(kernels)} ${JSON.stringify(s)}`,
          tol,
          kernels,
        );
      }
    }
  },
);

gpuTest(
  "attention() runs large heads with dh % 4 == 0 on matmuls, small ones by rows, refuses both otherwise",
  (gpu) => {
    assert.deepEqual(attentionKernels(65, 64), { forward: "matmul", backward: "matmul" });
    assert.deepEqual(attentionKernels(257, 16), { forward: "matmul", backward: "matmul" });
    assert.deepEqual(attentionKernels(50, 16), { forward: "rows", backward: "rows" });
    assert.deepEqual(attentionKernels(13, 16), { forward: "rows", backward: "rows" });
    assert.deepEqual(attentionKernels(257, 3), { forward: "fused", backward: "fused" });
    // Scores over the binding limit: ViT-Lite at batch 128 (4 heads, 260^2 floats each) needs
    // 138,444,800 bytes, over WebGPU's default 128 MiB, and keeps the fused kernels; batch 64 fits.
    const limit = 134217728;
    assert.deepEqual(attentionKernels(257, 64, { heads: 4, batch: 128, limit }).forward, "fused");
    assert.deepEqual(attentionKernels(257, 64, { heads: 4, batch: 64, limit }).forward, "matmul");
    const x = tensor(gpu, new Float32Array(2 * 3 * 36), [2, 3, 36]);
    for (const kernel of ["matmul", "rows"] as const) {
      assertThrows(() => attention(x, 4, { forward: kernel }), "divisible by 4, not 3");
      assertThrows(() => attention(x, 4, { backward: kernel }), "divisible by 4, not 3");
    }
    x.dispose();
  },
);

gpuTest(
  "attention() rows reads q, k, v from staged textures; where they cannot be staged it runs fused",
  async (gpu) => {
    const s = { B: 2, T: 17, D: 24, H: 3 };
    const X = rand(5, s.B * s.T * 3 * s.D, -2, 2);
    const stage = gpu.stageTexture;
    try {
      for (const staging of [true, false]) {
        if (!staging) gpu.stageTexture = () => null;
        if (!gpu.startProfile()) throw new Error("the adapter cannot time kernels");
        await checkPacked(gpu, s, X, `rows, staging ${staging}`, tol, both("rows"));
        const ran = (await gpu.stopProfile()).map((r) => r.entry).filter((e) =>
          e.startsWith("attention_") && !e.includes("heads")
        ).sort();
        const want = staging
          ? [
            "attention_rows_backward_key",
            "attention_rows_backward_query",
            "attention_rows_forward",
          ]
          : ["attention_backward_key", "attention_backward_query", "attention_forward"];
        assert.deepEqual(ran, want, `staging ${staging}`);
      }
    } finally {
      gpu.stageTexture = stage;
    }
  },
);

gpuTest("attention() rejects bad shapes with an OpError naming the op and shapes", (gpu) => {
  const t = (shape: number[]) =>
    tensor(gpu, new Float32Array(shape.reduce((a, b) => a * b)), shape);
  tidy(() => {
    assertThrows(() => attention(t([1, 4, 10]), 2), "attention: last axis of qkv tensor[1,4,10]");
    assertThrows(() => attention(t([1, 4, 12]), 3), "attention: width D=4");
    assertThrows(() => attention(t([4, 12]), 2), "attention: qkv tensor[4,12] f32 must be");
    assertThrows(() => attention(t([1, 2, 3 * 260]), 2), "exceeds 64");
    assertThrows(() => attentionQKV(t([1, 4, 8]), t([1, 5, 8]), t([1, 4, 8]), 2), "shapes differ");
    assertThrows(() => attentionQKV(t([1, 4, 6]), t([1, 4, 6]), t([1, 4, 6]), 4), "D=6");
    assert.throws(
      () => attention(t([2, 3, 10]), 1),
      (e) => e instanceof OpError && e.op === "attention",
    );
  });
});

Deno.test("attentionFlops() counts two T x T x dh products per head", () => {
  assert.equal(attentionFlops(2, 3, 8, 2), 4 * 2 * 2 * 3 * 3 * 4);
});
