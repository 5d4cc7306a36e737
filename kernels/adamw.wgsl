// adamw.wgsl — one AdamW step over every parameter of a model at once.
//
// param, grad, m, v are the flat parameter store (n f32); decay is a bitmask,
// bit i of decay[i / 32] set when parameter element i gets weight decay.
//   m = beta1 m + (1 - beta1) g;   v = beta2 v + (1 - beta2) g^2
//   param -= lr * (m * bc1 / (sqrt(v * bc2) + eps) + wd * [decay] * param)
// bc1 = 1 / (1 - beta1^t), bc2 = 1 / (1 - beta2^t): bias corrections computed
// on the host in f64. Decoupled weight decay (Loshchilov & Hutter); with
// wd = 0 this is Adam. PyTorch applies the decay to the pre-step param, as here.
// One thread per element, workgroup 256, grid (x, y).

struct Params {
  n: u32,
  lr: f32,
  beta1: f32,
  beta2: f32,
  eps: f32,
  wd: f32,
  bc1: f32,
  bc2: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read> decay: array<u32>;
@group(0) @binding(3) var<storage, read_write> param: array<f32>;
@group(0) @binding(4) var<storage, read_write> m: array<f32>;
@group(0) @binding(5) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(256)
fn adamw_step(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) n: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let i = (w.y * n.x + w.x) * 256u + l.x;
  if (i >= p.n) { return; }
  let g = grad[i];
  let mi = p.beta1 * m[i] + (1.0 - p.beta1) * g;
  let vi = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
  m[i] = mi;
  v[i] = vi;
  var wd = 0.0;
  if (((decay[i / 32u] >> (i % 32u)) & 1u) != 0u) { wd = p.wd; }
  let x = param[i];
  param[i] = x - p.lr * (mi * p.bc1 / (sqrt(vi * p.bc2) + p.eps) + wd * x);
}
