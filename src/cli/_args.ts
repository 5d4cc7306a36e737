/**
 * Flag parsing shared by every command-line entry point: node:util's
 * strict parseArgs, with its errors turned into one usage line (the CLI's
 * name, the flag at fault, then the usage text) and exit status 2, and
 * `-h/--help` printing the usage with exit status 0.
 * @module
 */

import { parseArgs } from "cli";

/** One flag, as node:util's parseArgs takes it. */
export type FlagSpec = {
  type: "string" | "boolean";
  short?: string;
  default?: string | boolean;
  multiple?: boolean;
};

/** parseArgs' error message as one line naming the flag. */
export function describeArgError(message: string): string {
  let m = /^Unknown option '([^']+)'/.exec(message);
  if (m) return `unknown option '${m[1]}'`;
  m = /^Option '([^' ]+)[^']*' argument is ambiguous/.exec(message);
  if (m) return `${m[1]} needs a value (a value starting with '-' is written ${m[1]}=VALUE)`;
  m = /^Option '([^' ]+)[^']*' argument missing/.exec(message);
  if (m) return `${m[1]} needs a value`;
  m = /^Option '([^' ]+)[^']*' does not take an argument/.exec(message);
  if (m) return `${m[1]} takes no value`;
  m = /^Unexpected argument '([^']+)'/.exec(message);
  if (m) return `unexpected argument '${m[1]}'`;
  return message.split("\n")[0];
}

/** Prints `name: msg`, a blank line and `help` to stderr, and exits with status 2. */
export function usageExit(name: string, msg: string, help: string): never {
  console.error(`${name}: ${msg}\n\n${help}`);
  Deno.exit(2);
}

/**
 * Parses `args` against `options` (a `help` flag, -h, is added); prints
 * `help` and exits 0 on --help, or exits 2 with a usage line on a bad flag.
 */
export function parseFlags(
  name: string,
  args: string[],
  options: Record<string, FlagSpec>,
  help: string,
  allowPositionals = false,
  // deno-lint-ignore no-explicit-any
): { values: Record<string, any>; positionals: string[] } {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals,
      strict: true,
      options: { ...options, help: { type: "boolean", short: "h", default: false } },
    });
  } catch (e) {
    usageExit(name, describeArgError((e as Error).message), help);
  }
  if (parsed.values.help) {
    console.log(help);
    Deno.exit(0);
  }
  return parsed;
}
