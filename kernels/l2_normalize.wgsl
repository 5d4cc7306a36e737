// l2_normalize.wgsl — rows scaled to unit Euclidean norm, and its backward.
// Used by DINO's head twice: on the bottleneck features and, as weight
// normalisation with the gain fixed at 1, on the rows of the last layer.
//
// x, y, dy, dx are (rows, cols) f32; norm is (rows), saved by the forward.
//   l2_normalize_forward:  n = sqrt(sum_c x[r, c]^2);  y = x / max(n, eps)
//   l2_normalize_backward: n > eps: dx += (dy - y * sum_c(y dy)) / n
//                          n <= eps (clamped, y = x / eps): dx += dy / eps
// One workgroup of 64 threads per row (tree reductions); grid (x, y) with
// x * y >= rows.

struct Params {
  rows: u32,
  cols: u32,
  eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> norm: array<f32>;
// backward: (y, norm, dy, dx)
@group(0) @binding(1) var<storage, read> y_in: array<f32>;
@group(0) @binding(2) var<storage, read> norm_in: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;

//#include _workgroup_reduce.wgsl

@compute @workgroup_size(64)
fn l2_normalize_forward(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let row = w.y * g.x + w.x;
  if (row >= p.rows) { return; }
  let base = row * p.cols;
  var s = 0.0;
  for (var c = l.x; c < p.cols; c += 64u) { s += x[base + c] * x[base + c]; }
  let n = sqrt(reduce_sum(l.x, s));
  let inv = 1.0 / max(n, p.eps);
  for (var c = l.x; c < p.cols; c += 64u) { y[base + c] = x[base + c] * inv; }
  if (l.x == 0u) { norm[row] = n; }
}

@compute @workgroup_size(64)
fn l2_normalize_backward(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let row = w.y * g.x + w.x;
  if (row >= p.rows) { return; }
  let base = row * p.cols;
  let n = norm_in[row];
  var s = 0.0;
  for (var c = l.x; c < p.cols; c += 64u) { s += y_in[base + c] * dy[base + c]; }
  // The reduction runs for every row (barriers need uniform control flow).
  let yd = reduce_sum(l.x, s);
  for (var c = l.x; c < p.cols; c += 64u) {
    if (n > p.eps) {
      dx[base + c] += (dy[base + c] - y_in[base + c] * yd) / n;
    } else {
      dx[base + c] += dy[base + c] / p.eps;
    }
  }
}
