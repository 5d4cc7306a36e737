import { SqueezeNet } from "../../src/models/squeezenet.ts";
import { tensor, tidy } from "../../src/tensor.ts";
import {
  ConfigError,
  configFromLayers,
  loadConfig,
  ofMode,
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
const grid = (imageSize: number, patch: number, mae: Record<string, unknown> = {}) => ({
  mode: "pretrain",
  data: { dataset: "cub" },
  encoder: { imageSize, patch },
  mae,
});

/** The MAE objective of a pretrain config. */
const maeOf = (raw: unknown) => ofMode(toConfig(raw), "pretrain").mae;

Deno.test("a mask ratio must mask at least one patch and keep one, for random and block masking", () => {
  for (const masking of ["random", "block"]) {
    for (const maskRatio of [0, 1]) {
      const msg = refusal(() => toConfig(grid(64, 4, { masking, maskRatio }), "m.yaml"));
      assert.match(msg, /^m\.yaml: mae\.maskRatio /);
      assert.match(msg, new RegExp(`of the 256 patches of a 16x16 grid \\(${masking} masking\\)`));
    }
    // On a 2x2 grid a ratio masks round(4 ratio) patches: 0.1 masks none, 0.9 all four.
    assert.match(
      refusal(() => toConfig(grid(8, 4, { masking, maskRatio: 0.1 }))),
      /mae\.maskRatio 0\.1 masks 0 of the 4 patches/,
    );
    assert.match(
      refusal(() => toConfig(grid(8, 4, { masking, maskRatio: 0.9 }))),
      /mae\.maskRatio 0\.9 masks 4 of the 4 patches/,
    );
    assert.equal(maeOf(grid(8, 4, { masking, maskRatio: 0.75 })).maskRatio, 0.75);
    assert.equal(maeOf(grid(8, 4, { masking, maskRatio: 0.2 })).maskRatio, 0.2);
  }
});

Deno.test("an unknown key is refused at every depth, with its path, and optional keys only where they belong", () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ mode: "pretrain", bogus: 1 }, "bogus"],
    [{ mode: "pretrain", optim: { mode: "bogus" } }, "optim.mode"],
    [{ mode: "pretrain", data: { init: "x.safetensors" } }, "data.init"],
    [{ mode: "pretrain", mae: { critic: "c.safetensors" } }, "mae.critic"],
    [{ mode: "pretrain", model: { width: 8 } }, "model"],
    [{ mode: "pretrain", root: "data/" }, "root"],
    [{ mode: "dino", data: { augment: "dino" }, dino: { root: "x" } }, "dino.root"],
    [{ mode: "smae", critic: "c", smae: { mode: "paper" } }, "smae.mode"],
  ];
  for (const [raw, path] of cases) {
    const msg = refusal(() => toConfig(raw, "k.yaml"));
    assert.match(msg, new RegExp(`^k\\.yaml: unknown field '${path.replace(".", "\\.")}'`));
  }
  assert.match(
    refusal(() => toConfig({ mode: "pretrain", model: { width: 8 } })),
    /unknown field 'model' .*; its fields are now under encoder \(the network\) and mae/,
  );
  const ok = ofMode(
    toConfig({ mode: "probe", init: "p.safetensors", data: { root: "fixtures/x" } }),
    "probe",
  );
  assert.equal(ok.init, "p.safetensors");
  assert.equal(ok.data.root, "fixtures/x");
  assert.match(
    refusal(() => toConfig({ mode: "probe", init: 3 })),
    /init must be a checkpoint path/,
  );
  // A checkpoint a mode would not read is refused rather than ignored.
  assert.match(
    refusal(() => toConfig({ mode: "scratch", init: "p.safetensors" }, "s.yaml")),
    /^s\.yaml: init is not read by mode scratch$/,
  );
  assert.match(
    refusal(() => toConfig({ mode: "pretrain", critic: "c.safetensors" })),
    /critic is not read by mode pretrain/,
  );
  assert.match(
    refusal(() => toConfig({ mode: "pretrain", data: { root: "" } })),
    /data\.root must be a directory/,
  );
});

Deno.test("each mode's config holds only the sections that mode reads", () => {
  const sections = (raw: Record<string, unknown>) => {
    const c = toConfig(raw, "x.yaml", false) as unknown as Record<string, Record<string, unknown>>;
    return {
      top: Object.keys(c).sort(),
      encoder: Object.keys(c.encoder).sort(),
      shuffleLabels: "shuffleLabels" in c.data,
    };
  };
  const common = ["checkpointEvery", "data", "encoder", "logEvery", "mode", "optim", "seed"];
  const vit = ["channels", "depth", "dropout", "heads", "imageSize", "mlp", "patch", "width"];
  const expected: Record<string, [string[], string[], boolean]> = {
    pretrain: [["mae"], vit, false],
    smae: [["mae", "smae"], vit, false],
    probe: [[], [...vit, "pool"], true],
    finetune: [[], [...vit, "pool"], true],
    scratch: [[], [...vit, "pool"], true],
    critic: [[], ["channels", "dropout", "imageSize"], true],
    dino: [["dino"], vit, false],
  };
  for (const [mode, [extra, encoder, shuffleLabels]] of Object.entries(expected)) {
    const raw = { mode, data: mode === "dino" ? { augment: "dino" } : {} };
    assert.deepEqual(sections(raw), {
      top: [...common, ...extra].sort(),
      encoder: encoder.sort(),
      shuffleLabels,
    }, mode);
  }
});

