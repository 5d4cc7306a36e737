// conv2d.wgsl — 2-D convolution (NCHW, zero padding) as implicit GEMM, and its gradients.
//
// x (n, c, h, w), weight (k, c, kh, kw), bias (k), y (n, k, ho, wo), all f32
// row-major; ho = floor((h + 2 pad_h - kh) / stride_h) + 1, likewise wo.
// With rs = kh * kw and crs = c * rs (one im2col column per output pixel):
//   conv2d_forward:         y[k, pix]  = sum_crs W[k, crs] X[crs, pix] + bias[k]
//                           pix = (n, oy, ox) over n * ho * wo, X gathered from x
//   conv2d_backward_input:  dx[c, pix] += sum_(k,i,j) W[k, c, i, j] dY[(k,i,j), pix]
//                           pix = (n, iy, ix); dY[(k,i,j), pix] = dy[n, k, oy, ox] where
//                           oy * stride_h = iy + pad_h - i (zero when not a whole oy)
//   conv2d_backward_input_direct: the same dx, one thread per input element
//                           looping over only the taps that reach an output; used when
//                           c is small or strided, where the GEMM form wastes most of a
//                           64-row tile on absent channels and stride zeros
//   conv2d_backward_weight: part[z, k, crs] = sum_{pix in chunk z} dy[k, pix] X[crs, pix]
//   conv2d_backward_weight_reduce: dw[i] += sum_z part[z, i]  (split-K partials, no atomics)
//   conv2d_backward_bias:   dbias[k] += sum_{n, oy, ox} dy[n, k, oy, ox]
// No im2col buffer is materialised: the tile loaders gather from x / dy / weight.
//
// GEMM tiling as in matmul.wgsl: a workgroup of 8x8 threads computes a 64x64
// tile, each thread an 8x8 register block (16 vec4 accumulators); the inner
// dimension advances in slices of 32 staged in workgroup memory (2 x 8 KiB).
// Each loader thread owns one tile column, so the pixel (or crs) it gathers
// for is decoded once; the other im2col index, the same for the whole
// workgroup, is stepped by counters rather than divided out per element
// (llvmpipe scalarises integer division by a runtime value: stepping doubled
// forward throughput). Tiles overhanging any edge read zeros. The weight gradient reduces over n * ho * wo pixels; that
// is split over grid z in chunks of `chunk` pixels (a multiple of 32, so no
// loop nears llvmpipe's 65535-iteration cap), then summed by the reduce entry.
// Dispatch grids:
//   forward:         (ceil(n ho wo / 64), ceil(k / 64))
//   backward_input:  (ceil(n h w / 64), ceil(c / 64))
//   backward_input_direct: grid1d(ceil(n c h w / 256)), workgroup 256
//   backward_weight: (ceil(crs / 64), ceil(k / 64), splits)
//   weight_reduce:   grid1d(ceil(k crs / 256)), workgroup 256
//   backward_bias:   (k), workgroup 64 (strided sum + tree reduction)

