// softmax.wgsl — softmax over the last axis, and its backward.
//
// x, y, dy, dx are (rows, cols), row-major f32.
//   softmax_forward:  y[r, c] = exp(x[r, c] - max_r) / sum_c' exp(x[r, c'] - max_r)
//   softmax_backward: dx[r, c] += y[r, c] * (dy[r, c] - sum_c' dy[r, c'] y[r, c'])
// Subtracting the row maximum keeps exp() finite for any finite input.
// softmax_forward / softmax_backward: one workgroup of 64 threads per row
// (strided loops over cols, tree reductions in workgroup memory); grid (x, y)
// with x * y >= rows, x <= 65535. For long rows.
// softmax_rows_forward / softmax_rows_backward: the same values, one thread per
// row and no barriers (the forward keeps a running maximum and rescales its
// sum, so it reads x twice); grid (x, y) with x * y >= ceil(rows / 64). For
// short rows, such as attention scores: measured ~9x the workgroup form on
// llvmpipe at 65 columns, where a workgroup's barriers cost more than its row.

struct Params {
  rows: u32,
  cols: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y_out: array<f32>;
// backward: (y, dy, dx)
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

//#include _workgroup_reduce.wgsl

@compute @workgroup_size(64)
fn softmax_forward(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let row = w.y * g.x + w.x;
  // Whole workgroups leave together, so the barriers below stay uniform.
  if (row >= p.rows) { return; }
  let base = row * p.cols;
  var m = -3.4e38;
  for (var c = l.x; c < p.cols; c += 64u) { m = max(m, x[base + c]); }
  m = reduce_max(l.x, m);
  var s = 0.0;
  for (var c = l.x; c < p.cols; c += 64u) { s += exp(x[base + c] - m); }
  s = reduce_sum(l.x, s);
  let inv = 1.0 / s;
  for (var c = l.x; c < p.cols; c += 64u) { y_out[base + c] = exp(x[base + c] - m) * inv; }
}

@compute @workgroup_size(64)
fn softmax_backward(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let row = w.y * g.x + w.x;
  if (row >= p.rows) { return; }
  let base = row * p.cols;
  var s = 0.0;
  for (var c = l.x; c < p.cols; c += 64u) { s += dy[base + c] * x[base + c]; }
  s = reduce_sum(l.x, s);
  // here x holds the forward output y
  for (var c = l.x; c < p.cols; c += 64u) { dx[base + c] += x[base + c] * (dy[base + c] - s); }
}

fn row_id(w: vec3u, g: vec3u, l: vec3u) -> u32 {
  return (w.y * g.x + w.x) * 64u + l.x;
}

@compute @workgroup_size(64)
fn softmax_rows_forward(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let row = row_id(w, g, l);
  if (row >= p.rows) { return; }
  let base = row * p.cols;
  var m = -3.4e38;
  var s = 0.0;
  for (var c = 0u; c < p.cols; c++) {
    let v = x[base + c];
    let m_new = max(m, v);
    s = s * exp(m - m_new) + exp(v - m_new);
    m = m_new;
  }
  let inv = 1.0 / s;
  for (var c = 0u; c < p.cols; c++) { y_out[base + c] = exp(x[base + c] - m) * inv; }
}

@compute @workgroup_size(64)
fn softmax_rows_backward(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let row = row_id(w, g, l);
  if (row >= p.rows) { return; }
  let base = row * p.cols;
  var s = 0.0;
  for (var c = 0u; c < p.cols; c++) { s += dy[base + c] * x[base + c]; }
  // here x holds the forward output y
  for (var c = 0u; c < p.cols; c++) { dx[base + c] += x[base + c] * (dy[base + c] - s); }
}
