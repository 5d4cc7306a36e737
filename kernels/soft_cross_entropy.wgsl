// soft_cross_entropy.wgsl — cross-entropy against a soft target, with a
// temperature: DINO's loss (the student's log-softmax against the teacher's
// probabilities), and the entropy of a distribution when target = softmax(x).
//
// x (rows, cols) logits, q (rows, cols) target weights (probabilities),
// loss (rows), stats (rows, 3) = (m, log s, sum_c q[r, c]) with
// m = max_c x[r, c] / t and s = sum_c exp(x[r, c] / t - m).
//   soft_cross_entropy_forward:  loss[r] = -sum_c q[r, c] log softmax(x[r] / t)_c
//                                        = sum_c q (m + log s) - sum_c q x / t
//   soft_cross_entropy_backward: dx[r, c] += dloss[r] * (softmax(x[r] / t)_c sum_c' q - q[r, c]) / t
// The target gets no gradient (DINO stops it at the teacher).
// Forward: one workgroup of 64 threads per row (max and sum reductions);
// grid (x, y), x * y >= rows. Backward: one thread per element, workgroup
// 256, grid (x, y), x * y >= ceil(rows * cols / 256).

struct Params {
  rows: u32,
  cols: u32,
  inv_t: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> q: array<f32>;
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats_out: array<f32>;
// backward: (x, q, stats, dloss, dx)
@group(0) @binding(3) var<storage, read> stats: array<f32>;
@group(0) @binding(4) var<storage, read> dloss: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;

//#include _workgroup_reduce.wgsl

@compute @workgroup_size(64)
fn soft_cross_entropy_forward(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let row = w.y * g.x + w.x;
  if (row >= p.rows) { return; }
  let base = row * p.cols;
  var m = -3.4e38;
  for (var c = l.x; c < p.cols; c += 64u) { m = max(m, x[base + c] * p.inv_t); }
  m = reduce_max(l.x, m);
  var s = 0.0;
  // (sum q, sum q x / t) together
  var qs = vec2f(0.0);
  for (var c = l.x; c < p.cols; c += 64u) {
    let z = x[base + c] * p.inv_t;
    s += exp(z - m);
    qs += vec2f(q[base + c], q[base + c] * (z - m));
  }
  s = reduce_sum(l.x, s);
  qs = reduce_sum2(l.x, qs);
  if (l.x == 0u) {
    let log_s = log(s);
    // Shifting by m before the products keeps large logits exact:
    // sum q (m + log s) - sum q z = sum q log s - sum q (z - m).
    loss[row] = qs.x * log_s - qs.y;
    stats_out[3u * row] = m;
    stats_out[3u * row + 1u] = log_s;
    stats_out[3u * row + 2u] = qs.x;
  }
}

@compute @workgroup_size(256)
fn soft_cross_entropy_backward(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let i = (w.y * g.x + w.x) * 256u + l.x;
  if (i >= p.rows * p.cols) { return; }
  let row = i / p.cols;
  let prob = exp((x[i] * p.inv_t - stats[3u * row]) - stats[3u * row + 1u]);
  dx[i] += dloss[row] * (prob * stats[3u * row + 2u] - q[i]) * p.inv_t;
}
