// matmul.wgsl — batched matrix product with optional transposes, bias and accumulate.
//
//   C[b] = alpha * op(A[b]) @ op(B[b]) + bias (broadcast over rows) + beta * C[b]
//
// op(X) is X or X^T, chosen per pipeline by the overrides TRANS_A / TRANS_B.
// Shapes (row-major, f32): op(A) is (m, k), op(B) is (k, n), C is (m, n), bias
// is (n); batch b starts at b * stride_{a,b,c} elements. Stored A is (m, k), or
// (k, m) when TRANS_A; stored B is (k, n), or (n, k) when TRANS_B. beta is 0 or
// 1 in practice: 1 is how backward passes add into gradient buffers.
//
// Two entry points over the same bindings; src/ops/matmul.ts picks one per
// product (matmulKernel):
//
// matmul_vec4 (used when n is divisible by 4, and k unless only A is
// transposed, and m when A is):
// no workgroup memory and no barriers. Each invocation computes a 16x16 block
// of C (64 vec4 accumulators) straight from the storage buffers, which it
// reads as vec4: per 4 values of k, 16 vec4 loads of A and 16 of B feed 256
// vec4 FMAs. llvmpipe's gallivm (read in the Mesa 21.3 source)
// emits every storage or workgroup load as a loop over the 8 lanes with a
// bounds check each, while an FMA is one 8-wide instruction, so FMAs per load
// is what counts. The block is written without loops (a_block, b_block and
// row_step inline to constant indices): the same block written with loops
// over rows ran 5x slower, presumably left rolled with its accumulators in
// indexed memory.
// Dispatch grid: (ceil(ceil(m / 16) * ceil(n / 16) / 64), 1, batch).
// Measured on llvmpipe (2 cores, shared VM; medians of 5 interleaved runs in
// one process by a scratch script, TF.js WebGPU on the same adapter, before
// the k tail was added; no change after it, within noise), GFLOP/s at
// 1024^3 / 512^3 / 256^3: Vulkan matmul_vec4 10.3 / 10.6 / 9.2, matmul_forward 2.3 / 2.8 / 2.2,
// TF.js 2.4 / 2.5 / 2.6; GL matmul_vec4 10.6 / 13.3 / 11.5, matmul_forward
// 3.4 / 3.5 / 3.0, TF.js 2.5 / 2.7 / 2.5. So vec4 runs at every size it can.
// Workgroup sizes 8-256 measured alike; 16x8, 8x16 and 8x8 blocks were slower
// (2.2-3.1 vs 4.1 at 16x16, TF.js 1.4, on a busier run), 16x32 / 32x16 no faster.
//
// matmul_forward (every other shape): a workgroup of 8x8 threads computes a
// 64x64 tile of C, each thread an 8x8 register block (16 vec4 accumulators),
// so every 4 shared-memory vec4 loads feed 16 vec4 FMAs. Measured on llvmpipe
// this beat 16x16 threads with 4x4 blocks by about 2x (fewer invocations per
// barrier). K advances in slices of 32 staged in workgroup memory (2 x 8 KiB);
// tiles that overhang m, n or k read zeros, so any size works.
// Dispatch grid: (ceil(n / 64), ceil(m / 64), batch).

//#include _matmul_blocks.wgsl

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;
// The same buffers seen as vec4 by matmul_vec4 (a pipeline uses one view or the other).
@group(0) @binding(1) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> c4: array<vec4<f32>>;

const BM = 64u;
const BN = 64u;
const BK = 32u;

// [kk][row / 4] and [kk][col / 4] as vec4 so a thread's 4 rows (cols) are one load.
var<workgroup> tile_a: array<vec4<f32>, 512>; // BK * 64 / 4
var<workgroup> tile_b: array<vec4<f32>, 512>; // BK * 64 / 4

fn load_a(base: u32, row: u32, col: u32) -> f32 {
  if (row >= p.m || col >= p.k) { return 0.0; }
  if (TRANS_A) { return a[base + col * p.m + row]; }
  return a[base + row * p.k + col];
}

fn load_b(base: u32, row: u32, col: u32) -> f32 {
  if (row >= p.k || col >= p.n) { return 0.0; }
  if (TRANS_B) { return b[base + col * p.k + row]; }
  return b[base + row * p.n + col];
}

