// elementwise.wgsl — pointwise ops and their backward passes, all f32, flat.
//
// Every entry point handles `n` elements, 4 per thread; workgroup 256;
// grid (x, y) with x * y >= ceil(n / 1024), x <= 65535 (flat id below).
// Binding order is the order of the TypeScript launcher's arguments.
//
//   add_forward:     out = alpha * x + beta * y          (add: 1, 1; sub: 1, -1)
//   add_backward:    y += alpha * x                      (add's rule; every gradient accumulation)
//   mul_forward:     out = x * y
//   mul_backward:    dst += x * y                        (dx += dy * other)
//   scale_forward:   out = alpha * x
//   bias_add_forward out[r, c] = x[r, c] + bias[c],  c = i % cols
//   relu_forward:    out = max(x, 0)
//   relu_backward:   dx += dy * (x > 0)
//   gelu_forward:    out = 0.5 x (1 + tanh(s (x + 0.044715 x^3))), s = sqrt(2 / pi)
//   gelu_backward:   dx += dy * d/dx gelu(x)
//   dropout_forward: out = x * keep(i) / (1 - rate), keep(i) = hash3(seed, stream, i) >= threshold
//   dropout_backward dx += dy * keep(i) / (1 - rate)       (mask recomputed from its key)
//
// Each entry point has a `_vec4` twin computing the same values bit for bit over
// the same bindings viewed as array<vec4f>, one vec4 per thread (so the same grid),
// launched when n (and bias_add's cols) is a multiple of 4: measured 2-9x the
// scalar entry points on llvmpipe, whose strided scalar loop vectorises poorly.

// One uniform struct per family of entry points, fields as in src/ops/elementwise.ts;
// each entry point reads only its own (they alias binding 0).
struct AffineParams { // add_forward, add_backward, scale_forward
  n: u32,
  alpha: f32,
  beta: f32,
}
struct CountParams { // mul_*, relu_*, gelu_*
  n: u32,
}
struct BiasAddParams { // bias_add_forward
  n: u32,
  cols: u32,
}
struct DropoutParams { // dropout_*
  n: u32,
  scale: f32, // 1 / (1 - rate)
  seed: u32,
  stream: u32,
  threshold: u32,
}

@group(0) @binding(0) var<uniform> affine: AffineParams;
@group(0) @binding(0) var<uniform> count: CountParams;
@group(0) @binding(0) var<uniform> bias_add: BiasAddParams;
@group(0) @binding(0) var<uniform> dropout: DropoutParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
// Unary ops bind (x, out) at 1, 2.
@group(0) @binding(2) var<storage, read_write> out2: array<f32>;

// Each thread handles 4 elements, 256 apart, so neighbouring invocations
// (llvmpipe's SIMD lanes) touch neighbouring addresses: measured 1.6x the
// throughput of one element per thread on llvmpipe.
fn flat_id(wid: vec3u, nwg: vec3u, lid: vec3u) -> u32 {
  return (wid.y * nwg.x + wid.x) * 1024u + lid.x;
}

// splitmix32 finalizer; must match splitmix32() in src/rng.ts bit for bit.
fn splitmix32(v: u32) -> u32 {
  var z = v + 0x9e3779b9u;
  z = (z ^ (z >> 16u)) * 0x85ebca6bu;
  z = (z ^ (z >> 13u)) * 0xc2b2ae35u;
  return z ^ (z >> 16u);
}

// Counter-based hash of (seed, stream, index); mirrors hash3() in src/rng.ts.
fn hash3(seed: u32, stream: u32, index: u32) -> u32 {
  let h = splitmix32(seed ^ (stream * 0x27d4eb2du));
  return splitmix32(h ^ index);
}

fn dropout_scale(i: u32) -> f32 {
  if (hash3(dropout.seed, dropout.stream, i) >= dropout.threshold) { return dropout.scale; }
  return 0.0;
}

const GELU_S = 0.7978845608028654;