Deno.test("a field that only other modes read is refused, naming the file, the field, the mode and the layer", () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ mode: "probe", mae: { maskRatio: 0.5 } }, "mae.maskRatio is not read by mode probe"],
    [
      { mode: "finetune", mae: { maskRatio: 0.5, masking: "block" } },
      "mae.maskRatio, mae.masking are not read by mode finetune",
    ],
    [{ mode: "scratch", mae: { decoderWidth: 8 } }, "mae.decoderWidth is not read by mode scratch"],
    [{ mode: "pretrain", encoder: { pool: "mean" } }, "encoder.pool is not read by mode pretrain"],
    [{ mode: "smae", smae: {}, encoder: { pool: "cls" } }, "encoder.pool is not read by mode smae"],
    [{ mode: "dino", encoder: { pool: "cls" } }, "encoder.pool is not read by mode dino"],
    [{ mode: "critic", encoder: { patch: 4 } }, "encoder.patch is not read by mode critic"],
    [{ mode: "critic", encoder: { pool: "cls" } }, "encoder.pool is not read by mode critic"],
    [{ mode: "critic", mae: { masking: "random" } }, "mae.masking is not read by mode critic"],
    [{ mode: "pretrain", smae: { alpha: 1 } }, "smae.alpha is not read by mode pretrain"],
    [{ mode: "finetune", dino: { outDim: 8 } }, "dino.outDim is not read by mode finetune"],
    [{ mode: "dino", smae: { alpha: 1 } }, "smae.alpha is not read by mode dino"],
    [{ mode: "dino", mae: { maskRatio: 0.5 } }, "mae.maskRatio is not read by mode dino"],
    [
      { mode: "pretrain", data: { shuffleLabels: true } },
      "data.shuffleLabels is not read by mode pretrain",
    ],
    [
      { mode: "dino", data: { augment: "dino", shuffleLabels: false } },
      "data.shuffleLabels is not read by mode dino",
    ],
    [{ mode: "scratch", init: "p.safetensors" }, "init is not read by mode scratch"],
    [{ mode: "dino", init: "p.safetensors" }, "init is not read by mode dino"],
    [{ mode: "finetune", critic: "c.safetensors" }, "critic is not read by mode finetune"],
  ];
  for (const [raw, why] of cases) {
    assert.equal(refusal(() => toConfig(raw, "f.yaml", false)), `f.yaml: ${why}`);
  }
  // A later layer (an experiment's overlay) is named when it is the one at fault.
  assert.equal(
    refusal(() =>
      configFromLayers([
        { from: "", value: { mode: "probe", init: "p.safetensors" } },
        { from: "experiment e", value: { mae: { maskRatio: 0.5 } } },
      ], "s.yaml")
    ),
    "s.yaml: mae.maskRatio is not read by mode probe (set by experiment e)",
  );
  // The mode is the last layer's that sets one, and decides what the others may hold.
  const pre = configFromLayers([
    { from: "", value: { mode: "probe" } },
    { from: "runner", value: { mode: "pretrain", mae: { maskRatio: 0.5 } } },
  ]);
  assert.equal(ofMode(pre, "pretrain").mae.maskRatio, 0.5);
  assert.equal(
    refusal(() => toConfig({ mode: "mae" }, "m.yaml")),
    'm.yaml: mode must be one of pretrain, probe, finetune, scratch, critic, smae, dino, got "mae"',
  );
  assert.match(refusal(() => toConfig({ seed: 1 })), /mode must be one of .*, got undefined$/);
});

