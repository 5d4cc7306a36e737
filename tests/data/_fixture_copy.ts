/** Test helper: copies a fixture dataset into a fresh temp dir so a test may break it. */
export const FIXTURES = new URL("../../fixtures/", import.meta.url).pathname;

/** Recursively copies `src` to `dst`. */
export async function copyDir(src: string, dst: string): Promise<void> {
  await Deno.mkdir(dst, { recursive: true });
  for await (const e of Deno.readDir(src)) {
    if (e.isDirectory) await copyDir(`${src}/${e.name}`, `${dst}/${e.name}`);
    else await Deno.copyFile(`${src}/${e.name}`, `${dst}/${e.name}`);
  }
}

/** A temp copy of fixtures/<name>; returns its path. */
export async function fixtureCopy(name: string): Promise<string> {
  const dir = await Deno.makeTempDir();
  await copyDir(`${FIXTURES}${name}`, `${dir}/${name}`);
  return `${dir}/${name}`;
}

/** Mean absolute difference of two equal-length byte arrays. */
export function meanAbsDiff(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i] - b[i]);
  return s / a.length;
}
