// attention.wgsl — fused multi-head softmax attention O = softmax(scale Q K^T) V, and its backward.
//
// Layout: q, k, v are rows of a (B*T, in_stride) f32 matrix; head h of token
// (b, t) is the dh values at in_offset + (b*T + t)*in_stride + h*dh, where
// in_offset is q_off, k_off or v_off. A packed (B, T, 3D) qkv binds the same
// buffer three times with in_stride = 3D and offsets 0, D, 2D; separate
// (B, T, D) tensors use in_stride = D and offsets 0. o, do are (B, T, D),
// head h at columns h*dh..; dq, dk, dv share q, k, v's layout (grad_stride,
// gradient offsets). stats is (B, H, T, 2): [logsumexp of the scaled scores
// of row t, D_t = sum_c dO[t, c] O[t, c]].
//   attention_forward:        o = P V with P = softmax_row(scale q k^T); stats[.., 0] = lse.
//   attention_backward_query: stats[.., 1] = D; dq += scale * dS k,
//   attention_backward_key:   dk += scale * dS^T q, dv += P^T dO,
//     with P = exp(scale q k^T - lse), dS = P * (dO v^T - D) recomputed per
//     tile, so the (T, T) scores never reach memory (flash-attention style).
// One thread per query row (forward, backward_query) or key row
// (backward_key), BLOCK = 32 rows per workgroup: workgroup size 32. The other
// side is streamed through workgroup memory in tiles of BLOCK rows (two
// 32 x 64 vec4-padded tiles = 16 KiB). Every loop runs at most ceil(T/32)
// tiles of 32 steps, far below llvmpipe's 65535-iteration cap.
// Grid: grid1d(B * H * ceil(T / 32)) workgroups, (x, y) with x <= 65535.
// Head dims up to 4 * MAX_DH4 = 64; DH4 = ceil(dh / 4) is an override so the
// per-row loops have a fixed trip count; padding lanes hold zeros.

struct Params {
  batch_heads: u32, // B * H
  heads: u32,
  seq: u32, // T
  dh: u32,
  in_stride: u32,
  q_off: u32,
  k_off: u32,
  v_off: u32,
  out_stride: u32, // D: row stride of o and do
  grad_stride: u32,
  dq_off: u32,
  dk_off: u32,
  dv_off: u32,
  scale: f32,
}

const BLOCK = 32u;
const MAX_DH4 = 16u;
override DH4: u32 = 16u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
// forward: (q, k, v, o, stats)
@group(0) @binding(4) var<storage, read_write> o_out: array<f32>;
@group(0) @binding(5) var<storage, read_write> stats_out: array<f32>;
// backward_query: (q, k, v, o, do, stats, dq)
@group(0) @binding(4) var<storage, read> o_in: array<f32>;
@group(0) @binding(5) var<storage, read> d_o: array<f32>;
@group(0) @binding(6) var<storage, read_write> stats_rw: array<f32>;
@group(0) @binding(7) var<storage, read_write> dq: array<f32>;
// backward_key: (q, k, v, do, stats, dk, dv)
@group(0) @binding(4) var<storage, read> d_o_k: array<f32>;
@group(0) @binding(5) var<storage, read> stats_in: array<f32>;
@group(0) @binding(6) var<storage, read_write> dk: array<f32>;
@group(0) @binding(7) var<storage, read_write> dv: array<f32>;

// Two tiles of BLOCK rows: (k, v) in the row-parallel passes, (q, dO) in the key pass.
var<workgroup> tile_a: array<vec4f, 512>; // BLOCK * MAX_DH4
var<workgroup> tile_b: array<vec4f, 512>;
var<workgroup> tile_stat: array<vec2f, 32>; // (lse, D) of the query tile

// Which (batch*head, row block) this workgroup owns; bh >= batch_heads means idle.
struct Work {
  b: u32,
  h: u32,
  bh: u32,
  row0: u32,
}

fn work(w: vec3u, g: vec3u) -> Work {
  let blocks = (p.seq + BLOCK - 1u) / BLOCK;
  let id = w.y * g.x + w.x;
  let bh = id / blocks;
  return Work(bh / p.heads, bh % p.heads, bh, (id % blocks) * BLOCK);
}

// Element c of head h of token t (0 past dh or past T) from an input matrix.
fn in_index(wk: Work, t: u32, off: u32, c: u32) -> u32 {
  return off + (wk.b * p.seq + t) * p.in_stride + wk.h * p.dh + c;
}

fn out_index(wk: Work, t: u32, c: u32) -> u32 {
  return (wk.b * p.seq + t) * p.out_stride + wk.h * p.dh + c;
}

fn grad_index(wk: Work, t: u32, off: u32, c: u32) -> u32 {
  return off + (wk.b * p.seq + t) * p.grad_stride + wk.h * p.dh + c;
}

