import { assertClose, dot, finiteDifference } from "../../src/audit.ts";
import {
  Dino,
  dinoHead,
  dinoLoss,
  dinoSpecs,
  LAST_LAYER,
  multiCropDinoLoss,
  teacherTargets,
} from "../../src/models/dino.ts";
import type { VitConfig } from "../../src/models/vit.ts";
import { DropoutContext } from "../../src/nn.ts";
import { l2Normalize } from "../../src/ops/l2_normalize.ts";
import { matmul } from "../../src/ops/matmul.ts";
import { OPS } from "../../src/ops/registry.ts";
import { ParamStore } from "../../src/params.ts";
import { Rng } from "../../src/rng.ts";
import { backward } from "../../src/tape.ts";
import { tensor, tidy } from "../../src/tensor.ts";
import { assert } from "../_assert.ts";
import { gpuTest, gradData, leaf, rand } from "../_helpers.ts";

const VIT: VitConfig = {
  imageSize: 8,
  channels: 1,
  patch: 4,
  width: 5,
  depth: 1,
  heads: 1,
  mlp: 4,
  dropout: 0,
};
const HEAD = { outDim: 7, hidden: 6, bottleneck: 3 };
const geluRef = OPS.gelu.reference.forward;
const l2Ref = (x: ArrayLike<number>, cols: number) =>
  OPS.l2Normalize.reference.forward(x, cols, 1e-12);

/** x (rows, in) @ w^T (w: out x in) + b, in f64. */
function linearRef(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  b: ArrayLike<number> | null,
  inp: number,
  out: number,
) {
  const rows = x.length / inp, y = new Float64Array(rows * out);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < out; o++) {
      let s = b ? b[o] : 0;
      for (let i = 0; i < inp; i++) s += x[r * inp + i] * w[o * inp + i];
      y[r * out + o] = s;
    }
  }
  return y;
}

/** The head and loss in f64 from a flat vector of [x, head params in `names` order]. */
function headLossRef(
  flat: Float64Array,
  sizes: [string, number][],
  rows: number,
  targets: ArrayLike<number>,
  studentTemp: number,
): number {
  const part = new Map<string, Float64Array>();
  let o = 0;
  for (const [name, n] of sizes) {
    part.set(name, flat.subarray(o, o + n));
    o += n;
  }
  const g = (n: string) => part.get(n)!;
  const { width } = VIT, { hidden, bottleneck, outDim } = HEAD;
  let h = geluRef(linearRef(g("x"), g("head.fc1.w"), g("head.fc1.b"), width, hidden));
  h = geluRef(linearRef(h, g("head.fc2.w"), g("head.fc2.b"), hidden, hidden));
  const z = l2Ref(linearRef(h, g("head.fc3.w"), g("head.fc3.b"), hidden, bottleneck), bottleneck);
  const logits = linearRef(z, l2Ref(g(LAST_LAYER), bottleneck), null, bottleneck, outDim);
  const per = OPS.softCrossEntropy.reference.forward(logits, targets, outDim, studentTemp);
  return per.reduce((a, v) => a + v, 0) / rows;
}

gpuTest(
  "the DINO head and loss match central finite differences in f64 through the tape",
  async (gpu) => {
    const rows = 4, studentTemp = 0.1, teacherTemp = 0.04;
    const specs = dinoSpecs(VIT, HEAD, new Rng(3)).specs.filter((s) => s.name.startsWith("head."));
    const store = new ParamStore(gpu, specs);
    const X = rand(11, rows * VIT.width, -1, 1);
    // Teacher side: raw outputs and a centre, made into targets on the GPU and in f64.
    const T = rand(12, rows * HEAD.outDim, -1, 1), C = rand(13, HEAD.outDim, -0.3, 0.3);
    const centred = T.map((v, i) => (v - C[i % HEAD.outDim]) / teacherTemp);
    const Q = OPS.softmax.reference.forward(centred, HEAD.outDim);
    const x = leaf(gpu, X, [rows, VIT.width]);
    const loss = tidy(() => {
      const { probs } = teacherTargets(
        tensor(gpu, T, [rows, HEAD.outDim]),
        tensor(gpu, C, [HEAD.outDim]),
        teacherTemp,
      );
      const l = dinoLoss(dinoHead(store, x), probs, studentTemp);
      backward(l);
      return l;
    });
    const sizes: [string, number][] = [
      ["x", X.length],
      ...specs.map((s) => [s.name, s.init.length] as [string, number]),
    ];
    const flat = Float64Array.from([...X, ...specs.flatMap((s) => [...s.init])]);
    const want = headLossRef(flat, sizes, rows, Q, studentTemp);
    assertClose([await loss.item()], [want], { atol: 1e-5, rtol: 1e-5 }, "DINO loss");
    const fd = finiteDifference((v) => headLossRef(v, sizes, rows, Q, studentTemp), flat);
    const got = [...await gradData(x)];
    for (const s of specs) got.push(...await gradData(store.get(s.name)));
    // f32 forward and backward through 4 layers, against f64 differences.
    assertClose(got, fd, { atol: 2e-4, rtol: 2e-3 }, "DINO loss gradient (x, then head params)");
    assert.ok(fd.some((v) => Math.abs(v) > 1e-2), "the check is not vacuous");
    loss.dispose();
    x.dispose();
    store.destroy();
  },
);

