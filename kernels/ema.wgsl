// ema.wgsl — exponential moving averages for DINO: the teacher's parameters
// and the centre of the teacher's outputs.
//
//   ema_update:    teacher[i] = m * teacher[i] + (1 - m) * student[i], i < n
//                  over a whole flat ParamStore (both stores share one layout,
//                  so one dispatch updates every parameter; padding stays 0).
//                  One thread per element, workgroup 256, grid (x, y) with
//                  x * y >= ceil(n / 256).
//   center_update: centre[c] = m * centre[c] + (1 - m) * mean_r x[r, c],
//                  x (rows, cols) f32, centre (cols). One thread per column
//                  (a fixed-order loop over the rows), workgroup 64, grid (x, y)
//                  with x * y >= ceil(cols / 64).

struct Params {
  n: u32,
  cols: u32,
  momentum: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> avg: array<f32>;

@compute @workgroup_size(256)
fn ema_update(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let i = (w.y * g.x + w.x) * 256u + l.x;
  if (i >= p.n) { return; }
  avg[i] = p.momentum * avg[i] + (1.0 - p.momentum) * src[i];
}

// For center_update, n is the number of rows of src.
@compute @workgroup_size(64)
fn center_update(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let c = (w.y * g.x + w.x) * 64u + l.x;
  if (c >= p.cols) { return; }
  var s = 0.0;
  for (var r = 0u; r < p.n; r++) { s += src[r * p.cols + c]; }
  avg[c] = p.momentum * avg[c] + (1.0 - p.momentum) * (s / f32(p.n));
}
