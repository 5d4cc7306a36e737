// mse.wgsl — mean-squared error with an optional per-row mask (the MAE loss).
//
// pred, tgt (rows, cols) f32; mask (rows) f32 of 0/1 weights (ignored when
// has_mask = 0, i.e. every row weighs 1).
//   mse_forward:  loss = sum_r m_r * mean_c (pred - tgt)^2 / sum_r m_r   (0 when sum m = 0)
//                 msum = sum_r m_r, saved for the backward
//   mse_backward: dst[r, c] += sign * g * m_r * 2 (pred - tgt) / (cols * msum)
//                 (sign +1 for d pred, -1 for d tgt)
// Forward: a single workgroup of 256 threads strides over the rows and
// tree-reduces (fine for the sizes a loss sees: up to a few million values).
// Backward: one thread per element, workgroup 256, grid (x, y).

struct Params {
  rows: u32,
  cols: u32,
  has_mask: u32,
  sign: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> pred: array<f32>;
@group(0) @binding(2) var<storage, read> tgt: array<f32>;
@group(0) @binding(3) var<storage, read> mask: array<f32>;
@group(0) @binding(4) var<storage, read_write> loss: array<f32>;
@group(0) @binding(5) var<storage, read_write> msum_out: array<f32>;
// backward: (pred, target, mask, g, msum, dst)
@group(0) @binding(4) var<storage, read> g: array<f32>;
@group(0) @binding(5) var<storage, read> msum: array<f32>;
@group(0) @binding(6) var<storage, read_write> dst: array<f32>;

var<workgroup> red_l: array<f32, 256>;
var<workgroup> red_m: array<f32, 256>;

fn weight(r: u32) -> f32 {
  if (p.has_mask == 0u) { return 1.0; }
  return mask[r];
}

@compute @workgroup_size(256)
fn mse_forward(@builtin(local_invocation_id) l: vec3u) {
  var sl = 0.0;
  var sm = 0.0;
  for (var r = l.x; r < p.rows; r += 256u) {
    let m = weight(r);
    if (m != 0.0) {
      var s = 0.0;
      for (var c = 0u; c < p.cols; c++) {
        let d = pred[r * p.cols + c] - tgt[r * p.cols + c];
        s += d * d;
      }
      sl += m * s / f32(p.cols);
    }
    sm += m;
  }
  red_l[l.x] = sl;
  red_m[l.x] = sm;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (l.x < s) {
      red_l[l.x] += red_l[l.x + s];
      red_m[l.x] += red_m[l.x + s];
    }
    workgroupBarrier();
  }
  if (l.x == 0u) {
    let total_m = red_m[0];
    msum_out[0] = total_m;
    if (total_m > 0.0) { loss[0] = red_l[0] / total_m; } else { loss[0] = 0.0; }
  }
}

@compute @workgroup_size(256)
fn mse_backward(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) n: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let i = (w.y * n.x + w.x) * 256u + l.x;
  if (i >= p.rows * p.cols) { return; }
  let total_m = msum[0];
  if (total_m <= 0.0) { return; }
  let r = i / p.cols;
  let coef = p.sign * g[0] * weight(r) * 2.0 / (f32(p.cols) * total_m);
  dst[i] += coef * (pred[i] - tgt[i]);
}
