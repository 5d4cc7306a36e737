import nodeAssert from "node:assert/strict";
import shim from "../../src/audit/assert_shim.ts";
import { assert } from "../_assert.ts";

const throwsWith = (f: () => unknown) => {
  try {
    f();
    return false;
  } catch {
    return true;
  }
};

const pairs: [unknown, unknown][] = [
  [1, 1],
  [1, "1"],
  [NaN, NaN],
  [0, -0],
  [[1, 2], [1, 2]],
  [[1, 2], [2, 1]],
  [new Float32Array([1, 2]), new Float32Array([1, 2])],
  [new Float32Array([1, 2]), new Float64Array([1, 2])],
  [new Float32Array([1, NaN]), new Float32Array([1, NaN])],
  [{ a: 1, b: [1] }, { b: [1], a: 1 }],
  [{ a: 1 }, { a: 1, b: undefined }],
  [new Map([[1, { x: 1 }]]), new Map([[1, { x: 1 }]])],
  [new Set([1, 2]), new Set([2, 1])],
  [null, undefined],
  [[1, [2, [3]]], [1, [2, [4]]]],
];

Deno.test("the browser assert shim agrees with node:assert/strict on equal and deepEqual", () => {
  for (const [a, b] of pairs) {
    for (const m of ["equal", "deepEqual", "notDeepEqual"] as const) {
      const want = throwsWith(() => nodeAssert[m](a, b));
      const got = throwsWith(() => shim[m](a, b));
      assert.equal(got, want, `${m}(${String(a)}, ${String(b)})`);
    }
  }
});

Deno.test("the browser assert shim's throws, rejects, match and ok behave as node's", async () => {
  const boom = () => {
    throw new RangeError("bad shape 3x4");
  };
  for (const expected of [/3x4/, /5x5/, RangeError, TypeError, { message: /shape/ }]) {
    assert.equal(
      throwsWith(() => shim.throws(boom, expected)),
      throwsWith(() => nodeAssert.throws(boom, expected)),
      String(expected),
    );
  }
  assert.ok(throwsWith(() => shim.throws(() => {})));
  await shim.rejects(() => Promise.reject(new Error("x")), /x/);
  let missed = false;
  await shim.rejects(() => Promise.resolve()).catch(() => (missed = true));
  assert.ok(missed);
  assert.ok(throwsWith(() => shim.match("abc", /d/)));
  assert.ok(!throwsWith(() => shim.match("abc", /b/)));
  assert.ok(throwsWith(() => shim.ok(0)));
  assert.ok(throwsWith(() => shim.fail("x")));
});