fn stat_index(wk: Work, t: u32) -> u32 {
  return (wk.bh * p.seq + t) * 2u;
}

fn load_q(wk: Work, t: u32, c4: u32) -> vec4f {
  var r = vec4f(0.0);
  if (t < p.seq) {
    for (var e = 0u; e < 4u; e++) {
      let c = c4 * 4u + e;
      if (c < p.dh) { r[e] = q[in_index(wk, t, p.q_off, c)]; }
    }
  }
  return r;
}

fn load_k(wk: Work, t: u32, c4: u32) -> vec4f {
  var r = vec4f(0.0);
  if (t < p.seq) {
    for (var e = 0u; e < 4u; e++) {
      let c = c4 * 4u + e;
      if (c < p.dh) { r[e] = k[in_index(wk, t, p.k_off, c)]; }
    }
  }
  return r;
}

fn load_v(wk: Work, t: u32, c4: u32) -> vec4f {
  var r = vec4f(0.0);
  if (t < p.seq) {
    for (var e = 0u; e < 4u; e++) {
      let c = c4 * 4u + e;
      if (c < p.dh) { r[e] = v[in_index(wk, t, p.v_off, c)]; }
    }
  }
  return r;
}

// Loads rows j0.. of k and v into tile_a, tile_b (zeros past T); BLOCK threads share the copy.
fn load_kv_tile(wk: Work, j0: u32, lx: u32) {
  for (var i = lx; i < BLOCK * DH4; i += BLOCK) {
    let j = i / DH4;
    let c4 = i % DH4;
    tile_a[j * MAX_DH4 + c4] = load_k(wk, j0 + j, c4);
    tile_b[j * MAX_DH4 + c4] = load_v(wk, j0 + j, c4);
  }
}

@compute @workgroup_size(32)
fn attention_forward(
  @builtin(workgroup_id) w: vec3u,
  @builtin(num_workgroups) g: vec3u,
  @builtin(local_invocation_id) l: vec3u,
) {
  let wk = work(w, g);
  // Whole workgroups leave together, so the barriers below stay uniform.
  if (wk.bh >= p.batch_heads) { return; }
  let i = wk.row0 + l.x;
  var qi: array<vec4f, MAX_DH4>;
  var acc: array<vec4f, MAX_DH4>;
  for (var c = 0u; c < DH4; c++) {
    qi[c] = load_q(wk, i, c) * p.scale;
    acc[c] = vec4f(0.0);
  }
  // Online softmax, rescaled once per tile: m = running max, l = sum exp(s - m).
  var m = -3.0e38;
  var lsum = 0.0;
  var s: array<f32, BLOCK>;
  for (var j0 = 0u; j0 < p.seq; j0 += BLOCK) {
    workgroupBarrier();
    load_kv_tile(wk, j0, l.x);
    workgroupBarrier();
    let n = min(BLOCK, p.seq - j0);
    var mt = m;
    for (var j = 0u; j < n; j++) {
      var d = 0.0;
      for (var c = 0u; c < DH4; c++) { d += dot(qi[c], tile_a[j * MAX_DH4 + c]); }
      s[j] = d;
      mt = max(mt, d);
    }
    let alpha = exp(m - mt);
    lsum *= alpha;
    for (var c = 0u; c < DH4; c++) { acc[c] *= alpha; }
    for (var j = 0u; j < n; j++) {
      let pj = exp(s[j] - mt);
      lsum += pj;
      for (var c = 0u; c < DH4; c++) { acc[c] += pj * tile_b[j * MAX_DH4 + c]; }
    }
    m = mt;
  }
  if (i >= p.seq) { return; }
  let inv = 1.0 / lsum;
  for (var c4 = 0u; c4 < DH4; c4++) {
    for (var e = 0u; e < 4u; e++) {
      let c = c4 * 4u + e;
      if (c < p.dh) { o_out[out_index(wk, i, c)] = acc[c4][e] * inv; }
    }
  }
  stats_out[stat_index(wk, i)] = m + log(lsum);
}

