// sigmoid.wgsl — logistic sigmoid and its backward.
//
// x, y, dy, dx are flat f32 arrays of n elements.
//   sigmoid_forward:  y = 1 / (1 + exp(-x)), evaluated as e / (1 + e), e = exp(-|x|),
//                     mirrored for x >= 0, so exp never overflows for any |x|
//   sigmoid_backward: dx += dy * y * (1 - y)   (from the saved output y)
// Workgroup 256 threads, one element each; grid (x, y) with x * y * 256 >= n, x <= 65535.

struct Params {
  n: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// forward (x, y); backward (y_in, dy, dx)
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> y_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(256)
fn sigmoid_forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wid.y * g.x + wid.x) * 256u + lid.x;
  if (i >= p.n) { return; }
  let v = x[i];
  let e = exp(-abs(v));
  let s = 1.0 / (1.0 + e);
  y[i] = select(e * s, s, v >= 0.0);
}

@compute @workgroup_size(256)
fn sigmoid_backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wid.y * g.x + wid.x) * 256u + lid.x;
  if (i >= p.n) { return; }
  let s = y_in[i];
  dx[i] = dx[i] + dy[i] * s * (1.0 - s);
}
