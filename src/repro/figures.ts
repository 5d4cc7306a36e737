/**
 * Raster figures for the repro report, with no dependency beyond the PNG
 * encoder: a line chart (training-loss curves, the masking-ratio sweep) and an
 * image grid (the Figure-2 style masked input / reconstruction / ground truth).
 *
 * Build machines have no fonts, so text is drawn from an embedded 5x7 bitmap
 * font at integer scale factors. Everything renders into a {@link Canvas} of
 * 8-bit RGB pixels, row-major, origin top-left.
 *
 * @example
 * ```ts
 * import { lineChart } from "./figures.ts";
 * const png = lineChart({
 *   title: "Pre-training loss",
 *   xLabel: "step",
 *   yLabel: "loss",
 *   series: [{ name: "run a", points: [[0, 1.2], [100, 0.8], [200, 0.6]] }],
 * });
 * if (png[1] !== 0x50) throw new Error("not a PNG");
 * ```
 * @module
 */

import { encode } from "png";

/** An 8-bit RGB colour. */
export type Rgb = readonly [number, number, number];

const WHITE: Rgb = [255, 255, 255];
const BLACK: Rgb = [0, 0, 0];
const AXIS: Rgb = [40, 40, 40];
const GRID: Rgb = [225, 225, 225];
const LEGEND_BORDER: Rgb = [170, 170, 170];
/** Drawn for NaN / infinite pixels of a float image, so they stand out. */
const NON_FINITE: Rgb = [255, 0, 255];
/** matplotlib's tab10 cycle: distinguishable, and familiar to readers of ML papers. */
const PALETTE: readonly Rgb[] = [
  [31, 119, 180],
  [255, 127, 14],
  [44, 160, 44],
  [214, 39, 40],
  [148, 103, 189],
  [140, 86, 75],
  [227, 119, 194],
  [127, 127, 127],
  [188, 189, 34],
  [23, 190, 207],
];

// ---------------------------------------------------------------------------
// Font
// ---------------------------------------------------------------------------

/**
 * Glyph size in font pixels; characters advance by GLYPH_W + 1. GLYPH_H is the
 * height above the baseline, the one layout uses; descenders hang 2 rows below.
 */
const GLYPH_W = 5, GLYPH_H = 7;

