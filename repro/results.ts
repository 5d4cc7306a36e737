/**
 * `deno task results [--add DIR]... [--docs DIR]`: keeps the results page.
 * `--add` copies a repro output folder (its claims.json and figures) into
 * docs/results/<study>-<profile>/; then docs/results.md is rebuilt from every
 * run kept there.
 * @module
 */

import { parseFlags } from "../src/cli/_args.ts";
import {
  addBench,
  addRun,
  addStepProfile,
  ResultsError,
  writePage,
} from "../src/repro/results_page.ts";

const HELP =
  `usage: deno task results [--add DIR]... [--bench FILE] [--step-profile FILE] [--docs DIR]

Rebuilds the results page (DOCS/results.md) from the claims.json files kept in
DOCS/results/<study>-<profile>/. Never edit the page by hand.

options:
  --add DIR    first copy the repro output folder DIR (claims.json and the figures it
               lists, e.g. runs/repro-tin-ci) into DOCS/results/, replacing the kept run
               of the same study and profile; may be repeated
  --bench FILE keep the rows of \`deno task bench --json > FILE\` (with this commit and today's
               date) as DOCS/results/bench.json, shown as the page's benchmark table
  --command C  the bench command that produced FILE, shown with the table
               (default "deno task bench --json")
  --step-profile FILE
               keep the tables of \`deno task bench:profile --markdown > FILE\` (with this
               commit and today's date) as the page's "where a step's time goes"
  --profile-command C
               the command that produced the step profile
               (default "deno task bench:profile --markdown")
  --docs DIR   the docs folder (default docs)
  -h, --help   this text`;

if (import.meta.main) {
  const { values } = parseFlags("results", Deno.args, {
    add: { type: "string", multiple: true },
    bench: { type: "string" },
    command: { type: "string", default: "deno task bench --json" },
    "step-profile": { type: "string" },
    "profile-command": { type: "string", default: "deno task bench:profile --markdown" },
    docs: { type: "string", default: "docs" },
  }, HELP);
  try {
    for (const dir of values.add ?? []) {
      const name = await addRun(dir.replace(/\/+$/, ""), values.docs);
      console.log(`added ${dir} as ${values.docs}/results/${name}`);
    }
    const commit = new TextDecoder().decode(
      (await new Deno.Command("git", { args: ["rev-parse", "--short", "HEAD"], stderr: "null" })
        .output()).stdout,
    ).trim() || "unknown";
    const date = new Date().toISOString().slice(0, 10);
    if (values["step-profile"]) {
      await addStepProfile(values["step-profile"], values.docs, {
        commit,
        date,
        command: values["profile-command"],
      });
      console.log(`kept the step profile from ${values["step-profile"]}`);
    }
    if (values.bench) {
      const n = await addBench(values.bench, values.docs, {
        commit,
        date,
        command: values.command,
      });
      console.log(`kept ${n} benchmark rows from ${values.bench}`);
    }
    const { runs } = await writePage(values.docs);
    console.log(`wrote ${values.docs}/results.md (${runs} run${runs === 1 ? "" : "s"})`);
  } catch (e) {
    if (e instanceof ResultsError) {
      console.error(`results: ${e.message}`);
      Deno.exit(1);
    }
    throw e;
  }
}
