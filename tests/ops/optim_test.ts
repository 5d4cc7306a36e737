import { assertClose } from "../../src/audit.ts";
import { AdamW } from "../../src/optim.ts";
import { OPS } from "../../src/ops/registry.ts";
import { ParamStore } from "../../src/params.ts";
import { assert } from "../_assert.ts";
import { gpuTest, rand } from "../_helpers.ts";

gpuTest(
  "AdamW updates every parameter in one dispatch, matching the f64 reference over 5 steps",
  async (gpu) => {
    const specs = [
      { name: "w", shape: [37, 3], init: rand(1, 111), decay: true },
      { name: "b", shape: [3], init: rand(2, 3), decay: false },
      { name: "t", shape: [1, 1, 65], init: rand(3, 65), decay: true },
    ];
    const store = new ParamStore(gpu, specs);
    const o = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.15 };
    const opt = new AdamW(store, o);
    // Reference state, concatenated (the store's padding is invisible to the user).
    let param: Float64Array = Float64Array.from(specs.flatMap((s) => [...s.init]));
    let m: Float64Array = new Float64Array(param.length),
      v: Float64Array = new Float64Array(param.length);
    const decay = specs.flatMap((s) => Array(s.init.length).fill(s.decay));
    for (let step = 1; step <= 5; step++) {
      const grads = specs.map((s, i) => rand(100 * step + i, s.init.length, -2, 2));
      specs.forEach((s, i) => gpu.upload(store.get(s.name).grad!.binding, grads[i]));
      const before = gpu.dispatches;
      opt.update();
      assert.equal(gpu.dispatches - before, 1, "one dispatch for all parameters");
      ({ param, m, v } = OPS.adamw.reference.update(
        param,
        grads.flatMap((g) => [...g]),
        m,
        v,
        decay,
        step,
        o,
      ));
    }
    const got = await store.read();
    const flat = specs.flatMap((s) => [...got.get(s.name)!]);
    assertClose(flat, param, OPS.adamw.tolerance.update, "AdamW params after 5 steps");
    // Moments: read the first parameter's slice of m and v.
    const mv = (await opt.state()).v.subarray(0, 111);
    assertClose(mv, v.slice(0, 111), OPS.adamw.tolerance.moments, "AdamW second moment");
    store.destroy();
  },
);

gpuTest(
  "AdamW with weight decay 0 is Adam and decays no parameter marked decay: false",
  async (gpu) => {
    const store = new ParamStore(gpu, [{
      name: "b",
      shape: [5],
      init: Float32Array.from([1, 2, 3, 4, 5]),
      decay: false,
    }]);
    const opt = new AdamW(store, { lr: 0.1, weightDecay: 10 });
    opt.update(); // zero gradient: Adam's step is 0 and decay is off for this parameter
    assert.deepEqual([...(await store.read()).get("b")!], [1, 2, 3, 4, 5]);
    store.destroy();
  },
);
