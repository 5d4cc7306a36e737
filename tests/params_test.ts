import { assert } from "./_assert.ts";
import { CheckpointError, encoderFields, sealCheckpoint, verifyCheckpoint } from "../src/params.ts";
import { encodeSafetensors } from "../src/train/safetensors.ts";

const MODEL = { imageSize: 64, channels: 3, patch: 8, width: 32, depth: 1, heads: 2, mlp: 64 };
const TENSORS = new Map([
  ["encoder.embed.w", { shape: [2, 3], data: Float32Array.from([1, -2, 3.5, 4, 5, -6.25]) }],
  ["optim.0.m", { shape: [4], data: Float32Array.from([0.1, 0.2, 0.3, 0.4]) }],
  ["labels", { shape: [2], data: Int32Array.from([7, -3]) }],
]);

function sealed(model: object = MODEL): Uint8Array {
  return encodeSafetensors(TENSORS, { step: "3", ...sealCheckpoint(TENSORS, model) });
}

/** Rewrites the JSON header of a safetensors file (the data stays where it was). */
function withHeader(bytes: Uint8Array, edit: (h: Record<string, unknown>) => void): Uint8Array {
  const len = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + len)));
  edit(header);
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + bytes.length - 8 - len);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(bytes.subarray(8 + len), 8 + json.length);
  return out;
}

/** The error `fn` throws (a CheckpointError), or a failed assertion. */
function errorOf(fn: () => unknown): CheckpointError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof CheckpointError, `a CheckpointError, got ${e}`);
    return e as CheckpointError;
  }
  throw new Error("expected the checkpoint to be refused");
}

const quiet = () => {};

Deno.test("a sealed checkpoint verifies, and its seal names the model config it was written with", () => {
  const check = verifyCheckpoint(sealed(), "ck.safetensors", { model: MODEL }, quiet);
  assert.equal(check.sealed, true);
  assert.equal(check.metadata.step, "3");
  assert.deepEqual(JSON.parse(check.metadata.model_config), MODEL);
});

Deno.test("a flipped data byte makes a checkpoint fail its checksum, naming the file", () => {
  const bytes = sealed();
  bytes[bytes.length - 9] ^= 0x01; // inside optim.0.m / encoder data, never the header
  const e = errorOf(() => verifyCheckpoint(bytes, "ck.safetensors", {}, quiet));
  assert.match(e.message, /^ck\.safetensors: fails its checksum/);
});

Deno.test("a header shape rewritten to another with the same element count is refused", () => {
  const bytes = withHeader(sealed(), (h) => {
    (h["encoder.embed.w"] as { shape: number[] }).shape = [3, 2];
  });
  const e = errorOf(() => verifyCheckpoint(bytes, "ck.safetensors", {}, quiet));
  assert.match(e.message, /fails its checksum/);
});

Deno.test("an encoder trained with heads=2 is refused for a model with heads=4, naming the field", () => {
  const e = errorOf(() =>
    verifyCheckpoint(sealed(), "enc.safetensors", {
      model: encoderFields({ ...MODEL, heads: 4, decoderWidth: 99 }),
    }, quiet)
  );
  assert.equal(
    e.message,
    "enc.safetensors: written for another model (model.heads: checkpoint 2, expected 4)",
  );
});

Deno.test("malformed headers give one error naming the file and the tensor, not a TypeError", () => {
  const cases: [string, (h: Record<string, unknown>) => void, RegExp][] = [
    ["renamed key", (h) => {
      const t = h["labels"] as Record<string, unknown>;
      t.offsets = t.data_offsets;
      delete t.data_offsets;
    }, /tensor 'labels': data_offsets is missing, expected \[begin, end\]/],
    ["shape not a list", (h) => {
      (h["labels"] as Record<string, unknown>).shape = "2";
    }, /tensor 'labels': shape is "2", not a list of sizes/],
    ["no data_offsets", (h) => {
      delete (h["optim.0.m"] as Record<string, unknown>).data_offsets;
    }, /tensor 'optim.0.m': data_offsets is missing/],
    ["unknown dtype", (h) => {
      (h["labels"] as Record<string, unknown>).dtype = "F16";
    }, /tensor 'labels': dtype is "F16"/],
    ["offsets past the end", (h) => {
      (h["labels"] as Record<string, unknown>).data_offsets = [0, 4000];
    }, /tensor 'labels': data \[0, 4000\) lies outside/],
    ["tensor not an object", (h) => {
      h["labels"] = 5;
    }, /tensor 'labels' is not an object/],
  ];
  for (const [what, edit, msg] of cases) {
    const e = errorOf(() => verifyCheckpoint(withHeader(sealed(), edit), "x.safetensors"));
    assert.match(e.message, /^x\.safetensors: /, what);
    assert.match(e.message, msg, what);
  }
  const e = errorOf(() => verifyCheckpoint(new Uint8Array(4), "short.safetensors"));
  assert.match(e.message, /^short\.safetensors: not a safetensors file/);
});

Deno.test("a checkpoint written before sealing loads with a one-line note, and its config is still compared", () => {
  const old = encodeSafetensors(TENSORS, { config: JSON.stringify({ model: MODEL }) });
  const notes: string[] = [];
  const check = verifyCheckpoint(old, "old.safetensors", { model: MODEL }, (l) => notes.push(l));
  assert.equal(check.sealed, false);
  assert.deepEqual(notes, [
    "old.safetensors: written before checkpoints carried a checksum; loaded unverified",
  ]);
  const e = errorOf(() =>
    verifyCheckpoint(old, "old.safetensors", { model: { ...MODEL, width: 64 } }, quiet)
  );
  assert.match(e.message, /model\.width: checkpoint 32, expected 64/);
  // The trainer's config by mode: the encoder (and the MAE objective) stand for the model.
  const byMode = encodeSafetensors(TENSORS, {
    config: JSON.stringify({ mode: "pretrain", encoder: MODEL, mae: { decoderWidth: 16 } }),
  });
  assert.equal(
    verifyCheckpoint(byMode, "m.safetensors", { model: { ...MODEL, decoderWidth: 16 } }, quiet)
      .sealed,
    false,
  );
  assert.match(
    errorOf(() =>
      verifyCheckpoint(byMode, "m.safetensors", { model: { ...MODEL, heads: 4 } }, quiet)
    ).message,
    /model\.heads: checkpoint 2, expected 4/,
  );
});
