/**
 * A few lines of SVG writing for the report's charts: escaping, elements,
 * coordinates printed short, the document wrapper and an estimate of text
 * width (SVG has no layout engine, and build machines have no fonts to
 * measure with).
 * @module
 */

/** Escapes `&`, `<`, `>` and quotes for use in SVG text and attribute values. */
export function escapeXml(s: string): string {
  return s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;").replaceAll("'", "&apos;");
}

/**
 * A coordinate or length rounded to 2 decimals, without trailing zeros
 * (a hundredth of a pixel is far below what any renderer shows).
 *
 * @example
 * ```ts
 * import { fmt } from "./svg.ts";
 * if (fmt(12.3456) !== "12.35" || fmt(4) !== "4" || fmt(-0.001) !== "0") throw new Error();
 * ```
 */
export function fmt(v: number): string {
  const r = Math.round(v * 100) / 100;
  return String(Object.is(r, -0) ? 0 : r);
}

/** Attribute values: numbers are printed with {@link fmt}; undefined leaves the attribute out. */
export type Attrs = Record<string, string | number | undefined>;

/**
 * One element: `<name attrs/>`, or `<name attrs>children</name>` when
 * `children` is given (strings are inserted as they are: escape text with
 * {@link escapeXml} or build it with {@link text}).
 *
 * @example
 * ```ts
 * import { el } from "./svg.ts";
 * const s = el("line", { x1: 0, y1: 0.5, x2: 10, y2: 0.5, stroke: "#000" });
 * if (s !== '<line x1="0" y1="0.5" x2="10" y2="0.5" stroke="#000"/>') throw new Error(s);
 * ```
 */
export function el(name: string, attrs: Attrs, children?: string | readonly string[]): string {
  const a = Object.entries(attrs).filter(([, v]) => v !== undefined)
    .map(([k, v]) => ` ${k}="${typeof v === "number" ? fmt(v) : escapeXml(v!)}"`).join("");
  if (children === undefined) return `<${name}${a}/>`;
  const body = typeof children === "string" ? children : children.join("\n");
  return `<${name}${a}>${body}</${name}>`;
}

/** A `<text>` element holding `s` (escaped). */
export function text(attrs: Attrs, s: string): string {
  return el("text", attrs, escapeXml(s));
}

/** Font stack of every figure: the sans-serif faces found on most systems. */
export const FONT_FAMILY = "DejaVu Sans, Helvetica, Arial, sans-serif";

/**
 * A generous estimate of the width of `s` at `size` px in {@link FONT_FAMILY}
 * (0.62 em a character: DejaVu Sans averages about 0.55 em on mixed text,
 * digits are 0.64 em), used to leave room for labels and size the legend.
 */
export function textWidth(s: string, size: number): number {
  return [...s].length * 0.62 * size;
}

/**
 * A complete SVG document of `width` x `height` user units (pixels at 100%)
 * with a white background, `title` as its accessible name, and `body`. The
 * viewBox makes it scale to any displayed size.
 */
export function svgDocument(
  width: number,
  height: number,
  title: string,
  body: readonly string[],
): string {
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${fmt(width)}" height="${fmt(height)}" ` +
    `viewBox="0 0 ${fmt(width)} ${fmt(height)}" font-family="${FONT_FAMILY}">`,
    el("title", {}, escapeXml(title)),
    el("rect", { width, height, fill: "#ffffff" }),
    ...body,
    "</svg>",
    "",
  ].join("\n");
}

/** Standard base64 of `bytes` (for a PNG embedded as a data: URI). */
export function base64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}
