import { SpecList } from "../../src/nn.ts";
import { VIT_LITE_7_4, vitParamCount, vitSpecs } from "../../src/models/vit.ts";
import { Rng } from "../../src/rng.ts";
import { assert } from "../_assert.ts";

Deno.test("ViT-Lite-7/4 declares as many parameters as the architecture's formula, within 1% of the paper's 3.72M", () => {
  const list = new SpecList();
  vitSpecs(list, VIT_LITE_7_4, new Rng(1));
  const declared = list.specs.reduce((a, s) => a + s.init.length, 0);
  // By hand: embedding 48*256 + 256, class token 256, 7 blocks of
  // (LN 512 + qkv 256*768 + proj 256*256+256 + LN 512 + fc1 256*512+512 + fc2 512*256+256), final LN 512.
  const byHand = 48 * 256 + 256 + 256 + 7 * (512 + 196608 + 65792 + 512 + 131584 + 131328) + 512;
  assert.equal(vitParamCount(VIT_LITE_7_4), byHand);
  assert.equal(declared, byHand);
  assert.ok(Math.abs(declared - 3.72e6) / 3.72e6 < 0.01, `${declared} vs 3.72M`);
});

Deno.test("parameter init follows the paper's code: xavier-uniform (gain sqrt 2) weights, zero biases, unit norms", () => {
  const list = new SpecList();
  vitSpecs(list, { ...VIT_LITE_7_4, depth: 1 }, new Rng(2));
  const get = (n: string) => list.specs.find((s) => s.name === n)!;
  const qkv = get("encoder.blocks.0.qkv.w").init;
  const bound = Math.SQRT2 * Math.sqrt(6 / (256 + 768));
  assert.ok(qkv.every((v) => Math.abs(v) <= bound));
  assert.ok(qkv.reduce((a, b) => Math.max(a, b), 0) > 0.95 * bound, "uses the whole range");
  assert.ok(get("encoder.blocks.0.fc1.b").init.every((v) => v === 0));
  assert.ok(get("encoder.norm.w").init.every((v) => v === 1));
  assert.ok(
    !get("encoder.norm.w").decay && get("encoder.blocks.0.fc1.w").decay,
    "no decay on norms, decay on weights",
  );
});