/** 5x7 glyphs, one string per row, '#' = ink. Unknown characters draw as '?'. */
const FONT_ROWS: Record<string, string> = {
  "0": ".###. #...# #..## #.#.# ##..# #...# .###.",
  "1": "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.",
  "2": ".###. #...# ....# ...#. ..#.. .#... #####",
  "3": "##### ...#. ..#.. ...#. ....# #...# .###.",
  "4": "...#. ..##. .#.#. #..#. ##### ...#. ...#.",
  "5": "##### #.... ####. ....# ....# #...# .###.",
  "6": "..##. .#... #.... ####. #...# #...# .###.",
  "7": "##### ....# ...#. ..#.. .#... .#... .#...",
  "8": ".###. #...# #...# .###. #...# #...# .###.",
  "9": ".###. #...# #...# .#### ....# ...#. .##..",
  "A": ".###. #...# #...# ##### #...# #...# #...#",
  "B": "####. #...# #...# ####. #...# #...# ####.",
  "C": ".###. #...# #.... #.... #.... #...# .###.",
  "D": "###.. #..#. #...# #...# #...# #..#. ###..",
  "E": "##### #.... #.... ####. #.... #.... #####",
  "F": "##### #.... #.... ####. #.... #.... #....",
  "G": ".###. #...# #.... #.### #...# #...# .####",
  "H": "#...# #...# #...# ##### #...# #...# #...#",
  "I": ".###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.",
  "J": "..### ...#. ...#. ...#. ...#. #..#. .##..",
  "K": "#...# #..#. #.#.. ##... #.#.. #..#. #...#",
  "L": "#.... #.... #.... #.... #.... #.... #####",
  "M": "#...# ##.## #.#.# #.#.# #...# #...# #...#",
  "N": "#...# #...# ##..# #.#.# #..## #...# #...#",
  "O": ".###. #...# #...# #...# #...# #...# .###.",
  "P": "####. #...# #...# ####. #.... #.... #....",
  "Q": ".###. #...# #...# #...# #.#.# #..#. .##.#",
  "R": "####. #...# #...# ####. #.#.. #..#. #...#",
  "S": ".#### #.... #.... .###. ....# ....# ####.",
  "T": "##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..",
  "U": "#...# #...# #...# #...# #...# #...# .###.",
  "V": "#...# #...# #...# #...# #...# .#.#. ..#..",
  "W": "#...# #...# #...# #.#.# #.#.# #.#.# .#.#.",
  "X": "#...# #...# .#.#. ..#.. .#.#. #...# #...#",
  "Y": "#...# #...# .#.#. ..#.. ..#.. ..#.. ..#..",
  "Z": "##### ....# ...#. ..#.. .#... #.... #####",
  // g, j, p, q, y and the comma have two more rows, below the baseline.
  "a": "..... ..... .###. ....# .#### #...# .####",
  "b": "#.... #.... #.##. ##..# #...# #...# ####.",
  "c": "..... ..... .###. #.... #.... #...# .###.",
  "d": "....# ....# .##.# #..## #...# #...# .####",
  "e": "..... ..... .###. #...# ##### #.... .###.",
  "f": "..##. .#..# .#... ###.. .#... .#... .#...",
  "g": "..... ..... .#### #...# #...# #...# .#### ....# .###.",
  "h": "#.... #.... #.##. ##..# #...# #...# #...#",
  "i": "..#.. ..... .##.. ..#.. ..#.. ..#.. .###.",
  "j": "...#. ..... ..##. ...#. ...#. ...#. ...#. #..#. .##..",
  "k": "#.... #.... #..#. #.#.. ##... #.#.. #..#.",
  "l": ".##.. ..#.. ..#.. ..#.. ..#.. ..#.. .###.",
  "m": "..... ..... ##.#. #.#.# #.#.# #...# #...#",
  "n": "..... ..... #.##. ##..# #...# #...# #...#",
  "o": "..... ..... .###. #...# #...# #...# .###.",
  "p": "..... ..... ####. #...# #...# #...# ####. #.... #....",
  "q": "..... ..... .#### #...# #...# #...# .#### ....# ....#",
  "r": "..... ..... #.##. ##..# #.... #.... #....",
  "s": "..... ..... .###. #.... .###. ....# ####.",
  "t": ".#... .#... ###.. .#... .#... .#..# ..##.",
  "u": "..... ..... #...# #...# #...# #..## .##.#",
  "v": "..... ..... #...# #...# #...# .#.#. ..#..",
  "w": "..... ..... #...# #...# #.#.# #.#.# .#.#.",
  "x": "..... ..... #...# .#.#. ..#.. .#.#. #...#",
  "y": "..... ..... #...# #...# #...# #...# .#### ....# .###.",
  "z": "..... ..... ##### ...#. ..#.. .#... #####",
  ".": "..... ..... ..... ..... ..... .##.. .##..",
  ",": "..... ..... ..... ..... ..... .##.. .##.. ..#.. .#...",
  "-": "..... ..... ..... .###. ..... ..... .....",
  "%": "##... ##..# ...#. ..#.. .#... #..## ...##",
  "(": "...#. ..#.. .#... .#... .#... ..#.. ...#.",
  ")": ".#... ..#.. ...#. ...#. ...#. ..#.. .#...",
  ":": "..... .##.. .##.. ..... .##.. .##.. .....",
  "/": "..... ....# ...#. ..#.. .#... #.... .....",
  "=": "..... ..... ##### ..... ##### ..... .....",
  "+": "..... ..#.. ..#.. ##### ..#.. ..#.. .....",
  "_": "..... ..... ..... ..... ..... ..... #####",
  "'": "..#.. ..#.. .#... ..... ..... ..... .....",
  "?": ".###. #...# ....# ...#. ..#.. ..... ..#..",
  " ": "..... ..... ..... ..... ..... ..... .....",
};

/** Each glyph as GLYPH_H row bitmasks, bit (GLYPH_W - 1 - x) set where column x has ink. */
const FONT: ReadonlyMap<string, readonly number[]> = new Map(
  Object.entries(FONT_ROWS).map(([ch, rows]) => [
    ch,
    rows.split(" ").map((row) =>
      [...row].reduce((bits, c) => (bits << 1) | (c === "#" ? 1 : 0), 0)
    ),
  ]),
);

function glyph(ch: string): readonly number[] {
  return FONT.get(ch) ?? FONT.get("?")!;
}

/** Width in pixels of `s` drawn by {@link Canvas.text} at `scale` (no trailing gap). */
export function textWidth(s: string, scale = 1): number {
  const n = [...s].length;
  return n === 0 ? 0 : (n * (GLYPH_W + 1) - 1) * scale;
}

/** Height in pixels of one line of text at `scale`, baseline to cap top (descenders hang 2 * `scale` below). */
export function textHeight(scale = 1): number {
  return GLYPH_H * scale;
}

// ---------------------------------------------------------------------------
// Canvas and PNG
// ---------------------------------------------------------------------------

/**
 * Encodes 8-bit RGB pixels (row-major, 3 bytes a pixel, `width * height * 3`
 * bytes) as a PNG file.
 *
 * @example
 * ```ts
 * import { encodeRgbPng } from "./figures.ts";
 * const png = encodeRgbPng(2, 1, new Uint8Array([255, 0, 0, 0, 0, 255]));
 * if (png.length === 0) throw new Error("empty");
 * ```
 */
export function encodeRgbPng(width: number, height: number, rgb: Uint8Array): Uint8Array {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new Error(`encodeRgbPng: bad size ${width}x${height}`);
  }
  if (rgb.length !== width * height * 3) {
    throw new Error(
      `encodeRgbPng: expected ${
        width * height * 3
      } bytes for ${width}x${height} RGB, got ${rgb.length}`,
    );
  }
  return encode({ width, height, data: rgb, channels: 3, depth: 8 });
}

