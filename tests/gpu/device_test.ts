import { KERNEL_SOURCES } from "../../kernels/sources.ts";
import {
  createGpu,
  isSoftwareAdapter,
  KernelError,
  moduleLabel,
  poolSize,
  TRANSFER_ENTRIES,
} from "../../src/gpu/device.ts";
import { add } from "../../src/ops/elementwise.ts";
import { matmul } from "../../src/ops/matmul.ts";
import { tensor, tidy } from "../../src/tensor.ts";
import { assert, assertRejects, assertThrows } from "../_assert.ts";
import { gpuTest, rand } from "../_helpers.ts";

Deno.test("isSoftwareAdapter() tells CPU rasterizers from hardware GPUs", () => {
  assert.ok(isSoftwareAdapter({ description: "llvmpipe (LLVM 15.0.6, 256 bits)" }));
  assert.ok(isSoftwareAdapter({ description: "lavapipe" }));
  assert.ok(isSoftwareAdapter({ description: "SwiftShader Device (Subzero)" }));
  assert.ok(isSoftwareAdapter({ description: "whatever", isFallbackAdapter: true }));
  assert.ok(!isSoftwareAdapter({ description: "NVIDIA H200" }));
});

Deno.test({
  name: "openGpu() without an adapter fails with one error that says how to get one",
  fn: async () => {
    // A backend the host lacks leaves WebGPU with no adapter at all.
    const script = `import { openGpu } from "${new URL(
      "../../src/gpu/device.ts",
      import.meta.url,
    )}";
      try { await openGpu(); console.log("opened"); } catch (e) { console.log(e.name + ": " + e.message); }`;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", script],
      env: { DENO_WEBGPU_BACKEND: "dx12" },
      stdout: "piped",
      stderr: "null",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    assert.match(text, /NoAdapterError: No WebGPU adapter found \(DENO_WEBGPU_BACKEND=dx12\)/);
    assert.match(text, /mesa-vulkan-drivers/);
  },
});

Deno.test("poolSize() rounds requests to reusable buckets with under 12.5% waste", () => {
  assert.equal(poolSize(1), 256);
  assert.equal(poolSize(256), 256);
  assert.equal(poolSize(257), 512);
  for (const n of [70_000, 1_000_000, 12_345_678]) {
    const s = poolSize(n);
    assert.ok(s >= n && s < n * 1.126, `${n} -> ${s}`);
  }
});

gpuTest("the adapter summary names the adapter and whether it is a software rasterizer", (gpu) => {
  assert.ok(gpu.adapter.description.length > 0);
  // Our CI adapter is Mesa's llvmpipe; whatever it is, a CPU rasterizer's name implies software.
  if (isSoftwareAdapter({ description: gpu.adapter.description })) assert.ok(gpu.adapter.software);
});

gpuTest("each kernel pipeline is compiled once per device and set of overrides", async (gpu) => {
  const a = tensor(gpu, rand(1, 12), [3, 4]), b = tensor(gpu, rand(2, 20), [4, 5]);
  tidy(() => matmul(a, b));
  const n = gpu.pipelineCount;
  tidy(() => {
    matmul(a, b);
    matmul(a, b);
  });
  assert.equal(gpu.pipelineCount, n, "same kernel again: no new pipeline");
  tidy(() => matmul(a, tensor(gpu, rand(3, 20), [5, 4]), { transB: true }));
  assert.equal(gpu.pipelineCount, n + 1, "another transpose is another specialisation");
  await gpu.sync();
});

gpuTest(
  "pipelines are cached by WGSL source and entry: equal entry names in two sources stay apart",
  async (gpu) => {
    const fill = (v: number) =>
      `// fill_${v}.wgsl — writes ${v} to out[0..n)
struct Params { n: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(64)
fn fill(@builtin(global_invocation_id) i: vec3u) { if (i.x < p.n) { out[i.x] = ${v}.0; } }
`;
    const spec = (v: number) => ({
      source: fill(v),
      entry: "fill",
      params: { n: "u32" },
      workgroup: [64],
    } as const);
    const t = tensor(gpu, [0, 0, 0], [3]);
    const before = gpu.pipelineCount;
    for (const v of [1, 2]) {
      gpu.dispatch(spec(v), { n: 3 }, [t.binding], [1]);
      assert.deepEqual([...(await t.read())], [v, v, v], `source writing ${v}`);
    }
    gpu.dispatch(spec(1), { n: 3 }, [t.binding], [1]); // equal text, another string
    assert.deepEqual([...(await t.read())], [1, 1, 1]);
    assert.equal(gpu.pipelineCount, before + 2, "one pipeline per (source, entry)");
    t.dispose();
  },
);

Deno.test("moduleLabel() names a WGSL module by the file its header names", () => {
  assert.equal(moduleLabel("// patch.wgsl — patchify ...\nstruct P {}"), "patch.wgsl");
  assert.equal(moduleLabel("struct P {}"), "WGSL module");
});

