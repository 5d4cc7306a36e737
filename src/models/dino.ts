/**
 * DINO (Caron et al. 2021) as the paper's baseline: a student and a teacher
 * ViT with the DINO projection head, the teacher an exponential moving
 * average of the student, its outputs centred and sharpened into targets for
 * the student's softmax (cross-entropy between different views). Optional
 * local crops (multi-crop) go through the student only, at their own size
 * ({@link Dino.forward}), into {@link multiCropDinoLoss}.
 *
 * Head: Linear(width, hidden) GELU Linear(hidden, hidden) GELU
 * Linear(hidden, bottleneck), L2-normalised, then a weight-normalised linear
 * layer without bias to `outDim` (gain fixed at 1, DINO's norm_last_layer):
 * logits = normalize(z) @ normalize_rows(V)^T, cosine similarities in [-1, 1].
 *
 * Both networks share one parameter layout (the encoder under `encoder.*`,
 * exactly the names {@link Classifier.freshEncoder} declares, and the head
 * under `head.*`), so the EMA is one dispatch over the whole store.
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import { add, biasAdd, gelu, scale } from "../ops/elementwise.ts";
import { l2Normalize } from "../ops/l2_normalize.ts";
import { softCrossEntropy, softCrossEntropyRows } from "../ops/loss.ts";
import { matmul } from "../ops/matmul.ts";
import { meanAll } from "../ops/reduce.ts";
import { softmax } from "../ops/softmax.ts";
import { concatTokens, sliceTokens } from "../ops/tokens.ts";
import { type DropoutContext, linear, SpecList } from "../nn.ts";
import { ParamStore } from "../params.ts";
import { Rng } from "../rng.ts";
import { noGrad } from "../tape.ts";
import { type Tensor, tensor, unscoped } from "../tensor.ts";
import {
  embedPatches,
  encodeTokens,
  imagePatches,
  patchGeometry,
  positionTensor,
  type VitConfig,
  vitSpecs,
} from "./vit.ts";

/** Sizes of the DINO head. */
export interface DinoHeadConfig {
  /** Prototypes K (the paper: 1024). */
  outDim: number;
  /** Hidden width of the MLP (512). */
  hidden: number;
  /** Bottleneck before the normalised last layer (128). */
  bottleneck: number;
}

/** The paper's head: out 1024, hidden 512, bottleneck 128. */
export const DINO_HEAD: DinoHeadConfig = { outDim: 1024, hidden: 512, bottleneck: 128 };

/** How the teacher starts: a copy of the student (DINO) or its own random init (the authors' code). */
export type TeacherInit = "copy" | "separate";

/** Name of the weight-normalised last layer's direction parameter V (outDim, bottleneck). */
export const LAST_LAYER = "head.last.w";

/** Declares encoder and head parameters for one network, drawn from `rng`. */
export function dinoSpecs(vit: VitConfig, head: DinoHeadConfig, rng: Rng): SpecList {
  const list = new SpecList();
  vitSpecs(list, vit, rng.fork("encoder"));
  const h = rng.fork("head");
  list.linear("head.fc1", vit.width, head.hidden, h);
  list.linear("head.fc2", head.hidden, head.hidden, h);
  list.linear("head.fc3", head.hidden, head.bottleneck, h);
  // Its scale is irrelevant (only the rows' directions are used), and DINO
  // decays it like any matrix.
  list.linear("head.last", head.bottleneck, head.outDim, h, false);
  return list;
}

/**
 * The DINO head on features (B, width): (B, outDim) cosine logits.
 * Composed from audited ops (linear, gelu, l2Normalize, matmul).
 */
export function dinoHead(p: ParamStore, x: Tensor): Tensor {
  const g = (n: string) => p.get(n);
  let h = gelu(linear(x, g("head.fc1.w"), g("head.fc1.b")));
  h = gelu(linear(h, g("head.fc2.w"), g("head.fc2.b")));
  const z = l2Normalize(linear(h, g("head.fc3.w"), g("head.fc3.b")));
  // Weight normalisation with g = 1: each output row of V scaled to unit norm.
  return matmul(z, l2Normalize(g(LAST_LAYER)), { transB: true });
}

/**
 * The teacher's targets: softmax((t - centre) / temp), and the logits
 * (t - centre) / temp they came from (for the entropy). Not recorded.
 */
export function teacherTargets(
  t: Tensor,
  centre: Tensor | null,
  temp: number,
): { probs: Tensor; logits: Tensor } {
  return noGrad(() => {
    const centred = centre ? biasAdd(t, scale(centre, -1)) : t;
    const logits = scale(centred, 1 / temp);
    return { probs: softmax(logits), logits };
  });
}

/**
 * DINO's loss: the mean over rows of -sum_k target_k log softmax(s / studentTemp)_k.
 * With the student's rows [view 1; view 2] and the targets from the teacher on
 * [view 2; view 1], this is the average over the two (i != j) pairs.
 */
