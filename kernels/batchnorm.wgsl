// batchnorm.wgsl — BatchNorm1d without affine (PyTorch semantics), training and eval, and its backward.
//
// x, y, dy, dx are (N, C) row-major f32; running_mean, running_var, mean, rstd are (C).
//   batchnorm_stats (training = 1): mean_c = sum_n x / N, var_c = sum_n (x - mean_c)^2 / N
//     (biased, two-pass), rstd_c = 1 / sqrt(var_c + eps); then in place
//     running_mean = (1 - momentum) running_mean + momentum mean_c,
//     running_var  = (1 - momentum) running_var + momentum var_c N / (N - 1) (unbiased, as PyTorch).
//   batchnorm_stats (training = 0): mean_c = running_mean, rstd_c = 1 / sqrt(running_var + eps).
//   batchnorm_forward: y = (x - mean_c) rstd_c
//   batchnorm_backward (training = 1), xhat = (x - mean) rstd:
//     dx += rstd (dy - mean_n(dy) - xhat mean_n(dy xhat))   (through the batch statistics)
//   batchnorm_backward (training = 0): dx += dy rstd        (the statistics are constants)
// Stats and backward: one workgroup of 64 threads per channel, strided over the N rows,
// tree reductions in workgroup memory; grid (C, 1). Forward: one thread per element,
// workgroup 256, grid (x, y) with x * y * 256 >= N C.

struct Params {
  n: u32,
  channels: u32,
  training: u32,
  momentum: f32,
  eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
// stats: (x, running_mean, running_var, mean, rstd)
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(3) var<storage, read_write> running_var: array<f32>;
@group(0) @binding(4) var<storage, read_write> mean_out: array<f32>;
@group(0) @binding(5) var<storage, read_write> rstd_out: array<f32>;
// forward: (x, mean, rstd, y); backward: (x, mean, rstd, dy, dx)
@group(0) @binding(2) var<storage, read> mean: array<f32>;
@group(0) @binding(3) var<storage, read> rstd: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;

//#include _workgroup_reduce.wgsl

@compute @workgroup_size(64)
fn batchnorm_stats(@builtin(workgroup_id) w: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let c = w.x;
  if (c >= p.channels) { return; }
  if (p.training == 0u) {
    if (l.x == 0u) {
      mean_out[c] = running_mean[c];
      rstd_out[c] = inverseSqrt(running_var[c] + p.eps);
    }
    return;
  }
  let nf = f32(p.n);
  var s = 0.0;
  for (var r = l.x; r < p.n; r += 64u) { s += x[r * p.channels + c]; }
  let m = reduce_sum2(l.x, vec2f(s, 0.0)).x / nf;
  var q = 0.0;
  for (var r = l.x; r < p.n; r += 64u) {
    let d = x[r * p.channels + c] - m;
    q += d * d;
  }
  let v = reduce_sum2(l.x, vec2f(q, 0.0)).x / nf;
  if (l.x == 0u) {
    mean_out[c] = m;
    rstd_out[c] = inverseSqrt(v + p.eps);
    running_mean[c] = (1.0 - p.momentum) * running_mean[c] + p.momentum * m;
    running_var[c] = (1.0 - p.momentum) * running_var[c] + p.momentum * v * nf / (nf - 1.0);
  }
}

@compute @workgroup_size(256)
fn batchnorm_forward(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let i = (w.y * g.x + w.x) * 256u + l.x;
  if (i >= p.n * p.channels) { return; }
  let c = i % p.channels;
  y[i] = (x[i] - mean[c]) * rstd[c];
}

@compute @workgroup_size(64)
fn batchnorm_backward(@builtin(workgroup_id) w: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let c = w.x;
  if (c >= p.channels) { return; }
  let m = mean[c];
  let r = rstd[c];
  if (p.training == 0u) {
    for (var i = l.x; i < p.n; i += 64u) { dx[i * p.channels + c] += dy[i * p.channels + c] * r; }
    return;
  }
  var s = vec2f(0.0);
  for (var i = l.x; i < p.n; i += 64u) {
    let k = i * p.channels + c;
    s += vec2f(dy[k], dy[k] * (x[k] - m) * r);
  }
  s = reduce_sum2(l.x, s) / f32(p.n);
  for (var i = l.x; i < p.n; i += 64u) {
    let k = i * p.channels + c;
    dx[k] += r * (dy[k] - s.x - (x[k] - m) * r * s.y);
  }
}
