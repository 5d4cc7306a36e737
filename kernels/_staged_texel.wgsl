// _staged_texel.wgsl — reading a buffer that Gpu.stageTexture (src/gpu/device.ts)
// copied into an rgba32float texture, pasted where a kernel has an include line
// for this file (resolved by kernels/sources.ts). vec4 i of the buffer is texel
// (i % TEX_W, i / TEX_W); & and >> because naga's guarded % and / made a
// pipeline ~10 s slower to compile on llvmpipe.

// Texels per texture row: STAGED_TEXELS_PER_ROW in src/gpu/device.ts.
const TEX_W = 1024u;
const TEX_SHIFT = 10u; // log2(TEX_W)

// vec4 i of a staged buffer.
fn texel(t: texture_2d<f32>, i: u32) -> vec4f {
  return textureLoad(t, vec2u(i & (TEX_W - 1u), i >> TEX_SHIFT), 0);
}
