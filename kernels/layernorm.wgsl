// layernorm.wgsl — layer normalization over the last axis with affine weight and bias, and its backward.
//
// x, y, dy, dx are (rows, cols) row-major f32; weight, bias, dweight, dbias are (cols);
// shift, rstd are (rows); partial is (blocks, 2, cols) with blocks = ceil(rows / rows_per_block).
//   layernorm_forward:  with u = x - x[r, 0] (the row's first element),
//                       shift_r = sum_c u / cols (so mean_r = x[r, 0] + shift_r),
//                       var_r = sum_c (u - shift_r)^2 / cols (biased), rstd_r = 1 / sqrt(var_r + eps),
//                       y = (u - shift_r) rstd_r weight + bias
//   layernorm_backward: with xhat = (x - x[r, 0] - shift) rstd and g = weight dy,
//                       dx += rstd (g - mean_c(g) - xhat mean_c(g xhat));
//                       partial[b, 0, c] = sum over the rows of block b of dy xhat,
//                       partial[b, 1, c] = the same sum of dy
//   layernorm_backward_params: dweight[c] += sum_b partial[b, 0, c], dbias[c] += sum_b partial[b, 1, c]
// Rows with a large offset and a small spread (x ~ 1e4 +- 1) would lose their digits in
// f32 sums of x, and again in x - mean with the mean rounded to f32 (ulp 1e-3 at 1e4). So
// every sum runs over u = x - x[r, 0], exact for such rows (Sterbenz), and the backward
// recomputes u the same way from the saved shift; the variance is two-pass. A constant
// row gives u = 0, var 0 and y = bias exactly. No atomics: each backward workgroup owns one block of rows and writes its
// own partial row; the params pass then sums the blocks in a fixed order.
// Rows of up to 1024 columns (src/ops/layernorm.ts) take the barrier-free twins below:
//   layernorm_forward_rows / layernorm_backward_rows: one invocation per row (dx only),
//   workgroup 64, grid (x, y), x * y * 64 >= rows (their _tex twins, at the end, read x
//   and dy from staged textures);
//   layernorm_backward_partial_cols: partial as above, one invocation per (column, block),
//   workgroup 64, grid (ceil(cols / 64), blocks); then layernorm_backward_params.
// Wider rows: forward one workgroup of 64 threads per row (strided loops over cols, tree reductions);
// grid (x, y), x * y >= rows. Backward: one workgroup of 64 threads per block of
// rows_per_block rows; grid (x, y), x * y >= blocks. Params: one thread per (column, w|b),
// workgroup 256, grid (x, y), x * y * 256 >= 2 cols.

