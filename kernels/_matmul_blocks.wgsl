// _matmul_blocks.wgsl — what matmul_vec4 (matmul.wgsl) and matmul_tex
// (matmul_tex.wgsl) share: the uniform parameters, the transposes, and the
// 4x4 blocks of op(A) and op(B) both multiply, pasted where a kernel has an
// include line for this file (resolved by kernels/sources.ts). The including
// file defines fetch_a4(i) and fetch_b4(i): vec4 i of stored A and B.

struct Params {
  batch: u32,
  m: u32,
  n: u32,
  k: u32,
  stride_a: u32,
  stride_b: u32,
  stride_c: u32,
  alpha: f32,
  beta: f32,
  has_bias: u32,
}

override TRANS_A: bool = false;
override TRANS_B: bool = false;
// Set when A is transposed, B is not and k % 4 != 0: only then do loads past k
// happen (and read zeros); the checks cost ~10% of a product that needs none.
override K_TAIL: bool = false;

// With TRANS_A and not TRANS_B neither operand is read along k as whole
// vec4s, so k need not be divisible by 4: the last group reads zeros past k
// (K_TAIL).
fn a_t_row(base: u32, mv: u32, kk: u32) -> vec4<f32> {
  if (!K_TAIL) { return fetch_a4(base + kk * mv); }
  return select(vec4<f32>(0.0), fetch_a4(base + min(kk, p.k - 1u) * mv), kk < p.k);
}

fn b_row(base: u32, nv: u32, kk: u32) -> vec4<f32> {
  if (!K_TAIL) { return fetch_b4(base + kk * nv); }
  return select(vec4<f32>(0.0), fetch_b4(base + min(kk, p.k - 1u) * nv), kk < p.k);
}

// Rows row0 + 4q + 0..3 of op(A) at k = 4 kq + 0..3: column r is row 4q + r, component t is k.
// Rows past m are clamped to the last row (their results are never stored).
fn a_block(base: u32, row0: u32, kq: u32, q: u32) -> mat4x4<f32> {
  if (TRANS_A) {
    let mv = p.m / 4u;
    let rv = min(row0 / 4u + q, mv - 1u);
    return transpose(mat4x4<f32>(
      a_t_row(base + rv, mv, kq * 4u),
      a_t_row(base + rv, mv, kq * 4u + 1u),
      a_t_row(base + rv, mv, kq * 4u + 2u),
      a_t_row(base + rv, mv, kq * 4u + 3u),
    ));
  }
  let kv = p.k / 4u;
  let r = row0 + q * 4u;
  return mat4x4<f32>(
    fetch_a4(base + min(r, p.m - 1u) * kv + kq),
    fetch_a4(base + min(r + 1u, p.m - 1u) * kv + kq),
    fetch_a4(base + min(r + 2u, p.m - 1u) * kv + kq),
    fetch_a4(base + min(r + 3u, p.m - 1u) * kv + kq),
  );
}

// Columns 4 cv + 0..3 of op(B) at k = 4 kq + 0..3: column t is k, components are the columns.
fn b_block(base: u32, cv: u32, kq: u32) -> mat4x4<f32> {
  let kv = p.k / 4u;
  if (TRANS_B) {
    let c = cv * 4u;
    return transpose(mat4x4<f32>(
      fetch_b4(base + min(c, p.n - 1u) * kv + kq),
      fetch_b4(base + min(c + 1u, p.n - 1u) * kv + kq),
      fetch_b4(base + min(c + 2u, p.n - 1u) * kv + kq),
      fetch_b4(base + min(c + 3u, p.n - 1u) * kv + kq),
    ));
  }
  let nv = p.n / 4u;
  let cc = min(cv, nv - 1u);
  if (TRANS_A) {
    return mat4x4<f32>(
      b_row(base + cc, nv, kq * 4u),
      b_row(base + cc, nv, kq * 4u + 1u),
      b_row(base + cc, nv, kq * 4u + 2u),
      b_row(base + cc, nv, kq * 4u + 3u),
    );
  }
  return mat4x4<f32>(
    fetch_b4(base + (kq * 4u) * nv + cc),
    fetch_b4(base + (kq * 4u + 1u) * nv + cc),
    fetch_b4(base + (kq * 4u + 2u) * nv + cc),
    fetch_b4(base + (kq * 4u + 3u) * nv + cc),
  );
}

// acc + sum over t of a[t] * b[t], t in k order: one row of C, 4 columns, 4 values of k.
fn dot4(acc: vec4<f32>, a: vec4<f32>, b: mat4x4<f32>) -> vec4<f32> {
  let s = fma(b[1], vec4<f32>(a.y), fma(b[0], vec4<f32>(a.x), acc));
  return fma(b[3], vec4<f32>(a.w), fma(b[2], vec4<f32>(a.z), s));
}
