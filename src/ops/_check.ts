/**
 * Argument checks shared by the ops. Every failure is one error that names
 * the op and the tensors involved, with their shapes and dtypes.
 * @module
 */

import type { DType, Tensor } from "../tensor.ts";

/** An op was called with arguments it cannot take. */
export class OpError extends Error {
  /** `op` is the public op name, e.g. "matmul". */
  constructor(readonly op: string, message: string) {
    super(`${op}: ${message}`);
    this.name = "OpError";
  }
}

/** Throws unless every tensor lives on the first tensor's device and is alive. */
export function sameDevice(op: string, ...ts: Tensor[]): void {
  const gpu = ts[0].gpu;
  for (const t of ts) {
    if (t.disposed) throw new OpError(op, `${t.describe()} was disposed`);
    if (t.gpu !== gpu) {
      throw new OpError(
        op,
        `${t.describe()} lives on another device than ${ts[0].describe()}`,
      );
    }
  }
}

/** Throws unless `t` has dtype `dtype`. */
export function dtypeIs(op: string, t: Tensor, dtype: DType): void {
  if (t.dtype !== dtype) throw new OpError(op, `${t.describe()} must be ${dtype}`);
}

/** Throws unless both tensors have the same shape. */
export function sameShape(op: string, a: Tensor, b: Tensor): void {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new OpError(op, `shapes differ: ${a.describe()} vs ${b.describe()}`);
  }
}

/** Throws unless `t` has rank `rank` (or one of `rank`). */
export function rankIs(op: string, t: Tensor, ...rank: number[]): void {
  if (!rank.includes(t.shape.length)) {
    throw new OpError(op, `${t.describe()} must have rank ${rank.join(" or ")}`);
  }
}

/** Splits a dispatch of `groups` 1-D workgroups into a legal 2-D grid. */
export function grid1d(groups: number): [number, number] {
  const x = Math.min(groups, 65535);
  return [x, Math.ceil(groups / x)];
}
