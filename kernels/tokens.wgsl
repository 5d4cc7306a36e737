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

struct Params {
  batch: u32,
  tokens: u32, // T: tokens of x
  dim: u32,
  start: u32,
  len: u32, // L: tokens of a slice, or of the second part of a concat
  accumulate: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
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
  let t1 = p.tokens + 1u;
  if (i >= p.batch * t1 * p.dim) { return; }
  let d = i % p.dim;
  let t = (i / p.dim) % t1;
  let b = i / (p.dim * t1);
  if (t == p.tokens) {
    dst[i] = tok[d];
  } else {
    dst[i] = src[(b * p.tokens + t) * p.dim + d];
  }
}

// dy is src; dx is dst2 (B, T, D): dx[b, t] += dy[b, t].
@compute @workgroup_size(256)
fn append_token_backward(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let i = flat_id(w, g, l);
  if (i >= p.batch * p.tokens * p.dim) { return; }
  let d = i % p.dim;
  let t = (i / p.dim) % p.tokens;
  let b = i / (p.dim * p.tokens);
  dst2[i] += src[(b * (p.tokens + 1u) + t) * p.dim + d];
}

// dy is src; dtok is dst2 (D): dtok[d] += sum_b dy[b, T, d].
@compute @workgroup_size(256)
fn append_token_backward_token(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let d = flat_id(w, g, l);
  if (d >= p.dim) { return; }
  var s = 0.0;
  for (var b = 0u; b < p.batch; b++) {
    s += src[(b * (p.tokens + 1u) + p.tokens) * p.dim + d];
  }
  dst2[d] += s;
}

@compute @workgroup_size(256)
fn slice_tokens_forward(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let i = flat_id(w, g, l);
  if (i >= p.batch * p.len * p.dim) { return; }
  let d = i % p.dim;
  let t = (i / p.dim) % p.len;
  let b = i / (p.dim * p.len);
  let v = src[(b * p.tokens + p.start + t) * p.dim + d];
  if (p.accumulate != 0u) { dst2[i] += v; } else { dst2[i] = v; }
}

// a is src (B, T, D), b is tok (B, L, D), y is dst (B, T + L, D).
@compute @workgroup_size(256)
fn concat_tokens_forward(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let i = flat_id(w, g, l);
  let total = p.tokens + p.len;
  if (i >= p.batch * total * p.dim) { return; }
  let d = i % p.dim;
  let t = (i / p.dim) % total;
  let b = i / (p.dim * total);
  if (t < p.tokens) {
    dst[i] = src[(b * p.tokens + t) * p.dim + d];
  } else {
    dst[i] = tok[(b * p.len + t - p.tokens) * p.dim + d];
  }
}

@compute @workgroup_size(256)
fn slice_tokens_backward(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let i = flat_id(w, g, l);
  if (i >= p.batch * p.len * p.dim) { return; }
  let d = i % p.dim;
  let t = (i / p.dim) % p.len;
  let b = i / (p.dim * p.len);
  dst2[(b * p.tokens + p.start + t) * p.dim + d] += src[i];
}
