import { SqueezeNet } from "../../src/models/squeezenet.ts";
import { tensor, tidy } from "../../src/tensor.ts";
import {
  ConfigError,
  configFromLayers,
  loadConfig,
  SQUEEZENET_MIN_SIZE,
  toConfig,
} from "../../src/train/config.ts";
import { assert } from "../_assert.ts";
import { gpuTest } from "../_helpers.ts";

/** The message of the ConfigError that `fn` throws (fails the test when it does not throw). */
function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ConfigError, `not a ConfigError: ${e}`);
    return (e as Error).message;
  }
  return assert.fail("the config was accepted");
}

/** A pretrain config on a grid of (imageSize / patch)^2 patches. */
const grid = (imageSize: number, patch: number, model: Record<string, unknown> = {}) => ({
  mode: "pretrain",
  data: { dataset: "cub" },
  model: { imageSize, patch, ...model },
});

Deno.test("a mask ratio must mask at least one patch and keep one, for random and block masking", () => {
  for (const masking of ["random", "block"]) {
    for (const maskRatio of [0, 1]) {
      const msg = refusal(() => toConfig(grid(64, 4, { masking, maskRatio }), "m.yaml"));
      assert.match(msg, /^m\.yaml: model\.maskRatio /);
      assert.match(msg, new RegExp(`of the 256 patches of a 16x16 grid \\(${masking} masking\\)`));
    }
    // On a 2x2 grid a ratio masks round(4 ratio) patches: 0.1 masks none, 0.9 all four.
    assert.match(
      refusal(() => toConfig(grid(8, 4, { masking, maskRatio: 0.1 }))),
      /model\.maskRatio 0\.1 masks 0 of the 4 patches/,
    );
    assert.match(
      refusal(() => toConfig(grid(8, 4, { masking, maskRatio: 0.9 }))),
      /model\.maskRatio 0\.9 masks 4 of the 4 patches/,
    );
    assert.equal(toConfig(grid(8, 4, { masking, maskRatio: 0.75 })).model.maskRatio, 0.75);
    assert.equal(toConfig(grid(8, 4, { masking, maskRatio: 0.2 })).model.maskRatio, 0.2);
  }
});

Deno.test("an unknown key is refused at every depth, with its path, and optional keys only where they belong", () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ mode: "pretrain", bogus: 1 }, "bogus"],
    [{ mode: "pretrain", optim: { mode: "bogus" } }, "optim.mode"],
    [{ mode: "pretrain", data: { init: "x.safetensors" } }, "data.init"],
    [{ mode: "pretrain", model: { critic: "c.safetensors" } }, "model.critic"],
    [{ mode: "pretrain", root: "data/" }, "root"],
    [{ mode: "dino", data: { augment: "dino" }, dino: { root: "x" } }, "dino.root"],
    [{ mode: "smae", critic: "c", smae: { mode: "paper" } }, "smae.mode"],
  ];
  for (const [raw, path] of cases) {
    const msg = refusal(() => toConfig(raw, "k.yaml"));
    assert.match(msg, new RegExp(`^k\\.yaml: unknown field '${path.replace(".", "\\.")}'`));
  }
  const ok = toConfig({ mode: "probe", init: "p.safetensors", data: { root: "fixtures/x" } });
  assert.equal(ok.init, "p.safetensors");
  assert.equal(ok.data.root, "fixtures/x");
  assert.match(
    refusal(() => toConfig({ mode: "probe", init: 3 })),
    /init must be a checkpoint path/,
  );
  // A checkpoint a mode would not read is refused rather than ignored.
  assert.match(
    refusal(() => toConfig({ mode: "scratch", init: "p.safetensors" }, "s.yaml")),
    /^s\.yaml: init is read only by modes probe and finetune, not scratch$/,
  );
  assert.match(
    refusal(() => toConfig({ mode: "pretrain", critic: "c.safetensors" })),
    /critic is read only by mode smae, not pretrain/,
  );
  assert.match(
    refusal(() => toConfig({ mode: "pretrain", data: { root: "" } })),
    /data\.root must be a directory/,
  );
});

