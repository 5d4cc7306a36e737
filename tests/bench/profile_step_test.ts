import { profileTrainSteps } from "../../bench/profile_step.ts";
import { assert } from "../_assert.ts";
import { gpuTest } from "../_helpers.ts";

gpuTest(
  "profileTrainSteps() times every dispatch of an MAE and a fine-tuning step, shares summing to 1",
  async (gpu) => {
    const [mae, ft] = await profileTrainSteps(gpu, 2);
    assert.deepEqual([mae.name, ft.name], ["mae-pretrain-step", "finetune-step"]);
    for (const p of [mae, ft]) {
      const share = p.rows.reduce((a, r) => a + r.share, 0);
      assert.ok(Math.abs(share - 1) < 1e-9, `${p.name}: shares sum to ${share}`);
      const kernels = new Set(p.rows.map((r) => r.entry));
      // At ViT-Lite's shapes attention runs as batched matmuls around a row softmax.
      for (
        const k of [
          "matmul_vec4",
          "attention_softmax_rows",
          "attention_softmax_backward",
          "adamw_step",
        ]
      ) {
        assert.ok(kernels.has(k), `${p.name} runs ${k}`);
      }
      // ViT-Lite-7/4 has 7 blocks: one attention softmax each (MAE adds its 2-block decoder).
      const attention = p.rows.find((r) => r.entry === "attention_softmax_rows")!;
      assert.equal(attention.dispatchesPerStep, p.name === "finetune-step" ? 7 : 9);
    }
  },
);
