// concat_channels.wgsl — channel concatenation of NCHW tensors: copy one input into its channel slice, and back.
//
// src (n, cs, hw) is channels off .. off + cs - 1 of out (n, ct, hw); f32 row-major.
//   concat_channels_forward:  out[n, off + c, q] = src[n, c, q]
//   concat_channels_backward: dsrc[n, c, q] += dout[n, off + c, q]
// concatChannels(a, b) launches each entry once per input (off = 0, then ca).
// Workgroup 256 threads, one src element each; grid (x, y) with
// x * y * 256 >= n * cs * hw and x <= 65535.

struct Params {
  count: u32,
  cs: u32,
  ct: u32,
  off: u32,
  hw: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// forward (src, out); backward (dout, dsrc)
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read> dout: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> dsrc: array<f32>;

// Flat index into out of src element i.
fn slot(i: u32) -> u32 {
  let per = p.cs * p.hw;
  return ((i / per) * p.ct + p.off) * p.hw + i % per;
}

@compute @workgroup_size(256)
fn concat_channels_forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wid.y * g.x + wid.x) * 256u + lid.x;
  if (i >= p.count) { return; }
  out[slot(i)] = src[i];
}

@compute @workgroup_size(256)
fn concat_channels_backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wid.y * g.x + wid.x) * 256u + lid.x;
  if (i >= p.count) { return; }
  dsrc[i] = dsrc[i] + dout[slot(i)];
}
