/**
 * The WGSL sources, imported as text so that they ship with the module graph
 * (no file reads at run time). Add a line here when adding a kernel file.
 * @module
 */
import matmul from "./matmul.wgsl" with { type: "text" };
import reduce from "./reduce.wgsl" with { type: "text" };

/** Kernel file name → WGSL source. */
export const KERNEL_SOURCES = {
  "matmul.wgsl": matmul,
  "reduce.wgsl": reduce,
} as const;
