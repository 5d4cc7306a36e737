// attention.wgsl — fused multi-head softmax attention O = softmax(scale Q K^T) V, and its backward.
//
// Layout: q, k, v are rows of a (B*T, in_stride) f32 matrix; head h of token
// (b, t) is the dh values at in_offset + (b*T + t)*in_stride + h*dh, where
// in_offset is q_off, k_off or v_off. A packed (B, T, 3D) qkv binds the same
// buffer three times with in_stride = 3D and offsets 0, D, 2D; separate
// (B, T, D) tensors use in_stride = D and offsets 0. o, do are (B, T, D),
// head h at columns h*dh..; dq, dk, dv share q, k, v's layout (grad_stride,
// gradient offsets; when dk and dv are one buffer, dv_in_dk = 1 writes dv
// through the dk binding). stats is (B, H, T, 2): [logsumexp of the scaled scores
// of row t, D_t = sum_c dO[t, c] O[t, c]].
//   attention_forward:        o = P V with P = softmax_row(scale q k^T); stats[.., 0] = lse.
//   attention_backward_query: stats[.., 1] = D; dq += scale * dS k,
//   attention_backward_key:   dk += scale * dS^T q, dv += P^T dO,
//     with P = exp(scale q k^T - lse), dS = P * (dO v^T - D) recomputed per
//     tile, so the (T, T) scores never reach memory (flash-attention style).
// A workgroup owns BLOCK = 32 rows of one (b, h): query rows (forward,
// backward_query) or key rows (backward_key). Workgroup size 16: thread t
// holds rows t and t + 16 in registers, so every vector it reads from
// workgroup memory serves two rows. The other side is streamed through
// workgroup memory in tiles of BLOCK rows: two 32 x 16 vec4 tiles = 16 KiB,
// exactly WebGPU's default maxComputeWorkgroupStorageSize, so the key pass
// reads each query row's (lse, D) from stats (one address per step for the
// whole workgroup) instead of a third tile. Every loop runs at most
// ceil(T/32) tiles of 32 steps, far below llvmpipe's 65535-iteration cap.
// Grid: grid1d(B * H * ceil(T / 32)) workgroups, (x, y) with x <= 65535.
//
// The rows form (attention_rows_*): the same three passes and the same stats,
// one thread per (b, h, row) and no workgroup memory or barriers, every row
// read as vec4s (so dh, the strides and the offsets must be multiples of 4),
// the other side's rows fetched from textures (see the bindings below):
// 1.7x the storage-buffer reads for the small profile's MAE step and 1.2x for
// its fine-tuning step (deno task bench:profile --model small, attention ms).
// The forward keeps its running maximum per key (two exps a key); the query
// pass loops over the keys, the key pass over the queries. For short
// sequences and small heads, where a workgroup's barriers and half-empty
// 32-row blocks cost more than the rows: measured ~1.6x the fused forward at
// T = 50 and ~3.5x at T = 13 (dh = 16) on llvmpipe.
// Grid: grid1d(ceil(B * H * T / 64)) workgroups of 64.
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
  dv_in_dk: u32, // 1: dv lives in the dk binding (at dv_off); the dv binding is a placeholder
}

const BLOCK = 32u;
const THREADS = 16u; // workgroup size: thread t owns rows t and t + THREADS of the block
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