fn gelu_grad(v: f32) -> f32 {
  // Past |v| = 10 the derivative is 0 or 1 to f32 precision, and v^2 below
  // could overflow (inf * 0 = NaN).
  if (abs(v) > 10.0) { return select(0.0, 1.0, v > 0.0); }
  // Clamp the tanh argument: tanh saturates long before |u| = 15 and large
  // inputs would otherwise overflow x^3 in f32 on some drivers.
  let u = clamp(GELU_S * (v + 0.044715 * v * v * v), -15.0, 15.0);
  let t = tanh(u);
  let du = GELU_S * (1.0 + 3.0 * 0.044715 * v * v);
  return 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * du;
}

@compute @workgroup_size(256)
fn add_forward(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let first = flat_id(w, g, l);
  for (var k = 0u; k < 4u; k++) {
    let i = first + k * 256u;
    if (i >= affine.n) { return; }
    out[i] = affine.alpha * x[i] + affine.beta * y[i];
  }
}

@compute @workgroup_size(256)
fn mul_forward(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let first = flat_id(w, g, l);
  for (var k = 0u; k < 4u; k++) {
    let i = first + k * 256u;
    if (i >= count.n) { return; }
    out[i] = x[i] * y[i];
  }
}

@compute @workgroup_size(256)
fn mul_backward(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let first = flat_id(w, g, l);
  for (var k = 0u; k < 4u; k++) {
    let i = first + k * 256u;
    if (i >= count.n) { return; }
    out[i] += x[i] * y[i];
  }
}

@compute @workgroup_size(256)
fn bias_add_forward(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let first = flat_id(w, g, l);
  for (var k = 0u; k < 4u; k++) {
    let i = first + k * 256u;
    if (i >= bias_add.n) { return; }
    out[i] = x[i] + y[i % bias_add.cols];
  }
}

@compute @workgroup_size(256)
fn relu_backward(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let first = flat_id(w, g, l);
  for (var k = 0u; k < 4u; k++) {
    let i = first + k * 256u;
    if (i >= count.n) { return; }
    // x = the forward input, y = dy
    if (x[i] > 0.0) { out[i] += y[i]; }
  }
}

@compute @workgroup_size(256)
fn gelu_backward(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let first = flat_id(w, g, l);
  for (var k = 0u; k < 4u; k++) {
    let i = first + k * 256u;
    if (i >= count.n) { return; }
    out[i] += y[i] * gelu_grad(x[i]);
  }
}

// ---- unary entry points: bind (x, out2) ----

@compute @workgroup_size(256)
fn add_backward(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let first = flat_id(w, g, l);
  for (var k = 0u; k < 4u; k++) {
    let i = first + k * 256u;
    if (i >= affine.n) { return; }
    out2[i] += affine.alpha * x[i];
  }
}

@compute @workgroup_size(256)
fn scale_forward(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let first = flat_id(w, g, l);
  for (var k = 0u; k < 4u; k++) {
    let i = first + k * 256u;
    if (i >= affine.n) { return; }
    out2[i] = affine.alpha * x[i];
  }
}

@compute @workgroup_size(256)
fn relu_forward(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let first = flat_id(w, g, l);
  for (var k = 0u; k < 4u; k++) {
    let i = first + k * 256u;
    if (i >= count.n) { return; }
    out2[i] = max(x[i], 0.0);
  }
}

@compute @workgroup_size(256)
fn gelu_forward(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let first = flat_id(w, g, l);
  for (var k = 0u; k < 4u; k++) {
    let i = first + k * 256u;
    if (i >= count.n) { return; }
    let v = x[i];
    let u = clamp(GELU_S * (v + 0.044715 * v * v * v), -15.0, 15.0);
    out2[i] = 0.5 * v * (1.0 + tanh(u));
  }
}

@compute @workgroup_size(256)
fn dropout_forward(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let first = flat_id(w, g, l);
  for (var k = 0u; k < 4u; k++) {
    let i = first + k * 256u;
    if (i >= dropout.n) { return; }
    out2[i] = x[i] * dropout_scale(i);
  }
}

@compute @workgroup_size(256)
fn dropout_backward(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let first = flat_id(w, g, l);
  for (var k = 0u; k < 4u; k++) {
    let i = first + k * 256u;
    if (i >= dropout.n) { return; }
    out2[i] += x[i] * dropout_scale(i);
  }
}