export function dinoLoss(student: Tensor, targets: Tensor, studentTemp: number): Tensor {
  return softCrossEntropy(student, targets, studentTemp);
}

/**
 * DINO's multi-crop loss (DINOLoss): the mean of CE(teacher view i, student
 * crop j) over the 2 (2 + N) - 2 pairs with j != i, i over the 2 global views
 * and j over the 2 global views and the N local crops, each term a mean over
 * the batch's B images.
 *
 * `studentGlobal` is (2B, K) = [view 1; view 2], `targets` the teacher's
 * (2B, K) on the swapped views [view 2; view 1], `studentLocal` (N B, K)
 * crop-major or null (N = 0: {@link dinoLoss}). Since the cross-entropy is
 * linear in its target, the 2N local terms are one cross-entropy against the
 * sum of both teacher views' targets, tiled over the crops.
 */
export function multiCropDinoLoss(
  studentGlobal: Tensor,
  studentLocal: Tensor | null,
  targets: Tensor,
  studentTemp: number,
): Tensor {
  const global = dinoLoss(studentGlobal, targets, studentTemp);
  if (!studentLocal) return global;
  const [rows, K] = targets.shape, B = rows / 2;
  const N = studentLocal.shape[0] / B;
  if (!Number.isInteger(N) || N < 1 || studentLocal.shape[1] !== K) {
    throw new Error(
      `multiCropDinoLoss: local outputs ${studentLocal.describe()} do not fit targets ${targets.describe()}`,
    );
  }
  const tiled = noGrad(() => {
    const both = add(
      sliceTokens(targets.reshape([1, rows, K]), 0, B),
      sliceTokens(targets.reshape([1, rows, K]), B, B),
    );
    let t = both;
    for (let k = 1; k < N; k++) t = concatTokens(t, both);
    return t.reshape([N * B, K]);
  });
  const local = softCrossEntropy(studentLocal, tiled, studentTemp);
  // global = (2 global terms) / 2 and local = (2N local terms) / N.
  return scale(add(scale(global, 2), scale(local, N)), 1 / (2 * N + 2));
}

/** Mean entropy (nats) of the rows of softmax(logits), given probs = softmax(logits). Not recorded. */
export function meanEntropy(logits: Tensor, probs: Tensor): Tensor {
  return noGrad(() => meanAll(softCrossEntropyRows(logits, probs, 1)));
}

/** Student, teacher and centre. */
export class Dino {
  readonly student: ParamStore;
  readonly teacher: ParamStore;
  /** Running centre of the teacher's outputs (outDim), starts at 0. */
  readonly centre: Tensor;
  #pos: Tensor;
  #localPos = new Map<number, Tensor>();

  /** Builds both networks from `seed`; the teacher copies the student or draws its own init. */
  constructor(
    readonly gpu: Gpu,
    readonly vit: VitConfig,
    readonly head: DinoHeadConfig,
    seed: number,
    teacherInit: TeacherInit = "copy",
  ) {
    const root = new Rng(seed).fork("init");
    const specs = dinoSpecs(vit, head, root.fork("student")).specs;
    this.student = new ParamStore(gpu, specs);
    const teacherSpecs = teacherInit === "copy"
      ? specs
      : dinoSpecs(vit, head, root.fork("teacher")).specs;
    this.teacher = new ParamStore(gpu, teacherSpecs);
    for (const t of this.teacher.params.values()) t.requiresGrad = false;
    this.#pos = unscoped(() => positionTensor(gpu, patchGeometry(vit).tokens, vit.width));
    this.centre = unscoped(() => tensor(gpu, new Float32Array(head.outDim), [head.outDim]));
  }

  /**
   * Head logits (B, outDim) of network `p` for images (B, C, H, W): the
   * model's size, or (local crops) a smaller multiple of the patch, which the
   * same encoder sees as fewer tokens with their own sinusoidal positions.
   */
  forward(p: ParamStore, images: Tensor, drop: DropoutContext): Tensor {
    const size = images.shape[2];
    let c = this.vit, pos = this.#pos;
    if (size !== c.imageSize) {
      c = { ...c, imageSize: size };
      let lp = this.#localPos.get(size);
      if (!lp) {
        const tokens = patchGeometry(c).tokens;
        lp = unscoped(() => positionTensor(this.gpu, tokens, c.width));
        this.#localPos.set(size, lp);
      }
      pos = lp;
    }
    const tokens = embedPatches(p, "encoder", imagePatches(c, images), pos);
    const enc = encodeTokens(p, c, tokens, drop);
    const [B, T1] = enc.shape;
    return dinoHead(p, sliceTokens(enc, T1 - 1, 1).reshape([B, c.width]));
  }

  /** Frees both stores and the centre. */
  destroy(): void {
    this.student.destroy();
    this.teacher.destroy();
    this.centre.dispose();
    this.#pos.dispose();
    for (const t of this.#localPos.values()) t.dispose();
  }
}