// The rows form reads q, k, v (and in the key pass dO) as rgba32float
// textures that Gpu.stageTexture (src/gpu/device.ts) filled from the same
// buffers, TEX_W texels per texture row: vec4 i of a buffer is texel
// (i % TEX_W, i / TEX_W). A thread reads whole rows of the other side in its
// inner loop, and llvmpipe fetches texels as vectors but loads storage
// buffers lane by lane (see matmul_tex.wgsl); the rest are vec4 views.
@group(0) @binding(1) var q_tex: texture_2d<f32>;
@group(0) @binding(2) var k_tex: texture_2d<f32>;
@group(0) @binding(3) var v_tex: texture_2d<f32>;
@group(0) @binding(4) var do_tex: texture_2d<f32>; // the key pass's dO
@group(0) @binding(4) var<storage, read_write> o4_out: array<vec4f>;
@group(0) @binding(4) var<storage, read> o4_in: array<vec4f>;
@group(0) @binding(5) var<storage, read> do4: array<vec4f>;
@group(0) @binding(7) var<storage, read_write> dq4: array<vec4f>;
@group(0) @binding(6) var<storage, read_write> dk4: array<vec4f>;
@group(0) @binding(7) var<storage, read_write> dv4: array<vec4f>;

// Two tiles of BLOCK rows: (k, v) in the row-parallel passes, (q, dO) in the key pass.
// Together 16 KiB, the default limit: no third workgroup array fits beside them.
var<workgroup> tile_a: array<vec4f, 512>; // BLOCK * MAX_DH4
var<workgroup> tile_b: array<vec4f, 512>;

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
  for (var i = lx; i < BLOCK * DH4; i += THREADS) {
    let j = i / DH4;
    let c4 = i % DH4;
    tile_a[j * MAX_DH4 + c4] = load_k(wk, j0 + j, c4);
    tile_b[j * MAX_DH4 + c4] = load_v(wk, j0 + j, c4);
  }
}

@compute @workgroup_size(THREADS)
fn attention_forward(
  @builtin(workgroup_id) w: vec3u,
  @builtin(num_workgroups) g: vec3u,
  @builtin(local_invocation_id) l: vec3u,
) {
  let wk = work(w, g);
  // Whole workgroups leave together, so the barriers below stay uniform.
  if (wk.bh >= p.batch_heads) { return; }
  // Each thread owns rows i0 and i0 + 16, so every k, v vector read from
  // workgroup memory serves two rows.
  let i0 = wk.row0 + l.x;
  let i1 = i0 + THREADS;
  var q0: array<vec4f, MAX_DH4>;
  var q1: array<vec4f, MAX_DH4>;
  var a0: array<vec4f, MAX_DH4>;
  var a1: array<vec4f, MAX_DH4>;
  for (var c = 0u; c < DH4; c++) {
    q0[c] = load_q(wk, i0, c) * p.scale;
    q1[c] = load_q(wk, i1, c) * p.scale;
    a0[c] = vec4f(0.0);
    a1[c] = vec4f(0.0);
  }
  // Online softmax, rescaled once per tile: m = running max, l = sum exp(s - m).
  var m = vec2f(-3.0e38);
  var lsum = vec2f(0.0);
  var s: array<vec2f, BLOCK>;
  for (var j0 = 0u; j0 < p.seq; j0 += BLOCK) {
    workgroupBarrier();
    load_kv_tile(wk, j0, l.x);
    workgroupBarrier();
    let n = min(BLOCK, p.seq - j0);
    var mt = m;
    for (var j = 0u; j < n; j++) {
      var d = vec2f(0.0);
      for (var c = 0u; c < DH4; c++) {
        let kc = tile_a[j * MAX_DH4 + c];
        d += vec2f(dot(q0[c], kc), dot(q1[c], kc));
      }
      s[j] = d;
      mt = max(mt, d);
    }
    let alpha = exp(m - mt);
    lsum *= alpha;
    for (var c = 0u; c < DH4; c++) {
      a0[c] *= alpha.x;
      a1[c] *= alpha.y;
    }
    for (var j = 0u; j < n; j++) {
      let pj = exp(s[j] - mt);
      lsum += pj;
      for (var c = 0u; c < DH4; c++) {
        let vc = tile_b[j * MAX_DH4 + c];
        a0[c] += pj.x * vc;
        a1[c] += pj.y * vc;
      }
    }
    m = mt;
  }
  let inv = 1.0 / lsum;
  let lse = m + log(lsum);
  for (var c4 = 0u; c4 < DH4; c4++) {
    for (var e = 0u; e < 4u; e++) {
      let c = c4 * 4u + e;
      if (c < p.dh) {
        if (i0 < p.seq) { o_out[out_index(wk, i0, c)] = a0[c4][e] * inv.x; }
        if (i1 < p.seq) { o_out[out_index(wk, i1, c)] = a1[c4][e] * inv.y; }
      }
    }
  }
  if (i0 < p.seq) { stats_out[stat_index(wk, i0)] = lse.x; }
  if (i1 < p.seq) { stats_out[stat_index(wk, i1)] = lse.y; }
}

