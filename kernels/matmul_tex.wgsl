// matmul_tex.wgsl — matmul_vec4's product (kernels/matmul.wgsl) with both
// operands read from rgba32float textures instead of storage buffers.
//
//   C[b] = alpha * op(A[b]) @ op(B[b]) + bias (broadcast over rows) + beta * C[b]
//
// Same shapes, transposes (TRANS_A / TRANS_B), strides and shape rules as
// matmul_vec4; the launcher (src/ops/matmul.ts) first copies A and B into
// scratch textures, TEX_W texels (4 f32 each) per texture row: element 4 i of a
// stored operand is texel (i % TEX_W, i / TEX_W).
//
// Why textures: llvmpipe (Mesa 22.3 gallivm) runs an invocation per SIMD lane
// and emits every storage-buffer (and workgroup-memory) load as a loop over the
// 8 lanes with a bounds check and a branch per lane, while a texel fetch is
// vectorised across lanes. Measured in one process on llvmpipe (2 cores, a
// scratch script, medians of 5 interleaved runs), GFLOP/s at 512^3: matmul_vec4
// 18; the same kernel with texel fetches 27; its FMAs alone (loads hoisted out
// of the k loop) 51-64, so loads were most of its time. Tried and dropped:
// B from a uniform buffer (its loads are gathers, not loops: +15%), B staged in
// workgroup memory and read at constant offsets (no faster than storage).
// With cheaper fetches a larger block pays: on 512^3, 8224x256x768 and
// 257x64x260, 16x32 blocks ran 34-39 GFLOP/s against matmul_vec4's 10-24;
// 16x16 and 32x16 blocks were slower everywhere, 32x32 (matmul_tex_tall)
// faster on products of many rows only (src/ops/matmul.ts texTall).
//
// Each invocation computes a 16x32 block of C (matmul_tex) or 32x32
// (matmul_tex_tall): per 4 values of k, one fetch of A per row and 8 of B feed
// 32 vec4 FMAs per row. The block is written without loops over rows (see
// matmul_vec4: a rolled loop kept the accumulators in indexed memory and ran 5x
// slower), and what the epilogue adds is chosen per pipeline (HAS_BIAS,
// ACCUMULATE): compiled into every pipeline, its loads took llvmpipe ~10 s.
// Workgroups of 64 invocations; dispatch grid: (ceil(ceil(m / R) * ceil(n / 32) / 64), 1,
// batch) with R = 16 (matmul_tex) or 32 (matmul_tex_tall).

//#include _matmul_blocks.wgsl

// Per pipeline rather than per dispatch: each term the epilogue can add is 128
// loads, and compiling all of them into every pipeline took llvmpipe ~10 s.
override HAS_BIAS: bool = false;
override ACCUMULATE: bool = false; // C = ... + beta * C

//#include _staged_texel.wgsl

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var a_tex: texture_2d<f32>;
@group(0) @binding(2) var b_tex: texture_2d<f32>;
@group(0) @binding(3) var<storage, read> bias4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> c4: array<vec4<f32>>;

fn fetch_a4(i: u32) -> vec4<f32> {
  return texel(a_tex, i);
}

fn fetch_b4(i: u32) -> vec4<f32> {
  return texel(b_tex, i);
}

// The 8 column blocks of op(B) at one kq.
struct BRow {
  b0: mat4x4<f32>,
  b1: mat4x4<f32>,
  b2: mat4x4<f32>,
  b3: mat4x4<f32>,
  b4: mat4x4<f32>,
  b5: mat4x4<f32>,
  b6: mat4x4<f32>,
  b7: mat4x4<f32>,
}

// One row of the block's accumulators: c_j holds columns 4 j .. 4 j + 3 of 32.
struct Row {
  c0: vec4<f32>,
  c1: vec4<f32>,
  c2: vec4<f32>,
  c3: vec4<f32>,
  c4: vec4<f32>,
  c5: vec4<f32>,
  c6: vec4<f32>,
  c7: vec4<f32>,
}