gpuTest(
  "the weight-normalised last layer: gradient matches finite differences, output ignores the scale of V",
  async (gpu) => {
    const [rows, bottleneck, out] = [5, 3, 9];
    const Z = rand(21, rows * bottleneck, -1, 1), V = rand(22, out * bottleneck, -1, 1);
    const W = rand(23, rows * out, -1, 1);
    const f = (v: Float64Array) =>
      dot(linearRef(Z, l2Ref(v, bottleneck), null, bottleneck, out), W);
    const run = async (values: Float32Array) => {
      const v = leaf(gpu, values, [out, bottleneck]);
      const y = tidy(() => {
        const o = matmul(tensor(gpu, Z, [rows, bottleneck]), l2Normalize(v), { transB: true });
        backward(o, tensor(gpu, W, o.shape));
        return o;
      });
      const r = { y: await y.read(), g: await gradData(v) };
      y.dispose();
      v.dispose();
      return r;
    };
    const a = await run(V);
    assertClose(a.g, finiteDifference(f, V), { atol: 1e-5, rtol: 1e-4 }, "dV");
    // w = v / ||v||: the output is invariant to each row's scale, and the gradient
    // is orthogonal to each row (the radial direction changes nothing).
    const b = await run(V.map((v, i) => v * (1 + Math.floor(i / bottleneck))));
    assertClose(b.y, a.y, { atol: 1e-6, rtol: 1e-5 }, "scale-invariant output");
    for (let r = 0; r < out; r++) {
      const row = (x: ArrayLike<number>) =>
        Array.from(x).slice(r * bottleneck, (r + 1) * bottleneck);
      assert.ok(Math.abs(dot(row(a.g), row(V))) < 1e-5, `dV row ${r} is orthogonal to V row ${r}`);
    }
  },
);

gpuTest(
  "the teacher starts as a copy of the student, or separately initialised when asked",
  async (gpu) => {
    const copy = new Dino(gpu, VIT, HEAD, 5, "copy");
    const sep = new Dino(gpu, VIT, HEAD, 5, "separate");
    const [s, t, t2] = [
      await copy.student.read(),
      await copy.teacher.read(),
      await sep.teacher.read(),
    ];
    assert.deepEqual([...s.keys()], [...t.keys()]);
    for (const [k, v] of s) assert.deepEqual(t.get(k), v, k);
    assert.notDeepEqual(t2.get("encoder.embed.w"), s.get("encoder.embed.w"));
    assert.deepEqual(
      await sep.student.read(),
      s,
      "the student does not depend on the teacher's init",
    );
    copy.destroy();
    sep.destroy();
  },
);

/**
 * DINO's multi-crop loss in f64, written as DINOLoss's double loop: teacher
 * global view iq in {0, 1}, student crop v in [0, 2 + N) with v != iq, each
 * term the batch mean of -sum q log softmax(s / studentTemp). `t` holds the
 * teacher's raw outputs on [view 1; view 2] (unswapped), `s` the student's on
 * [view 1; view 2], `l` on the N local crops (crop-major).
 */
