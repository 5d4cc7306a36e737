/**
 * `deno task data:tin` / `deno task data:cub`: download, verify, unpack and
 * cache a dataset. Flags: `--data-dir DIR` (default $TIN_DIR/$CUB_DIR's
 * parent or data/), `--cache-dir DIR` (default .cache/), `--url URL`,
 * `--md5 HEX`, `--sha256 HEX`, `--no-cache`.
 *
 * @module
 */

import { parseFlags, usageExit } from "../cli/_args.ts";
import { loadCub } from "./cub.ts";
import { CUB_ARCHIVE, fetchDataset, resolveSpec, TIN_ARCHIVE } from "./download.ts";
import { loadTinyImageNet } from "./tiny_imagenet.ts";

const HELP = `usage: deno task data:tin | data:cub [options]

Downloads a dataset archive, verifies its checksum, unpacks it, and caches
its decoded splits.

options:
  --data-dir DIR    where the dataset folder goes (default: the parent of
                    $TIN_DIR / $CUB_DIR, else data/)
  --cache-dir DIR   decoded-split cache (default .cache/)
  --url URL         archive URL (default: the dataset's official mirror)
  --md5 HEX         expected MD5 of the archive
  --sha256 HEX      expected SHA-256 of the archive
  --no-cache        unpack only; do not decode and cache the splits
  -h, --help        this text

exit: 0 done, 1 a download or verification failed, 2 bad usage.`;

/** Runs the CLI on `args`; returns the dataset folder. */
export async function fetchCli(args: string[]): Promise<string> {
  const { values, positionals } = parseFlags(
    "data",
    args,
    {
      "data-dir": { type: "string" },
      "cache-dir": { type: "string" },
      url: { type: "string" },
      md5: { type: "string" },
      sha256: { type: "string" },
      "no-cache": { type: "boolean" },
    },
    HELP,
    true,
  );
  const which = positionals[0];
  if (which !== "tin" && which !== "cub") {
    usageExit("data", `name a dataset, tin or cub (got '${positionals.join(" ")}')`, HELP);
  }
  if (positionals.length > 1) usageExit("data", `one dataset at a time`, HELP);
  const spec = resolveSpec(which === "tin" ? TIN_ARCHIVE : CUB_ARCHIVE, {
    url: values.url,
    md5: values.md5,
    sha256: values.sha256,
  });
  const envDir = Deno.env.get(which === "tin" ? "TIN_DIR" : "CUB_DIR");
  const dataDir = values["data-dir"] ??
    (envDir ? envDir.replace(/\/[^/]*\/?$/, "") || "." : "data");
  const root = await fetchDataset(spec, { dataDir });
  if (!values["no-cache"]) {
    const cacheDir = values["cache-dir"];
    if (which === "tin") {
      for (const split of ["train", "val", "test"] as const) {
        const ds = await loadTinyImageNet(split, { root, cacheDir });
        console.error(`tin: ${split} cached, ${ds.count} images`);
      }
    } else {
      for (const split of ["train", "test"] as const) {
        // Training reads whole photos (its crops), testing the centre squares.
        const ds = await loadCub(split, { root, cacheDir, whole: split === "train" });
        console.error(`cub: ${split} cached, ${ds.count} images`);
      }
    }
  }
  return root;
}

if (import.meta.main) {
  try {
    await fetchCli(Deno.args);
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
