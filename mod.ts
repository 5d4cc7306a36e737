/**
 * A Deno-native reproducibility harness for "[Re] Masked Autoencoders Are
 * Small Scale Vision Learners", with hand-written WGSL kernels over WebGPU.
 *
 * Layers, each importing only from the ones above it: the GPU runtime
 * (`openGpu`), tensors and the autograd tape, the audited ops (each with its
 * WGSL, f64 reference and tolerance in `OPS`), models, training, data, and
 * the repro engine that checks the paper's claims.
 *
 * @example
 * ```ts
 * import { backward, matmul, openGpu, sumAll, tensor, tidy } from "./mod.ts";
 * const gpu = await openGpu({ log: false });
 * const a = tensor(gpu, [1, 2, 3, 4], [2, 2]);
 * a.requiresGrad = true;
 * tidy(() => backward(sumAll(matmul(a, a))));
 * console.log(await a.grad!.read()); // d/da sum(a @ a)
 * ```
 * @module
 */

export { createGpu, type Gpu, KernelError, NoAdapterError, openGpu } from "./src/gpu/device.ts";
export { empty, keep, type Tensor, tensor, tidy, tidyAsync, zeros } from "./src/tensor.ts";
export { backward, gradOf, noGrad, noGradAsync, record, setOpTrace } from "./src/tape.ts";
export { type OpName, OPS, type Tolerance } from "./src/ops/registry.ts";
export { assertClose, finiteDifference } from "./src/audit.ts";
export { OpError } from "./src/ops/_check.ts";
export { matmul } from "./src/ops/matmul.ts";
export { add, biasAdd, dropout, gelu, mul, relu, scale, sub } from "./src/ops/elementwise.ts";
export { mean, meanAll, sum, sumAll } from "./src/ops/reduce.ts";
export { softmax } from "./src/ops/softmax.ts";
export {
  crossEntropy,
  crossEntropyRows,
  mse,
  softCrossEntropy,
  softCrossEntropyRows,
} from "./src/ops/loss.ts";
export { centerUpdate, emaUpdate } from "./src/ops/ema.ts";
export { l2Normalize } from "./src/ops/l2_normalize.ts";
export { attention, attentionQKV } from "./src/ops/attention.ts";
export { layerNorm } from "./src/ops/layernorm.ts";
export { batchNorm1d, type BatchNormState } from "./src/ops/batchnorm.ts";
export {
  blockMask,
  blockMaskBatch,
  gatherTokens,
  keptTokens,
  maskFromBoolean,
  type Masking,
  patchify,
  randomMasking,
  unpatchify,
  unshuffleTokens,
} from "./src/ops/patch.ts";
export { sinusoidalPositions } from "./src/ops/posenc.ts";
export { appendToken, concatTokens, sliceTokens } from "./src/ops/tokens.ts";
export { concatChannels, conv2d, maxPool2d, sigmoid } from "./src/ops/conv.ts";
export { type ParamSpec, ParamStore } from "./src/params.ts";
export { AdamW, type AdamWOptions, GradClipper } from "./src/optim.ts";
export { Rng } from "./src/rng.ts";
export { DropoutContext, linear, SpecList, xavierUniform } from "./src/nn.ts";
export { VIT_LITE_7_4, type VitConfig, vitParamCount } from "./src/models/vit.ts";
export { Mae, MAE_DECODER, type MaeConfig } from "./src/models/mae.ts";
export { Classifier } from "./src/models/classifier.ts";
export { Dino, DINO_HEAD, type DinoHeadConfig, type TeacherInit } from "./src/models/dino.ts";
export { SqueezeNet, squeezeNetSpecs } from "./src/models/squeezenet.ts";
export { squeezeFeatures } from "./src/models/squeeze_features.ts";
export {
  Critic,
  LossBalance,
  type PerceptualScaling,
  type SmaeConfig,
  smaeTerms,
} from "./src/models/smae.ts";
export {
  type ConfigOf,
  loadConfig,
  ofMode,
  parseConfig,
  type TrainConfig,
} from "./src/train/config.ts";
export { NonFiniteLossError, train, type TrainSummary } from "./src/train/trainer.ts";
export * from "./src/data/mod.ts";
