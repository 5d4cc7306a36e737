/**
 * A directory lock: `<dir>/.lock` names the process that uses the directory
 * (pid, its start time, when it took the lock). A second run refuses to
 * share the directory, naming that pid; a lock left by a process that no
 * longer runs is taken over with a message.
 * @module
 */

import { processAlive, processStart } from "../data/mod.ts";

/** What a lock file holds. */
export interface LockInfo {
  pid: number;
  /** The process's start time in clock ticks since boot (/proc), to tell a reused pid. */
  processStart: string;
  /** When the lock was taken (ISO time). */
  started: string;
  /** What holds it, e.g. "repro tin". */
  what: string;
}

/** Thrown when a live process holds the lock. */
export class LockedError extends Error {
  constructor(readonly dir: string, readonly holder: LockInfo) {
    super(
      `${dir} is in use by pid ${holder.pid} (${holder.what}, since ${holder.started}); ` +
        `wait for it to finish, or pass another directory. If no such process runs, remove ${dir}/.lock`,
    );
  }
}

/** A held lock; `release()` removes the lock file (once). */
export interface DirLock {
  path: string;
  release(): void;
}

/**
 * Takes the lock of `dir` (created if missing) for this process. A lock
 * held by a live process throws `LockedError`; a stale one (its process is
 * gone) is replaced, and `log` says so.
 */
export async function lockDir(
  dir: string,
  what: string,
  log: (line: string) => void,
): Promise<DirLock> {
  await Deno.mkdir(dir, { recursive: true });
  const path = `${dir}/.lock`;
  const me: LockInfo = {
    pid: Deno.pid,
    processStart: processStart(Deno.pid) ?? "unknown",
    started: new Date().toISOString(),
    what,
  };
  const body = new TextEncoder().encode(JSON.stringify(me) + "\n");
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      // createNew: exactly one of two racing processes creates the file.
      const f = await Deno.open(path, { write: true, createNew: true });
      try {
        await f.write(body);
      } finally {
        f.close();
      }
      let released = false;
      return {
        path,
        release() {
          if (released) return;
          released = true;
          try {
            Deno.removeSync(path);
          } catch { /* already gone */ }
        },
      };
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    }
    let holder: LockInfo | null = null;
    try {
      holder = JSON.parse(await Deno.readTextFile(path));
    } catch {
      // Unreadable or half-written: its writer died between create and write, or is writing now.
      const age = Date.now() - ((await Deno.stat(path).catch(() => null))?.mtime?.getTime() ?? 0);
      if (age < 5000) throw new Error(`${path}: another run is taking this lock now`);
    }
    if (holder && typeof holder.pid === "number" && processAlive(holder.pid, holder.processStart)) {
      throw new LockedError(dir, holder);
    }
    log(
      holder
        ? `${path}: taking over the lock of pid ${holder.pid} (${holder.what}, since ${holder.started}), which no longer runs`
        : `${path}: replacing an unreadable lock file`,
    );
    await Deno.remove(path).catch(() => {});
  }
  throw new Error(`${path}: could not take the lock`);
}
