// clip_grad_norm.wgsl — clipping a whole ParamStore's gradient to a global L2
// norm without reading it back: the norm and the clip factor stay on the GPU.
//
// grad is the flat gradient buffer (n f32, padding is 0); partial (groups)
// holds per-workgroup sums of squares; clip (2) = (norm, factor).
//   clip_grad_norm_partial: partial[w] = sum over i = w * 64 + t + k * groups * 64 of grad[i]^2
//                           (workgroup 64, grid (groups, 1), groups <= 1024, so a
//                           thread loops n / (64 groups) times, far below 65535)
//   clip_grad_norm_factor:  norm = sqrt(sum_w partial[w]); factor = min(1, max_norm / (norm + 1e-6))
//                           (one workgroup of 64, grid (1, 1); the 1e-6 as torch's clip_grad_norm_)
//   clip_grad_norm_apply:   grad[i] *= factor
//                           (workgroup 256, grid (x, y), x * y >= ceil(n / 256))

struct Params {
  n: u32,
  groups: u32,
  max_norm: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> partial: array<f32>;
// clip_grad_norm_factor: (partial, clip)
@group(0) @binding(1) var<storage, read> partial_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> clip: array<f32>;
// clip_grad_norm_apply: (clip, grad)
@group(0) @binding(1) var<storage, read> clip_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad_out: array<f32>;

//#include _workgroup_reduce.wgsl

@compute @workgroup_size(64)
fn clip_grad_norm_partial(@builtin(workgroup_id) w: vec3u, @builtin(local_invocation_id) l: vec3u) {
  var s = 0.0;
  for (var i = w.x * 64u + l.x; i < p.n; i += p.groups * 64u) { s += grad[i] * grad[i]; }
  s = reduce_sum(l.x, s);
  if (l.x == 0u) { partial[w.x] = s; }
}

@compute @workgroup_size(64)
fn clip_grad_norm_factor(@builtin(local_invocation_id) l: vec3u) {
  var s = 0.0;
  for (var i = l.x; i < p.groups; i += 64u) { s += partial_in[i]; }
  let norm = sqrt(reduce_sum(l.x, s));
  if (l.x == 0u) {
    clip[0] = norm;
    clip[1] = min(1.0, p.max_norm / (norm + 1e-6));
  }
}

@compute @workgroup_size(256)
fn clip_grad_norm_apply(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let i = (w.y * g.x + w.x) * 256u + l.x;
  if (i >= p.n) { return; }
  grad_out[i] = grad_out[i] * clip_in[1];
}