/**
 * A small RGB raster with the drawing primitives the figures need. Drawing is
 * clipped to the canvas and to an optional clip rectangle ({@link Canvas.setClip}).
 *
 * @example
 * ```ts
 * import { Canvas } from "./figures.ts";
 * const c = new Canvas(40, 20);
 * c.line(0, 0, 39, 19, [255, 0, 0], 2);
 * c.text(2, 2, "8", [0, 0, 0], 1);
 * const png = c.toPng();
 * if (png.length === 0) throw new Error("empty");
 * ```
 */
export class Canvas {
  /** Width in pixels. */
  readonly width: number;
  /** Height in pixels. */
  readonly height: number;
  /** RGB bytes, row-major, 3 a pixel. */
  readonly data: Uint8Array;
  #clip = { x0: 0, y0: 0, x1: 0, y1: 0 };

  /** A `width` x `height` canvas filled with `background` (white by default). */
  constructor(width: number, height: number, background: Rgb = WHITE) {
    if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
      throw new Error(`Canvas: bad size ${width}x${height}`);
    }
    this.width = width;
    this.height = height;
    this.data = new Uint8Array(width * height * 3);
    this.clearClip();
    this.fill(background);
  }

  /** Restricts later drawing to the rectangle at (x, y) of size w x h (intersected with the canvas). */
  setClip(x: number, y: number, w: number, h: number): void {
    this.#clip = {
      x0: Math.max(0, Math.floor(x)),
      y0: Math.max(0, Math.floor(y)),
      x1: Math.min(this.width - 1, Math.floor(x + w - 1)),
      y1: Math.min(this.height - 1, Math.floor(y + h - 1)),
    };
  }

  /** Lets drawing reach the whole canvas again. */
  clearClip(): void {
    this.#clip = { x0: 0, y0: 0, x1: this.width - 1, y1: this.height - 1 };
  }

  /** Sets one pixel; coordinates are rounded and out-of-clip pixels ignored. */
  pixel(x: number, y: number, color: Rgb): void {
    x = Math.round(x);
    y = Math.round(y);
    const c = this.#clip;
    if (x < c.x0 || x > c.x1 || y < c.y0 || y > c.y1) return;
    const i = (y * this.width + x) * 3;
    this.data[i] = color[0];
    this.data[i + 1] = color[1];
    this.data[i + 2] = color[2];
  }

  /** The colour at (x, y), which must lie on the canvas. */
  get(x: number, y: number): Rgb {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) {
      throw new Error(`Canvas.get: (${x}, ${y}) is outside ${this.width}x${this.height}`);
    }
    const i = (y * this.width + x) * 3;
    return [this.data[i], this.data[i + 1], this.data[i + 2]];
  }

  /** Paints the whole canvas, ignoring the clip rectangle. */
  fill(color: Rgb): void {
    for (let i = 0; i < this.data.length; i += 3) {
      this.data[i] = color[0];
      this.data[i + 1] = color[1];
      this.data[i + 2] = color[2];
    }
  }

  /** Fills the w x h rectangle whose top-left pixel is (x, y). */
  rect(x: number, y: number, w: number, h: number, color: Rgb): void {
    const c = this.#clip;
    const xa = Math.max(c.x0, Math.round(x)), xb = Math.min(c.x1, Math.round(x + w) - 1);
    const ya = Math.max(c.y0, Math.round(y)), yb = Math.min(c.y1, Math.round(y + h) - 1);
    for (let py = ya; py <= yb; py++) {
      for (let px = xa; px <= xb; px++) {
        const i = (py * this.width + px) * 3;
        this.data[i] = color[0];
        this.data[i + 1] = color[1];
        this.data[i + 2] = color[2];
      }
    }
  }

  /** Draws the 1-pixel outline of the w x h rectangle whose top-left pixel is (x, y). */
  strokeRect(x: number, y: number, w: number, h: number, color: Rgb): void {
    this.rect(x, y, w, 1, color);
    this.rect(x, y + h - 1, w, 1, color);
    this.rect(x, y, 1, h, color);
    this.rect(x + w - 1, y, 1, h, color);
  }

  /**
   * Draws a straight line from (x0, y0) to (x1, y1) with Bresenham's
   * algorithm, stamping a `thickness` x `thickness` square at each step.
   */
  line(x0: number, y0: number, x1: number, y1: number, color: Rgb, thickness = 1): void {
    const t = Math.max(1, Math.round(thickness));
    // Clip first so that a far-off endpoint (a huge value against a fixed
    // yRange) does not make Bresenham walk millions of off-canvas pixels.
    const c = this.#clip;
    const seg = clipSegment(x0, y0, x1, y1, c.x0 - t, c.y0 - t, c.x1 + t, c.y1 + t);
    if (seg === null) return;
    let [ax, ay, bx, by] = seg.map(Math.round);
    const lo = -Math.floor((t - 1) / 2);
    const dx = Math.abs(bx - ax), dy = -Math.abs(by - ay);
    const sx = ax < bx ? 1 : -1, sy = ay < by ? 1 : -1;
    let err = dx + dy;
    for (;;) {
      if (t === 1) this.pixel(ax, ay, color);
      else this.rect(ax + lo, ay + lo, t, t, color);
      if (ax === bx && ay === by) break;
      const e2 = 2 * err;
      if (e2 >= dy) {
        err += dy;
        ax += sx;
      }
      if (e2 <= dx) {
        err += dx;
        ay += sy;
      }
    }
  }

  /** Fills the disc of radius `r` centred on (cx, cy). */
  disc(cx: number, cy: number, r: number, color: Rgb): void {
    const ri = Math.ceil(r);
    const x = Math.round(cx), y = Math.round(cy);
    for (let dy = -ri; dy <= ri; dy++) {
      for (let dx = -ri; dx <= ri; dx++) {
        if (dx * dx + dy * dy <= r * r + r * 0.5) this.pixel(x + dx, y + dy, color);
      }
    }
  }

  /**
   * Draws `s` with the embedded 5x7 font, each font pixel a `scale` x `scale`
   * block; (x, y) is the top-left corner of the first glyph cell.
   */
  text(x: number, y: number, s: string, color: Rgb, scale = 1): void {
    x = Math.round(x);
    y = Math.round(y);
    let cx = x;
    for (const ch of s) {
      const rows = glyph(ch);
      for (let gy = 0; gy < rows.length; gy++) {
        for (let gx = 0; gx < GLYPH_W; gx++) {
          if ((rows[gy] >> (GLYPH_W - 1 - gx)) & 1) {
            this.rect(cx + gx * scale, y + gy * scale, scale, scale, color);
          }
        }
      }
      cx += (GLYPH_W + 1) * scale;
    }
  }

  /**
   * Draws `s` rotated 90 degrees counter-clockwise (reading bottom to top, as
   * a y-axis label); (x, y) is the top-left corner of the rotated box, which
   * is `textHeight(scale)` wide (descenders reach 2 * `scale` further right)
   * and `textWidth(s, scale)` tall.
   */
  textUp(x: number, y: number, s: string, color: Rgb, scale = 1): void {
    x = Math.round(x);
    y = Math.round(y);
    const w = textWidth(s, scale);
    let cx = 0;
    for (const ch of s) {
      const rows = glyph(ch);
      for (let gy = 0; gy < rows.length; gy++) {
        for (let gx = 0; gx < GLYPH_W; gx++) {
          if ((rows[gy] >> (GLYPH_W - 1 - gx)) & 1) {
            // (px, py) in horizontal text goes to (py, w - 1 - px) after the turn.
            const px = cx + gx * scale, py = gy * scale;
            this.rect(x + py, y + w - px - scale, scale, scale, color);
          }
        }
      }
      cx += (GLYPH_W + 1) * scale;
    }
  }

  /** The canvas as PNG bytes. */
  toPng(): Uint8Array {
    return encodeRgbPng(this.width, this.height, this.data);
  }
}

