// attention_heads.wgsl — the non-matmul steps of attention built from batched matmuls.
//
// src/ops/attention.ts runs attention with head dims divisible by 4 as matmuls
// (kernels/matmul.wgsl's matmul_vec4, several times faster on llvmpipe than
// the fused kernels of attention.wgsl) around these kernels. Per (b, h),
// bh = b * H + h, the head-major tensors are (B*H, Tp, dh) with Tp = T
// rounded up to a multiple of 4 (so every score row is whole vec4s, as
// matmul_vec4 needs); rows t >= T are zeros. Scores are (B*H, Tp, Tp).
//   attention_split_heads:  dst[bh, t, c] = src[off + (b*T + t)*stride + h*dh + c], 0 for t >= T.
//   attention_merge_heads:  dst[off + (b*T + t)*stride + h*dh + c] =
//                           alpha * src[bh, t, c] + beta * dst[..], for t < T.
//   attention_softmax_rows: s[bh, i, :] = softmax(scale * s[bh, i, :T]) (0 past T, 0 on
//                           rows i >= T), lse[(bh * T + i) * 2] = its logsumexp for i < T
//                           (the (B, H, T, 2) stats of attention.wgsl, so either
//                           implementation's backward can follow either's forward).
//   attention_softmax_backward: from raw scores s, dP = dO V^T and lse:
//                           P = exp(scale s - lse) / (its row sum) on the T x T part,
//                           D_i = sum_j P_ij dP_ij,
//                           s := P, dp := dS = P * (dP - D) (zeros outside T x T).
// Head dims, strides and offsets are multiples of 4, so rows move as vec4s.
// Workgroup size 64 everywhere; grid: grid1d(ceil(work items / 64)) workgroups,
// (x, y) with x <= 65535, one work item per head row (split: B*H*Tp, merge:
// B*H*T) or per score row (the softmaxes: B*H*Tp, each loops over Tp / 4
// vec4s: at most 16,384 for T <= 65535, under llvmpipe's 65535-iteration cap).

