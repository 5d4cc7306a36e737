/**
 * The Python the twins run under (twin/twin.py, twin/ci_mae.py).
 * @module
 */

/** The interpreter the twin runs under (TWIN_PYTHON overrides /usr/bin/python3). */
export function twinPython(): string {
  return Deno.env.get("TWIN_PYTHON") ?? "/usr/bin/python3";
}

/** Whether `python3 -c "import torch"` works (the twin's only dependency). */
export async function torchAvailable(): Promise<boolean> {
  try {
    const r = await new Deno.Command(twinPython(), {
      args: ["-c", "import torch"],
      stdout: "null",
      stderr: "null",
    }).output();
    return r.success;
  } catch {
    return false;
  }
}