@compute @workgroup_size(8, 8)
fn matmul_forward(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let row0 = wid.y * BM;
  let col0 = wid.x * BN;
  let abase = wid.z * p.stride_a;
  let bbase = wid.z * p.stride_b;
  let cbase = wid.z * p.stride_c;
  let tid = lid.y * 8u + lid.x;

  var acc: array<vec4<f32>, 16>; // rows lid.y*8 + i, cols lid.x*8 + (0..3 | 4..7)
  for (var i = 0u; i < 16u; i++) { acc[i] = vec4<f32>(0.0); }

  for (var k0 = 0u; k0 < p.k; k0 += BK) {
    for (var i = 0u; i < BK; i++) {
      let e = tid + i * 64u;
      var r: u32;
      var kk: u32;
      if (TRANS_A) { kk = e / BM; r = e % BM; } else { r = e / BK; kk = e % BK; }
      tile_a[kk * 16u + r / 4u][r % 4u] = load_a(abase, row0 + r, k0 + kk);
    }
    for (var i = 0u; i < BK; i++) {
      let e = tid + i * 64u;
      var cc: u32;
      var kk: u32;
      if (TRANS_B) { cc = e / BK; kk = e % BK; } else { kk = e / BN; cc = e % BN; }
      tile_b[kk * 16u + cc / 4u][cc % 4u] = load_b(bbase, k0 + kk, col0 + cc);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      let a0 = tile_a[kk * 16u + lid.y * 2u];
      let a1 = tile_a[kk * 16u + lid.y * 2u + 1u];
      let b0 = tile_b[kk * 16u + lid.x * 2u];
      let b1 = tile_b[kk * 16u + lid.x * 2u + 1u];
      for (var i = 0u; i < 4u; i++) {
        acc[2u * i] = fma(vec4<f32>(a0[i]), b0, acc[2u * i]);
        acc[2u * i + 1u] = fma(vec4<f32>(a0[i]), b1, acc[2u * i + 1u]);
        acc[8u + 2u * i] = fma(vec4<f32>(a1[i]), b0, acc[8u + 2u * i]);
        acc[8u + 2u * i + 1u] = fma(vec4<f32>(a1[i]), b1, acc[8u + 2u * i + 1u]);
      }
    }
    workgroupBarrier();
  }

  for (var i = 0u; i < 8u; i++) {
    let row = row0 + lid.y * 8u + i;
    if (row >= p.m) { break; }
    for (var j = 0u; j < 8u; j++) {
      let col = col0 + lid.x * 8u + j;
      if (col >= p.n) { break; }
      let idx = cbase + row * p.n + col;
      var v = p.alpha * acc[2u * i + j / 4u][j % 4u];
      if (p.has_bias != 0u) { v += bias[col]; }
      if (p.beta != 0.0) { v += p.beta * c[idx]; }
      c[idx] = v;
    }
  }
}

// ---- matmul_vec4: no workgroup memory, 16x16 register blocks, vec4 loads ----

fn fetch_a4(i: u32) -> vec4<f32> {
  return a4[i];
}

fn fetch_b4(i: u32) -> vec4<f32> {
  return b4[i];
}

// Row i of the block (acc[i * 4 + j], 16 columns) += op(A) row i times b_j, 4 values of k.
fn row_step(
  acc: ptr<function, array<vec4<f32>, 64>>,
  i: u32,
  a: vec4<f32>,
  b0: mat4x4<f32>,
  b1: mat4x4<f32>,
  b2: mat4x4<f32>,
  b3: mat4x4<f32>,
) {
  (*acc)[i * 4u] = dot4((*acc)[i * 4u], a, b0);
  (*acc)[i * 4u + 1u] = dot4((*acc)[i * 4u + 1u], a, b1);
  (*acc)[i * 4u + 2u] = dot4((*acc)[i * 4u + 2u], a, b2);
  (*acc)[i * 4u + 3u] = dot4((*acc)[i * 4u + 3u], a, b3);
}

// C[row, 4 cv .. 4 cv + 3] = alpha * x + bias + beta * C, unless outside C.
fn store(base: u32, row: u32, cv: u32, x: vec4<f32>) {
  let nv = p.n / 4u;
  if (row >= p.m || cv >= nv) { return; }
  let idx = base + row * nv + cv;
  var v = p.alpha * x;
  if (p.has_bias != 0u) {
    v += vec4<f32>(bias[cv * 4u], bias[cv * 4u + 1u], bias[cv * 4u + 2u], bias[cv * 4u + 3u]);
  }
  if (p.beta != 0.0) { v += p.beta * c4[idx]; }
  c4[idx] = v;
}

