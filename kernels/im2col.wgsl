// im2col.wgsl — conv2d (NCHW) as explicit GEMMs on matmul_vec4: image patches
// laid out as matrix rows, and the layout changes around the products.
//
// With P = ho * wo output pixels per image, rs = kh * kw, crs = c * rs and
// cols_stride >= crs (crs rounded up to a multiple of 4, so matmul_vec4 may
// read every row as vec4s), pixel row r = n * P + oy * wo + ox:
//   im2col_forward:    cols[r, c*rs + i*kw + j] = x[n, c, oy*s_h - p_h + i, ox*s_w - p_w + j]
//                      (0 outside the image); columns crs..cols_stride are 0
//   col2im_backward:   dx[n, c, iy, ix] += sum over the taps (i, j) and pixels (oy, ox)
//                      with oy*s_h - p_h + i = iy and ox*s_w - p_w + j = ix of
//                      dcols[r, c*rs + i*kw + j]   (a gather: no atomics, one write)
//   transpose_forward: out[b, j, i] = in[b, i, j] for in (batch, rows, cols): the
//                      GEMM's (n*P, k) rows to NCHW (batch n, rows P, cols k) and dy
//                      back (batch n, rows k, cols P)
//   copy_cols_forward: out[r, j] = (j < in_cols ? in[r, j] : 0), plus out[r, j] when beta = 1, over
//                      out (rows, out_cols), in (rows, in_cols): the weight padded to
//                      cols_stride columns (beta 0), its gradient added back unpadded (beta 1)
// One thread per output element (im2col: per pixel row and channel, looping its
// rs taps); workgroup 256; grid (x, y) with x * y >= ceil(threads / 256),
// x <= 65535. Every loop runs at most kh or kw times.

struct Im2colParams { // im2col_forward, col2im_backward (conv2d.wgsl's geometry, then cols_stride)
  n: u32,
  c: u32,
  h: u32,
  w: u32,
  k: u32, // filters: unused here
  kh: u32,
  kw: u32,
  stride_h: u32,
  stride_w: u32,
  pad_h: u32,
  pad_w: u32,
  ho: u32,
  wo: u32,
  cols_stride: u32,
}
struct TransposeParams { // transpose_forward
  batch: u32,
  rows: u32,
  cols: u32,
}
struct CopyColsParams { // copy_cols_forward
  rows: u32,
  out_cols: u32,
  in_cols: u32,
  beta: f32,
}

@group(0) @binding(0) var<uniform> g: Im2colParams;
@group(0) @binding(0) var<uniform> t: TransposeParams;
@group(0) @binding(0) var<uniform> cc: CopyColsParams;
// Every entry point binds (source, destination).
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

fn flat_id(wid: vec3u, nwg: vec3u, lid: vec3u) -> u32 {
  return (wid.y * nwg.x + wid.x) * 256u + lid.x;
}

@compute @workgroup_size(256)
fn im2col_forward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
) {
  let id = flat_id(wid, nwg, lid);
  let pixels = g.ho * g.wo;
  if (id >= g.n * pixels * g.c) { return; }
  let ch = id % g.c;
  let r = id / g.c;
  let b = r / pixels;
  let pix = r - b * pixels;
  let oy = pix / g.wo;
  let ox = pix - oy * g.wo;
  let rs = g.kh * g.kw;
  let row = r * g.cols_stride;
  let plane = (b * g.c + ch) * g.h * g.w;
  // Signed image coordinates of the window's top-left tap.
  let y0 = i32(oy * g.stride_h) - i32(g.pad_h);
  let x0 = i32(ox * g.stride_w) - i32(g.pad_w);
  var col = row + ch * rs;
  for (var i = 0u; i < g.kh; i++) {
    let iy = y0 + i32(i);
    let row_in = iy >= 0 && iy < i32(g.h);
    for (var j = 0u; j < g.kw; j++) {
      let ix = x0 + i32(j);
      var v = 0.0;
      if (row_in && ix >= 0 && ix < i32(g.w)) { v = src[plane + u32(iy) * g.w + u32(ix)]; }
      dst[col] = v;
      col++;
    }
  }
  // The last channel's thread zeroes the padding columns of its row.
  if (ch == g.c - 1u) {
    for (var z = g.c * rs; z < g.cols_stride; z++) { dst[row + z] = 0.0; }
  }
}

@compute @workgroup_size(256)
fn col2im_backward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
) {
  let id = flat_id(wid, nwg, lid);
  if (id >= g.n * g.c * g.h * g.w) { return; }
  let ix = id % g.w;
  let iy = (id / g.w) % g.h;
  let ch = (id / (g.w * g.h)) % g.c;
  let b = id / (g.w * g.h * g.c);
  let rs = g.kh * g.kw;
  let first_row = b * g.ho * g.wo;
  var s = 0.0;
  for (var i = 0u; i < g.kh; i++) {
    // oy * stride_h = iy + pad_h - i must be a whole output row inside 0..ho.
    let ty = i32(iy + g.pad_h) - i32(i);
    if (ty < 0 || u32(ty) % g.stride_h != 0u) { continue; }
    let oy = u32(ty) / g.stride_h;
    if (oy >= g.ho) { continue; }
    for (var j = 0u; j < g.kw; j++) {
      let tx = i32(ix + g.pad_w) - i32(j);
      if (tx < 0 || u32(tx) % g.stride_w != 0u) { continue; }
      let ox = u32(tx) / g.stride_w;
      if (ox >= g.wo) { continue; }
      s += src[(first_row + oy * g.wo + ox) * g.cols_stride + ch * rs + i * g.kw + j];
    }
  }
  dst[id] += s;
}

@compute @workgroup_size(256)
fn transpose_forward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
) {
  let id = flat_id(wid, nwg, lid);
  let plane = t.rows * t.cols;
  if (id >= t.batch * plane) { return; }
  // id indexes the output (batch, cols, rows); neighbouring threads write
  // neighbouring addresses.
  let i = id % t.rows;
  let j = (id / t.rows) % t.cols;
  let b = id / plane;
  dst[id] = src[b * plane + i * t.cols + j];
}

@compute @workgroup_size(256)
fn copy_cols_forward(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
) {
  let id = flat_id(wid, nwg, lid);
  if (id >= cc.rows * cc.out_cols) { return; }
  let j = id % cc.out_cols;
  let r = id / cc.out_cols;
  var v = 0.0;
  if (j < cc.in_cols) { v = src[r * cc.in_cols + j]; }
  if (cc.beta != 0.0) { v += dst[id]; }
  dst[id] = v;
}
