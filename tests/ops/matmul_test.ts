import { assertClose, dot, finiteDifference } from "../../src/audit.ts";
import { matmul, matmulKernel } from "../../src/ops/matmul.ts";
import { OPS } from "../../src/ops/registry.ts";
import { backward } from "../../src/tape.ts";
import { tensor, tidy } from "../../src/tensor.ts";
import { type Gpu, STAGED_TEXELS_PER_ROW } from "../../src/gpu/device.ts";
import { KERNEL_SOURCES } from "../../kernels/sources.ts";
import { gpuTest, gradData, leaf, rand } from "../_helpers.ts";
import { assert, assertThrows } from "../_assert.ts";

const { forward: ref, backward: refBack } = OPS.matmul.reference;
const tol = OPS.matmul.tolerance;

type Case = [batch: number, m: number, k: number, n: number];
// Odd sizes run the tiled kernel; sizes divisible by 4 run matmul_vec4, whose
// 16x16 blocks overhang 36x20x44 and 37x8x12 (tiled when A is transposed: m =
// 37). 36x18x44 and 8x50x8 run matmul_vec4 only with A transposed and B not
// (k = 18 and 50 end in a partial group of 4); the other transposes, tiled.
// With texture operands the same shapes run matmul_tex (16x32 blocks) instead
// of matmul_vec4; 40x36x72 spans 3x3 of its blocks, and 100x52x48's operands
// fill more than one texture row (1024 texels) and end in a partial one;
// 1040x20x264 is tall enough for matmul_tex_tall's 32x32 blocks (forward, and
// the input gradient when A is transposed), overhanging both ways.
const CASES: Case[] = [
  [1, 1, 1, 1],
  [1, 37, 53, 29],
  [1, 64, 64, 64],
  [3, 17, 31, 9],
  [2, 65, 130, 67],
  [2, 36, 20, 44],
  [1, 37, 8, 12],
  [2, 36, 18, 44],
  [1, 8, 50, 8],
  [2, 40, 36, 72],
  [1, 100, 52, 48],
  [1, 1040, 20, 264],
];
const TRANS = [[false, false], [true, false], [false, true], [true, true]] as const;

function stored(batch: number, r: number, c: number, t: boolean) {
  const s = t ? [c, r] : [r, c];
  return batch === 1 ? s : [batch, ...s];
}

Deno.test("matmulBackwardRef() agrees with central finite differences in f64", () => {
  for (const [transA, transB] of TRANS) {
    const d = { batch: 2, m: 3, k: 4, n: 5, transA, transB };
    const a = rand(1, 24), b = rand(2, 40), w = rand(3, 30), bias = rand(4, 5);
    const { da, db, dbias } = refBack(a, b, w, d);
    const fa = finiteDifference((x) => dot(ref(x, b, d, bias), w), a);
    const fb = finiteDifference((x) => dot(ref(a, x, d, bias), w), b);
    const fbias = finiteDifference((x) => dot(ref(a, b, d, x), w), bias);
    const t = { atol: 1e-8, rtol: 1e-7 };
    assertClose(da, fa, t, `dA trans ${transA}${transB}`);
    assertClose(db, fb, t, `dB trans ${transA}${transB}`);
    assertClose(dbias, fbias, t, `dbias`);
  }
});

/** Runs `fn` with matmul's operands read from storage buffers, then from textures. */
async function bothOperandPaths(gpu: Gpu, fn: (path: string) => Promise<void>) {
  const saved = gpu.textureOperands;
  try {
    for (const textures of [false, true]) {
      gpu.textureOperands = textures;
      await fn(textures ? "texture operands" : "storage operands");
    }
  } finally {
    gpu.textureOperands = saved;
  }
}

gpuTest(
  "matmul() matches the f64 reference on round, odd and batched shapes, all transposes, with bias",
  (gpu) =>
    bothOperandPaths(gpu, async (path) => {
      for (const [batch, m, k, n] of CASES) {
        for (const [transA, transB] of TRANS) {
          const A = rand(m + k, batch * m * k), B = rand(k + n, batch * k * n), bias = rand(n, n);
          const out = tidy(() =>
            matmul(
              tensor(gpu, A, stored(batch, m, k, transA)),
              tensor(gpu, B, stored(batch, k, n, transB)),
              {
                transA,
                transB,
                bias: tensor(gpu, bias, [n]),
              },
            )
          );
          const want = ref(A, B, { batch, m, k, n, transA, transB }, bias);
          assertClose(
            await out.read(),
            want,
            tol.forward,
            `matmul ${batch}x${m}x${k}x${n} t${+transA}${+transB}, ${path}`,
          );
          out.dispose();
        }
      }
    }),
);

