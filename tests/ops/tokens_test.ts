import { assertClose, dot, finiteDifference } from "../../src/audit.ts";
import { OPS } from "../../src/ops/registry.ts";
import { appendToken, concatTokens, sliceTokens } from "../../src/ops/tokens.ts";
import { backward } from "../../src/tape.ts";
import { tensor, tidy } from "../../src/tensor.ts";
import { assertThrows } from "../_assert.ts";
import { gpuTest, gradData, leaf, rand } from "../_helpers.ts";

const ap = OPS.appendToken, sl = OPS.sliceTokens, ct = OPS.concatTokens;

Deno.test("the token-move backward references agree with finite differences in f64", () => {
  const [B, T, D] = [2, 3, 4];
  const x = rand(1, B * T * D), tok = rand(2, D), w = rand(3, B * (T + 1) * D);
  const { dx, dtok } = ap.reference.backward(w, B, T, D);
  const t = { atol: 1e-8, rtol: 1e-7 };
  assertClose(
    dx,
    finiteDifference((v) => dot(ap.reference.forward(v, tok, B, T, D), w), x),
    t,
    "append dx",
  );
  assertClose(
    dtok,
    finiteDifference((v) => dot(ap.reference.forward(x, v, B, T, D), w), tok),
    t,
    "append dtok",
  );
  const b = rand(5, B * 2 * D), wc = rand(6, B * (T + 2) * D);
  const cg = ct.reference.backward(wc, B, T, 2, D);
  assertClose(
    cg.da,
    finiteDifference((v) => dot(ct.reference.forward(v, b, B, T, 2, D), wc), x),
    t,
    "concat da",
  );
  assertClose(
    cg.db,
    finiteDifference((v) => dot(ct.reference.forward(x, v, B, T, 2, D), wc), b),
    t,
    "concat db",
  );
  const ws = rand(4, B * 2 * D);
  const fd = finiteDifference((v) => dot(sl.reference.forward(v, B, T, D, 1, 2), ws), x);
  assertClose(sl.reference.backward(ws, B, T, D, 1, 2), fd, t, "slice dx");
});

gpuTest(
  "appendToken() puts the token last and routes gradients to x and (summed) to the token",
  async (gpu) => {
    for (const [B, T, D] of [[1, 1, 1], [3, 17, 5], [2, 64, 256]]) {
      const X = rand(T, B * T * D), K = rand(D, D), W = rand(B, B * (T + 1) * D);
      const x = leaf(gpu, X, [B, T, D]), tok = leaf(gpu, K, [D]);
      const y = tidy(() => {
        const out = appendToken(x, tok);
        backward(out, tensor(gpu, W, out.shape));
        return out;
      });
      const label = `append ${B}x${T}x${D}`;
      assertClose(await y.read(), ap.reference.forward(X, K, B, T, D), ap.tolerance.forward, label);
      const want = ap.reference.backward(W, B, T, D);
      assertClose(await gradData(x), want.dx, ap.tolerance.backward, `dx ${label}`);
      assertClose(await gradData(tok), want.dtok, ap.tolerance.backward, `dtok ${label}`);
    }
  },
);

gpuTest("sliceTokens() reads a token range and scatters its gradient back", async (gpu) => {
  for (
    const [B, T, D, start, len] of [[1, 1, 1, 0, 1], [3, 17, 5, 16, 1], [2, 65, 48, 0, 64], [
      2,
      9,
      3,
      2,
      5,
    ]]
  ) {
    const X = rand(T, B * T * D), W = rand(B, B * len * D);
    const x = leaf(gpu, X, [B, T, D]);
    const y = tidy(() => {
      const out = sliceTokens(x, start, len);
      backward(out, tensor(gpu, W, out.shape));
      return out;
    });
    const label = `slice ${B}x${T}x${D} [${start}, +${len})`;
    assertClose(
      await y.read(),
      sl.reference.forward(X, B, T, D, start, len),
      sl.tolerance.forward,
      label,
    );
    assertClose(
      await gradData(x),
      sl.reference.backward(W, B, T, D, start, len),
      sl.tolerance.backward,
      `d ${label}`,
    );
  }
});

gpuTest(
  "concatTokens() joins along the token axis and splits the gradient back (accumulating)",
  async (gpu) => {
    for (const [B, T, L, D] of [[1, 1, 1, 1], [2, 256, 1, 128], [3, 5, 7, 3]]) {
      const A = rand(T, B * T * D), Bv = rand(L, B * L * D), W = rand(D, B * (T + L) * D);
      const a = leaf(gpu, A, [B, T, D]), b = leaf(gpu, Bv, [B, L, D]);
      const y = tidy(() => {
        const out = concatTokens(a, b);
        // Used twice: its gradient must accumulate, not overwrite.
        backward(out, tensor(gpu, W, out.shape));
        return out;
      });
      tidy(() => backward(concatTokens(a, b), tensor(gpu, W, [B, T + L, D])));
      const label = `concat ${B}x(${T}+${L})x${D}`;
      assertClose(
        await y.read(),
        ct.reference.forward(A, Bv, B, T, L, D),
        ct.tolerance.forward,
        label,
      );
      const { da, db } = ct.reference.backward(W, B, T, L, D);
      assertClose(await gradData(a), da.map((v) => 2 * v), ct.tolerance.backward, `da ${label}`);
      assertClose(await gradData(b), db.map((v) => 2 * v), ct.tolerance.backward, `db ${label}`);
    }
  },
);

gpuTest("token moves reject bad shapes and ranges, naming the op", (gpu) => {
  const x = tensor(gpu, rand(1, 24), [2, 3, 4]);
  assertThrows(
    () => appendToken(x, tensor(gpu, [1, 2], [2])),
    "appendToken: token tensor[2] f32 must have 4 values",
  );
  assertThrows(() => sliceTokens(x, 2, 2), "sliceTokens: range [2, 4) is outside the 3 tokens");
  assertThrows(
    () => sliceTokens(tensor(gpu, [1, 2], [2]), 0, 1),
    "sliceTokens: tensor[2] f32 must have rank 3",
  );
});