/** Liang-Barsky: the part of the segment inside the box, or null if none. */
function clipSegment(
  x0: number,
  y0: number,
  x1: number,
  y1: number,
  xmin: number,
  ymin: number,
  xmax: number,
  ymax: number,
): [number, number, number, number] | null {
  const dx = x1 - x0, dy = y1 - y0;
  let t0 = 0, t1 = 1;
  const edges: [number, number][] = [
    [-dx, x0 - xmin],
    [dx, xmax - x0],
    [-dy, y0 - ymin],
    [dy, ymax - y0],
  ];
  for (const [p, q] of edges) {
    if (p === 0) {
      if (q < 0) return null;
    } else {
      const r = q / p;
      if (p < 0) t0 = Math.max(t0, r);
      else t1 = Math.min(t1, r);
      if (t0 > t1) return null;
    }
  }
  return [x0 + t0 * dx, y0 + t0 * dy, x0 + t1 * dx, y0 + t1 * dy];
}

// ---------------------------------------------------------------------------
// Axes
// ---------------------------------------------------------------------------

/** The ticks of one axis: its final range and the tick values inside it. */
export interface Ticks {
  /** Axis lower bound. */
  lo: number;
  /** Axis upper bound. */
  hi: number;
  /** Distance between ticks, 1, 2 or 5 times a power of ten. */
  step: number;
  /** Tick values, multiples of `step` within [lo, hi]. */
  values: number[];
}

/**
 * About `target` + 1 "nice" ticks (steps of 1, 2 or 5 times a power of ten)
 * over [lo, hi]. With `extend`, the range is widened outward to whole steps
 * (used for ranges taken from the data); otherwise it is kept as given.
 *
 * @example
 * ```ts
 * import { niceTicks } from "./figures.ts";
 * const t = niceTicks(0.2, 2.5, 5, true);
 * if (t.lo !== 0 || t.hi !== 2.5 || t.step !== 0.5) throw new Error("not nice");
 * ```
 */
