// reduce.wgsl — sum over one axis (mean is sum with scale = 1 / axis), and its backward.
//
// The input is viewed as (outer, axis, inner), row-major; the output is
// (outer, inner).
//   sum_axis_forward:  dst[o, i] = scale * sum_a src[o, a, i] + beta * dst[o, i]
//   sum_axis_backward: dst[o, a, i] += scale * src[o, i]   (src = dy, dst = dx)
//   sum_axis_blocks:   part[o, b, i] = sum over a in block b (rows_per_block rows) of src[o, a, i];
//                      a long axis is summed as blocks, then sum_axis_forward over the blocks.
// beta is 0 or 1 (1 accumulates, as gradient buffers need).
// Why two forwards: llvmpipe stops any shader loop after 65535 iterations
// (measured: a one-thread sum of 70000 ones returned 65535), so a long axis
// must be split across threads; a short one is cheaper with a thread per output.
// The launcher takes the blocks for axes longer than 1024: a thread per
// (output, block) with neighbouring threads on neighbouring columns and no
// barriers (a workgroup tree per output ran far slower on llvmpipe).
// Workgroup 256; grid (x, y) with x * y >= ceil(threads / 256), thread per
// output element (or per output element and block), x <= 65535.

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

struct BlockParams {
  outer: u32,
  axis: u32,
  inner: u32,
  rows_per_block: u32,
  blocks: u32,
}
@group(0) @binding(0) var<uniform> bp: BlockParams;

@compute @workgroup_size(256)
fn sum_axis_blocks(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
) {
  let id = flat_id(wid, nwg, lid);
  if (id >= bp.outer * bp.blocks * bp.inner) { return; }
  let i = id % bp.inner;
  let b = (id / bp.inner) % bp.blocks;
  let o = id / (bp.inner * bp.blocks);
  let first = b * bp.rows_per_block;
  let last = min(bp.axis, first + bp.rows_per_block);
  var s = 0.0;
  var at = (o * bp.axis + first) * bp.inner + i;
  for (var a = first; a < last; a++) {
    s += src[at];
    at += bp.inner;
  }
  dst[id] = s;
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