Deno.test("fixed RGB statistics, RandAugment and RGB datasets are refused with one channel", () => {
  const gray = { mode: "pretrain", data: { dataset: "fashion-mnist" }, encoder: { channels: 1 } };
  for (const normalize of ["imagenet", "cub"]) {
    const raw = { ...gray, data: { ...gray.data, normalize } };
    assert.match(
      refusal(() => toConfig(raw, "n.yaml")),
      new RegExp(`^n\\.yaml: data\\.normalize ${normalize} uses per-channel RGB statistics`),
    );
  }
  assert.match(
    refusal(() => toConfig({ ...gray, data: { ...gray.data, augment: "finetune" } })),
    /data\.augment finetune \(RandAugment\) needs encoder\.channels 3/,
  );
  for (const dataset of ["tiny-imagenet", "cub"]) {
    assert.match(
      refusal(() => toConfig({ ...gray, data: { dataset } })),
      new RegExp(`encoder\\.channels must be 3 for data\\.dataset ${dataset}`),
    );
  }
  assert.match(
    refusal(() => toConfig({ mode: "pretrain", encoder: { channels: 2 } })),
    /encoder\.channels must be 1 \(gray\) or 3 \(RGB\), got 2/,
  );
  // Gray Fashion-MNIST may be replicated into three channels, and normalised per batch when gray.
  assert.equal(toConfig({ ...gray, encoder: { channels: 3 } }).encoder.channels, 3);
  assert.equal(toConfig(gray).data.normalize, "batch");
});

Deno.test("the fixed 64-pixel augment crops and padding to a smaller image are refused", () => {
  for (const augment of ["finetune", "cub"]) {
    assert.match(
      refusal(() =>
        toConfig({ mode: "scratch", data: { dataset: "cub", augment }, encoder: { imageSize: 32 } })
      ),
      new RegExp(
        `data\\.augment ${augment} crops to 64x64 and needs encoder\\.imageSize 64, got 32`,
      ),
    );
  }
  assert.match(
    refusal(() =>
      toConfig({ mode: "pretrain", data: { dataset: "tiny-imagenet" }, encoder: { imageSize: 32 } })
    ),
    /data\.fit pad cannot fit tiny-imagenet's 64x64 images into encoder\.imageSize 32/,
  );
  assert.match(
    refusal(() => toConfig({ mode: "pretrain", encoder: { imageSize: 24, channels: 1 } })),
    /data\.fit pad cannot fit fashion-mnist's 28x28 images/,
  );
  const resized = toConfig({
    mode: "pretrain",
    data: { dataset: "tiny-imagenet", fit: "resize" },
    encoder: { imageSize: 32 },
  });
  assert.equal(resized.encoder.imageSize, 32);
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
  const stage = { mode: "pretrain", data: { dataset: "cub" }, mae: { maskRatio: 0.75 } };
  const frozen = JSON.stringify(stage);
  // A ratio the stage alone would refuse is fine once a later layer replaces it ...
  const c = ofMode(
    configFromLayers(
      [
        { from: "", value: { ...stage, mae: { maskRatio: 1 } } },
        { from: "experiment e", value: { mae: { maskRatio: 0.5, masking: "block" } } },
      ],
      "s.yaml",
    ),
    "pretrain",
  );
  assert.deepEqual([c.mae.maskRatio, c.mae.masking, c.data.dataset], [0.5, "block", "cub"]);
  // ... and a bad value from a later layer is reported with that layer.
  assert.match(
    refusal(() =>
      configFromLayers([{ from: "", value: stage }, {
        from: "experiment e",
        value: { mae: { maskRatio: 1 } },
      }], "s.yaml")
    ),
    /^s\.yaml: mae\.maskRatio 1 masks 256 of the 256 patches.* \(set by experiment e\)$/,
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
      ...(mode === "critic"
        ? { encoder: { imageSize } }
        : { encoder: { imageSize, patch: 1 }, mae: { maskRatio: 0.5 } }),
      ...(mode === "smae" ? { critic: "c.safetensors" } : {}),
    });
    assert.equal(toConfig(critic(SQUEEZENET_MIN_SIZE)).encoder.imageSize, SQUEEZENET_MIN_SIZE);
    assert.match(
      refusal(() => toConfig(critic(SQUEEZENET_MIN_SIZE - 1))),
      new RegExp(`encoder\\.imageSize ${SQUEEZENET_MIN_SIZE - 1} is below ${SQUEEZENET_MIN_SIZE}`),
    );
    // A ViT has no such floor, nor SMAE, whose perceptual loss reads only the first layers.
    for (const mode of ["pretrain", "smae"]) {
      assert.equal(toConfig(critic(8, mode)).encoder.imageSize, 8);
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

Deno.test("reading a mode's section needs the config narrowed to that mode (the type checker refuses it otherwise)", () => {
  const c = toConfig({ mode: "pretrain" });
  // @ts-expect-error: mae is on the pretrain and smae configs only
  assert.equal(c.mae.maskRatio, 0.75);
  // @ts-expect-error: pool is on the classifier configs' encoder only
  assert.equal(c.encoder.pool, undefined);
  assert.equal(c.mode === "pretrain" || c.mode === "smae" ? c.mae.maskRatio : 0, 0.75);
  const probe = toConfig({ mode: "probe", init: "p.safetensors" });
  assert.equal(probe.mode === "probe" ? probe.encoder.pool : undefined, "cls");
});
