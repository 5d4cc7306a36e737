import { profileTrainSteps } from "../../bench/profile_step.ts";
import { smallSteps } from "../../bench/train_step.ts";
import { TRANSFER_ENTRIES } from "../../src/gpu/device.ts";
import { assert } from "../_assert.ts";
import { gpuTest } from "../_helpers.ts";

gpuTest(
  "profileTrainSteps() times every dispatch and transfer of an MAE and a fine-tuning step, shares summing to 1",
  async (gpu) => {
    const [mae, ft] = await profileTrainSteps(gpu, 2);
    assert.deepEqual([mae.name, ft.name], ["mae-pretrain-step", "finetune-step"]);
    for (const p of [mae, ft]) {
      const share = p.rows.reduce((a, r) => a + r.share, 0);
      assert.ok(Math.abs(share - 1) < 1e-9, `${p.name}: shares sum to ${share}`);
      const kernels = new Set(p.rows.map((r) => r.entry));
      // At ViT-Lite's shapes attention runs as batched matmuls around a row softmax;
      // the products read their operands from textures on a software adapter.
      for (
        const k of [
          gpu.textureOperands ? "matmul_tex" : "matmul_vec4",
          "attention_softmax_rows",
          "attention_softmax_backward",
          "adamw_step",
        ]
      ) {
        assert.ok(kernels.has(k), `${p.name} runs ${k}`);
      }
      // The operands staged as textures are timed too, as transfers.
      assert.equal(kernels.has(TRANSFER_ENTRIES.stage), gpu.textureOperands, `${p.name} staging`);
      // ViT-Lite-7/4 has 7 blocks: one attention softmax each (MAE adds its 2-block decoder).
      const attention = p.rows.find((r) => r.entry === "attention_softmax_rows")!;
      assert.equal(attention.dispatchesPerStep, p.name === "finetune-step" ? 7 : 9);
    }
  },
);

gpuTest(
  "profileTrainSteps() on the small profiles' model runs their 2-block ViT with attention by rows",
  async (gpu) => {
    const [mae, ft] = await profileTrainSteps(gpu, 2, 1, await smallSteps());
    for (const p of [mae, ft]) {
      assert.equal(p.model, "small ViT 28x28");
      const rows = p.rows.find((r) => r.entry === "attention_rows_forward");
      // Two encoder blocks, plus the 1-block decoder in MAE; no matmul attention at dh = 16.
      assert.equal(rows?.dispatchesPerStep, p.name === "finetune-step" ? 2 : 3, p.name);
      assert.ok(!p.rows.some((r) => r.entry === "attention_softmax_rows"), p.name);
    }
  },
);
