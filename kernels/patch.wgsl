// patch.wgsl — patchify / unpatchify of NCHW images, and MAE's patch shuffle (random masking, token gather, unshuffle with a mask token), with backwards.
//
// Sizes: B = batch, C = channels, H x W image, P = psize (patch side), T = (H/P)(W/P)
// tokens, K = kept tokens, D = token width (P*P*C for patches); each family of entry
// points reads its own uniform struct (PatchGeometry, Masking, TokenMove below).
//   images (B, C, H, W) row-major; patches (B, T, P*P*C) with token t = hi * (W/P) + wi
//   and the patch vector in (py, px, c) order, as MAE's einsum 'nchpwq->nhwpqc':
//   patches[b, t, (py P + px) C + c] = images[b, c, hi P + py, wi P + px].
//   patchify_forward / unpatchify_backward: one thread per patch element (gather / add into patches)
//   unpatchify_forward / patchify_backward: one thread per image element (gather / add into images)
//   Each is a permutation, so the backward of one is the other and gradients add without races.
// Patch shuffle, per sample b (noise, mask (B, T) f32; ids_keep (B, K), ids_restore (B, T) i32):
//   random_masking_forward: rank[t] = #{t' : noise[t'] < noise[t] or (noise[t'] == noise[t] and t' < t)}
//     (the position of t in a stable ascending argsort), ids_restore = rank,
//     ids_keep[rank[t]] = t for rank[t] < K, mask[t] = 1 if rank[t] >= K else 0.
//     O(T^2) compares per sample through 256-wide tiles of noise in workgroup memory.
//   mask_from_boolean_forward: the same outputs for a given 0/1 mask (0 = kept): kept tokens rank
//     first in ascending t, then masked ones. A row whose count of zeros is not K gets
//     ids_restore = -1 and ids_keep = -1 (poison: gather and unshuffle then give NaN).
//   gather_tokens_forward:  out[b, k, :] = x[b, ids_keep[b, k], :]    (x (B, T, D), out (B, K, D))
//   gather_tokens_backward: dx[b, ids_keep[b, k], :] += dy[b, k, :]   (ids distinct per row: no races)
//   unshuffle_tokens_forward: out[b, t, :] = encoded[b, r, :] if r = ids_restore[b, t] < K else token
//   unshuffle_tokens_backward: dencoded[b, r, :] += dy[b, t, :] for r < K (a permutation: no races)
//   unshuffle_tokens_backward_token: dtoken[d] += sum over (b, t) with r >= K of dy[b, t, d]
//   An index outside its range yields NaN (forward) or is skipped (backward), never a stray access.
// Workgroups: 256 threads, one per element, grid (x, y) with x * y * 256 >= elements, except
// random_masking_forward / mask_from_boolean_forward (256 tokens of one sample per
// workgroup, grid (ceil(T / 256), B)) and unshuffle_tokens_backward_token (64 threads per
// column d, strided over the B T rows, grid (D, 1)).

// One uniform struct per family, fields as in src/ops/patch.ts. An entry point
// reads only its family's, so the three share binding 0.
struct PatchGeometry { // patchify_*, unpatchify_*
  batch: u32,
  channels: u32,
  height: u32,
  width: u32,
  psize: u32, // "patch" is a reserved word in WGSL
  tokens: u32, // (H / P) (W / P)
  dim: u32, // P P C
}
struct Masking { // random_masking_forward, mask_from_boolean_forward
  tokens: u32,
  keep: u32,
}
struct TokenMove { // gather_tokens_*, unshuffle_tokens_*
  batch: u32,
  tokens: u32,
  keep: u32,
  dim: u32,
}