export function niceTicks(lo: number, hi: number, target = 5, extend = false): Ticks {
  if (!Number.isFinite(lo) || !Number.isFinite(hi) || !(hi > lo)) {
    throw new Error(`niceTicks: need finite lo < hi, got [${lo}, ${hi}]`);
  }
  const raw = (hi - lo) / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  const step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  // Tick values are computed as integer multiples of `step` and then rounded
  // to the step's decimals, so 0.1 * 3 prints as 0.3, not 0.30000000000000004.
  const decimals = stepDecimals(step);
  const snap = (v: number) => Number(v.toFixed(Math.min(20, decimals)));
  const eps = step * 1e-9;
  if (extend) {
    lo = snap(Math.floor(lo / step + 1e-9) * step);
    hi = snap(Math.ceil(hi / step - 1e-9) * step);
  }
  const values: number[] = [];
  for (let k = Math.ceil((lo - eps) / step); k * step <= hi + eps; k++) values.push(snap(k * step));
  return { lo, hi, step, values };
}

/** Digits after the point needed to print multiples of `step` exactly. */
function stepDecimals(step: number): number {
  let d = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  while (d < 12 && Math.abs(step * 10 ** d - Math.round(step * 10 ** d)) > 1e-6) d++;
  return d;
}

/** A tick label: fixed-point with the step's decimals, exponent form for very large or small ticks. */
function formatTick(v: number, step: number): string {
  if (v === 0) return "0";
  if (Math.abs(v) >= 1e6 || step < 1e-4) return Number(v.toPrecision(3)).toExponential();
  return v.toFixed(stepDecimals(step));
}

/** The data range padded when it is empty or a single value, so it can be drawn. */
function dataRange(values: number[]): [number, number] {
  if (values.length === 0) return [0, 1];
  let lo = Infinity, hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (lo === hi) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    return [lo - pad, hi + pad];
  }
  return [lo, hi];
}

function axisTicks(values: number[], fixed: readonly [number, number] | undefined): Ticks {
  if (fixed) return niceTicks(fixed[0], fixed[1], 5, false);
  const [lo, hi] = dataRange(values);
  return niceTicks(lo, hi, 5, true);
}

// ---------------------------------------------------------------------------
// Line chart
// ---------------------------------------------------------------------------

/** One series of a {@link lineChart}. */
export interface LineSeries {
  /** Legend entry. */
  name: string;
  /** (x, y) pairs, joined in the given order; pairs with a non-finite value are skipped and break the line. */
  points: readonly (readonly [number, number])[];
  /** Defaults to the next colour of the tab10 cycle. */
  color?: Rgb;
  /** "line" (default), "points" (markers only) or "line+points". */
  style?: "line" | "points" | "line+points";
}

/** Options of {@link lineChart}. */
export interface LineChartOptions {
  /** Drawn centred above the plot. */
  title: string;
  /** Drawn below the x axis. */
  xLabel: string;
  /** Drawn rotated left of the y axis. */
  yLabel: string;
  /** Drawn in order, later series on top. */
  series: readonly LineSeries[];
  /** Image width in pixels (default 640). */
  width?: number;
  /** Image height in pixels (default 400). */
  height?: number;
  /** Fixed x range; by default the data range widened to whole tick steps. */
  xRange?: readonly [number, number];
  /** Fixed y range; by default the data range widened to whole tick steps. */
  yRange?: readonly [number, number];
  /** Scale of the axis-label, tick and legend font (default 2, i.e. 14 px text; the title is one step larger). */
  fontScale?: number;
}

/**
 * Renders a line chart to PNG bytes: white background, framed plot area with
 * light grid lines at about five nice ticks per axis, numeric tick labels,
 * axis labels and a legend with each series' name in its colour. The legend
 * goes in the plot corner that covers the fewest data pixels.
 *
 * Points with a NaN or infinite coordinate are skipped (the line breaks
 * there); an empty series is drawn as nothing but keeps its legend entry.
 * A single value on an axis (one point, or constant data) gets a range padded
 * by 10% of the value (or 1 around zero). With a fixed range, lines are
 * clipped to the plot area and out-of-range markers are omitted.
 *
 * @example
 * ```ts
 * import { lineChart } from "./figures.ts";
 * const png = lineChart({
 *   title: "Masking ratio",
 *   xLabel: "masking ratio (%)",
 *   yLabel: "linear probe (%)",
 *   series: [
 *     { name: "paper", points: [[50, 60], [75, 68]], style: "points" },
 *     { name: "ours", points: [[50, 55], [75, 62]], style: "line+points" },
 *   ],
 * });
 * if (png.length === 0) throw new Error("empty");
 * ```
 */
