import { loadConfig } from "../../src/train/config.ts";
import { assert } from "../_assert.ts";

Deno.test("every example config in repro/configs parses and validates, and the set covers the modes", async () => {
  const dir = new URL("../../repro/configs/", import.meta.url);
  const modes = new Set<string>();
  for await (const e of Deno.readDir(dir)) {
    if (!e.name.endsWith(".yaml")) continue;
    const c = await loadConfig(new URL(e.name, dir).pathname);
    modes.add(c.mode);
  }
  for (const m of ["pretrain", "critic", "smae"]) {
    assert.ok(modes.has(m), `no example for mode ${m}`);
  }
});