function multiCropRef(
  s: ArrayLike<number>,
  l: ArrayLike<number>,
  t: ArrayLike<number>,
  centre: ArrayLike<number>,
  B: number,
  K: number,
  N: number,
  studentTemp: number,
  teacherTemp: number,
): number {
  const row = (x: ArrayLike<number>, r: number) =>
    Array.from({ length: K }, (_, k) => x[r * K + k]);
  const q = (iq: number, b: number) => {
    const z = row(t, iq * B + b).map((v, k) => (v - centre[k]) / teacherTemp);
    const m = Math.max(...z), e = z.map((v) => Math.exp(v - m)), sum = e.reduce((a, v) => a + v);
    return e.map((v) => v / sum);
  };
  const crop = (v: number, b: number) => v < 2 ? row(s, v * B + b) : row(l, (v - 2) * B + b);
  let total = 0, terms = 0;
  for (let iq = 0; iq < 2; iq++) {
    for (let v = 0; v < 2 + N; v++) {
      if (v === iq) continue;
      let mean = 0;
      for (let b = 0; b < B; b++) {
        const z = crop(v, b).map((x) => x / studentTemp);
        const m = Math.max(...z);
        const lse = m + Math.log(z.reduce((a, x) => a + Math.exp(x - m), 0));
        mean += -q(iq, b).reduce((a, qk, k) => a + qk * (z[k] - lse), 0) / B;
      }
      total += mean;
      terms++;
    }
  }
  assert.equal(terms, 2 * (2 + N) - 2);
  return total / terms;
}

gpuTest(
  "the multi-crop DINO loss (2 global views + N local crops) matches an f64 DINOLoss reference, and its gradient central finite differences",
  async (gpu) => {
    const [B, K, studentTemp, teacherTemp] = [3, 5, 0.1, 0.04];
    for (const N of [0, 1, 3]) {
      const S = rand(31 + N, 2 * B * K, -1, 1), L = rand(41 + N, Math.max(1, N * B * K), -1, 1);
      const T = rand(51 + N, 2 * B * K, -1, 1), C = rand(61 + N, K, -0.3, 0.3);
      // The teacher sees the swapped views [view 2; view 1].
      const swapped = Float32Array.from([...T.subarray(B * K), ...T.subarray(0, B * K)]);
      const s = leaf(gpu, S, [2 * B, K]);
      const l = N > 0 ? leaf(gpu, L, [N * B, K]) : null;
      const loss = tidy(() => {
        const { probs } = teacherTargets(
          tensor(gpu, swapped, [2 * B, K]),
          tensor(gpu, C, [K]),
          teacherTemp,
        );
        const v = multiCropDinoLoss(s, l, probs, studentTemp);
        backward(v);
        return v;
      });
      const nS = S.length;
      const f = (x: Float64Array) =>
        multiCropRef(x.subarray(0, nS), x.subarray(nS), T, C, B, K, N, studentTemp, teacherTemp);
      const flat = Float64Array.from(N > 0 ? [...S, ...L] : [...S]);
      assertClose([await loss.item()], [f(flat)], { atol: 1e-5, rtol: 1e-5 }, `loss, N = ${N}`);
      const got = [...await gradData(s), ...(l ? await gradData(l) : [])];
      const fd = finiteDifference(f, flat);
      assertClose(
        got,
        fd,
        { atol: 1e-4, rtol: 1e-3 },
        `gradient w.r.t. the student outputs, N = ${N}`,
      );
      assert.ok(fd.some((v) => Math.abs(v) > 1e-2), "the check is not vacuous");
      if (l) assert.ok(fd.subarray(nS).some((v) => Math.abs(v) > 1e-2), "local crops get gradient");
      loss.dispose();
      s.dispose();
      l?.dispose();
    }
  },
);

gpuTest(
  "a local crop runs through the same encoder and head at its own size (fewer tokens, its own positions)",
  async (gpu) => {
    const vit: VitConfig = { ...VIT, imageSize: 16, patch: 4 };
    const m = new Dino(gpu, vit, HEAD, 7);
    const drop = new DropoutContext(false, 0, 0, 0);
    const small = rand(71, 2 * 8 * 8, -1, 1), big = rand(72, 2 * 16 * 16, -1, 1);
    // The parameters do not depend on the token count: a model built for 8x8 from the same
    // seed has the same ones, and must give the same output on the 8x8 crops.
    const ref = new Dino(gpu, { ...vit, imageSize: 8 }, HEAD, 7);
    const out = tidy(() => [
      m.forward(m.student, tensor(gpu, small, [2, 1, 8, 8]), drop),
      m.forward(m.student, tensor(gpu, big, [2, 1, 16, 16]), drop),
      ref.forward(ref.student, tensor(gpu, small, [2, 1, 8, 8]), drop),
    ]);
    const vals: Float32Array[] = [];
    for (const o of out) {
      assert.deepEqual([...o.shape], [2, HEAD.outDim]);
      vals.push(await o.read() as Float32Array);
      assert.ok(vals.at(-1)!.every(Number.isFinite));
      o.dispose();
    }
    assertClose(vals[0], vals[2], { atol: 1e-6, rtol: 1e-5 }, "local crop = an 8x8 model's output");
    ref.destroy();
    m.destroy();
  },
);
