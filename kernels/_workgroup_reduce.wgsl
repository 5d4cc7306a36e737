// _workgroup_reduce.wgsl — tree reductions over the 64 threads of a workgroup,
// pasted where a kernel has an include line for this file (resolved by
// kernels/sources.ts; WGSL has no includes of its own).
// Every thread gets the result. Call from uniform control flow: each helper
// has barriers. Only the workgroup array a kernel's entry point uses is allocated.

var<workgroup> red_f32: array<f32, 64>;
var<workgroup> red_vec2: array<vec2f, 64>;

fn reduce_max(t: u32, v: f32) -> f32 {
  red_f32[t] = v;
  workgroupBarrier();
  for (var s = 32u; s > 0u; s >>= 1u) {
    if (t < s) { red_f32[t] = max(red_f32[t], red_f32[t + s]); }
    workgroupBarrier();
  }
  let r = red_f32[0];
  workgroupBarrier();
  return r;
}

fn reduce_sum(t: u32, v: f32) -> f32 {
  red_f32[t] = v;
  workgroupBarrier();
  for (var s = 32u; s > 0u; s >>= 1u) {
    if (t < s) { red_f32[t] = red_f32[t] + red_f32[t + s]; }
    workgroupBarrier();
  }
  let r = red_f32[0];
  workgroupBarrier();
  return r;
}

fn reduce_sum2(t: u32, v: vec2f) -> vec2f {
  red_vec2[t] = v;
  workgroupBarrier();
  for (var s = 32u; s > 0u; s >>= 1u) {
    if (t < s) { red_vec2[t] = red_vec2[t] + red_vec2[t + s]; }
    workgroupBarrier();
  }
  let r = red_vec2[0];
  workgroupBarrier();
  return r;
}
