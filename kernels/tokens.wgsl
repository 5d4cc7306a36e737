// tokens.wgsl — moving whole tokens: append a (learned) token, slice a token range.
//
// Tokens are rows of D f32 values; x is (B, T, D) row-major.
//   append_token_forward:  y (B, T + 1, D): y[b, t] = x[b, t] for t < T, y[b, T] = tok
//                          (the class token goes last, as in the paper's code)
//   append_token_backward: dx[b, t] += dy[b, t] for t < T;  dtok += sum_b dy[b, T]
//   slice_tokens_forward:  y (B, L, D) = x[b, start + l]   (+ y when accumulate = 1)
//   slice_tokens_backward: dx[b, start + l] += dy[b, l]
//   concat_tokens_forward: y (B, T + L, D) = [a (B, T, D) | b (B, L, D)] along tokens;
//                          its backward is two accumulating slices of dy
// One thread per output element (per input element for append_token_backward's
// dx part, per token value for dtok), workgroup 256, grid (x, y) with
// x * y >= ceil(count / 256), x <= 65535. dtok's loop over B is short (batch).

// One uniform struct per family, fields as in src/ops/tokens.ts; an entry point
// reads only its own, so they share binding 0.
struct AppendParams { // append_token_*
  batch: u32,
  tokens: u32, // T: tokens of x
  dim: u32,
}
struct SliceParams { // slice_tokens_*
  batch: u32,
  tokens: u32, // T: tokens of x
  dim: u32,
  start: u32,
  len: u32, // L: tokens of the slice
  accumulate: u32,
}
struct ConcatParams { // concat_tokens_forward
  batch: u32,
  tokens: u32, // T: tokens of a
  dim: u32,
  len: u32, // L: tokens of b
}

@group(0) @binding(0) var<uniform> append: AppendParams;
@group(0) @binding(0) var<uniform> slice: SliceParams;
@group(0) @binding(0) var<uniform> concat: ConcatParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> tok: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;
// two-binding entry points: (src, dst2)
@group(0) @binding(2) var<storage, read_write> dst2: array<f32>;

fn flat_id(w: vec3u, g: vec3u, l: vec3u) -> u32 {
  return (w.y * g.x + w.x) * 256u + l.x;
}

@compute @workgroup_size(256)
fn append_token_forward(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let i = flat_id(w, g, l);
  let t1 = append.tokens + 1u;
  if (i >= append.batch * t1 * append.dim) { return; }
  let d = i % append.dim;
  let t = (i / append.dim) % t1;
  let b = i / (append.dim * t1);
  if (t == append.tokens) {
    dst[i] = tok[d];
  } else {
    dst[i] = src[(b * append.tokens + t) * append.dim + d];
  }
}

// dy is src; dx is dst2 (B, T, D): dx[b, t] += dy[b, t].
@compute @workgroup_size(256)
fn append_token_backward(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let i = flat_id(w, g, l);
  if (i >= append.batch * append.tokens * append.dim) { return; }
  let d = i % append.dim;
  let t = (i / append.dim) % append.tokens;
  let b = i / (append.dim * append.tokens);
  dst2[i] += src[(b * (append.tokens + 1u) + t) * append.dim + d];
}

// dy is src; dtok is dst2 (D): dtok[d] += sum_b dy[b, T, d].
@compute @workgroup_size(256)
fn append_token_backward_token(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let d = flat_id(w, g, l);
  if (d >= append.dim) { return; }
  var s = 0.0;
  for (var b = 0u; b < append.batch; b++) {
    s += src[(b * (append.tokens + 1u) + append.tokens) * append.dim + d];
  }
  dst2[d] += s;
}

@compute @workgroup_size(256)
fn slice_tokens_forward(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let i = flat_id(w, g, l);
  if (i >= slice.batch * slice.len * slice.dim) { return; }
  let d = i % slice.dim;
  let t = (i / slice.dim) % slice.len;
  let b = i / (slice.dim * slice.len);
  let v = src[(b * slice.tokens + slice.start + t) * slice.dim + d];
  if (slice.accumulate != 0u) { dst2[i] += v; } else { dst2[i] = v; }
}

// a is src (B, T, D), b is tok (B, L, D), y is dst (B, T + L, D).
@compute @workgroup_size(256)
fn concat_tokens_forward(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let i = flat_id(w, g, l);
  let total = concat.tokens + concat.len;
  if (i >= concat.batch * total * concat.dim) { return; }
  let d = i % concat.dim;
  let t = (i / concat.dim) % total;
  let b = i / (concat.dim * total);
  if (t < concat.tokens) {
    dst[i] = src[(b * concat.tokens + t) * concat.dim + d];
  } else {
    dst[i] = tok[(b * concat.len + t - concat.tokens) * concat.dim + d];
  }
}

@compute @workgroup_size(256)
fn slice_tokens_backward(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let i = flat_id(w, g, l);
  if (i >= slice.batch * slice.len * slice.dim) { return; }
  let d = i % slice.dim;
  let t = (i / slice.dim) % slice.len;
  let b = i / (slice.dim * slice.len);
  dst2[(b * slice.tokens + slice.start + t) * slice.dim + d] += src[i];
}