struct Params {
  batch_heads: u32, // B * H
  heads: u32,
  seq: u32, // T
  seq_pad: u32, // Tp: T rounded up to a multiple of 4
  dh: u32,
  stride: u32, // row stride of the (B*T, stride) token matrix (split's src, merge's dst)
  off: u32, // column offset of the part (q, k, v) in that matrix
  scale: f32,
  alpha: f32,
  beta: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
// split: (src, dst); merge: (src, dst). Rows are whole vec4s: dh, stride and off are
// multiples of 4 (src/ops/attention.ts takes this path only then).
@group(0) @binding(1) var<storage, read> src: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4f>;
// softmax_rows: (s, lse)
@group(0) @binding(1) var<storage, read_write> s: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> lse_out: array<f32>;
// softmax_backward: (s, dp, lse)
@group(0) @binding(2) var<storage, read_write> dp: array<vec4f>;
@group(0) @binding(3) var<storage, read> lse_in: array<f32>;

fn item(w: vec3u, g: vec3u, l: vec3u) -> u32 {
  return (w.y * g.x + w.x) * 64u + l.x;
}

// vec4 index of the first element of head h of token t of batch b in the token matrix.
fn token_row(b: u32, h: u32, t: u32) -> u32 {
  return (p.off + (b * p.seq + t) * p.stride + h * p.dh) / 4u;
}

// One work item per head row (bh, t): the integer divisions, which llvmpipe runs
// lane by lane, are paid once per row rather than once per element (3x faster).
@compute @workgroup_size(64)
fn attention_split_heads(
  @builtin(workgroup_id) w: vec3u,
  @builtin(num_workgroups) g: vec3u,
  @builtin(local_invocation_id) l: vec3u,
) {
  let r = item(w, g, l); // bh * Tp + t
  if (r >= p.batch_heads * p.seq_pad) { return; }
  let t = r % p.seq_pad;
  let bh = r / p.seq_pad;
  let dv = p.dh / 4u;
  let out = r * dv;
  if (t >= p.seq) {
    for (var c = 0u; c < dv; c++) { dst[out + c] = vec4f(0.0); }
    return;
  }
  let at = token_row(bh / p.heads, bh % p.heads, t);
  for (var c = 0u; c < dv; c++) { dst[out + c] = src[at + c]; }
}

@compute @workgroup_size(64)
fn attention_merge_heads(
  @builtin(workgroup_id) w: vec3u,
  @builtin(num_workgroups) g: vec3u,
  @builtin(local_invocation_id) l: vec3u,
) {
  let r = item(w, g, l); // bh * T + t
  if (r >= p.batch_heads * p.seq) { return; }
  let t = r % p.seq;
  let bh = r / p.seq;
  let dv = p.dh / 4u;
  let head_at = (bh * p.seq_pad + t) * dv;
  let at = token_row(bh / p.heads, bh % p.heads, t);
  if (p.beta != 0.0) {
    for (var c = 0u; c < dv; c++) { dst[at + c] = p.alpha * src[head_at + c] + p.beta * dst[at + c]; }
  } else {
    for (var c = 0u; c < dv; c++) { dst[at + c] = p.alpha * src[head_at + c]; }
  }
}

// Which of columns 4 j .. 4 j + 3 lie inside the first T.
fn inside(j: u32) -> vec4<bool> {
  return vec4u(4u * j) + vec4u(0u, 1u, 2u, 3u) < vec4u(p.seq);
}

@compute @workgroup_size(64)
fn attention_softmax_rows(
  @builtin(workgroup_id) w: vec3u,
  @builtin(num_workgroups) g: vec3u,
  @builtin(local_invocation_id) l: vec3u,
) {
  let r = item(w, g, l); // score row bh * Tp + i
  if (r >= p.batch_heads * p.seq_pad) { return; }
  let nv = p.seq_pad / 4u;
  let base = r * nv;
  let i = r % p.seq_pad;
  if (i >= p.seq) {
    for (var j = 0u; j < nv; j++) { s[base + j] = vec4f(0.0); }
    return;
  }
  // scale > 0, so max(scale s) = scale max(s).
  var m4 = vec4f(-3.0e38);
  for (var j = 0u; j < nv; j++) { m4 = max(m4, select(vec4f(-3.0e38), s[base + j], inside(j))); }
  let m = p.scale * max(max(m4.x, m4.y), max(m4.z, m4.w));
  var sum4 = vec4f(0.0);
  for (var j = 0u; j < nv; j++) {
    let e = select(vec4f(0.0), exp(p.scale * s[base + j] - m), inside(j));
    sum4 += e;
    s[base + j] = e;
  }
  let sum = (sum4.x + sum4.y) + (sum4.z + sum4.w);
  let inv = 1.0 / sum;
  for (var j = 0u; j < nv; j++) { s[base + j] *= inv; }
  lse_out[((r / p.seq_pad) * p.seq + i) * 2u] = m + log(sum);
}

@compute @workgroup_size(64)
fn attention_softmax_backward(
  @builtin(workgroup_id) w: vec3u,
  @builtin(num_workgroups) g: vec3u,
  @builtin(local_invocation_id) l: vec3u,
) {
  let r = item(w, g, l);
  if (r >= p.batch_heads * p.seq_pad) { return; }
  let nv = p.seq_pad / 4u;
  let base = r * nv;
  let i = r % p.seq_pad;
  if (i >= p.seq) {
    for (var j = 0u; j < nv; j++) {
      s[base + j] = vec4f(0.0);
      dp[base + j] = vec4f(0.0);
    }
    return;
  }
  // exp(scale s - lse) sums to 1 only up to the rounding of lse (~|lse| eps,
  // 1e-4 relative at scores ~1800), and near one-hot rows would turn that into
  // dS = P (dP - D) ~ 1e-4 dP. Renormalising by the recomputed row sum makes P
  // sum to 1 in f32 again, as the fused kernel's D = dO . O does.
  let lse = lse_in[((r / p.seq_pad) * p.seq + i) * 2u];
  var sum4 = vec4f(0.0);
  var d4 = vec4f(0.0);
  for (var j = 0u; j < nv; j++) {
    let e = select(vec4f(0.0), exp(p.scale * s[base + j] - lse), inside(j));
    s[base + j] = e;
    sum4 += e;
    d4 += e * dp[base + j];
  }
  let inv = 1.0 / ((sum4.x + sum4.y) + (sum4.z + sum4.w));
  let d = ((d4.x + d4.y) + (d4.z + d4.w)) * inv;
  for (var j = 0u; j < nv; j++) {
    let pr = s[base + j] * inv;
    s[base + j] = pr;
    dp[base + j] = pr * (dp[base + j] - d);
  }
}
