/**
 * The part of node:assert/strict the test files use, for the browser bundle
 * of the audit page (browsers have no node:assert). Same semantics: strict
 * equality, deep equality over arrays, typed arrays, plain objects, maps and
 * sets; `throws` / `rejects` with an optional RegExp, class or predicate.
 * @module
 */

class AssertionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AssertionError";
  }
}

const show = (v: unknown): string => {
  try {
    return typeof v === "bigint" ? `${v}n` : JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
};

function deepEq(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  if (a instanceof Map && b instanceof Map) {
    if (a.size !== b.size) return false;
    for (const [k, v] of a) if (!b.has(k) || !deepEq(v, b.get(k))) return false;
    return true;
  }
  if (a instanceof Set && b instanceof Set) {
    if (a.size !== b.size) return false;
    for (const v of a) if (!b.has(v)) return false;
    return true;
  }
  if (a instanceof Date && b instanceof Date) return a.getTime() === b.getTime();
  if (ArrayBuffer.isView(a) && ArrayBuffer.isView(b)) {
    const x = a as unknown as ArrayLike<unknown>, y = b as unknown as ArrayLike<unknown>;
    if (x.length !== y.length) return false;
    for (let i = 0; i < x.length; i++) if (!Object.is(x[i], y[i])) return false;
    return true;
  }
  const ka = Object.keys(a), kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  for (const k of ka) {
    if (!Object.prototype.hasOwnProperty.call(b, k)) return false;
    if (!deepEq((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  }
  return true;
}

type Expected = RegExp | (new (...a: never[]) => unknown) | ((e: unknown) => boolean) | object;

function matches(e: unknown, expected: Expected | undefined): boolean {
  if (expected === undefined) return true;
  if (expected instanceof RegExp) return expected.test(e instanceof Error ? e.message : String(e));
  if (typeof expected === "function") {
    if (expected.prototype !== undefined && e instanceof (expected as new () => unknown)) {
      return true;
    }
    if (Object.prototype.isPrototypeOf.call(Error, expected) || expected === Error) return false;
    return (expected as (e: unknown) => boolean)(e) === true;
  }
  for (const [k, v] of Object.entries(expected)) {
    const got = (e as Record<string, unknown>)?.[k];
    if (v instanceof RegExp ? !v.test(String(got)) : !deepEq(got, v)) return false;
  }
  return true;
}

function fail(message?: string | Error): never {
  if (message instanceof Error) throw message;
  throw new AssertionError(message ?? "Failed");
}

function ok(value: unknown, message?: string | Error): asserts value {
  if (!value) fail(message ?? `expected a truthy value, got ${show(value)}`);
}

const assert = Object.assign(ok, {
  ok,
  fail,
  AssertionError,
  equal(a: unknown, b: unknown, message?: string | Error) {
    if (!Object.is(a, b)) fail(message ?? `${show(a)} !== ${show(b)}`);
  },
  strictEqual(a: unknown, b: unknown, message?: string | Error) {
    if (!Object.is(a, b)) fail(message ?? `${show(a)} !== ${show(b)}`);
  },
  notEqual(a: unknown, b: unknown, message?: string | Error) {
    if (Object.is(a, b)) fail(message ?? `${show(a)} === ${show(b)}`);
  },
  deepEqual(a: unknown, b: unknown, message?: string | Error) {
    if (!deepEq(a, b)) fail(message ?? `not deep-equal: ${show(a)} vs ${show(b)}`);
  },
  deepStrictEqual(a: unknown, b: unknown, message?: string | Error) {
    if (!deepEq(a, b)) fail(message ?? `not deep-equal: ${show(a)} vs ${show(b)}`);
  },
  notDeepEqual(a: unknown, b: unknown, message?: string | Error) {
    if (deepEq(a, b)) fail(message ?? `unexpectedly deep-equal: ${show(a)}`);
  },
  match(s: string, re: RegExp, message?: string | Error) {
    if (!re.test(s)) fail(message ?? `${show(s)} does not match ${re}`);
  },
  doesNotMatch(s: string, re: RegExp, message?: string | Error) {
    if (re.test(s)) fail(message ?? `${show(s)} matches ${re}`);
  },
  throws(fn: () => unknown, expected?: Expected | string, message?: string) {
    try {
      fn();
    } catch (e) {
      if (typeof expected === "string" || matches(e, expected)) return;
      fail(message ?? `the error does not match: ${e instanceof Error ? e.message : show(e)}`);
    }
    fail(typeof expected === "string" ? expected : message ?? "missing expected exception");
  },
  async rejects(
    fn: Promise<unknown> | (() => Promise<unknown>),
    expected?: Expected | string,
    message?: string,
  ) {
    try {
      await (typeof fn === "function" ? fn() : fn);
    } catch (e) {
      if (typeof expected === "string" || matches(e, expected)) return;
      fail(message ?? `the rejection does not match: ${e instanceof Error ? e.message : show(e)}`);
    }
    fail(typeof expected === "string" ? expected : message ?? "missing expected rejection");
  },
});

export default assert;
export { AssertionError };
