import { decodeSafetensors, encodeSafetensors } from "../../src/train/safetensors.ts";
import { assert } from "../_assert.ts";

const TENSORS = new Map([
  ["encoder.embed.w", { shape: [3, 2], data: Float32Array.from([1, -2, 3.5, 4, 5, -6.25]) }],
  ["bn.running_var", { shape: [4], data: Float32Array.from([1, 1, 0.5, 2]) }],
  ["labels", { shape: [2, 1], data: Int32Array.from([7, -3]) }],
]);

Deno.test("safetensors files round-trip, keep 8-byte aligned data, and carry string metadata", () => {
  const bytes = encodeSafetensors(TENSORS, { step: "12", config: '{"a":1}' });
  const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal((8 + headerLen) % 8, 0);
  const { tensors, metadata } = decodeSafetensors(bytes);
  assert.deepEqual(metadata, { step: "12", config: '{"a":1}' });
  for (const [name, t] of TENSORS) assert.deepEqual(tensors.get(name), t);
});

Deno.test("a file written here reads back in an independent Python reader of the format", async () => {
  const path = await Deno.makeTempFile({ suffix: ".safetensors" });
  await Deno.writeFile(path, encodeSafetensors(TENSORS, { mode: "pretrain" }));
  // The format as safetensors.torch documents it, with Python's standard library only.
  const script = `
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
out = {"__metadata__": header.pop("__metadata__")}
for name, h in header.items():
    b, e = h["data_offsets"]
    fmt = {"F32": "f", "I32": "i"}[h["dtype"]]
    vals = struct.unpack("<%d%s" % ((e - b) // 4, fmt), raw[8 + n + b: 8 + n + e])
    out[name] = {"shape": h["shape"], "values": list(vals)}
print(json.dumps(out))`;
  const r = await new Deno.Command("python3", {
    args: ["-c", script, path],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
  const read = JSON.parse(new TextDecoder().decode(r.stdout));
  assert.deepEqual(read.__metadata__, { mode: "pretrain" });
  for (const [name, t] of TENSORS) {
    assert.deepEqual(read[name].shape, t.shape);
    assert.deepEqual(read[name].values, [...t.data]);
  }
});

Deno.test("a corrupt safetensors file is refused naming the file and the problem", () => {
  const bytes = encodeSafetensors(TENSORS);
  assert.throws(
    () => decodeSafetensors(bytes.subarray(0, 5), "ck.safetensors"),
    /ck\.safetensors: .*shorter than its 8-byte header/,
  );
  assert.throws(
    () => decodeSafetensors(bytes.subarray(0, bytes.length - 4), "ck.safetensors"),
    /ck\.safetensors: .*out of bounds/,
  );
});