Deno.test("fixed RGB statistics, RandAugment and RGB datasets are refused with one channel", () => {
  const gray = { mode: "pretrain", data: { dataset: "fashion-mnist" }, model: { channels: 1 } };
  for (const normalize of ["imagenet", "cub"]) {
    const raw = { ...gray, data: { ...gray.data, normalize } };
    assert.match(
      refusal(() => toConfig(raw, "n.yaml")),
      new RegExp(`^n\\.yaml: data\\.normalize ${normalize} uses per-channel RGB statistics`),
    );
  }
  assert.match(
    refusal(() => toConfig({ ...gray, data: { ...gray.data, augment: "finetune" } })),
    /data\.augment finetune \(RandAugment\) needs model\.channels 3/,
  );
  for (const dataset of ["tiny-imagenet", "cub"]) {
    assert.match(
      refusal(() => toConfig({ ...gray, data: { dataset } })),
      new RegExp(`model\\.channels must be 3 for data\\.dataset ${dataset}`),
    );
  }
  assert.match(
    refusal(() => toConfig({ mode: "pretrain", model: { channels: 2 } })),
    /model\.channels must be 1 \(gray\) or 3 \(RGB\), got 2/,
  );
  // Gray Fashion-MNIST may be replicated into three channels, and normalised per batch when gray.
  assert.equal(toConfig({ ...gray, model: { channels: 3 } }).model.channels, 3);
  assert.equal(toConfig(gray).data.normalize, "batch");
});

Deno.test("the fixed 64-pixel augment crops and padding to a smaller image are refused", () => {
  for (const augment of ["finetune", "cub"]) {
    assert.match(
      refusal(() =>
        toConfig({ mode: "scratch", data: { dataset: "cub", augment }, model: { imageSize: 32 } })
      ),
      new RegExp(`data\\.augment ${augment} crops to 64x64 and needs model\\.imageSize 64, got 32`),
    );
  }
  assert.match(
    refusal(() =>
      toConfig({ mode: "pretrain", data: { dataset: "tiny-imagenet" }, model: { imageSize: 32 } })
    ),
    /data\.fit pad cannot fit tiny-imagenet's 64x64 images into model\.imageSize 32/,
  );
  assert.match(
    refusal(() => toConfig({ mode: "pretrain", model: { imageSize: 24, channels: 1 } })),
    /data\.fit pad cannot fit fashion-mnist's 28x28 images/,
  );
  const resized = toConfig({
    mode: "pretrain",
    data: { dataset: "tiny-imagenet", fit: "resize" },
    model: { imageSize: 32 },
  });
  assert.equal(resized.model.imageSize, 32);
});

Deno.test("zero epochs and a final learning rate above the peak are refused", () => {
  assert.match(
    refusal(() => toConfig({ mode: "pretrain", optim: { epochs: 0, warmupEpochs: 0 } }, "e.yaml")),
    /^e\.yaml: optim\.epochs must be an integer in \[1, 100000\], got 0/,
  );
  assert.match(
    refusal(() => toConfig({ mode: "pretrain", optim: { lr: 0, minLr: 1e-6 } })),
    /optim\.minLr 0\.000001 is above optim\.lr 0/,
  );
  assert.match(
    refusal(() => toConfig({ mode: "pretrain", optim: { epochs: 1, warmupEpochs: 2 } })),
    /optim\.warmupEpochs 2 is more than optim\.epochs 1/,
  );
});