// ---- vec4 entry points: the same ops when n (and cols) are multiples of 4 ----
// One vec4 per thread, so a workgroup still covers 1024 elements and the grid is
// the scalar one. Bindings are those of the scalar entry point, viewed as vec4.

@group(0) @binding(1) var<storage, read> x4: array<vec4f>;
@group(0) @binding(2) var<storage, read> y4: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> out4: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> out4_2: array<vec4f>;

fn flat_id4(wid: vec3u, nwg: vec3u, lid: vec3u) -> u32 {
  return (wid.y * nwg.x + wid.x) * 256u + lid.x;
}

@compute @workgroup_size(256)
fn add_forward_vec4(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let q = flat_id4(w, g, l);
  if (q >= affine.n / 4u) { return; }
  out4[q] = affine.alpha * x4[q] + affine.beta * y4[q];
}

@compute @workgroup_size(256)
fn mul_forward_vec4(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let q = flat_id4(w, g, l);
  if (q >= count.n / 4u) { return; }
  out4[q] = x4[q] * y4[q];
}

@compute @workgroup_size(256)
fn mul_backward_vec4(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let q = flat_id4(w, g, l);
  if (q >= count.n / 4u) { return; }
  out4[q] += x4[q] * y4[q];
}

@compute @workgroup_size(256)
fn bias_add_forward_vec4(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let q = flat_id4(w, g, l);
  if (q >= bias_add.n / 4u) { return; }
  out4[q] = x4[q] + y4[q % (bias_add.cols / 4u)];
}

@compute @workgroup_size(256)
fn relu_backward_vec4(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let q = flat_id4(w, g, l);
  if (q >= count.n / 4u) { return; }
  // x = the forward input, y = dy; lanes with x <= 0 keep their value (no + 0, so -0 stays)
  let keep = x4[q] > vec4f(0.0);
  out4[q] = select(out4[q], out4[q] + y4[q], keep);
}

@compute @workgroup_size(256)
fn gelu_backward_vec4(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let q = flat_id4(w, g, l);
  if (q >= count.n / 4u) { return; }
  let v = x4[q];
  out4[q] += y4[q] * vec4f(gelu_grad(v.x), gelu_grad(v.y), gelu_grad(v.z), gelu_grad(v.w));
}

@compute @workgroup_size(256)
fn add_backward_vec4(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let q = flat_id4(w, g, l);
  if (q >= affine.n / 4u) { return; }
  out4_2[q] += affine.alpha * x4[q];
}

@compute @workgroup_size(256)
fn scale_forward_vec4(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let q = flat_id4(w, g, l);
  if (q >= affine.n / 4u) { return; }
  out4_2[q] = affine.alpha * x4[q];
}

@compute @workgroup_size(256)
fn relu_forward_vec4(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let q = flat_id4(w, g, l);
  if (q >= count.n / 4u) { return; }
  out4_2[q] = max(x4[q], vec4f(0.0));
}

@compute @workgroup_size(256)
fn gelu_forward_vec4(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let q = flat_id4(w, g, l);
  if (q >= count.n / 4u) { return; }
  let v = x4[q];
  let u = clamp(GELU_S * (v + 0.044715 * v * v * v), vec4f(-15.0), vec4f(15.0));
  out4_2[q] = 0.5 * v * (1.0 + tanh(u));
}

fn dropout_scale4(q: u32) -> vec4f {
  let i = 4u * q;
  return vec4f(dropout_scale(i), dropout_scale(i + 1u), dropout_scale(i + 2u), dropout_scale(i + 3u));
}

@compute @workgroup_size(256)
fn dropout_forward_vec4(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let q = flat_id4(w, g, l);
  if (q >= dropout.n / 4u) { return; }
  out4_2[q] = x4[q] * dropout_scale4(q);
}

@compute @workgroup_size(256)
fn dropout_backward_vec4(@builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) g: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let q = flat_id4(w, g, l);
  if (q >= dropout.n / 4u) { return; }
  out4_2[q] += x4[q] * dropout_scale4(q);
}