struct Params {
  n: u32,
  c: u32,
  h: u32,
  w: u32,
  k: u32,
  kh: u32,
  kw: u32,
  stride_h: u32,
  stride_w: u32,
  pad_h: u32,
  pad_w: u32,
  ho: u32,
  wo: u32,
  has_bias: u32,
  // backward_weight: pixels per split; weight_reduce: number of splits
  chunk: u32,
  splits: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// forward (x, weight, bias, y); backward_input (dy, weight, dx);
// backward_weight (x, dy_w, part); weight_reduce (part_in, dw); backward_bias (dy, dbias)
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> part_in: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> dy_w: array<f32>;
@group(0) @binding(2) var<storage, read_write> dw: array<f32>;
@group(0) @binding(2) var<storage, read_write> dbias: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<storage, read_write> part: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

const BK = 32u;

// [kk][row / 4] and [kk][col / 4] as vec4, exactly as in matmul.wgsl.
var<workgroup> tile_a: array<vec4<f32>, 512>;
var<workgroup> tile_b: array<vec4<f32>, 512>;
var<workgroup> red: array<f32, 64>;

// One 32-deep slice of the 64x64 product: acc += tile_a^T-block x tile_b-block.
fn mma_slice(lid: vec3u, acc: ptr<function, array<vec4<f32>, 16>>) {
  for (var kk = 0u; kk < BK; kk++) {
    let a0 = tile_a[kk * 16u + lid.y * 2u];
    let a1 = tile_a[kk * 16u + lid.y * 2u + 1u];
    let b0 = tile_b[kk * 16u + lid.x * 2u];
    let b1 = tile_b[kk * 16u + lid.x * 2u + 1u];
    for (var i = 0u; i < 4u; i++) {
      (*acc)[2u * i] = fma(vec4<f32>(a0[i]), b0, (*acc)[2u * i]);
      (*acc)[2u * i + 1u] = fma(vec4<f32>(a0[i]), b1, (*acc)[2u * i + 1u]);
      (*acc)[8u + 2u * i] = fma(vec4<f32>(a1[i]), b0, (*acc)[8u + 2u * i]);
      (*acc)[8u + 2u * i + 1u] = fma(vec4<f32>(a1[i]), b1, (*acc)[8u + 2u * i + 1u]);
    }
  }
}

fn put_a(r: u32, kk: u32, v: f32) {
  tile_a[kk * 16u + r / 4u][r % 4u] = v;
}

fn put_b(kk: u32, cc: u32, v: f32) {
  tile_b[kk * 16u + cc / 4u][cc % 4u] = v;
}

@compute @workgroup_size(8, 8)
fn conv2d_forward(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let rs = p.kh * p.kw;
  let crs = p.c * rs;
  let hw_out = p.ho * p.wo;
  let npix = p.n * hw_out;
  let row0 = wid.y * 64u;
  let col0 = wid.x * 64u;
  let tid = lid.y * 8u + lid.x;

  // This thread gathers im2col column `pix` for tile_b.
  let pix = col0 + tid;
  let pn = pix / hw_out;
  let pq = pix % hw_out;
  let iy0 = i32((pq / p.wo) * p.stride_h) - i32(p.pad_h);
  let ix0 = i32((pq % p.wo) * p.stride_w) - i32(p.pad_w);
  let xbase = pn * p.c * p.h * p.w;

  var acc: array<vec4<f32>, 16>;
  for (var i = 0u; i < 16u; i++) { acc[i] = vec4<f32>(0.0); }

  // im2col row j = (ch, ky, kx), stepped once per gathered element (see header).
  var ch = 0u;
  var ky = 0u;
  var kx = 0u;
  for (var k0 = 0u; k0 < crs; k0 += BK) {
    for (var i = 0u; i < BK; i++) {
      let e = tid + i * 64u;
      let r = e / BK;
      let kk = e % BK;
      var v = 0.0;
      if (row0 + r < p.k && k0 + kk < crs) { v = weight[(row0 + r) * crs + k0 + kk]; }
      put_a(r, kk, v);
    }
    for (var i = 0u; i < BK; i++) {
      let iy = iy0 + i32(ky);
      let ix = ix0 + i32(kx);
      var v = 0.0;
      if (pix < npix && ch < p.c && iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w)) {
        v = x[xbase + (ch * p.h + u32(iy)) * p.w + u32(ix)];
      }
      put_b(i, tid, v);
      kx += 1u;
      if (kx == p.kw) {
        kx = 0u;
        ky += 1u;
        if (ky == p.kh) {
          ky = 0u;
          ch += 1u;
        }
      }
    }
    workgroupBarrier();
    mma_slice(lid, &acc);
    workgroupBarrier();
  }

  for (var j = 0u; j < 8u; j++) {
    let col = col0 + lid.x * 8u + j;
    if (col >= npix) { break; }
    let obase = (col / hw_out) * p.k * hw_out + col % hw_out;
    for (var i = 0u; i < 8u; i++) {
      let row = row0 + lid.y * 8u + i;
      if (row >= p.k) { break; }
      var v = acc[2u * i + j / 4u][j % 4u];
      if (p.has_bias != 0u) { v += bias[row]; }
      y[obase + row * hw_out] = v;
    }
  }
}

