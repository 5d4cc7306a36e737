import { assertClose, dot, finiteDifference } from "../../src/audit.ts";
import { OPS } from "../../src/ops/registry.ts";
import { appendToken, sliceTokens } from "../../src/ops/tokens.ts";
import { backward } from "../../src/tape.ts";
import { tensor, tidy } from "../../src/tensor.ts";
import { assertThrows } from "../_assert.ts";
import { gpuTest, gradData, leaf, rand } from "../_helpers.ts";

const ap = OPS.appendToken, sl = OPS.sliceTokens;

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
