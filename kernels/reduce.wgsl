// reduce.wgsl — sum over one axis (mean is sum with scale = 1 / axis), and its backward.
//
// The input is viewed as (outer, axis, inner), row-major; the output is
// (outer, inner).
//   sum_axis_forward:  dst[o, i] = scale * sum_a src[o, a, i] + beta * dst[o, i]
//   sum_axis_backward: dst[o, a, i] += scale * src[o, i]   (src = dy, dst = dx)
//   sum_axis_wide_forward: the same sum for long axes: one workgroup per output
//                      element, 256 threads striding the axis, then a tree.
// beta is 0 or 1 (1 accumulates, as gradient buffers need).
// Why two forwards: llvmpipe stops any shader loop after 65535 iterations
// (measured: a one-thread sum of 70000 ones returned 65535), so a long axis
// must be split across threads; a short one is cheaper with a thread per output.
// The launcher picks the wide form for axes longer than 1024.
// Workgroup 256; grid (x, y) with x * y >= ceil(count / 256) (thread per
// element) or >= outer * inner (wide form), x <= 65535.

struct Params {
  outer: u32,
  axis: u32,
  inner: u32,
  scale: f32,
  beta: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

fn flat_id(wid: vec3u, nwg: vec3u, lid: vec3u) -> u32 {
  return (wid.y * nwg.x + wid.x) * 256u + lid.x;
}

@compute @workgroup_size(256)
fn sum_axis_forward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
) {
  let id = flat_id(wid, nwg, lid);
  if (id >= p.outer * p.inner) { return; }
  let o = id / p.inner;
  let i = id % p.inner;
  var s = 0.0;
  var base = o * p.axis * p.inner + i;
  for (var a = 0u; a < p.axis; a++) {
    s += src[base];
    base += p.inner;
  }
  var v = p.scale * s;
  if (p.beta != 0.0) { v += p.beta * dst[id]; }
  dst[id] = v;
}

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn sum_axis_wide_forward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
) {
  let id = wid.y * nwg.x + wid.x;
  // Whole workgroups leave together, so the barriers below stay uniform.
  if (id >= p.outer * p.inner) { return; }
  let o = id / p.inner;
  let i = id % p.inner;
  var s = 0.0;
  for (var a = lid.x; a < p.axis; a += 256u) {
    s += src[(o * p.axis + a) * p.inner + i];
  }
  partial[lid.x] = s;
  workgroupBarrier();
  for (var k = 128u; k > 0u; k >>= 1u) {
    if (lid.x < k) { partial[lid.x] += partial[lid.x + k]; }
    workgroupBarrier();
  }
  if (lid.x == 0u) {
    var v = p.scale * partial[0];
    if (p.beta != 0.0) { v += p.beta * dst[id]; }
    dst[id] = v;
  }
}

@compute @workgroup_size(256)
fn sum_axis_backward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
) {
  let id = flat_id(wid, nwg, lid);
  if (id >= p.outer * p.axis * p.inner) { return; }
  let i = id % p.inner;
  let o = id / (p.axis * p.inner);
  dst[id] += p.scale * src[o * p.inner + i];
}
