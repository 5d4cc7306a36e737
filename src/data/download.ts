/**
 * Fetching the official Tiny ImageNet and CUB-200-2011 archives: resumable
 * download (a `.part` file continued with an HTTP Range request), checksum
 * verification, unpacking into a temporary folder that is renamed into place
 * only when complete, then the decoded-image cache build.
 *
 * Checksums: neither host publishes one. The MD5s below are the ones that
 * widely used public loaders (e.g. avalanche, torchvision-style `Cub2011`
 * and `TinyImageNet` classes) verify the same archives against; they are
 * defaults, overridable with `--md5` / `--sha256` or the `*_MD5` /
 * `*_SHA256` environment variables (see {@link resolveSpec}).
 *
 * Failure modes, each one Error: host unreachable (the `.part` file is kept
 * for resuming), HTTP error status, checksum mismatch (the archive is
 * deleted), a corrupt archive or one without the expected top folder. In
 * every case the dataset folder is not created.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { extractTgz, extractZip } from "./archive.ts";
import { exists } from "./_files.ts";

/** Where an archive comes from and what it must contain. */
export interface ArchiveSpec {
  /** Short name: "tin" or "cub". */
  name: string;
  url: string;
  /** File name of the archive in the data directory. */
  filename: string;
  kind: "zip" | "tgz";
  /** Folder at the top of the archive, which becomes `<dataDir>/<topDir>`. */
  topDir: string;
  /** Expected MD5 (hex) and/or SHA-256 (hex); at least one is required. */
  md5?: string;
  sha256?: string;
}

/** Tiny ImageNet's official archive (248,100,043 bytes). */
export const TIN_ARCHIVE: ArchiveSpec = {
  name: "tin",
  url: "http://cs231n.stanford.edu/tiny-imagenet-200.zip",
  filename: "tiny-imagenet-200.zip",
  kind: "zip",
  topDir: "tiny-imagenet-200",
  md5: "90528d7ca1a48142e341f4ef8d21d0de",
};

/** CUB-200-2011's official archive on CaltechDATA. */
export const CUB_ARCHIVE: ArchiveSpec = {
  name: "cub",
  url: "https://data.caltech.edu/records/65de6-vmd36/files/CUB_200_2011.tgz",
  filename: "CUB_200_2011.tgz",
  kind: "tgz",
  topDir: "CUB_200_2011",
  md5: "97eceeb196236b17998738112f37df78",
};

/**
 * Applies overrides to a spec: explicit ones first, then the environment
 * (`TIN_URL`, `TIN_MD5`, `TIN_SHA256`, `CUB_URL`, ...). An override that sets
 * one checksum drops the default of the other kind only if told to (empty
 * string removes a checksum).
 */
export function resolveSpec(
  spec: ArchiveSpec,
  over: { url?: string; md5?: string; sha256?: string } = {},
): ArchiveSpec {
  const env = (k: string) => Deno.env.get(`${spec.name.toUpperCase()}_${k}`);
  const pick = (o: string | undefined, e: string | undefined, d: string | undefined) => {
    const v = o ?? e ?? d;
    return v === "" ? undefined : v?.toLowerCase();
  };
  return {
    ...spec,
    url: over.url ?? env("URL") ?? spec.url,
    md5: pick(over.md5, env("MD5"), spec.md5),
    sha256: pick(over.sha256, env("SHA256"), spec.sha256),
  };
}

/** MD5 and SHA-256 (hex) of a file, streamed. */
export async function fileDigests(path: string): Promise<{ md5: string; sha256: string }> {
  const md5 = createHash("md5"), sha = createHash("sha256");
  const f = await Deno.open(path);
  for await (const chunk of f.readable) {
    md5.update(chunk);
    sha.update(chunk);
  }
  return { md5: md5.digest("hex"), sha256: sha.digest("hex") };
}

/** Throws (after deleting the file) unless `path` matches the spec's checksums. */
export async function verifyArchive(path: string, spec: ArchiveSpec): Promise<void> {
  if (!spec.md5 && !spec.sha256) {
    throw new Error(
      `${spec.name}: no checksum configured for ${spec.filename}; refusing to trust it`,
    );
  }
  const d = await fileDigests(path);
  const bad = spec.md5 && d.md5 !== spec.md5
    ? `md5 ${d.md5}, expected ${spec.md5}`
    : spec.sha256 && d.sha256 !== spec.sha256
    ? `sha256 ${d.sha256}, expected ${spec.sha256}`
    : null;
  if (bad) {
    await Deno.remove(path).catch(() => {});
    throw new Error(
      `${path}: checksum mismatch (${bad}); the file was deleted, rerun to download it again`,
    );
  }
}

