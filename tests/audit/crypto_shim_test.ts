import { createHash as nodeHash } from "node:crypto";
import { createHash } from "../../src/audit/crypto_shim.ts";
import { assert } from "../_assert.ts";
import { rand } from "../_helpers.ts";

Deno.test("the browser sha256 shim agrees with node:crypto on strings, bytes and every padding edge", () => {
  const bytes = new Uint8Array(rand(3, 300, 0, 256).buffer);
  for (const n of [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 1000]) {
    const chunk = bytes.subarray(0, n);
    const want = nodeHash("sha256").update("ab\0c").update(chunk).update("é").digest("hex");
    const got = createHash("sha256").update("ab\0c").update(chunk).update("é").digest("hex");
    assert.equal(got, want, `${n} bytes`);
  }
  assert.equal(
    createHash("sha256").update("abc").digest("hex"),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
});
