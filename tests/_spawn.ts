/**
 * Spawning a child `deno run` for the kill tests: its stderr is read line by
 * line, and the child is killed by pid (SIGKILL) at the first line matching
 * a marker, never after a sleep.
 * @module
 */

/** What a child printed and how it ended. */
export interface ChildRun {
  code: number;
  signal: Deno.Signal | null;
  stdout: string;
  stderr: string;
  pid: number;
  /** True when it was killed at the marker. */
  killed: boolean;
}

/** Lines of a byte stream, decoded. */
async function* linesOf(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buf = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      yield buf.slice(0, i);
      buf = buf.slice(i + 1);
    }
  }
  if (buf) yield buf;
}

/**
 * Runs `deno run -A script ...args`; when `killAt` matches a stderr line,
 * sends SIGKILL to the child's pid. `onStart` sees the running child (to
 * start a second process while it holds a lock, say) once `readyAt` matches.
 */
export async function spawnDeno(
  script: string,
  args: string[],
  opts: {
    env?: Record<string, string>;
    killAt?: RegExp;
    readyAt?: RegExp;
    onReady?: (pid: number) => Promise<void>;
  } = {},
): Promise<ChildRun> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, ...args],
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp", ...opts.env },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let killed = false;
  const stdoutP = new Response(child.stdout).text();
  let stderr = "";
  for await (const line of linesOf(child.stderr)) {
    stderr += line + "\n";
    if (opts.readyAt?.test(line) && opts.onReady) {
      const f = opts.onReady;
      opts.onReady = undefined;
      await f(child.pid);
    }
    if (!killed && opts.killAt?.test(line)) {
      killed = true;
      Deno.kill(child.pid, "SIGKILL");
    }
  }
  const status = await child.status;
  return {
    code: status.code,
    signal: status.signal,
    stdout: await stdoutP,
    stderr,
    pid: child.pid,
    killed,
  };
}