gpuTest("a WebGPU validation error surfaces as an exception naming the kernel", async (gpu) => {
  const t = tensor(gpu, [1, 2, 3, 4], [4]);
  gpu.dispatch(
    {
      source: KERNEL_SOURCES["reduce.wgsl"],
      entry: "no_such_entry",
      params: { n: "u32" },
      workgroup: [1],
    },
    { n: 1 },
    [t.binding],
    [1],
  );
  await assertRejects(() => gpu.sync(), "no_such_entry");
  // The device stays usable afterwards.
  const y = add(t, t);
  assert.deepEqual([...(await y.read())], [2, 4, 6, 8]);
  assert.ok(new KernelError(["k"], "m").message.includes("kernel k"));
});

gpuTest("a tensor from another device is refused with the op's name", async (gpu) => {
  const other = await createGpu({ log: false });
  const a = tensor(gpu, [1, 2], [2]), b = tensor(other, [1, 2], [2]);
  assertThrows(() => add(a, b), "add: tensor[2] f32 lives on another device than tensor[2] f32");
  other.destroy();
});

gpuTest(
  "tidy() frees intermediates to the pool, keeps what it returns, and use after dispose throws",
  async (gpu) => {
    const a = tensor(gpu, [1, 2, 3], [3]);
    let inner = a;
    const out = tidy(() => {
      inner = add(a, a);
      return add(inner, a);
    });
    assert.ok(inner.disposed, "intermediate disposed");
    assert.ok(!out.disposed && !a.disposed, "result and outer tensor alive");
    assert.deepEqual([...(await out.read())], [3, 6, 9]);
    assertThrows(() => add(inner, a), "add: tensor[3] f32 was disposed");
  },
);

gpuTest(
  "uploads after pending work do not clobber buffers the pending work still reads",
  async (gpu) => {
    // x is freed and its pooled buffer immediately reused by an upload while
    // add(x, x) is still only recorded: the upload must not overtake it.
    const x = tensor(gpu, [1, 1, 1, 1], [4]);
    const y = add(x, x);
    x.dispose();
    const z = tensor(gpu, [5, 5, 5, 5], [4]);
    assert.deepEqual([...(await y.read())], [2, 2, 2, 2]);
    assert.deepEqual([...(await z.read())], [5, 5, 5, 5]);
  },
);

gpuTest(
  "a buffer over the device's binding limit is refused at allocation, naming both sizes",
  (gpu) => {
    const limit = gpu.device.limits.maxStorageBufferBindingSize;
    assert.throws(
      () => gpu.acquire(limit + 4),
      /exceeds this device's maxStorageBufferBindingSize of [\d.]+ MiB/,
    );
    // Just under the limit: the pool's bucket is capped at the limit, so the buffer binds.
    const b = gpu.acquire(limit - 1000);
    assert.ok(b.size <= limit && b.size >= limit - 1000, `${b.size} vs ${limit}`);
    b.destroy();
  },
);

gpuTest(
  "the profiler times transfers as well as dispatches: each kind by name, a large copy longer than a small one",
  async (gpu) => {
    const big = 32 * 2 ** 20;
    const a = gpu.acquire(big), b = gpu.acquire(big);
    try {
      if (!gpu.startProfile()) throw new Error("the adapter cannot time kernels");
      gpu.stageTexture({ buffer: a, offset: 0, size: 4096 }, 0);
      gpu.stageTexture({ buffer: a, offset: 0, size: 64 }, 0);
      gpu.clear({ buffer: b, offset: 0, size: 256 });
      gpu.copy({ buffer: a, offset: 0, size: 16 }, { buffer: b, offset: 0, size: 16 });
      const small = await gpu.stopProfile();
      const calls = Object.fromEntries(small.map((r) => [r.entry, r.calls]));
      assert.deepEqual(calls, {
        [TRANSFER_ENTRIES.stage]: 2,
        [TRANSFER_ENTRIES.clear]: 1,
        [TRANSFER_ENTRIES.copy]: 1,
      });
      for (const r of small) {
        assert.ok(Number.isFinite(r.ms) && r.ms >= 0, `${r.entry}: ${r.ms} ms`);
      }
      // The timestamps bracket the copy itself: 32 MiB takes longer than 16 bytes did.
      gpu.startProfile();
      gpu.copy({ buffer: a, offset: 0, size: big }, { buffer: b, offset: 0, size: big });
      const [large] = await gpu.stopProfile();
      const tiny = small.find((r) => r.entry === TRANSFER_ENTRIES.copy)!;
      assert.ok(large.ms > tiny.ms, `32 MiB ${large.ms} ms vs 16 bytes ${tiny.ms} ms`);
    } finally {
      gpu.release(a);
      gpu.release(b);
    }
  },
);

gpuTest(
  "stageTexture() stages 16-byte-aligned ranges and declines others (callers fall back)",
  (gpu) => {
    const buffer = gpu.acquire(4096);
    try {
      assert.ok(gpu.stageTexture({ buffer, offset: 0, size: 4096 }, 0), "aligned range");
      assert.ok(gpu.stageTexture({ buffer, offset: 256, size: 48 }, 1), "aligned offset and size");
      assert.equal(gpu.stageTexture({ buffer, offset: 4, size: 16 }, 0), null, "offset 4");
      assert.equal(gpu.stageTexture({ buffer, offset: 0, size: 20 }, 0), null, "size 20");
      assert.equal(gpu.stageTexture({ buffer, offset: 0, size: 0 }, 0), null, "empty");
    } finally {
      gpu.release(buffer);
    }
  },
);
