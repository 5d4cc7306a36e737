/**
 * DINO's moving averages over kernels/ema.wgsl: the teacher's parameters as
 * an EMA of the student's (one dispatch over a whole ParamStore), and the
 * centre of the teacher's outputs as an EMA of their batch mean. Neither is
 * differentiated: they are updates, like the optimizer's.
 * @module
 */

import { KERNEL_SOURCES } from "../../kernels/sources.ts";
import type { KernelSpec } from "../gpu/device.ts";
import type { ParamStore } from "../params.ts";
import { centerUpdateRef, emaUpdateRef } from "../ref/ema.ts";
import type { Tensor } from "../tensor.ts";
import { dtypeIs, grid1d, OpError, rankIs, sameDevice } from "./_check.ts";
import { type OpDeclarations, POINTWISE } from "./_op.ts";

const PARAMS = { n: "u32", cols: "u32", momentum: "f32" } as const;
const EMA = {
  source: KERNEL_SOURCES["ema.wgsl"],
  entry: "ema_update",
  params: PARAMS,
  workgroup: [256],
} as const satisfies KernelSpec<typeof PARAMS>;
const CENTER = { ...EMA, entry: "center_update", workgroup: [64] } as const;

/** The two moving averages: updates without a backward. */
export const EMA_OPS = {
  emaUpdate: {
    kind: "update",
    kernels: [EMA],
    reference: { update: emaUpdateRef },
    tolerance: { update: POINTWISE },
    test: "dino_ops_test.ts",
  },
  centerUpdate: {
    kind: "update",
    kernels: [CENTER],
    reference: { update: centerUpdateRef },
    // an EMA of a rows-term batch mean
    tolerance: { update: { atol: 1e-6, rtol: 1e-5 } },
    test: "dino_ops_test.ts",
  },
} as const satisfies OpDeclarations;

function checkMomentum(op: string, m: number): void {
  if (!(m >= 0 && m <= 1)) throw new OpError(op, `momentum ${m} must be in [0, 1]`);
}

/**
 * teacher = m * teacher + (1 - m) * student over every parameter at once.
 * The stores must have the same layout (the same specs' names and shapes).
 */
export function emaUpdate(teacher: ParamStore, student: ParamStore, momentum: number): void {
  const op = "emaUpdate";
  checkMomentum(op, momentum);
  if (teacher.gpu !== student.gpu) throw new OpError(op, "the stores live on different devices");
  const same = teacher.length === student.length &&
    teacher.specs.length === student.specs.length &&
    teacher.specs.every((s, i) =>
      s.name === student.specs[i].name && s.shape.join() === student.specs[i].shape.join()
    );
  if (!same) {
    throw new OpError(
      op,
      `teacher (${teacher.specs.length} params, ${teacher.length} slots) and student ` +
        `(${student.specs.length} params, ${student.length} slots) have different layouts`,
    );
  }
  const n = teacher.length;
  teacher.gpu.dispatch(
    EMA,
    { n, cols: 1, momentum },
    [
      { buffer: student.data, offset: 0, size: n * 4 },
      { buffer: teacher.data, offset: 0, size: n * 4 },
    ],
    grid1d(Math.ceil(n / 256)),
  );
}

/** centre (cols) = m * centre + (1 - m) * mean over the rows of x (rows, cols), in place. */
export function centerUpdate(centre: Tensor, x: Tensor, momentum: number): void {
  const op = "centerUpdate";
  checkMomentum(op, momentum);
  sameDevice(op, centre, x);
  dtypeIs(op, centre, "f32");
  dtypeIs(op, x, "f32");
  rankIs(op, x, 2);
  const [rows, cols] = x.shape;
  if (centre.size !== cols) {
    throw new OpError(
      op,
      `centre ${centre.describe()} must have ${cols} values for ${x.describe()}`,
    );
  }
  if (rows === 0) throw new OpError(op, `${x.describe()} has no rows to average`);
  x.gpu.dispatch(
    CENTER,
    { n: rows, cols, momentum },
    [x.binding, centre.binding],
    grid1d(Math.ceil(cols / 64)),
  );
}