@compute @workgroup_size(8, 8)
fn conv2d_backward_input(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let rs = p.kh * p.kw;
  let krs = p.k * rs;
  let hw_in = p.h * p.w;
  let hw_out = p.ho * p.wo;
  let npix = p.n * hw_in;
  let row0 = wid.y * 64u; // input channel
  let col0 = wid.x * 64u; // input pixel (n, iy, ix)
  let tid = lid.y * 8u + lid.x;

  let pix = col0 + tid;
  let pn = pix / hw_in;
  let pq = pix % hw_in;
  // oy * stride_h = iy + pad_h - ky, tracked as quotient and remainder of
  // iy + pad_h - ky by stride_h (likewise x) and stepped with j = (ko, ky, kx).
  let ty0 = pq / p.w + p.pad_h;
  let tx0 = pq % p.w + p.pad_w;
  let qy0 = i32(ty0 / p.stride_h);
  let ry0 = i32(ty0 % p.stride_h);
  let qx0 = i32(tx0 / p.stride_w);
  let rx0 = i32(tx0 % p.stride_w);
  var ko = 0u;
  var ky = 0u;
  var kx = 0u;
  var qy = qy0;
  var ry = ry0;
  var qx = qx0;
  var rx = rx0;
  let gbase = pn * p.k * hw_out;
  // tile_a loader: this thread's inner index is fixed, rows vary
  let akk = tid % BK;

  var acc: array<vec4<f32>, 16>;
  for (var i = 0u; i < 16u; i++) { acc[i] = vec4<f32>(0.0); }

  for (var k0 = 0u; k0 < krs; k0 += BK) {
    let ja = k0 + akk;
    let wa = (ja / rs) * p.c * rs + ja % rs;
    for (var i = 0u; i < BK; i++) {
      let r = tid / BK + 2u * i;
      var v = 0.0;
      if (row0 + r < p.c && ja < krs) { v = weight[wa + (row0 + r) * rs]; }
      put_a(r, akk, v);
    }
    for (var i = 0u; i < BK; i++) {
      var v = 0.0;
      if (pix < npix && ko < p.k && ry == 0 && rx == 0 && qy >= 0 && qx >= 0 &&
          qy < i32(p.ho) && qx < i32(p.wo)) {
        v = dy[gbase + ko * hw_out + u32(qy) * p.wo + u32(qx)];
      }
      put_b(i, tid, v);
      kx += 1u;
      rx -= 1;
      if (rx < 0) {
        rx += i32(p.stride_w);
        qx -= 1;
      }
      if (kx == p.kw) {
        kx = 0u;
        qx = qx0;
        rx = rx0;
        ky += 1u;
        ry -= 1;
        if (ry < 0) {
          ry += i32(p.stride_h);
          qy -= 1;
        }
        if (ky == p.kh) {
          ky = 0u;
          qy = qy0;
          ry = ry0;
          ko += 1u;
        }
      }
    }
    workgroupBarrier();
    mma_slice(lid, &acc);
    workgroupBarrier();
  }

  for (var j = 0u; j < 8u; j++) {
    let col = col0 + lid.x * 8u + j;
    if (col >= npix) { break; }
    let obase = (col / hw_in) * p.c * hw_in + col % hw_in;
    for (var i = 0u; i < 8u; i++) {
      let row = row0 + lid.y * 8u + i;
      if (row >= p.c) { break; }
      let idx = obase + row * hw_in;
      dx[idx] = dx[idx] + acc[2u * i + j / 4u][j % 4u];
    }
  }
}

@compute @workgroup_size(256)
fn conv2d_backward_input_direct(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let hw_in = p.h * p.w;
  let i = (wid.y * g.x + wid.x) * 256u + lid.x;
  if (i >= p.n * p.c * hw_in) { return; }
  let pn = i / (p.c * hw_in);
  let ch = (i / hw_in) % p.c;
  let ty = (i % hw_in) / p.w + p.pad_h;
  let tx = i % p.w + p.pad_w;
  let hw_out = p.ho * p.wo;
  let rs = p.kh * p.kw;
  var s = 0.0;
  // Only taps with ty - ky a multiple of the stride reach an output row.
  for (var ky = ty % p.stride_h; ky < p.kh && ky <= ty; ky += p.stride_h) {
    let oy = (ty - ky) / p.stride_h;
    if (oy >= p.ho) { continue; }
    for (var kx = tx % p.stride_w; kx < p.kw && kx <= tx; kx += p.stride_w) {
      let ox = (tx - kx) / p.stride_w;
      if (ox >= p.wo) { continue; }
      let gi = pn * p.k * hw_out + oy * p.wo + ox;
      let wi = ch * rs + ky * p.kw + kx;
      for (var ko = 0u; ko < p.k; ko++) {
        s += dy[gi + ko * hw_out] * weight[wi + ko * p.c * rs];
      }
    }
  }
  dx[i] = dx[i] + s;
}