export function lineChart(opts: LineChartOptions): Uint8Array {
  const width = opts.width ?? 640, height = opts.height ?? 400;
  const s = opts.fontScale ?? 2;
  const titleScale = s + 1;
  const c = new Canvas(width, height);

  const series = opts.series.map((ser, i) => ({
    name: ser.name,
    color: ser.color ?? PALETTE[i % PALETTE.length],
    style: ser.style ?? "line",
    points: ser.points.map(([x, y]) =>
      Number.isFinite(x) && Number.isFinite(y) ? [x, y] as const : null
    ),
  }));
  const finite = series.flatMap((ser) => ser.points.filter((p) => p !== null));
  const xt = axisTicks(finite.map((p) => p[0]), opts.xRange);
  const yt = axisTicks(finite.map((p) => p[1]), opts.yRange);
  const xLabels = xt.values.map((v) => formatTick(v, xt.step));
  const yLabels = yt.values.map((v) => formatTick(v, yt.step));

  const pad = 4 * s, tick = 3 * s;
  const th = textHeight(s);
  const left = pad + th + pad + Math.max(0, ...yLabels.map((l) => textWidth(l, s))) + tick + s;
  const top = pad + (opts.title ? textHeight(titleScale) + pad : 0) + th / 2;
  const bottom = tick + s + th + pad + (opts.xLabel ? th + pad : 0);
  // Room for half of the last x tick label to the right of the axis end.
  const right = pad + Math.ceil(textWidth(xLabels[xLabels.length - 1] ?? "", s) / 2);
  const pw = width - left - right, ph = height - top - bottom;
  if (pw < 20 || ph < 20) throw new Error(`lineChart: ${width}x${height} leaves no room to plot`);
  const X = (x: number) => left + (x - xt.lo) / (xt.hi - xt.lo) * (pw - 1);
  const Y = (y: number) => top + ph - 1 - (y - yt.lo) / (yt.hi - yt.lo) * (ph - 1);

  // Grid, frame, ticks and their labels.
  for (const v of xt.values) c.rect(Math.round(X(v)), top, 1, ph, GRID);
  for (const v of yt.values) c.rect(left, Math.round(Y(v)), pw, 1, GRID);
  c.strokeRect(left, top, pw, ph, AXIS);
  xt.values.forEach((v, i) => {
    const px = Math.round(X(v));
    c.rect(px, top + ph, 1, tick, AXIS);
    c.text(px - textWidth(xLabels[i], s) / 2, top + ph + tick + s, xLabels[i], AXIS, s);
  });
  yt.values.forEach((v, i) => {
    const py = Math.round(Y(v));
    c.rect(left - tick, py, tick, 1, AXIS);
    c.text(left - tick - s - textWidth(yLabels[i], s), py - th / 2, yLabels[i], AXIS, s);
  });
  if (opts.title) {
    c.text(left + (pw - textWidth(opts.title, titleScale)) / 2, pad, opts.title, BLACK, titleScale);
  }
  if (opts.xLabel) {
    c.text(left + (pw - textWidth(opts.xLabel, s)) / 2, height - pad - th, opts.xLabel, BLACK, s);
  }
  if (opts.yLabel) c.textUp(pad, top + (ph - textWidth(opts.yLabel, s)) / 2, opts.yLabel, BLACK, s);

  // Data. Lines are clipped to the inside of the frame; markers of in-range
  // points are drawn whole, even where they overlap the frame.
  const lineW = Math.max(1, Math.round(s));
  const markerR = 1.5 * s;
  const inRange = (x: number, y: number) => x >= xt.lo && x <= xt.hi && y >= yt.lo && y <= yt.hi;
  for (const ser of series) {
    if (ser.style !== "points") {
      c.setClip(left + 1, top + 1, pw - 2, ph - 2);
      for (let i = 1; i < ser.points.length; i++) {
        const a = ser.points[i - 1], b = ser.points[i];
        if (a && b) c.line(X(a[0]), Y(a[1]), X(b[0]), Y(b[1]), ser.color, lineW);
      }
      c.clearClip();
    }
    // A lone finite point of a "line" series would be invisible without a marker.
    const lone = (i: number) => !ser.points[i - 1] && !ser.points[i + 1];
    ser.points.forEach((p, i) => {
      if (!p || !inRange(p[0], p[1])) return;
      if (ser.style !== "line") c.disc(X(p[0]), Y(p[1]), markerR, ser.color);
      else if (lone(i)) c.disc(X(p[0]), Y(p[1]), markerR * 0.75, ser.color);
    });
  }

  if (series.length > 0) {
    drawLegend(c, series, { left, top, pw, ph, X, Y }, s, lineW, markerR);
  }
  return c.toPng();
}

interface PlotArea {
  left: number;
  top: number;
  pw: number;
  ph: number;
  X: (x: number) => number;
  Y: (y: number) => number;
}

