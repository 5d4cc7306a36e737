/**
 * Shared helpers for the directory readers: text files that must exist,
 * natural file ordering, source fingerprints and decoding a file list into a
 * packed dataset with progress on stderr.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { readJpeg } from "./jpeg.ts";

/** Throws a clear error unless `path` is an existing directory; `what` says what it should hold. */
export async function requireDir(path: string, what: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch {
    throw new Error(`${path}: directory not found (expected ${what})`);
  }
  if (!info.isDirectory) throw new Error(`${path}: not a directory (expected ${what})`);
}

/** Reads a text file that the layout requires; a missing one is a layout error naming it. */
export async function readLayoutText(path: string, what: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(`${path}: missing (${what}); wrong dataset layout?`);
    }
    throw new Error(`${path}: cannot read (${(e as Error).message})`);
  }
}

/** Non-empty lines with their 1-based line numbers (CRLF tolerated). */
export function lines(text: string): [number, string][] {
  const out: [number, string][] = [];
  text.split("\n").forEach((l, i) => {
    l = l.replace(/\r$/, "");
    if (l.trim() !== "") out.push([i + 1, l]);
  });
  return out;
}

/** Compares names so that "x_2" sorts before "x_10". */
export function naturalCompare(a: string, b: string): number {
  return a.localeCompare(b, "en", { numeric: true });
}

/** Names of the entries of `dir` ending in one of `exts` (case-insensitive), naturally sorted. */
export async function listFiles(dir: string, exts: string[], what: string): Promise<string[]> {
  await requireDir(dir, what);
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const lower = e.name.toLowerCase();
    if (e.isFile && exts.some((x) => lower.endsWith(x))) names.push(e.name);
  }
  return names.sort(naturalCompare);
}

/**
 * Fingerprint of the sources a cache is built from: SHA-256 over the
 * contents of the small metadata files and the (path, size, mtime) of every
 * image. Changing, adding or removing an image makes it differ, without
 * reading every image on every run.
 */
export async function fingerprint(metaFiles: string[], images: string[]): Promise<string> {
  const h = createHash("sha256");
  for (const m of metaFiles) {
    h.update(m + "\0");
    h.update(await Deno.readFile(m));
  }
  const chunk = 256;
  for (let i = 0; i < images.length; i += chunk) {
    const part = images.slice(i, i + chunk);
    const infos = await Promise.all(part.map((p) =>
      Deno.stat(p).catch(() => {
        throw new Error(`${p}: listed image file is missing`);
      })
    ));
    infos.forEach((info, j) =>
      h.update(`${part[j]}\0${info.size}\0${info.mtime?.getTime() ?? 0}\n`)
    );
  }
  return h.digest("hex");
}

/**
 * Decodes every JPEG in `paths` and writes it through `place` (which fits it
 * to the fixed output size) into one packed buffer; progress goes to stderr
 * for long lists.
 */
export async function decodeAll(
  paths: string[],
  bytesPerImage: number,
  place: (
    rgb: Uint8Array,
    h: number,
    w: number,
    path: string,
    out: Uint8Array,
    offset: number,
  ) => void,
  label: string,
): Promise<Uint8Array> {
  const out = new Uint8Array(paths.length * bytesPerImage);
  const t0 = performance.now();
  let last = t0;
  const chunk = 64;
  for (let i = 0; i < paths.length; i += chunk) {
    const imgs = await Promise.all(paths.slice(i, i + chunk).map(readJpeg));
    imgs.forEach((img, j) =>
      place(img.data, img.height, img.width, paths[i + j], out, (i + j) * bytesPerImage)
    );
    const now = performance.now();
    if (now - last > 2000) {
      last = now;
      const done = Math.min(i + chunk, paths.length);
      console.error(
        `${label}: decoded ${done}/${paths.length} images (${((now - t0) / 1000).toFixed(0)} s)`,
      );
    }
  }
  return out;
}

/** True when `path` exists (file or directory). */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * The start time of process `pid` (clock ticks since boot, from
 * /proc/<pid>/stat), or null when no such process runs. With the pid it
 * names one process even after the pid is reused. Where /proc is absent
 * (not Linux) every pid reads as running, with start time "unknown".
 */
export function processStart(pid: number): string | null {
  try {
    Deno.statSync("/proc/self");
  } catch {
    return "unknown";
  }
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return rest[19] ?? "unknown"; // field 22 of stat, the 20th after the name
  } catch {
    return null;
  }
}

/** True when process `pid` runs and, if `start` is given, is the one started then. */
export function processAlive(pid: number, start?: string): boolean {
  const now = processStart(pid);
  if (now === null) return false;
  return start === undefined || start === "unknown" || now === "unknown" || now === start;
}