// r + op(A) row a (4 values of k) times the 8 column blocks.
fn row_step(r: Row, a: vec4<f32>, b: BRow) -> Row {
  return Row(
    dot4(r.c0, a, b.b0),
    dot4(r.c1, a, b.b1),
    dot4(r.c2, a, b.b2),
    dot4(r.c3, a, b.b3),
    dot4(r.c4, a, b.b4),
    dot4(r.c5, a, b.b5),
    dot4(r.c6, a, b.b6),
    dot4(r.c7, a, b.b7),
  );
}

// The 8 column blocks of op(B) at one kq, columns 4 colv0 .. 4 colv0 + 31.
fn b_blocks(base: u32, colv0: u32, kq: u32) -> BRow {
  return BRow(
    b_block(base, colv0, kq),
    b_block(base, colv0 + 1u, kq),
    b_block(base, colv0 + 2u, kq),
    b_block(base, colv0 + 3u, kq),
    b_block(base, colv0 + 4u, kq),
    b_block(base, colv0 + 5u, kq),
    b_block(base, colv0 + 6u, kq),
    b_block(base, colv0 + 7u, kq),
  );
}

// Four rows of the block.
struct Quad {
  r0: Row,
  r1: Row,
  r2: Row,
  r3: Row,
}

// q + op(A) rows a (columns of a_block: 4 rows, 4 values of k each) times b.
fn quad_step(q: Quad, a: mat4x4<f32>, b: BRow) -> Quad {
  return Quad(row_step(q.r0, a[0], b), row_step(q.r1, a[1], b), row_step(q.r2, a[2], b),
    row_step(q.r3, a[3], b));
}

// The bias under the block's 32 columns (zeros without HAS_BIAS).
fn bias_row(colv0: u32) -> Row {
  if (!HAS_BIAS) { return Row(); }
  let last = p.n / 4u - 1u;
  return Row(
    bias4[min(colv0, last)],
    bias4[min(colv0 + 1u, last)],
    bias4[min(colv0 + 2u, last)],
    bias4[min(colv0 + 3u, last)],
    bias4[min(colv0 + 4u, last)],
    bias4[min(colv0 + 5u, last)],
    bias4[min(colv0 + 6u, last)],
    bias4[min(colv0 + 7u, last)],
  );
}

// C[row, 4 cv .. 4 cv + 3] = alpha * x + bias + beta * C, unless outside C.
fn store(base: u32, row: u32, cv: u32, x: vec4<f32>, bias: vec4<f32>) {
  let nv = p.n / 4u;
  if (row >= p.m || cv >= nv) { return; }
  let idx = base + row * nv + cv;
  var v = p.alpha * x + bias;
  if (ACCUMULATE) { v += p.beta * c4[idx]; }
  c4[idx] = v;
}

fn store_quad(base: u32, row: u32, colv0: u32, q: Quad, bias: Row) {
  store_row(base, row, colv0, q.r0, bias);
  store_row(base, row + 1u, colv0, q.r1, bias);
  store_row(base, row + 2u, colv0, q.r2, bias);
  store_row(base, row + 3u, colv0, q.r3, bias);
}

fn store_row(base: u32, row: u32, colv0: u32, r: Row, bias: Row) {
  store(base, row, colv0, r.c0, bias.c0);
  store(base, row, colv0 + 1u, r.c1, bias.c1);
  store(base, row, colv0 + 2u, r.c2, bias.c2);
  store(base, row, colv0 + 3u, r.c3, bias.c3);
  store(base, row, colv0 + 4u, r.c4, bias.c4);
  store(base, row, colv0 + 5u, r.c5, bias.c5);
  store(base, row, colv0 + 6u, r.c6, bias.c6);
  store(base, row, colv0 + 7u, r.c7, bias.c7);
}

// Where an invocation's block lies: rows row0 .., vec4 columns colv0 .. colv0 + 7,
// and its batch item's first vec4 in A, B and C.
struct Block {
  row0: u32,
  colv0: u32,
  abase: u32,
  bbase: u32,
  cbase: u32,
}