@group(0) @binding(0) var<uniform> geo: PatchGeometry;
@group(0) @binding(0) var<uniform> masking: Masking;
@group(0) @binding(0) var<uniform> p: TokenMove;
// patchify_forward / unpatchify_forward / patchify_backward / unpatchify_backward: (src, dst)
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
// random_masking_forward / mask_from_boolean_forward: (noise or mask_in, ids_keep, ids_restore, mask)
@group(0) @binding(1) var<storage, read> keys: array<f32>;
@group(0) @binding(2) var<storage, read_write> ids_keep_out: array<i32>;
@group(0) @binding(3) var<storage, read_write> ids_restore_out: array<i32>;
@group(0) @binding(4) var<storage, read_write> mask_out: array<f32>;
// gather_tokens_forward: (x, ids_keep, out); gather_tokens_backward: (ids_keep, dy, dx)
@group(0) @binding(1) var<storage, read> tokens_in: array<f32>;
@group(0) @binding(2) var<storage, read> ids_keep: array<i32>;
@group(0) @binding(3) var<storage, read_write> tokens_out: array<f32>;
@group(0) @binding(1) var<storage, read> ids_keep_b: array<i32>;
@group(0) @binding(2) var<storage, read> grad_in: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst_grad: array<f32>;
// unshuffle_tokens_forward: (encoded, token, ids_restore, out)
@group(0) @binding(2) var<storage, read> mask_token: array<f32>;
@group(0) @binding(3) var<storage, read> ids_restore_f: array<i32>;
@group(0) @binding(4) var<storage, read_write> unshuffled: array<f32>;
// unshuffle_tokens_backward / _token: (ids_restore, dy, dencoded or dtoken)
@group(0) @binding(1) var<storage, read> ids_restore: array<i32>;

// A NaN bit pattern as a run-time value: bitcast<f32> of it in a constant
// expression is a shader-creation error (Tint enforces this; naga does not).
var<private> NAN_BITS: u32 = 0x7fc00000u;

fn thread_index(w: vec3u, g: vec3u, l: vec3u) -> u32 {
  return (w.y * g.x + w.x) * 256u + l.x;
}

// Image element index of patch element i (see the header for the layout).
fn image_of_patch(i: u32) -> u32 {
  let d = geo.psize * geo.psize * geo.channels;
  let e = i % d;
  let t = (i / d) % geo.tokens;
  let b = i / (d * geo.tokens);
  let c = e % geo.channels;
  let px = (e / geo.channels) % geo.psize;
  let py = e / (geo.channels * geo.psize);
  let wp = geo.width / geo.psize;
  let h = (t / wp) * geo.psize + py;
  let x = (t % wp) * geo.psize + px;
  return ((b * geo.channels + c) * geo.height + h) * geo.width + x;
}

// Patch element index of image element j.
fn patch_of_image(j: u32) -> u32 {
  let x = j % geo.width;
  let h = (j / geo.width) % geo.height;
  let c = (j / (geo.width * geo.height)) % geo.channels;
  let b = j / (geo.width * geo.height * geo.channels);
  let t = (h / geo.psize) * (geo.width / geo.psize) + x / geo.psize;
  let e = ((h % geo.psize) * geo.psize + x % geo.psize) * geo.channels + c;
  return (b * geo.tokens + t) * (geo.psize * geo.psize * geo.channels) + e;
}

@compute @workgroup_size(256)
fn patchify_forward(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let i = thread_index(w, g, l);
  if (i >= geo.batch * geo.tokens * geo.dim) { return; }
  dst[i] = src[image_of_patch(i)];
}

@compute @workgroup_size(256)
fn patchify_backward(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let j = thread_index(w, g, l);
  if (j >= geo.batch * geo.channels * geo.height * geo.width) { return; }
  dst[j] += src[patch_of_image(j)];
}

@compute @workgroup_size(256)
fn unpatchify_forward(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let j = thread_index(w, g, l);
  if (j >= geo.batch * geo.channels * geo.height * geo.width) { return; }
  dst[j] = src[patch_of_image(j)];
}

@compute @workgroup_size(256)
fn unpatchify_backward(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let i = thread_index(w, g, l);
  if (i >= geo.batch * geo.tokens * geo.dim) { return; }
  dst[i] += src[image_of_patch(i)];
}

var<workgroup> tile: array<f32, 256>;

@compute @workgroup_size(256)
fn random_masking_forward(@builtin(workgroup_id) w: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let b = w.y;
  let t = w.x * 256u + l.x;
  let row = b * masking.tokens;
  let inside = t < masking.tokens;
  var v = 0.0;
  if (inside) { v = keys[row + t]; }
  var rank = 0u;
  for (var start = 0u; start < masking.tokens; start += 256u) {
    if (start + l.x < masking.tokens) { tile[l.x] = keys[row + start + l.x]; }
    workgroupBarrier();
    let n = min(256u, masking.tokens - start);
    for (var k = 0u; k < n; k++) {
      let u = tile[k];
      if (u < v || (u == v && start + k < t)) { rank++; }
    }
    workgroupBarrier();
  }
  if (!inside) { return; }
  ids_restore_out[row + t] = i32(rank);
  if (rank < masking.keep) {
    ids_keep_out[b * masking.keep + rank] = i32(t);
    mask_out[row + t] = 0.0;
  } else {
    mask_out[row + t] = 1.0;
  }
}