@compute @workgroup_size(32)
fn attention_backward_query(
  @builtin(workgroup_id) w: vec3u,
  @builtin(num_workgroups) g: vec3u,
  @builtin(local_invocation_id) l: vec3u,
) {
  let wk = work(w, g);
  if (wk.bh >= p.batch_heads) { return; }
  let i = wk.row0 + l.x;
  let live = i < p.seq;
  var qi: array<vec4f, MAX_DH4>;
  var doi: array<vec4f, MAX_DH4>;
  var acc: array<vec4f, MAX_DH4>;
  var delta = 0.0;
  for (var c4 = 0u; c4 < DH4; c4++) {
    qi[c4] = load_q(wk, i, c4) * p.scale;
    acc[c4] = vec4f(0.0);
    var dov = vec4f(0.0);
    for (var e = 0u; e < 4u; e++) {
      let c = c4 * 4u + e;
      if (live && c < p.dh) {
        dov[e] = d_o[out_index(wk, i, c)];
        delta += dov[e] * o_in[out_index(wk, i, c)];
      }
    }
    doi[c4] = dov;
  }
  var lse = 0.0;
  if (live) {
    lse = stats_rw[stat_index(wk, i)];
    stats_rw[stat_index(wk, i) + 1u] = delta;
  }
  for (var j0 = 0u; j0 < p.seq; j0 += BLOCK) {
    workgroupBarrier();
    load_kv_tile(wk, j0, l.x);
    workgroupBarrier();
    let n = min(BLOCK, p.seq - j0);
    for (var j = 0u; j < n; j++) {
      var sd = 0.0;
      var dp = 0.0;
      for (var c = 0u; c < DH4; c++) {
        sd += dot(qi[c], tile_a[j * MAX_DH4 + c]);
        dp += dot(doi[c], tile_b[j * MAX_DH4 + c]);
      }
      let ds = exp(sd - lse) * (dp - delta);
      for (var c = 0u; c < DH4; c++) { acc[c] += ds * tile_a[j * MAX_DH4 + c]; }
    }
  }
  if (!live) { return; }
  for (var c4 = 0u; c4 < DH4; c4++) {
    for (var e = 0u; e < 4u; e++) {
      let c = c4 * 4u + e;
      if (c < p.dh) {
        let at = grad_index(wk, i, p.dq_off, c);
        dq[at] += p.scale * acc[c4][e];
      }
    }
  }
}

@compute @workgroup_size(32)
fn attention_backward_key(
  @builtin(workgroup_id) w: vec3u,
  @builtin(num_workgroups) g: vec3u,
  @builtin(local_invocation_id) l: vec3u,
) {
  let wk = work(w, g);
  if (wk.bh >= p.batch_heads) { return; }
  let j = wk.row0 + l.x;
  var kj: array<vec4f, MAX_DH4>;
  var vj: array<vec4f, MAX_DH4>;
  var dkj: array<vec4f, MAX_DH4>;
  var dvj: array<vec4f, MAX_DH4>;
  for (var c = 0u; c < DH4; c++) {
    kj[c] = load_k(wk, j, c) * p.scale;
    vj[c] = load_v(wk, j, c);
    dkj[c] = vec4f(0.0);
    dvj[c] = vec4f(0.0);
  }
  for (var i0 = 0u; i0 < p.seq; i0 += BLOCK) {
    workgroupBarrier();
    // Query tile: q in tile_a, dO in tile_b, (lse, D) in tile_stat.
    for (var x = l.x; x < BLOCK * DH4; x += BLOCK) {
      let r = x / DH4;
      let c4 = x % DH4;
      tile_a[r * MAX_DH4 + c4] = load_q(wk, i0 + r, c4);
      var dov = vec4f(0.0);
      for (var e = 0u; e < 4u; e++) {
        let c = c4 * 4u + e;
        if (i0 + r < p.seq && c < p.dh) { dov[e] = d_o_k[out_index(wk, i0 + r, c)]; }
      }
      tile_b[r * MAX_DH4 + c4] = dov;
    }
    if (i0 + l.x < p.seq) {
      let at = stat_index(wk, i0 + l.x);
      tile_stat[l.x] = vec2f(stats_in[at], stats_in[at + 1u]);
    }
    workgroupBarrier();
    let n = min(BLOCK, p.seq - i0);
    for (var r = 0u; r < n; r++) {
      var sd = 0.0;
      var dp = 0.0;
      for (var c = 0u; c < DH4; c++) {
        sd += dot(kj[c], tile_a[r * MAX_DH4 + c]);
        dp += dot(vj[c], tile_b[r * MAX_DH4 + c]);
      }
      let st = tile_stat[r];
      let pr = exp(sd - st.x);
      let ds = pr * (dp - st.y);
      for (var c = 0u; c < DH4; c++) {
        dvj[c] += pr * tile_b[r * MAX_DH4 + c];
        dkj[c] += ds * tile_a[r * MAX_DH4 + c];
      }
    }
  }
  if (j >= p.seq) { return; }
  for (var c4 = 0u; c4 < DH4; c4++) {
    for (var e = 0u; e < 4u; e++) {
      let c = c4 * 4u + e;
      if (c < p.dh) {
        let ak = grad_index(wk, j, p.dk_off, c);
        dk[ak] += p.scale * dkj[c4][e];
        let av = grad_index(wk, j, p.dv_off, c);
        dv[av] += dvj[c4][e];
      }
    }
  }
}