function progress(label: string, done: number, total: number | null): string {
  const mb = (n: number) => (n / 1e6).toFixed(1);
  return `${label}: ${mb(done)} MB${
    total ? ` of ${mb(total)} MB (${((100 * done) / total).toFixed(0)}%)` : ""
  }`;
}

/**
 * Downloads `url` to `dest`, continuing `dest.part` if an earlier attempt
 * left one (Range request; a server that ignores Range restarts it). The
 * `.part` file becomes `dest` only when the body is complete.
 */
export async function downloadResumable(url: string, dest: string): Promise<void> {
  const part = `${dest}.part`;
  let have = 0;
  try {
    have = (await Deno.stat(part)).size;
  } catch { /* fresh start */ }
  let res: Response;
  try {
    res = await fetch(url, { headers: have > 0 ? { Range: `bytes=${have}-` } : {} });
  } catch (e) {
    throw new Error(
      `cannot download ${url} (${(e as Error).message}): offline or host unreachable. ` +
        `Place the archive at ${dest} yourself, or set the URL with --url, and rerun.`,
    );
  }
  if (res.status === 416 && have > 0) { // nothing left to fetch: the part file is complete
    await res.body?.cancel();
    await Deno.rename(part, dest);
    return;
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw new Error(`cannot download ${url}: HTTP ${res.status} ${res.statusText}`);
  }
  const append = res.status === 206;
  if (!append) have = 0;
  const lenHeader = res.headers.get("content-length");
  const total = lenHeader ? have + Number(lenHeader) : null;
  if (have > 0) console.error(`download: resuming ${dest} at ${(have / 1e6).toFixed(1)} MB`);
  const f = await Deno.open(part, { write: true, create: true, append, truncate: !append });
  let done = have, last = performance.now();
  try {
    for await (const chunk of res.body!) {
      let w = 0;
      while (w < chunk.length) w += await f.write(chunk.subarray(w));
      done += chunk.length;
      if (performance.now() - last > 2000) {
        last = performance.now();
        console.error(progress(`download ${dest}`, done, total));
      }
    }
  } catch (e) {
    throw new Error(
      `download of ${url} interrupted at ${(done / 1e6).toFixed(1)} MB (${
        (e as Error).message
      }); ` +
        `rerun to resume from ${part}`,
    );
  } finally {
    f.close();
  }
  if (total !== null && done !== total) {
    throw new Error(
      `download of ${url} ended at ${done} of ${total} bytes; rerun to resume from ${part}`,
    );
  }
  await Deno.rename(part, dest);
}

/** Options for {@link fetchDataset}. */
export interface FetchOptions {
  /** Folder holding the archive and the unpacked dataset; default "data". */
  dataDir?: string;
  /** Keep the archive after unpacking (default true; it lets a rerun skip the download). */
  keepArchive?: boolean;
}

/**
 * Makes sure `<dataDir>/<spec.topDir>` holds the unpacked dataset:
 * download (resumable) unless the archive is already there, verify, unpack
 * into `<dataDir>/.unpack-<pid>`, check the top folder, rename into place.
 * Returns the dataset folder. Does nothing if the folder already exists.
 */
export async function fetchDataset(spec: ArchiveSpec, opts: FetchOptions = {}): Promise<string> {
  const dataDir = opts.dataDir ?? "data";
  const target = `${dataDir}/${spec.topDir}`;
  if (await exists(target)) {
    console.error(`${spec.name}: ${target} already exists; nothing to download`);
    return target;
  }
  if (!spec.md5 && !spec.sha256) {
    throw new Error(`${spec.name}: no checksum configured for ${spec.url}; pass --md5 or --sha256`);
  }
  await Deno.mkdir(dataDir, { recursive: true });
  const archive = `${dataDir}/${spec.filename}`;
  if (!(await exists(archive))) {
    console.error(`${spec.name}: downloading ${spec.url}`);
    await downloadResumable(spec.url, archive);
  }
  console.error(`${spec.name}: verifying ${archive}`);
  await verifyArchive(archive, spec);
  const tmp = `${dataDir}/.unpack-${spec.name}-${Deno.pid}`;
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
  await Deno.mkdir(tmp, { recursive: true });
  try {
    console.error(`${spec.name}: unpacking ${archive}`);
    const n = spec.kind === "zip" ? await extractZip(archive, tmp) : await extractTgz(archive, tmp);
    if (!(await exists(`${tmp}/${spec.topDir}`))) {
      throw new Error(
        `${archive}: archive has no top folder ${spec.topDir}/ (${n} files unpacked); wrong archive?`,
      );
    }
    await Deno.rename(`${tmp}/${spec.topDir}`, target);
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
  if (opts.keepArchive === false) await Deno.remove(archive);
  console.error(`${spec.name}: dataset ready at ${target}`);
  return target;
}
