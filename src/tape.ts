/**
 * Reverse-mode autograd over GPU tensors, in the shape of micrograd: each op
 * computes its output and, right below, records a closure that *adds* its
 * contribution into the gradients of its inputs. {@link backward} walks the
 * recorded nodes in reverse creation order (a valid topological order, since
 * an op's inputs always exist before it runs).
 *
 * What a forward saves for its backward is whatever its closure captures;
 * each op states it in a `saves:` comment. Gradients of intermediates are
 * released as soon as their producer's backward has consumed them.
 *
 * @module
 */

import { type Tensor, tensor, unscoped, zeros } from "./tensor.ts";

let recording = true;
let tape: Tensor[] = [];
let trace: ((op: string, out: Tensor) => void) | null = null;

/**
 * Calls `fn` with every op's output as it is produced (recording or not),
 * until called again with null. Used to find the first op that produced a
 * NaN when replaying a failed training step.
 */
export function setOpTrace(fn: ((op: string, out: Tensor) => void) | null): void {
  trace = fn;
}

/** True while ops record their backward (false inside {@link noGrad}). */
export function isRecording(): boolean {
  return recording;
}

/** Runs `fn` without recording (evaluation, optimizer updates). */
export function noGrad<T>(fn: () => T): T {
  const was = recording;
  recording = false;
  try {
    return fn();
  } finally {
    recording = was;
  }
}

/** Async variant of {@link noGrad}. */
export async function noGradAsync<T>(fn: () => Promise<T>): Promise<T> {
  const was = recording;
  recording = false;
  try {
    return await fn();
  } finally {
    recording = was;
  }
}

/**
 * Records `out` as produced by `op` from `inputs`, when recording and any
 * input needs a gradient. `backward(g)` must add into `gradOf(input)`.
 */
export function record(
  op: string,
  out: Tensor,
  inputs: Tensor[],
  backward: (grad: Tensor) => void,
): Tensor {
  trace?.(op, out);
  if (!recording || !inputs.some((t) => t.requiresGrad)) return out;
  out.requiresGrad = true;
  out.node = { op, inputs, backward };
  tape.push(out);
  return out;
}

/**
 * The gradient buffer of `t`, created zero-filled on first use. A reshape
 * view's gradient is the same view of its base's gradient.
 */
export function gradOf(t: Tensor): Tensor {
  if (t.grad) return t.grad;
  if (t.base) {
    t.grad = gradOf(t.base).reshape(t.shape);
    return t.grad;
  }
  // A leaf's gradient must outlive the tidy scope of the step that made it;
  // an intermediate's is freed by backward() as soon as it is consumed.
  t.grad = t.node ? zeros(t.gpu, t.shape) : unscoped(() => zeros(t.gpu, t.shape));
  return t.grad;
}

/** Nodes recorded and not yet consumed by a backward pass. */
export function tapeLength(): number {
  return tape.length;
}

/**
 * Back-propagates from `loss` (one element, seeded with 1, unless `seed` is
 * given with loss's shape) into every tensor that requires a gradient.
 * Gradients accumulate across calls until zeroed. Clears the tape.
 */
export function backward(loss: Tensor, seed?: Tensor): void {
  if (!loss.requiresGrad) {
    throw new Error(
      `backward: ${loss.describe()} does not depend on anything that needs a gradient`,
    );
  }
  if (!seed && loss.size !== 1) {
    throw new Error(`backward: ${loss.describe()} is not a scalar; pass a seed gradient`);
  }
  const reached = new Set<Tensor>();
  const stack = [loss];
  while (stack.length) {
    const t = stack.pop()!;
    if (reached.has(t)) continue;
    reached.add(t);
    if (t.base) stack.push(t.base);
    if (t.node) stack.push(...t.node.inputs);
  }
  const g = gradOf(loss);
  const s = seed ?? tensor(loss.gpu, [1], loss.shape);
  if (seed && seed.size !== loss.size) {
    throw new Error(`backward: seed ${seed.describe()} does not match ${loss.describe()}`);
  }
  loss.gpu.copy(s.binding, g.binding);
  if (!seed) s.dispose();
  const nodes = tape;
  tape = [];
  for (let i = nodes.length - 1; i >= 0; i--) {
    const out = nodes[i];
    const node = out.node;
    if (!node || !reached.has(out)) {
      tape.push(out); // belongs to another graph: keep it for that one's backward
      continue;
    }
    if (out.grad) {
      node.backward(out.grad);
      // This gradient is complete and consumed: free it now, not at scope end.
      if (out.grad.owned) out.grad.dispose();
      out.grad = null;
    }
    out.node = null;
  }
  tape.reverse();
}

/** Drops every recorded node without back-propagating (e.g. after an aborted step). */
export function clearTape(): void {
  for (const t of tape) t.node = null;
  tape = [];
}
