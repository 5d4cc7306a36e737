/**
 * Small assertion helpers on top of node:assert (the project takes its
 * packages from npm only, so JSR's @std/assert is not used).
 * @module
 */

import assert from "node:assert/strict";

export { assert };

/** Asserts that `fn` throws an error whose message contains `fragment`. */
export function assertThrows(fn: () => unknown, fragment: string): void {
  let thrown: unknown = null;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  if (!thrown) throw new Error(`expected an error containing "${fragment}", nothing was thrown`);
  const msg = thrown instanceof Error ? thrown.message : String(thrown);
  if (!msg.includes(fragment)) {
    throw new Error(`expected an error containing "${fragment}", got: ${msg}`);
  }
}

/** Async variant of {@link assertThrows}. */
export async function assertRejects(fn: () => Promise<unknown>, fragment: string): Promise<void> {
  let thrown: unknown = null;
  try {
    await fn();
  } catch (e) {
    thrown = e;
  }
  if (!thrown) throw new Error(`expected a rejection containing "${fragment}", none happened`);
  const msg = thrown instanceof Error ? thrown.message : String(thrown);
  if (!msg.includes(fragment)) {
    throw new Error(`expected a rejection containing "${fragment}", got: ${msg}`);
  }
}