gpuTest(
  "matmul() backward matches the f64 reference for A, B and bias",
  (gpu) =>
    bothOperandPaths(gpu, async (path) => {
      for (const [batch, m, k, n] of CASES) {
        for (const [transA, transB] of TRANS) {
          const A = rand(1, batch * m * k),
            B = rand(2, batch * k * n),
            W = rand(3, batch * m * n),
            bias = rand(4, n);
          const a = leaf(gpu, A, stored(batch, m, k, transA));
          const b = leaf(gpu, B, stored(batch, k, n, transB));
          const bi = leaf(gpu, bias, [n]);
          tidy(() => {
            const c = matmul(a, b, { transA, transB, bias: bi });
            backward(c, tensor(gpu, W, c.shape));
          });
          const want = refBack(A, B, W, { batch, m, k, n, transA, transB });
          const label = `${batch}x${m}x${k}x${n} t${+transA}${+transB}, ${path}`;
          assertClose(await gradData(a), want.da, tol.backward, `dA ${label}`);
          assertClose(await gradData(b), want.db, tol.backward, `dB ${label}`);
          assertClose(await gradData(bi), want.dbias, { atol: 1e-4, rtol: 1e-5 }, `dbias ${label}`);
          for (const t of [a, b, bi]) t.dispose();
        }
      }
    }),
);

gpuTest(
  "matmul() runs matmul_tex (or _tall for many rows) with texture operands, matmul_vec4 without",
  async (gpu) => {
    const saved = gpu.textureOperands;
    // [m, k, n], then the kernels of the forward product and the two gradients.
    const cases: [number[], Record<string, number>, Record<string, number>][] = [
      [[32, 16, 8], { matmul_tex: 3 }, { matmul_vec4: 3 }],
      // Forward 1040 rows in 33x9 blocks of 32; dA (1040x264x20) has 33 blocks, dB 20 rows.
      [[1040, 20, 264], { matmul_tex_tall: 1, matmul_tex: 2 }, { matmul_vec4: 3 }],
    ];
    try {
      for (const [[m, k, n], withTextures, without] of cases) {
        for (const textures of [true, false]) {
          gpu.textureOperands = textures;
          if (!gpu.startProfile()) throw new Error("the adapter cannot time kernels");
          const a = leaf(gpu, rand(1, m * k), [m, k]), b = leaf(gpu, rand(2, k * n), [k, n]);
          tidy(() => backward(matmul(a, b), tensor(gpu, rand(3, m * n), [m, n])));
          const ran = await gpu.stopProfile();
          for (const t of [a, b]) t.dispose();
          const got = Object.fromEntries(
            ran.filter((r) => r.entry.startsWith("matmul")).map((r) => [r.entry, r.calls]),
          );
          assert.deepEqual(got, textures ? withTextures : without, `${m}x${k}x${n} ${textures}`);
        }
      }
    } finally {
      gpu.textureOperands = saved;
    }
  },
);

Deno.test("matmulKernel() picks the vec4 kernel only where every vec4 row is whole", () => {
  const want: [m: number, k: number, n: number, tA: boolean, tB: boolean, kernel: string][] = [
    [64, 64, 64, false, false, "vec4"],
    [36, 20, 44, true, true, "vec4"],
    [37, 8, 12, false, true, "vec4"],
    [37, 8, 12, true, false, "tiled"],
    [64, 130, 64, false, false, "tiled"],
    [64, 130, 64, true, false, "vec4"],
    [64, 130, 64, true, true, "tiled"],
    [64, 64, 67, false, false, "tiled"],
    [4, 0, 4, true, false, "tiled"],
  ];
  for (const [m, k, n, tA, tB, kernel] of want) {
    const got = matmulKernel({ m, k, n }, tA, tB);
    if (got !== kernel) throw new Error(`${m}x${k}x${n} t${+tA}${+tB}: ${got}, want ${kernel}`);
  }
});

gpuTest(
  "matmul() rejects mismatched shapes and wrong dtypes, naming the op and the shapes",
  (gpu) => {
    const a = tensor(gpu, rand(1, 6), [2, 3]);
    const b = tensor(gpu, rand(2, 8), [4, 2]);
    assertThrows(() => matmul(a, b), "matmul: inner dimensions differ (3 vs 4): A[2,3] @ B[4,2]");
    const labels = tensor(gpu, [1, 2, 3, 4, 5, 6], [3, 2], "i32");
    assertThrows(() => matmul(a, labels), "matmul: tensor[3,2] i32 must be f32");
    assertThrows(
      () => matmul(a, a, { bias: tensor(gpu, [1], [1]) }),
      "matmul: inner dimensions differ",
    );
    assertThrows(
      () => matmul(a, tensor(gpu, rand(3, 12), [3, 4]), { bias: tensor(gpu, [1, 2], [2]) }),
      "bias tensor[2] f32 must have 4 elements",
    );
  },
);

Deno.test("matmul_tex.wgsl and attention.wgsl read textures as wide as Gpu.stageTexture writes them", () => {
  for (const file of ["matmul_tex.wgsl", "attention.wgsl"] as const) {
    const src = KERNEL_SOURCES[file];
    const width = Number(/const TEX_W = (\d+)u;/.exec(src)?.[1]);
    const shift = Number(/const TEX_SHIFT = (\d+)u;/.exec(src)?.[1]);
    assert.equal(width, STAGED_TEXELS_PER_ROW, file);
    assert.equal(2 ** shift, width, file);
  }
});
