// max_pool2d.wgsl — 2-D max pooling over NCHW planes (PyTorch semantics, ceil_mode aware), and its backward.
//
// x (planes = n * c, h, w), y and arg (planes, ho, wo), f32 / u32 row-major.
// The window of output (oy, ox) covers rows oy * stride - pad .. + kernel - 1
// (columns likewise), clipped to the input, so padding never wins; the host
// computes ho / wo (ceil mode lets the last window overhang the far edge, but
// it always starts inside the input or the near padding).
//   max_pool2d_forward:  y = max over the window; arg = iy * w + ix of the first
//                        maximum in row-major window order (ties → first, as PyTorch)
//   max_pool2d_backward: dx[plane, iy, ix] += sum of dy over the outputs whose arg
//                        is (iy, ix). One thread per *input* element gathers from
//                        the few windows covering it, so overlapping windows need
//                        no atomics and the sum order is fixed.
// Workgroup 256 threads, one element each (forward: outputs; backward: inputs);
// grid (x, y) with x * y * 256 >= count and x <= 65535.

struct Params {
  count: u32,
  h: u32,
  w: u32,
  ho: u32,
  wo: u32,
  kernel: u32,
  stride: u32,
  pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// forward (x, y, arg); backward (arg_in, dy, dx)
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> arg_in: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> arg: array<u32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

fn index(wid: vec3u, g: vec3u, lid: vec3u) -> u32 {
  return (wid.y * g.x + wid.x) * 256u + lid.x;
}

@compute @workgroup_size(256)
fn max_pool2d_forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let o = index(wid, g, lid);
  if (o >= p.count) { return; }
  let hw_out = p.ho * p.wo;
  let plane = o / hw_out;
  let q = o % hw_out;
  let y0 = i32((q / p.wo) * p.stride) - i32(p.pad);
  let x0 = i32((q % p.wo) * p.stride) - i32(p.pad);
  let ylo = u32(max(y0, 0));
  let yhi = u32(min(y0 + i32(p.kernel), i32(p.h)));
  let xlo = u32(max(x0, 0));
  let xhi = u32(min(x0 + i32(p.kernel), i32(p.w)));
  let base = plane * p.h * p.w;
  var best = x[base + ylo * p.w + xlo];
  var at = ylo * p.w + xlo;
  for (var iy = ylo; iy < yhi; iy++) {
    for (var ix = xlo; ix < xhi; ix++) {
      let v = x[base + iy * p.w + ix];
      if (v > best) {
        best = v;
        at = iy * p.w + ix;
      }
    }
  }
  y[o] = best;
  arg[o] = at;
}

@compute @workgroup_size(256)
fn max_pool2d_backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = index(wid, g, lid);
  if (i >= p.count) { return; }
  let hw_in = p.h * p.w;
  let plane = i / hw_in;
  let q = i % hw_in;
  let iy = i32(q / p.w) + i32(p.pad);
  let ix = i32(q % p.w) + i32(p.pad);
  let s = i32(p.stride);
  let k = i32(p.kernel);
  // Outputs whose window holds row iy: oy * s <= iy + pad <= oy * s + k - 1.
  let oy_lo = u32(max((iy - k + s) / s, 0)); // ceil((iy - k + 1) / s) for iy - k + 1 >= 0; clamped
  let oy_hi = min(u32(iy / s) + 1u, p.ho);
  let ox_lo = u32(max((ix - k + s) / s, 0));
  let ox_hi = min(u32(ix / s) + 1u, p.wo);
  let base = plane * p.ho * p.wo;
  var acc = 0.0;
  for (var oy = oy_lo; oy < oy_hi; oy++) {
    for (var ox = ox_lo; ox < ox_hi; ox++) {
      let o = base + oy * p.wo + ox;
      if (arg_in[o] == q) { acc += dy[o]; }
    }
  }
  dx[i] = dx[i] + acc;
}
