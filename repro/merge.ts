/**
 * `deno task repro:merge DIR...`: joins the claims.json of several
 * `--shard i/n` runs of one study and profile into one report, evaluating
 * every claim on the union of their experiments with today's claims files
 * (the report names the commit that judged them). One DIR alone is judged
 * again as it stands. Exit 1 when a claim fails.
 * @module
 */

import { parseFlags, usageExit } from "../src/cli/_args.ts";
import { evaluateClaims, loadStudy, type Results } from "../src/repro/claims.ts";
import { loadProfile, type ProfileName } from "../src/repro/profiles.ts";
import { renderFigures } from "../src/repro/figures_report.ts";
import { openGpu } from "../src/gpu/device.ts";
import { joinSeedRuns } from "../src/repro/join_seeds.ts";
import {
  claimsTable,
  commitId,
  type RunReport,
  verdictCounts,
  writeReport,
} from "../src/repro/report.ts";

const HELP = `usage: deno task repro:merge [--out DIR] [--join-seeds] RUN_DIR...

Reads RUN_DIR/claims.json from each shard of one study and profile (as
written by deno task repro:<study> --shard i/n) and writes the merged
claims.json and report.md to --out (default runs/repro-<study>-<profile>-merged).
Claims are judged with the claims files of the checked-out commit, which the
report names beside the runs' own; a single RUN_DIR is judged again as it is
(e.g. after a claim's wording or reason changed), keeping its shard and figures.

options:
  --out DIR       merged report directory
  --join-seeds    the runs hold different seeds of the same experiments (e.g. seeds
                  11-13 and 14-15): each experiment keeps the seeds of every run it ran
                  in, and a claim is judged on them together (a comparison of experiments
                  with different seeds, on the seeds they share, and says so); design and
                  held-apart seeds of a profile are never joined
  -h, --help      this text

exit: 0 all checked claims pass, 1 a claim fails, 2 bad usage or unreadable shards.`;

/**
 * The figures of a joined run, drawn from the experiments' cached runs when
 * they are still on this machine (training curves of the first seed, the
 * sweep and scale charts over all seeds, reconstructions); none, with a
 * message, when they are not.
 */
async function joinedFigures(out: string, results: Results, profile: ProfileName) {
  try {
    return await renderFigures(out, results, await loadProfile(profile), await openGpu());
  } catch (e) {
    console.error(`repro:merge: figures skipped: ${(e as Error).message}`);
    return [];
  }
}

/** A run's figures copied beside its report judged again (those still there). */
async function copyFigures(from: string, out: string, names: string[]): Promise<string[]> {
  const kept: string[] = [];
  await Deno.mkdir(out, { recursive: true });
  for (const name of names) {
    try {
      if (`${from}/${name}` !== `${out}/${name}`) {
        await Deno.copyFile(`${from}/${name}`, `${out}/${name}`);
      }
      kept.push(name);
    } catch {
      console.error(`repro:merge: figure ${from}/${name} is missing; left out`);
    }
  }
  return kept;
}

if (import.meta.main) {
  const { values, positionals } = parseFlags(
    "repro:merge",
    Deno.args,
    { out: { type: "string" }, "join-seeds": { type: "boolean", default: false } },
    HELP,
    true,
  );
  if (positionals.length === 0) usageExit("repro:merge", "name at least one shard directory", HELP);
  const parts: RunReport[] = [];
  for (const dir of positionals) {
    try {
      parts.push(JSON.parse(await Deno.readTextFile(`${dir}/claims.json`)));
    } catch (e) {
      console.error(`repro:merge: ${dir}/claims.json: ${(e as Error).message}`);
      Deno.exit(2);
    }
  }
  const first = parts[0];
  const join = values["join-seeds"] as boolean;
  let results: Results = new Map();
  let seeds = first.seeds, commit = first.commit;
  if (join) {
    try {
      const joined = joinSeedRuns(parts);
      results = joined.results;
      seeds = joined.seeds;
      commit = joined.commits.join(" + ");
    } catch (e) {
      console.error(`repro:merge: ${(e as Error).message}`);
      Deno.exit(2);
    }
  } else {
    for (const p of parts) {
      if (
        p.study !== first.study || p.profile !== first.profile ||
        p.seeds.join() !== first.seeds.join()
      ) {
        console.error(
          `repro:merge: shards differ in study, profile or seeds (${p.study}/${p.profile} vs ${first.study}/${first.profile}); runs of other seeds join with --join-seeds`,
        );
        Deno.exit(2);
      }
    }
    for (const p of parts) {
      for (const [id, r] of Object.entries(p.experiments)) {
        const prev = results.get(id);
        // An experiment that ran wins over a shard where it was only listed as not run.
        if (!prev || "notrun" in prev) results.set(id, r as never);
      }
    }
  }
  const study = await loadStudy(first.study);
  const claims = evaluateClaims(study, first.profile as ProfileName, results, {
    softwareAdapter: parts.some((p) => p.adapter.software),
  });
  const out = values.out ?? `runs/repro-${first.study}-${first.profile}-merged`;
  await writeReport(out, {
    ...first,
    seeds,
    commit,
    judged: await commitId(),
    shard: join
      ? null
      : parts.length === 1
      ? first.shard
      : `merged from ${parts.map((p) => p.shard ?? "?").join(", ")}`,
    seconds: parts.reduce((a, p) => a + p.seconds, 0),
    claims,
    results,
    runs: parts.flatMap((p) => p.runs),
    figures: join
      ? await joinedFigures(out, results, first.profile as ProfileName)
      : parts.length === 1
      ? await copyFigures(positionals[0], out, first.figures)
      : [],
  });
  console.log(claimsTable(claims));
  const counts = verdictCounts(claims);
  console.log(
    `\n${Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(", ")}; report: ${out}/report.md`,
  );
  Deno.exit((counts.fail ?? 0) + (counts.invalid ?? 0) > 0 ? 1 : 0);
}