// Invocation x: rows `rows` (x / blocks_n), columns 32 (x % blocks_n).
fn block_of(gid: vec3u, rows: u32) -> Block {
  let blocks_n = (p.n / 4u + 7u) / 8u;
  return Block(
    (gid.x / blocks_n) * rows,
    (gid.x % blocks_n) * 8u,
    gid.z * (p.stride_a / 4u),
    gid.z * (p.stride_b / 4u),
    gid.z * (p.stride_c / 4u),
  );
}

// 16x32 blocks.
@compute @workgroup_size(64)
fn matmul_tex(@builtin(global_invocation_id) gid: vec3u) {
  let o = block_of(gid, 16u);
  if (o.row0 >= p.m) { return; }

  var q0: Quad; // rows o.row0 + 0..3
  var q1: Quad;
  var q2: Quad;
  var q3: Quad;
  for (var kq = 0u; kq < (p.k + 3u) / 4u; kq++) {
    let b = b_blocks(o.bbase, o.colv0, kq);
    q0 = quad_step(q0, a_block(o.abase, o.row0, kq, 0u), b);
    q1 = quad_step(q1, a_block(o.abase, o.row0, kq, 1u), b);
    q2 = quad_step(q2, a_block(o.abase, o.row0, kq, 2u), b);
    q3 = quad_step(q3, a_block(o.abase, o.row0, kq, 3u), b);
  }
  let bias = bias_row(o.colv0);
  store_quad(o.cbase, o.row0, o.colv0, q0, bias);
  store_quad(o.cbase, o.row0 + 4u, o.colv0, q1, bias);
  store_quad(o.cbase, o.row0 + 8u, o.colv0, q2, bias);
  store_quad(o.cbase, o.row0 + 12u, o.colv0, q3, bias);
}

// The same with 32-row blocks (256 vec4 accumulators), for products with many
// blocks: twice the FMAs per fetch of B.
// Dispatch grid: (ceil(ceil(m / 32) * ceil(n / 32) / 64), 1, batch).
@compute @workgroup_size(64)
fn matmul_tex_tall(@builtin(global_invocation_id) gid: vec3u) {
  let o = block_of(gid, 32u);
  if (o.row0 >= p.m) { return; }

  var q0: Quad; // rows o.row0 + 0..3
  var q1: Quad;
  var q2: Quad;
  var q3: Quad;
  var q4: Quad;
  var q5: Quad;
  var q6: Quad;
  var q7: Quad;
  for (var kq = 0u; kq < (p.k + 3u) / 4u; kq++) {
    let b = b_blocks(o.bbase, o.colv0, kq);
    q0 = quad_step(q0, a_block(o.abase, o.row0, kq, 0u), b);
    q1 = quad_step(q1, a_block(o.abase, o.row0, kq, 1u), b);
    q2 = quad_step(q2, a_block(o.abase, o.row0, kq, 2u), b);
    q3 = quad_step(q3, a_block(o.abase, o.row0, kq, 3u), b);
    q4 = quad_step(q4, a_block(o.abase, o.row0, kq, 4u), b);
    q5 = quad_step(q5, a_block(o.abase, o.row0, kq, 5u), b);
    q6 = quad_step(q6, a_block(o.abase, o.row0, kq, 6u), b);
    q7 = quad_step(q7, a_block(o.abase, o.row0, kq, 7u), b);
  }
  let bias = bias_row(o.colv0);
  store_quad(o.cbase, o.row0, o.colv0, q0, bias);
  store_quad(o.cbase, o.row0 + 4u, o.colv0, q1, bias);
  store_quad(o.cbase, o.row0 + 8u, o.colv0, q2, bias);
  store_quad(o.cbase, o.row0 + 12u, o.colv0, q3, bias);
  store_quad(o.cbase, o.row0 + 16u, o.colv0, q4, bias);
  store_quad(o.cbase, o.row0 + 20u, o.colv0, q5, bias);
  store_quad(o.cbase, o.row0 + 24u, o.colv0, q6, bias);
  store_quad(o.cbase, o.row0 + 28u, o.colv0, q7, bias);
}