// dO row i (zeros past T or dh) into doi; returns D_i = dO_i . O_i.
fn load_do_row(wk: Work, i: u32, doi: ptr<function, array<vec4f, MAX_DH4>>) -> f32 {
  var delta = 0.0;
  for (var c4 = 0u; c4 < DH4; c4++) {
    var dov = vec4f(0.0);
    for (var e = 0u; e < 4u; e++) {
      let c = c4 * 4u + e;
      if (i < p.seq && c < p.dh) {
        dov[e] = d_o[out_index(wk, i, c)];
        delta += dov[e] * o_in[out_index(wk, i, c)];
      }
    }
    (*doi)[c4] = dov;
  }
  return delta;
}

fn add_dq_row(wk: Work, i: u32, acc: ptr<function, array<vec4f, MAX_DH4>>) {
  if (i >= p.seq) { return; }
  for (var c4 = 0u; c4 < DH4; c4++) {
    for (var e = 0u; e < 4u; e++) {
      let c = c4 * 4u + e;
      if (c < p.dh) {
        let at = grad_index(wk, i, p.dq_off, c);
        dq[at] += p.scale * (*acc)[c4][e];
      }
    }
  }
}

@compute @workgroup_size(THREADS)
fn attention_backward_query(
  @builtin(workgroup_id) w: vec3u,
  @builtin(num_workgroups) g: vec3u,
  @builtin(local_invocation_id) l: vec3u,
) {
  let wk = work(w, g);
  if (wk.bh >= p.batch_heads) { return; }
  // Rows i0 and i0 + 16 per thread, as in the forward.
  let i0 = wk.row0 + l.x;
  let i1 = i0 + THREADS;
  var q0: array<vec4f, MAX_DH4>;
  var q1: array<vec4f, MAX_DH4>;
  var do0: array<vec4f, MAX_DH4>;
  var do1: array<vec4f, MAX_DH4>;
  var a0: array<vec4f, MAX_DH4>;
  var a1: array<vec4f, MAX_DH4>;
  for (var c = 0u; c < DH4; c++) {
    q0[c] = load_q(wk, i0, c) * p.scale;
    q1[c] = load_q(wk, i1, c) * p.scale;
    a0[c] = vec4f(0.0);
    a1[c] = vec4f(0.0);
  }
  let delta = vec2f(load_do_row(wk, i0, &do0), load_do_row(wk, i1, &do1));
  var lse = vec2f(0.0);
  if (i0 < p.seq) {
    lse.x = stats_rw[stat_index(wk, i0)];
    stats_rw[stat_index(wk, i0) + 1u] = delta.x;
  }
  if (i1 < p.seq) {
    lse.y = stats_rw[stat_index(wk, i1)];
    stats_rw[stat_index(wk, i1) + 1u] = delta.y;
  }
  for (var j0 = 0u; j0 < p.seq; j0 += BLOCK) {
    workgroupBarrier();
    load_kv_tile(wk, j0, l.x);
    workgroupBarrier();
    let n = min(BLOCK, p.seq - j0);
    for (var j = 0u; j < n; j++) {
      var sd = vec2f(0.0);
      var dp = vec2f(0.0);
      for (var c = 0u; c < DH4; c++) {
        let kc = tile_a[j * MAX_DH4 + c];
        let vc = tile_b[j * MAX_DH4 + c];
        sd += vec2f(dot(q0[c], kc), dot(q1[c], kc));
        dp += vec2f(dot(do0[c], vc), dot(do1[c], vc));
      }
      let ds = exp(sd - lse) * (dp - delta);
      for (var c = 0u; c < DH4; c++) {
        let kc = tile_a[j * MAX_DH4 + c];
        a0[c] += ds.x * kc;
        a1[c] += ds.y * kc;
      }
    }
  }
  add_dq_row(wk, i0, &a0);
  add_dq_row(wk, i1, &a1);
}