Deno.test("configFromLayers validates the merged layers once and names the layer that set a bad field", () => {
  const stage = { mode: "pretrain", data: { dataset: "cub" }, model: { maskRatio: 0.75 } };
  const frozen = JSON.stringify(stage);
  // A ratio the stage alone would refuse is fine once a later layer replaces it ...
  const c = configFromLayers(
    [
      { from: "", value: { ...stage, model: { maskRatio: 1 } } },
      { from: "experiment e", value: { model: { maskRatio: 0.5, masking: "block" } } },
    ],
    "s.yaml",
  );
  assert.deepEqual([c.model.maskRatio, c.model.masking, c.data.dataset], [0.5, "block", "cub"]);
  // ... and a bad value from a later layer is reported with that layer.
  assert.match(
    refusal(() =>
      configFromLayers([{ from: "", value: stage }, {
        from: "experiment e",
        value: { model: { maskRatio: 1 } },
      }], "s.yaml")
    ),
    /^s\.yaml: model\.maskRatio 1 masks 256 of the 256 patches.* \(set by experiment e\)$/,
  );
  assert.match(
    refusal(() =>
      configFromLayers([{ from: "", value: stage }, {
        from: "experiment e",
        value: { optim: { betas: [0.9, 1.5] } },
      }])
    ),
    /optim\.betas\[1\] must be a number .* \(set by experiment e\)$/,
  );
  assert.match(
    refusal(() =>
      configFromLayers([{ from: "", value: stage }, {
        from: "experiment e",
        value: { optim: { mode: "x" } },
      }])
    ),
    /unknown field 'optim\.mode' \(set by experiment e\)/,
  );
  // Fields the stage set carry no layer name; the layers themselves are left as they were.
  assert.doesNotMatch(
    refusal(() => configFromLayers([{ from: "", value: { ...stage, optim: { lr: -1 } } }])),
    /set by/,
  );
  assert.equal(JSON.stringify(stage), frozen);
});

Deno.test("command-line settings are validated with the file: --epochs 0 and epochs below the warm-up are refused", async () => {
  const file = new URL("../../repro/configs/fmnist_pretrain_tiny.yaml", import.meta.url).pathname;
  const cli = (value: unknown) => [{ from: "the command line", value }];
  let msg = "";
  try {
    await loadConfig(file, cli({ seed: 3, optim: { epochs: 0 } }));
  } catch (e) {
    msg = (e as Error).message;
  }
  assert.equal(
    msg,
    `${file}: optim.epochs must be an integer in [1, 100000], got 0 (set by the command line)`,
  );
  // Unset command-line options leave the file's values.
  const c = await loadConfig(file, cli({ seed: 3, optim: { epochs: undefined } }));
  assert.deepEqual([c.seed, c.optim.epochs], [3, 4]);
  assert.match(
    refusal(() =>
      configFromLayers([
        { from: "", value: { mode: "pretrain", optim: { warmupEpochs: 20, epochs: 400 } } },
        { from: "the command line", value: { optim: { epochs: 5 } } },
      ], "p.yaml")
    ),
    /^p\.yaml: optim\.warmupEpochs 20 is more than optim\.epochs 5 \(set by the command line\)$/,
  );
});

gpuTest(
  "mode critic's smallest image size is refused below it, and is the size where SqueezeNet stops running",
  (gpu) => {
    const critic = (imageSize: number, mode = "critic") => ({
      mode,
      data: { dataset: "cub", fit: "resize" },
      model: { imageSize, patch: 1, maskRatio: 0.5 },
      ...(mode === "smae" ? { critic: "c.safetensors" } : {}),
    });
    assert.equal(toConfig(critic(SQUEEZENET_MIN_SIZE)).model.imageSize, SQUEEZENET_MIN_SIZE);
    assert.match(
      refusal(() => toConfig(critic(SQUEEZENET_MIN_SIZE - 1))),
      new RegExp(`model\\.imageSize ${SQUEEZENET_MIN_SIZE - 1} is below ${SQUEEZENET_MIN_SIZE}`),
    );
    // A ViT has no such floor, nor SMAE, whose perceptual loss reads only the first layers.
    for (const mode of ["pretrain", "smae"]) {
      assert.equal(toConfig(critic(8, mode)).model.imageSize, 8);
    }
    const net = new SqueezeNet(gpu, 1, 2, 0);
    const features = (side: number) =>
      tidy(() =>
        net.features(tensor(gpu, new Float32Array(side * side), [1, 1, side, side])).shape
      );
    assert.deepEqual(features(SQUEEZENET_MIN_SIZE), [1, 512, 1, 1]);
    assert.throws(() => features(SQUEEZENET_MIN_SIZE - 1), /kernel does not fit/);
    net.destroy();
  },
);
