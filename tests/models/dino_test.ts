import { assertClose, dot, finiteDifference } from "../../src/audit.ts";
import {
  Dino,
  dinoHead,
  dinoLoss,
  dinoSpecs,
  LAST_LAYER,
  teacherTargets,
} from "../../src/models/dino.ts";
import type { VitConfig } from "../../src/models/vit.ts";
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