function drawLegend(
  c: Canvas,
  series: {
    name: string;
    color: Rgb;
    style: string;
    points: (readonly [number, number] | null)[];
  }[],
  area: PlotArea,
  s: number,
  lineW: number,
  markerR: number,
): void {
  const pad = 3 * s, swatch = 10 * s, rowH = textHeight(s) + 3 * s;
  const w = pad + swatch + 2 * s + Math.max(...series.map((r) => textWidth(r.name, s))) + pad;
  const h = pad + series.length * rowH - 3 * s + pad;
  const inset = 4 * s;
  const corners: [number, number][] = [
    [area.left + area.pw - inset - w, area.top + inset],
    [area.left + inset, area.top + inset],
    [area.left + area.pw - inset - w, area.top + area.ph - inset - h],
    [area.left + inset, area.top + area.ph - inset - h],
  ];
  // Score each corner by how many data pixels (points and samples along the
  // segments, every ~2 px) it would hide; the first least-covering one wins.
  const samples: [number, number][] = [];
  for (const ser of series) {
    ser.points.forEach((p, i) => {
      if (!p) return;
      const ax = area.X(p[0]), ay = area.Y(p[1]);
      samples.push([ax, ay]);
      const q = ser.points[i + 1];
      if (ser.style === "points" || !q) return;
      const bx = area.X(q[0]), by = area.Y(q[1]);
      const n = Math.min(2000, Math.ceil(Math.hypot(bx - ax, by - ay) / 2));
      for (let k = 1; k < n; k++) samples.push([ax + (bx - ax) * k / n, ay + (by - ay) * k / n]);
    });
  }
  let best = corners[0], bestHits = Infinity;
  for (const [x, y] of corners) {
    let hits = 0;
    for (const [sx, sy] of samples) {
      if (sx >= x - 2 * s && sx <= x + w + 2 * s && sy >= y - 2 * s && sy <= y + h + 2 * s) hits++;
    }
    if (hits < bestHits) [best, bestHits] = [[x, y], hits];
  }
  const [x, y] = best.map(Math.round);
  c.rect(x, y, w, h, WHITE);
  c.strokeRect(x, y, w, h, LEGEND_BORDER);
  series.forEach((ser, i) => {
    const ry = y + pad + i * rowH, cy = ry + Math.floor(textHeight(s) / 2);
    const sx = x + pad;
    if (ser.style !== "points") c.line(sx, cy, sx + swatch - 1, cy, ser.color, lineW);
    if (ser.style !== "line") c.disc(sx + swatch / 2, cy, markerR, ser.color);
    c.text(sx + swatch + 2 * s, ry, ser.name, ser.color, s);
  });
}

// ---------------------------------------------------------------------------
// Image grid
// ---------------------------------------------------------------------------

/** One cell of an {@link imageGrid}. */
export interface GridImage {
  /** Pixel values, `channels * height * width` of them. */
  data: Float32Array | Uint8Array;
  /** 1 (drawn as gray) or 3 (RGB). */
  channels: 1 | 3;
  /** Height in pixels. */
  height: number;
  /** Width in pixels. */
  width: number;
  /** Order of `data` for 3 channels: "chw" (planar, the tensor layout; default) or "hwc" (interleaved). */
  layout?: "chw" | "hwc";
  /** For float data: the values shown as 0 and 255 (clamped); by default the image's own min and max. */
  range?: readonly [number, number];
}

/** One row of an {@link imageGrid}. */
export interface GridRow {
  /** Drawn left of the row, vertically centred. */
  label: string;
  /** The row's cells, left to right. */
  images: readonly GridImage[];
}

/** Options of {@link imageGrid}. */
export interface ImageGridOptions {
  /** Rows top to bottom; they may have different numbers of images. */
  rows: readonly GridRow[];
  /** Drawn centred above each column. */
  columnLabels?: readonly string[];
  /** Integer upscaling of every image, nearest neighbour (default 2). */
  scale?: number;
  /** Pixels between cells and around the grid (default 4). */
  gap?: number;
  /** Drawn centred above the column labels. */
  title?: string;
  /** Scale of the label font (default 2; the title is one step larger). */
  fontScale?: number;
}

/**
 * Converts one grid image to 8-bit RGB (`height * width * 3`, row-major).
 * Uint8 data is shown as is. Float data is mapped linearly from `range`, or by
 * default from the image's own min and max over all channels and finite
 * values (so relative colour is kept, min -> 0, max -> 255); a constant float
 * image shows as mid-gray (128) and NaN / infinite values as magenta.
 *
 * @example
 * ```ts
 * import { imageToRgb } from "./figures.ts";
 * const rgb = imageToRgb({ data: new Float32Array([-1, 3]), channels: 1, height: 1, width: 2 });
 * if (rgb[0] !== 0 || rgb[3] !== 255) throw new Error("not min-max scaled");
 * ```
 */