@compute @workgroup_size(256)
fn mask_from_boolean_forward(@builtin(workgroup_id) w: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let b = w.y;
  let t = w.x * 256u + l.x;
  let row = b * masking.tokens;
  let inside = t < masking.tokens;
  var masked = false;
  if (inside) { masked = keys[row + t] != 0.0; }
  var before = 0u; // tokens before t in the same class (kept or masked)
  var zeros = 0u; // kept tokens in the whole row
  for (var start = 0u; start < masking.tokens; start += 256u) {
    if (start + l.x < masking.tokens) { tile[l.x] = keys[row + start + l.x]; }
    workgroupBarrier();
    let n = min(256u, masking.tokens - start);
    for (var k = 0u; k < n; k++) {
      let m = tile[k] != 0.0;
      if (!m) { zeros++; }
      if (m == masked && start + k < t) { before++; }
    }
    workgroupBarrier();
  }
  if (!inside) { return; }
  if (masked) { mask_out[row + t] = 1.0; } else { mask_out[row + t] = 0.0; }
  if (zeros != masking.keep) {
    ids_restore_out[row + t] = -1;
    if (t < masking.keep) { ids_keep_out[b * masking.keep + t] = -1; }
    return;
  }
  if (masked) {
    ids_restore_out[row + t] = i32(masking.keep + before);
  } else {
    ids_restore_out[row + t] = i32(before);
    ids_keep_out[b * masking.keep + before] = i32(t);
  }
}

@compute @workgroup_size(256)
fn gather_tokens_forward(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let i = thread_index(w, g, l);
  if (i >= p.batch * p.keep * p.dim) { return; }
  let bk = i / p.dim;
  let id = ids_keep[bk];
  if (id < 0 || u32(id) >= p.tokens) {
    tokens_out[i] = bitcast<f32>(NAN_BITS);
    return;
  }
  let b = bk / p.keep;
  tokens_out[i] = tokens_in[(b * p.tokens + u32(id)) * p.dim + i % p.dim];
}

@compute @workgroup_size(256)
fn gather_tokens_backward(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let i = thread_index(w, g, l);
  if (i >= p.batch * p.keep * p.dim) { return; }
  let bk = i / p.dim;
  let id = ids_keep_b[bk];
  if (id < 0 || u32(id) >= p.tokens) { return; }
  let b = bk / p.keep;
  dst_grad[(b * p.tokens + u32(id)) * p.dim + i % p.dim] += grad_in[i];
}

@compute @workgroup_size(256)
fn unshuffle_tokens_forward(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let i = thread_index(w, g, l);
  if (i >= p.batch * p.tokens * p.dim) { return; }
  let bt = i / p.dim;
  let d = i % p.dim;
  let r = ids_restore_f[bt];
  if (r < 0 || u32(r) >= p.tokens) {
    unshuffled[i] = bitcast<f32>(NAN_BITS);
  } else if (u32(r) < p.keep) {
    unshuffled[i] = tokens_in[((bt / p.tokens) * p.keep + u32(r)) * p.dim + d];
  } else {
    unshuffled[i] = mask_token[d];
  }
}

@compute @workgroup_size(256)
fn unshuffle_tokens_backward(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let i = thread_index(w, g, l);
  if (i >= p.batch * p.tokens * p.dim) { return; }
  let bt = i / p.dim;
  let r = ids_restore[bt];
  if (r < 0 || u32(r) >= p.keep) { return; }
  dst_grad[((bt / p.tokens) * p.keep + u32(r)) * p.dim + i % p.dim] += grad_in[i];
}

var<workgroup> red: array<f32, 64>;

@compute @workgroup_size(64)
fn unshuffle_tokens_backward_token(@builtin(workgroup_id) w: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let d = w.x;
  if (d >= p.dim) { return; }
  var s = 0.0;
  for (var bt = l.x; bt < p.batch * p.tokens; bt += 64u) {
    let r = ids_restore[bt];
    if (r >= i32(p.keep) && u32(r) < p.tokens) { s += grad_in[bt * p.dim + d]; }
  }
  red[l.x] = s;
  workgroupBarrier();
  for (var k = 32u; k > 0u; k >>= 1u) {
    if (l.x < k) { red[l.x] += red[l.x + k]; }
    workgroupBarrier();
  }
  if (l.x == 0u) { dst_grad[d] += red[0]; }
}
