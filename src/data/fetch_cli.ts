/**
 * `deno task data:tin` / `deno task data:cub`: download, verify, unpack and
 * cache a dataset. Flags: `--data-dir DIR` (default $TIN_DIR/$CUB_DIR's
 * parent or data/), `--cache-dir DIR` (default .cache/), `--url URL`,
 * `--md5 HEX`, `--sha256 HEX`, `--no-cache`.
 *
 * @module
 */

import { parseArgs } from "cli";
import { loadCub } from "./cub.ts";
import { CUB_ARCHIVE, fetchDataset, resolveSpec, TIN_ARCHIVE } from "./download.ts";
import { loadTinyImageNet } from "./tiny_imagenet.ts";

/** Runs the CLI on `args`; returns the dataset folder. */
export async function fetchCli(args: string[]): Promise<string> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      "data-dir": { type: "string" },
      "cache-dir": { type: "string" },
      url: { type: "string" },
      md5: { type: "string" },
      sha256: { type: "string" },
      "no-cache": { type: "boolean" },
    },
  });
  const which = positionals[0];
  if (which !== "tin" && which !== "cub") {
    throw new Error(
      `usage: fetch_cli.ts tin|cub [--data-dir DIR] [--url URL] [--md5 HEX] [--sha256 HEX]`,
    );
  }
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