fn add_dkv_row(
  wk: Work,
  j: u32,
  dkj: ptr<function, array<vec4f, MAX_DH4>>,
  dvj: ptr<function, array<vec4f, MAX_DH4>>,
) {
  if (j >= p.seq) { return; }
  for (var c4 = 0u; c4 < DH4; c4++) {
    for (var e = 0u; e < 4u; e++) {
      let c = c4 * 4u + e;
      if (c < p.dh) {
        let ak = grad_index(wk, j, p.dk_off, c);
        dk[ak] += p.scale * (*dkj)[c4][e];
        let av = grad_index(wk, j, p.dv_off, c);
        // One buffer holding dk and dv (a packed qkv, or k and v the same tensor) is
        // bound once: WebGPU forbids two writable bindings of one buffer range.
        if (p.dv_in_dk == 1u) { dk[av] += (*dvj)[c4][e]; } else { dv[av] += (*dvj)[c4][e]; }
      }
    }
  }
}

@compute @workgroup_size(THREADS)
fn attention_backward_key(
  @builtin(workgroup_id) w: vec3u,
  @builtin(num_workgroups) g: vec3u,
  @builtin(local_invocation_id) l: vec3u,
) {
  let wk = work(w, g);
  if (wk.bh >= p.batch_heads) { return; }
  // Key rows j0 and j0 + 16 per thread, so each q, dO vector read serves two.
  let j0 = wk.row0 + l.x;
  let j1 = j0 + THREADS;
  var k0: array<vec4f, MAX_DH4>;
  var k1: array<vec4f, MAX_DH4>;
  var v0: array<vec4f, MAX_DH4>;
  var v1: array<vec4f, MAX_DH4>;
  var dk0: array<vec4f, MAX_DH4>;
  var dk1: array<vec4f, MAX_DH4>;
  var dv0: array<vec4f, MAX_DH4>;
  var dv1: array<vec4f, MAX_DH4>;
  for (var c = 0u; c < DH4; c++) {
    k0[c] = load_k(wk, j0, c) * p.scale;
    k1[c] = load_k(wk, j1, c) * p.scale;
    v0[c] = load_v(wk, j0, c);
    v1[c] = load_v(wk, j1, c);
    dk0[c] = vec4f(0.0);
    dk1[c] = vec4f(0.0);
    dv0[c] = vec4f(0.0);
    dv1[c] = vec4f(0.0);
  }
  for (var i0 = 0u; i0 < p.seq; i0 += BLOCK) {
    workgroupBarrier();
    // Query tile: q in tile_a, dO in tile_b.
    for (var x = l.x; x < BLOCK * DH4; x += THREADS) {
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
    workgroupBarrier();
    let n = min(BLOCK, p.seq - i0);
    for (var r = 0u; r < n; r++) {
      var sd = vec2f(0.0);
      var dp = vec2f(0.0);
      for (var c = 0u; c < DH4; c++) {
        let qc = tile_a[r * MAX_DH4 + c];
        let doc = tile_b[r * MAX_DH4 + c];
        sd += vec2f(dot(k0[c], qc), dot(k1[c], qc));
        dp += vec2f(dot(v0[c], doc), dot(v1[c], doc));
      }
      let at = stat_index(wk, i0 + r); // (lse, D) of query row i0 + r < T
      let st = vec2f(stats_in[at], stats_in[at + 1u]);
      let pr = exp(sd - st.x);
      let ds = pr * (dp - st.y);
      for (var c = 0u; c < DH4; c++) {
        let qc = tile_a[r * MAX_DH4 + c];
        let doc = tile_b[r * MAX_DH4 + c];
        dv0[c] += pr.x * doc;
        dv1[c] += pr.y * doc;
        dk0[c] += ds.x * qc;
        dk1[c] += ds.y * qc;
      }
    }
  }
  add_dkv_row(wk, j0, &dk0, &dv0);
  add_dkv_row(wk, j1, &dk1, &dv1);
}

// ---- The rows form: one thread per (b, h, row), vec4 reads, no barriers. ----

// Which (b, h, row) a rows-form thread owns; bh >= batch_heads means idle.
struct Row {
  b: u32,
  h: u32,
  bh: u32,
  t: u32,
}

fn row_of(w: vec3u, g: vec3u, l: vec3u) -> Row {
  let id = (w.y * g.x + w.x) * 64u + l.x;
  let bh = id / p.seq;
  return Row(bh / p.heads, bh % p.heads, bh, id % p.seq);
}

//#include _staged_texel.wgsl

// vec4 index of head h of token t in an input (part at `off`), the output, a gradient.
fn in4(r: Row, t: u32, off: u32) -> u32 {
  return (off + (r.b * p.seq + t) * p.in_stride + r.h * p.dh) / 4u;
}

fn out4(r: Row, t: u32) -> u32 {
  return ((r.b * p.seq + t) * p.out_stride + r.h * p.dh) / 4u;
}

fn grad4(r: Row, t: u32, off: u32) -> u32 {
  return (off + (r.b * p.seq + t) * p.grad_stride + r.h * p.dh) / 4u;
}

@compute @workgroup_size(64)
fn attention_rows_forward(
  @builtin(workgroup_id) w: vec3u,
  @builtin(num_workgroups) g: vec3u,
  @builtin(local_invocation_id) l: vec3u,
) {
  let r = row_of(w, g, l);
  if (r.bh >= p.batch_heads) { return; }
  var qi: array<vec4f, MAX_DH4>;
  var acc: array<vec4f, MAX_DH4>;
  let qa = in4(r, r.t, p.q_off);
  for (var c = 0u; c < DH4; c++) {
    qi[c] = texel(q_tex, qa + c) * p.scale;
    acc[c] = vec4f(0.0);
  }
  // Online softmax: m = running max of the scaled scores, lsum = sum exp(s - m).
  var m = -3.0e38;
  var lsum = 0.0;
  for (var j = 0u; j < p.seq; j++) {
    let ka = in4(r, j, p.k_off);
    var s = 0.0;
    for (var c = 0u; c < DH4; c++) { s += dot(qi[c], texel(k_tex, ka + c)); }
    let m_new = max(m, s);
    let alpha = exp(m - m_new);
    let e = exp(s - m_new);
    lsum = lsum * alpha + e;
    m = m_new;
    let va = in4(r, j, p.v_off);
    for (var c = 0u; c < DH4; c++) { acc[c] = acc[c] * alpha + e * texel(v_tex, va + c); }
  }
  let inv = 1.0 / lsum;
  let oa = out4(r, r.t);
  for (var c = 0u; c < DH4; c++) { o4_out[oa + c] = acc[c] * inv; }
  stats_out[(r.bh * p.seq + r.t) * 2u] = m + log(lsum);
}

@compute @workgroup_size(64)
fn attention_rows_backward_query(
  @builtin(workgroup_id) w: vec3u,
  @builtin(num_workgroups) g: vec3u,
  @builtin(local_invocation_id) l: vec3u,
) {
  let r = row_of(w, g, l);
  if (r.bh >= p.batch_heads) { return; }
  var qi: array<vec4f, MAX_DH4>;
  var doi: array<vec4f, MAX_DH4>;
  var acc: array<vec4f, MAX_DH4>;
  let qa = in4(r, r.t, p.q_off);
  let oa = out4(r, r.t);
  var delta = 0.0;
  for (var c = 0u; c < DH4; c++) {
    qi[c] = texel(q_tex, qa + c) * p.scale;
    doi[c] = do4[oa + c];
    delta += dot(doi[c], o4_in[oa + c]);
    acc[c] = vec4f(0.0);
  }
  let at = (r.bh * p.seq + r.t) * 2u;
  let lse = stats_rw[at];
  stats_rw[at + 1u] = delta; // D_t, read by the key pass
  for (var j = 0u; j < p.seq; j++) {
    let ka = in4(r, j, p.k_off);
    let va = in4(r, j, p.v_off);
    var s = 0.0;
    var dp = 0.0;
    var kj: array<vec4f, MAX_DH4>; // fetched once: llvmpipe does not merge repeated texel fetches
    for (var c = 0u; c < DH4; c++) {
      kj[c] = texel(k_tex, ka + c);
      s += dot(qi[c], kj[c]);
      dp += dot(doi[c], texel(v_tex, va + c));
    }
    let ds = exp(s - lse) * (dp - delta);
    for (var c = 0u; c < DH4; c++) { acc[c] += ds * kj[c]; }
  }
  let ga = grad4(r, r.t, p.dq_off);
  for (var c = 0u; c < DH4; c++) { dq4[ga + c] += p.scale * acc[c]; }
}

@compute @workgroup_size(64)
fn attention_rows_backward_key(
  @builtin(workgroup_id) w: vec3u,
  @builtin(num_workgroups) g: vec3u,
  @builtin(local_invocation_id) l: vec3u,
) {
  let r = row_of(w, g, l); // r.t is the key row j
  if (r.bh >= p.batch_heads) { return; }
  var kj: array<vec4f, MAX_DH4>;
  var vj: array<vec4f, MAX_DH4>;
  var dk: array<vec4f, MAX_DH4>;
  var dv: array<vec4f, MAX_DH4>;
  let ka = in4(r, r.t, p.k_off);
  let va = in4(r, r.t, p.v_off);
  for (var c = 0u; c < DH4; c++) {
    kj[c] = texel(k_tex, ka + c) * p.scale;
    vj[c] = texel(v_tex, va + c);
    dk[c] = vec4f(0.0);
    dv[c] = vec4f(0.0);
  }
  for (var i = 0u; i < p.seq; i++) {
    let qa = in4(r, i, p.q_off);
    let oa = out4(r, i);
    var s = 0.0;
    var dp = 0.0;
    // Fetched once for both loops: llvmpipe does not merge repeated texel fetches.
    var qi: array<vec4f, MAX_DH4>;
    var doi: array<vec4f, MAX_DH4>;
    for (var c = 0u; c < DH4; c++) {
      qi[c] = texel(q_tex, qa + c);
      doi[c] = texel(do_tex, oa + c);
      s += dot(kj[c], qi[c]);
      dp += dot(vj[c], doi[c]);
    }
    let at = (r.bh * p.seq + i) * 2u; // (lse, D) of query row i
    let pr = exp(s - stats_in[at]);
    let ds = pr * (dp - stats_in[at + 1u]);
    for (var c = 0u; c < DH4; c++) {
      dv[c] += pr * doi[c];
      dk[c] += ds * qi[c];
    }
  }
  let gk = grad4(r, r.t, p.dk_off);
  let gv = grad4(r, r.t, p.dv_off);
  for (var c = 0u; c < DH4; c++) {
    dk4[gk + c] += p.scale * dk[c];
    // A packed gradient (dk and dv in one buffer) is bound once, as dk.
    if (p.dv_in_dk == 1u) { dk4[gv + c] += dv[c]; } else { dv4[gv + c] += dv[c]; }
  }
}