@compute @workgroup_size(8, 8)
fn conv2d_backward_weight(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let rs = p.kh * p.kw;
  let crs = p.c * rs;
  let hw_out = p.ho * p.wo;
  let npix = p.n * hw_out;
  let row0 = wid.y * 64u; // output channel
  let col0 = wid.x * 64u; // crs
  let pstart = wid.z * p.chunk;
  let pend = min(npix, pstart + p.chunk);
  let tid = lid.y * 8u + lid.x;

  // tile_b loader: this thread's crs column is fixed for the whole kernel.
  let j = col0 + tid;
  let ch = j / rs;
  let ky = i32((j % rs) / p.kw);
  let kx = i32(j % p.kw);
  let akk = tid % BK;

  var acc: array<vec4<f32>, 16>;
  for (var i = 0u; i < 16u; i++) { acc[i] = vec4<f32>(0.0); }

  // The pixel (pn, oy, ox) that tile_b row i gathers, stepped once per row.
  var pn = pstart / hw_out;
  var oy = (pstart % hw_out) / p.wo;
  var ox = pstart % p.wo;
  for (var k0 = pstart; k0 < pend; k0 += BK) {
    let pa = k0 + akk;
    let abase = (pa / hw_out) * p.k * hw_out + pa % hw_out;
    for (var i = 0u; i < BK; i++) {
      let r = tid / BK + 2u * i;
      var v = 0.0;
      if (row0 + r < p.k && pa < pend) { v = dy_w[abase + (row0 + r) * hw_out]; }
      put_a(r, akk, v);
    }
    for (var i = 0u; i < BK; i++) {
      let iy = i32(oy * p.stride_h) - i32(p.pad_h) + ky;
      let ix = i32(ox * p.stride_w) - i32(p.pad_w) + kx;
      var v = 0.0;
      if (k0 + i < pend && j < crs && iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w)) {
        v = x[((pn * p.c + ch) * p.h + u32(iy)) * p.w + u32(ix)];
      }
      put_b(i, tid, v);
      ox += 1u;
      if (ox == p.wo) {
        ox = 0u;
        oy += 1u;
        if (oy == p.ho) {
          oy = 0u;
          pn += 1u;
        }
      }
    }
    workgroupBarrier();
    mma_slice(lid, &acc);
    workgroupBarrier();
  }

  let zbase = wid.z * p.k * crs;
  for (var i = 0u; i < 8u; i++) {
    let row = row0 + lid.y * 8u + i;
    if (row >= p.k) { break; }
    for (var jj = 0u; jj < 8u; jj++) {
      let col = col0 + lid.x * 8u + jj;
      if (col >= crs) { break; }
      part[zbase + row * crs + col] = acc[2u * i + jj / 4u][jj % 4u];
    }
  }
}

@compute @workgroup_size(256)
fn conv2d_backward_weight_reduce(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let count = p.k * p.c * p.kh * p.kw;
  let i = (wid.y * g.x + wid.x) * 256u + lid.x;
  if (i >= count) { return; }
  var s = 0.0;
  for (var z = 0u; z < p.splits; z++) { s += part_in[z * count + i]; }
  dw[i] = dw[i] + s;
}

@compute @workgroup_size(64)
fn conv2d_backward_bias(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let hw_out = p.ho * p.wo;
  let ko = wid.x;
  var s = 0.0;
  for (var n = 0u; n < p.n; n++) {
    let base = (n * p.k + ko) * hw_out;
    for (var q = lid.x; q < hw_out; q += 64u) { s += dy[base + q]; }
  }
  red[lid.x] = s;
  workgroupBarrier();
  for (var st = 32u; st > 0u; st >>= 1u) {
    if (lid.x < st) { red[lid.x] = red[lid.x] + red[lid.x + st]; }
    workgroupBarrier();
  }
  if (lid.x == 0u) { dbias[ko] = dbias[ko] + red[0]; }
}