struct Params {
  rows: u32,
  cols: u32,
  rows_per_block: u32,
  blocks: u32,
  eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
// forward: (x, weight, bias, y, shift, rstd)
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> shift_out: array<f32>;
@group(0) @binding(6) var<storage, read_write> rstd_out: array<f32>;
// backward: (x, weight, shift, rstd, dy, dx, partial)
@group(0) @binding(3) var<storage, read> shift: array<f32>;
@group(0) @binding(4) var<storage, read> rstd: array<f32>;
@group(0) @binding(5) var<storage, read> dy: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;
@group(0) @binding(7) var<storage, read_write> partial_out: array<f32>;
// params: (partial, dweight, dbias)
@group(0) @binding(1) var<storage, read> partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> dweight: array<f32>;
@group(0) @binding(3) var<storage, read_write> dbias: array<f32>;

//#include _workgroup_reduce.wgsl

@compute @workgroup_size(64)
fn layernorm_forward(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let row = w.y * g.x + w.x;
  // Whole workgroups leave together, so the barriers below stay uniform.
  if (row >= p.rows) { return; }
  let base = row * p.cols;
  let n = f32(p.cols);
  let x0 = x[base];
  var s = 0.0;
  for (var c = l.x; c < p.cols; c += 64u) { s += x[base + c] - x0; }
  let m = reduce_sum2(l.x, vec2f(s, 0.0)).x / n;
  var q = 0.0;
  for (var c = l.x; c < p.cols; c += 64u) {
    let d = (x[base + c] - x0) - m;
    q += d * d;
  }
  let r = inverseSqrt(reduce_sum2(l.x, vec2f(q, 0.0)).x / n + p.eps);
  for (var c = l.x; c < p.cols; c += 64u) {
    y[base + c] = ((x[base + c] - x0) - m) * r * weight[c] + bias[c];
  }
  if (l.x == 0u) {
    shift_out[row] = m;
    rstd_out[row] = r;
  }
}

@compute @workgroup_size(64)
fn layernorm_backward(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let block = w.y * g.x + w.x;
  if (block >= p.blocks) { return; }
  let pw = 2u * block * p.cols; // this block's partial dweight row; dbias follows
  // Each thread owns columns l.x + 64k of this block's partial rows, so no other
  // thread touches them: plain read-modify-write is race free.
  for (var c = l.x; c < p.cols; c += 64u) {
    partial_out[pw + c] = 0.0;
    partial_out[pw + p.cols + c] = 0.0;
  }
  let first = block * p.rows_per_block;
  let last = min(p.rows, first + p.rows_per_block);
  let n = f32(p.cols);
  for (var row = first; row < last; row++) {
    let base = row * p.cols;
    let x0 = x[base];
    let m = shift[row];
    let r = rstd[row];
    var s = vec2f(0.0);
    for (var c = l.x; c < p.cols; c += 64u) {
      let gy = weight[c] * dy[base + c];
      s += vec2f(gy, gy * ((x[base + c] - x0) - m) * r);
    }
    s = reduce_sum2(l.x, s) / n;
    for (var c = l.x; c < p.cols; c += 64u) {
      let xhat = ((x[base + c] - x0) - m) * r;
      let d = dy[base + c];
      dx[base + c] += r * (weight[c] * d - s.x - xhat * s.y);
      partial_out[pw + c] += d * xhat;
      partial_out[pw + p.cols + c] += d;
    }
  }
}

@compute @workgroup_size(256)
fn layernorm_backward_params(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let i = (w.y * g.x + w.x) * 256u + l.x;
  if (i >= 2u * p.cols) { return; }
  let which = i / p.cols; // 0: weight, 1: bias
  let c = i % p.cols;
  var s = 0.0;
  for (var b = 0u; b < p.blocks; b++) { s += partial[(2u * b + which) * p.cols + c]; }
  if (which == 0u) { dweight[c] += s; } else { dbias[c] += s; }
}

// ---- one row per invocation (no barriers), for narrow rows ----
// Same arithmetic as above, each sum run serially by the row's own thread.

@compute @workgroup_size(64)
fn layernorm_forward_rows(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let row = (w.y * g.x + w.x) * 64u + l.x;
  if (row >= p.rows) { return; }
  let base = row * p.cols;
  let n = f32(p.cols);
  let x0 = x[base];
  var s = 0.0;
  for (var c = 0u; c < p.cols; c++) { s += x[base + c] - x0; }
  let m = s / n;
  var q = 0.0;
  for (var c = 0u; c < p.cols; c++) {
    let d = (x[base + c] - x0) - m;
    q += d * d;
  }
  let r = inverseSqrt(q / n + p.eps);
  for (var c = 0u; c < p.cols; c++) {
    y[base + c] = ((x[base + c] - x0) - m) * r * weight[c] + bias[c];
  }
  shift_out[row] = m;
  rstd_out[row] = r;
}

// dx only; the weight and bias gradients come from layernorm_backward_partial_cols.
@compute @workgroup_size(64)
fn layernorm_backward_rows(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let row = (w.y * g.x + w.x) * 64u + l.x;
  if (row >= p.rows) { return; }
  let base = row * p.cols;
  let n = f32(p.cols);
  let x0 = x[base];
  let m = shift[row];
  let r = rstd[row];
  var s = vec2f(0.0);
  for (var c = 0u; c < p.cols; c++) {
    let gy = weight[c] * dy[base + c];
    s += vec2f(gy, gy * ((x[base + c] - x0) - m) * r);
  }
  s = s / n;
  for (var c = 0u; c < p.cols; c++) {
    let xhat = ((x[base + c] - x0) - m) * r;
    dx[base + c] += r * (weight[c] * dy[base + c] - s.x - xhat * s.y);
  }
}

// partial[b, 0, c] = sum over the rows of block b of dy xhat, partial[b, 1, c] = of dy;
// one thread per (column, block): grid (ceil(cols / 64), blocks). Binds (x, shift, rstd, dy, partial).
@group(0) @binding(2) var<storage, read> pc_shift: array<f32>;
@group(0) @binding(3) var<storage, read> pc_rstd: array<f32>;
@group(0) @binding(4) var<storage, read> pc_dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> pc_partial: array<f32>;

@compute @workgroup_size(64)
fn layernorm_backward_partial_cols(@builtin(workgroup_id) w: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let c = w.x * 64u + l.x;
  let block = w.y;
  if (c >= p.cols || block >= p.blocks) { return; }
  let first = block * p.rows_per_block;
  let last = min(p.rows, first + p.rows_per_block);
  var s = vec2f(0.0);
  for (var row = first; row < last; row++) {
    let base = row * p.cols;
    let d = pc_dy[base + c];
    s += vec2f(d * (((x[base + c] - x[base]) - pc_shift[row]) * pc_rstd[row]), d);
  }
  let pw = 2u * block * p.cols;
  pc_partial[pw + c] = s.x;
  pc_partial[pw + p.cols + c] = s.y;
}

// ---- rows read from staged textures (software adapters; cols % 4 == 0) ----
// The same arithmetic as the rows twins above, in the same order: x and dy come as vec4
// texels (Gpu.stageTexture), which llvmpipe fetches for 8 lanes at once where it loads
// storage lane by lane; weight and bias are vec4 storage views (staging them too cost
// more in copies than it saved). Forward binds (x texture, weight, bias, y, shift, rstd),
// backward (x texture, weight, shift, rstd, dy texture, dx); y and dx are vec4 views.
@group(0) @binding(1) var x_tex: texture_2d<f32>;
@group(0) @binding(2) var<storage, read> w4: array<vec4f>;
@group(0) @binding(3) var<storage, read> b4: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> y4: array<vec4f>;
@group(0) @binding(5) var dy_tex: texture_2d<f32>;
@group(0) @binding(6) var<storage, read_write> dx4: array<vec4f>;

//#include _staged_texel.wgsl

fn sum4(s: f32, v: vec4f) -> f32 {
  return (((s + v.x) + v.y) + v.z) + v.w; // the scalar loop's order
}

@compute @workgroup_size(64)
fn layernorm_forward_rows_tex(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let row = (w.y * g.x + w.x) * 64u + l.x;
  if (row >= p.rows) { return; }
  let c4 = p.cols / 4u;
  let base = row * c4;
  let n = f32(p.cols);
  let x0 = texel(x_tex, base).x;
  var s = 0.0;
  for (var c = 0u; c < c4; c++) { s = sum4(s, texel(x_tex, base + c) - x0); }
  let m = s / n;
  var q = 0.0;
  for (var c = 0u; c < c4; c++) {
    let d = (texel(x_tex, base + c) - x0) - m;
    q = sum4(q, d * d);
  }
  let r = inverseSqrt(q / n + p.eps);
  for (var c = 0u; c < c4; c++) {
    y4[base + c] = ((texel(x_tex, base + c) - x0) - m) * r * w4[c] + b4[c];
  }
  shift_out[row] = m;
  rstd_out[row] = r;
}

@compute @workgroup_size(64)
fn layernorm_backward_rows_tex(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let row = (w.y * g.x + w.x) * 64u + l.x;
  if (row >= p.rows) { return; }
  let c4 = p.cols / 4u;
  let base = row * c4;
  let n = f32(p.cols);
  let x0 = texel(x_tex, base).x;
  let m = shift[row];
  let r = rstd[row];
  var s = vec2f(0.0);
  for (var c = 0u; c < c4; c++) {
    let gy = w4[c] * texel(dy_tex, base + c);
    let gx = gy * ((texel(x_tex, base + c) - x0) - m) * r;
    s = vec2f(sum4(s.x, gy), sum4(s.y, gx));
  }
  s = s / n;
  for (var c = 0u; c < c4; c++) {
    let xhat = ((texel(x_tex, base + c) - x0) - m) * r;
    dx4[base + c] += r * (w4[c] * texel(dy_tex, base + c) - s.x - xhat * s.y);
  }
}

// partial as layernorm_backward_partial_cols, one invocation per (4 columns, block): the
// columns' sums over the block's rows in the same order. Binds (x texture, shift, rstd,
// dy texture, partial); grid (ceil(cols / 256), blocks).
@group(0) @binding(4) var pc_dy_tex: texture_2d<f32>;
@group(0) @binding(5) var<storage, read_write> partial4: array<vec4f>;

@compute @workgroup_size(64)
fn layernorm_backward_partial_cols_tex(@builtin(workgroup_id) w: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let c = w.x * 64u + l.x; // columns 4c .. 4c + 3
  let c4 = p.cols / 4u;
  let block = w.y;
  if (c >= c4 || block >= p.blocks) { return; }
  let first = block * p.rows_per_block;
  let last = min(p.rows, first + p.rows_per_block);
  var sx = vec4f(0.0);
  var sd = vec4f(0.0);
  for (var row = first; row < last; row++) {
    let base = row * c4;
    let d = texel(pc_dy_tex, base + c);
    sx += d * (((texel(x_tex, base + c) - texel(x_tex, base).x) - pc_shift[row]) * pc_rstd[row]);
    sd += d;
  }
  let pw = 2u * block * c4;
  partial4[pw + c] = sx;
  partial4[pw + c4 + c] = sd;
}