fn store_row(
  acc: ptr<function, array<vec4<f32>, 64>>,
  base: u32,
  row0: u32,
  colv0: u32,
  i: u32,
) {
  store(base, row0 + i, colv0, (*acc)[i * 4u]);
  store(base, row0 + i, colv0 + 1u, (*acc)[i * 4u + 1u]);
  store(base, row0 + i, colv0 + 2u, (*acc)[i * 4u + 2u]);
  store(base, row0 + i, colv0 + 3u, (*acc)[i * 4u + 3u]);
}

// Invocation x: the block at rows 16 (x / blocks_n), columns 16 (x % blocks_n).
@compute @workgroup_size(64)
fn matmul_vec4(@builtin(global_invocation_id) gid: vec3u) {
  let blocks_n = (p.n / 4u + 3u) / 4u;
  let row0 = (gid.x / blocks_n) * 16u;
  let colv0 = (gid.x % blocks_n) * 4u;
  if (row0 >= p.m) { return; }
  let abase = gid.z * (p.stride_a / 4u);
  let bbase = gid.z * (p.stride_b / 4u);

  var acc: array<vec4<f32>, 64>; // [i * 4 + j]: row row0 + i, columns 4 (colv0 + j) + 0..3
  for (var kq = 0u; kq < (p.k + 3u) / 4u; kq++) {
    let b0 = b_block(bbase, colv0, kq);
    let b1 = b_block(bbase, colv0 + 1u, kq);
    let b2 = b_block(bbase, colv0 + 2u, kq);
    let b3 = b_block(bbase, colv0 + 3u, kq);
    let a0 = a_block(abase, row0, kq, 0u);
    row_step(&acc, 0u, a0[0], b0, b1, b2, b3);
    row_step(&acc, 1u, a0[1], b0, b1, b2, b3);
    row_step(&acc, 2u, a0[2], b0, b1, b2, b3);
    row_step(&acc, 3u, a0[3], b0, b1, b2, b3);
    let a1 = a_block(abase, row0, kq, 1u);
    row_step(&acc, 4u, a1[0], b0, b1, b2, b3);
    row_step(&acc, 5u, a1[1], b0, b1, b2, b3);
    row_step(&acc, 6u, a1[2], b0, b1, b2, b3);
    row_step(&acc, 7u, a1[3], b0, b1, b2, b3);
    let a2 = a_block(abase, row0, kq, 2u);
    row_step(&acc, 8u, a2[0], b0, b1, b2, b3);
    row_step(&acc, 9u, a2[1], b0, b1, b2, b3);
    row_step(&acc, 10u, a2[2], b0, b1, b2, b3);
    row_step(&acc, 11u, a2[3], b0, b1, b2, b3);
    let a3 = a_block(abase, row0, kq, 3u);
    row_step(&acc, 12u, a3[0], b0, b1, b2, b3);
    row_step(&acc, 13u, a3[1], b0, b1, b2, b3);
    row_step(&acc, 14u, a3[2], b0, b1, b2, b3);
    row_step(&acc, 15u, a3[3], b0, b1, b2, b3);
  }
  let cbase = gid.z * (p.stride_c / 4u);
  store_row(&acc, cbase, row0, colv0, 0u);
  store_row(&acc, cbase, row0, colv0, 1u);
  store_row(&acc, cbase, row0, colv0, 2u);
  store_row(&acc, cbase, row0, colv0, 3u);
  store_row(&acc, cbase, row0, colv0, 4u);
  store_row(&acc, cbase, row0, colv0, 5u);
  store_row(&acc, cbase, row0, colv0, 6u);
  store_row(&acc, cbase, row0, colv0, 7u);
  store_row(&acc, cbase, row0, colv0, 8u);
  store_row(&acc, cbase, row0, colv0, 9u);
  store_row(&acc, cbase, row0, colv0, 10u);
  store_row(&acc, cbase, row0, colv0, 11u);
  store_row(&acc, cbase, row0, colv0, 12u);
  store_row(&acc, cbase, row0, colv0, 13u);
  store_row(&acc, cbase, row0, colv0, 14u);
  store_row(&acc, cbase, row0, colv0, 15u);
}
