/**
 * The shape of an op declaration. Each op module (src/ops/<stem>.ts) declares
 * its ops beside their launchers: the kernels the launcher dispatches (each
 * carrying its WGSL source and entry point), the independent f64 CPU
 * references, the tolerances its GPU results are held to, and its test. The
 * registry (registry.ts) only gathers these declarations.
 *
 * What an op is audited on follows from its kind, and the type says so:
 * - "differentiable": forward and backward (a backward pass adds into
 *   gradients and has its own reference);
 * - "forward": a forward only (index outputs, which carry no gradient);
 * - "update": an in-place update outside the tape (optimizer, EMA, clipping),
 *   audited on the updated values and, where named, on state it keeps.
 *
 * Tolerances are |gpu - ref| <= atol + rtol * |ref| per element, chosen from
 * f32 rounding of the op's arithmetic (k-term sums grow like sqrt(k) eps).
 * @module
 */

import type { KernelSpec, ParamLayout } from "../gpu/device.ts";

/** Element-wise closeness bound: |gpu - ref| <= atol + rtol * |ref|. */
export interface Tolerance {
  atol: number;
  rtol: number;
}

interface OpParts {
  /** Every kernel the op's launcher dispatches that no other op owns. */
  kernels: readonly KernelSpec<ParamLayout>[];
  /** Its GPU test, a file under tests/ops/. */
  test: `${string}_test.ts`;
}

/** An op on the tape: forward and backward kernels, each with an f64 reference. */
export interface DifferentiableOp<F, B> extends OpParts {
  kind: "differentiable";
  reference: { forward: F; backward: B };
  tolerance: { forward: Tolerance; backward: Tolerance };
}

/** An op without a gradient (its outputs are indices or masks). */
export interface ForwardOp<F> extends OpParts {
  kind: "forward";
  reference: { forward: F };
  tolerance: { forward: Tolerance };
}

/**
 * An in-place update, not differentiated. `State` names further audited
 * outputs that the update keeps (AdamW's moments), each with its tolerance.
 */
export interface UpdateOp<U, State extends string = never> extends OpParts {
  kind: "update";
  reference: { update: U };
  tolerance: { update: Tolerance } & { [K in State]: Tolerance };
}

// deno-lint-ignore no-explicit-any
type Fn = (...args: any[]) => unknown;

/** Any op declaration (what a module's declarations must satisfy). */
export type OpDeclaration =
  | DifferentiableOp<Fn, Fn>
  | ForwardOp<Fn>
  | UpdateOp<Fn, string>;

/** A module's op declarations by public op name. */
export type OpDeclarations = Readonly<Record<string, OpDeclaration>>;

/** Tolerance of pure data movement (copies, permutations, selections). */
export const EXACT: Tolerance = { atol: 0, rtol: 0 };
/** Tolerance of one or two f32 operations per element. */
export const POINTWISE: Tolerance = { atol: 1e-6, rtol: 1e-5 };