export function imageToRgb(img: GridImage): Uint8Array {
  const { channels: ch, height: h, width: w } = img;
  if (ch !== 1 && ch !== 3) throw new Error(`imageToRgb: channels must be 1 or 3, got ${ch}`);
  if (!Number.isInteger(h) || !Number.isInteger(w) || h < 1 || w < 1) {
    throw new Error(`imageToRgb: bad size ${h}x${w}`);
  }
  if (img.data.length !== ch * h * w) {
    throw new Error(
      `imageToRgb: ${ch}x${h}x${w} needs ${ch * h * w} values, got ${img.data.length}`,
    );
  }
  const planar = (img.layout ?? "chw") === "chw";
  const at = (c: number, p: number) => planar ? img.data[c * h * w + p] : img.data[p * ch + c];
  const out = new Uint8Array(h * w * 3);

  let toByte: (v: number) => number = (v) => v;
  if (img.data instanceof Float32Array) {
    let [lo, hi] = img.range ?? [Infinity, -Infinity];
    if (!img.range) {
      for (const v of img.data) {
        if (!Number.isFinite(v)) continue;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
    }
    toByte = hi > lo
      ? (v) => Math.round(Math.min(1, Math.max(0, (v - lo) / (hi - lo))) * 255)
      : () => 128;
  }
  for (let p = 0; p < h * w; p++) {
    for (let k = 0; k < 3; k++) {
      const v = at(ch === 1 ? 0 : k, p);
      if (!Number.isFinite(v)) {
        out.set(NON_FINITE, p * 3);
        break;
      }
      out[p * 3 + k] = toByte(v);
    }
  }
  return out;
}

/**
 * Renders rows of images as one PNG (white background): a row label left of
 * each row, optional column labels above the columns and a title above all.
 * Each column is as wide as its widest image (or label), each row as tall as
 * its tallest image; an image is centred in its cell and upscaled by `scale`
 * with nearest neighbour. Pixel values go through {@link imageToRgb}: uint8
 * as is, float min-max scaled per image unless the image gives a `range`.
 *
 * @example
 * ```ts
 * import { imageGrid } from "./figures.ts";
 * const img = { data: new Float32Array(16).map((_, i) => i), channels: 1 as const, height: 4, width: 4 };
 * const png = imageGrid({ rows: [{ label: "sample", images: [img, img] }], columnLabels: ["a", "b"] });
 * if (png.length === 0) throw new Error("empty");
 * ```
 */
export function imageGrid(opts: ImageGridOptions): Uint8Array {
  const scale = opts.scale ?? 2, gap = opts.gap ?? 4, s = opts.fontScale ?? 2;
  if (!Number.isInteger(scale) || scale < 1) throw new Error(`imageGrid: bad scale ${scale}`);
  if (opts.rows.length === 0) throw new Error("imageGrid: no rows");
  const layout = gridLayout(opts);
  const c = new Canvas(layout.width, layout.height);

  if (opts.title) {
    const tw = textWidth(opts.title, s + 1);
    c.text((layout.width - tw) / 2, gap, opts.title, BLACK, s + 1);
  }
  (opts.columnLabels ?? []).forEach((label, j) => {
    if (j >= layout.colX.length) return;
    const x = layout.colX[j] + (layout.colW[j] - textWidth(label, s)) / 2;
    c.text(x, layout.colLabelY, label, BLACK, s);
  });
  opts.rows.forEach((row, i) => {
    const y0 = layout.rowY[i], rh = layout.rowH[i];
    c.text(gap, y0 + (rh - textHeight(s)) / 2, row.label, BLACK, s);
    row.images.forEach((img, j) => {
      const rgb = imageToRgb(img);
      const w = img.width * scale, h = img.height * scale;
      const x0 = layout.colX[j] + Math.floor((layout.colW[j] - w) / 2);
      const y1 = y0 + Math.floor((rh - h) / 2);
      for (let y = 0; y < img.height; y++) {
        for (let x = 0; x < img.width; x++) {
          const p = (y * img.width + x) * 3;
          c.rect(x0 + x * scale, y1 + y * scale, scale, scale, [rgb[p], rgb[p + 1], rgb[p + 2]]);
        }
      }
    });
  });
  return c.toPng();
}

/**
 * Where each part of an image grid goes: column left edges and widths, row
 * top edges and heights, the y of the column labels and the image size.
 */
function gridLayout(opts: ImageGridOptions): {
  width: number;
  height: number;
  colX: number[];
  colW: number[];
  rowY: number[];
  rowH: number[];
  colLabelY: number;
} {
  const scale = opts.scale ?? 2, gap = opts.gap ?? 4, s = opts.fontScale ?? 2;
  const nCols = Math.max(0, ...opts.rows.map((r) => r.images.length));
  const labels = opts.columnLabels ?? [];
  // A label gets one character's room on either side so neighbours stay apart.
  const colW = Array.from({ length: nCols }, (_, j) =>
    Math.max(
      labels[j] ? textWidth(labels[j], s) + 2 * (GLYPH_W + 1) * s : 0,
      ...opts.rows.map((r) => (r.images[j]?.width ?? 0) * scale),
    ));
  const rowH = opts.rows.map((r) =>
    Math.max(r.label ? textHeight(s) : 0, ...r.images.map((img) => img.height * scale))
  );
  const labelW = Math.max(0, ...opts.rows.map((r) => textWidth(r.label, s)));
  // Row labels get a wider gap than the cells so they read as labels, not a column.
  let x = gap + (labelW > 0 ? labelW + 3 * gap : 0);
  const colX = colW.map((w) => {
    const at = x;
    x += w + gap;
    return at;
  });
  let y = gap;
  if (opts.title) y += textHeight(s + 1) + 2 * gap;
  const colLabelY = y;
  if (labels.length > 0) y += textHeight(s) + 2 * s + gap; // 2 * s: descenders
  const rowY = rowH.map((h) => {
    const at = y;
    y += h + gap;
    return at;
  });
  return { width: Math.max(1, x), height: Math.max(1, y), colX, colW, rowY, rowH, colLabelY };
}
