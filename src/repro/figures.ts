/**
 * The report's figures, with no dependency beyond the PNG encoder:
 *
 * - {@link lineChart}: training curves and the masking-ratio sweep as SVG,
 *   with text as text (title, axis labels, tick labels, legend), so a chart
 *   reads well at any size and says in its source what it shows.
 * - {@link imageGrid}: pixel images (the Figure-2 style masked input /
 *   reconstruction / ground truth) as a PNG of the cells alone, and
 *   {@link gridFigure}: that PNG embedded in an SVG that adds the labels.
 *
 * @example
 * ```ts
 * import { lineChart } from "./figures.ts";
 * const svg = lineChart({
 *   title: "Pre-training loss",
 *   xLabel: "step",
 *   yLabel: "loss",
 *   series: [{ name: "run a", points: [[0, 1.2], [100, 0.8], [200, 0.6]] }],
 * });
 * if (!svg.includes("<title>Pre-training loss</title>")) throw new Error("no title");
 * ```
 * @module
 */

import { encode } from "png";
import { base64, el, fmt, svgDocument, text, textWidth } from "./svg.ts";

/** An 8-bit RGB colour. */
export type Rgb = readonly [number, number, number];

const AXIS = "#282828";
const GRID = "#e1e1e1";
const INK = "#000000";
const LEGEND_BORDER = "#aaaaaa";
/** Drawn for NaN / infinite pixels of a float image, so they stand out. */
const NON_FINITE: Rgb = [255, 0, 255];
/** matplotlib's tab10 cycle: distinguishable, and familiar to readers of ML papers. */
const PALETTE: readonly string[] = [
  "#1f77b4",
  "#ff7f0e",
  "#2ca02c",
  "#d62728",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#7f7f7f",
  "#bcbd22",
  "#17becf",
];
/** Baseline offsets as fractions of the font size: cap top to baseline, and digit middle. */
const ASCENT = 0.76, MIDDLE = 0.36, DESCENT = 0.24;

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

/**
 * Liang-Barsky: the part of the segment inside the box, or null if none. An
 * end cut by an edge is put exactly on it: x0 + t dx has no precision left
 * when dx is huge (a diverged value against a fixed range).
 */
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
  const start = [x0, y0], end = [x1, y1];
  let t0 = 0, t1 = 1;
  const edges: [p: number, q: number, axis: 0 | 1, at: number][] = [
    [-dx, x0 - xmin, 0, xmin],
    [dx, xmax - x0, 0, xmax],
    [-dy, y0 - ymin, 1, ymin],
    [dy, ymax - y0, 1, ymax],
  ];
  for (const [p, q, axis, at] of edges) {
    if (p === 0) {
      if (q < 0) return null;
      continue;
    }
    const r = q / p;
    if (p < 0 && r > t0) {
      t0 = r;
      start[axis] = at;
      start[1 - axis] = axis === 0 ? y0 + r * dy : x0 + r * dx;
    } else if (p > 0 && r < t1) {
      t1 = r;
      end[axis] = at;
      end[1 - axis] = axis === 0 ? y0 + r * dy : x0 + r * dx;
    }
    if (t0 > t1) return null;
  }
  return [start[0], start[1], end[0], end[1]];
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
  /** A CSS colour ("#rrggbb"); defaults to the next colour of the tab10 cycle. */
  color?: string;
  /** "line" (default), "points" (markers only) or "line+points". */
  style?: "line" | "points" | "line+points";
}

/** Options of {@link lineChart}. */
export interface LineChartOptions {
  /** Drawn centred above the plot, and the SVG's accessible title. */
  title: string;
  /** Drawn below the x axis. */
  xLabel: string;
  /** Drawn rotated left of the y axis. */
  yLabel: string;
  /** Drawn in order, later series on top. */
  series: readonly LineSeries[];
  /** Width in pixels at 100% (default 640). */
  width?: number;
  /** Height in pixels at 100% (default 400). */
  height?: number;
  /** Fixed x range; by default the data range widened to whole tick steps. */
  xRange?: readonly [number, number];
  /** Fixed y range; by default the data range widened to whole tick steps. */
  yRange?: readonly [number, number];
  /** Size in px of the axis-label, tick and legend text (default 13; the title is 3 px larger). */
  fontSize?: number;
}

type Point = readonly [number, number];

/**
 * Renders a line chart as an SVG document: white background, framed plot
 * area with light grid lines at about five nice ticks per axis, tick labels,
 * axis labels and a legend (a swatch in each series' colour and its name).
 * The legend goes in the plot corner that covers the fewest data points.
 *
 * Each series is one `<g class="series">` holding a `<path class="line">`
 * (one subpath per unbroken run) and a `<circle class="marker">` per marked
 * point. Points with a NaN or infinite coordinate are skipped (the line breaks
 * there); an empty series draws nothing but keeps its legend entry. A single
 * value on an axis (one point, or constant data) gets a range padded by 10% of
 * the value (or 1 around zero). With a fixed range, line segments are clipped
 * to the plot area and out-of-range markers are left out.
 *
 * @example
 * ```ts
 * import { lineChart } from "./figures.ts";
 * const svg = lineChart({
 *   title: "Masking ratio",
 *   xLabel: "masking ratio (%)",
 *   yLabel: "linear probe (%)",
 *   series: [
 *     { name: "paper", points: [[50, 60], [75, 68]], style: "points" },
 *     { name: "ours", points: [[50, 55], [75, 62]], style: "line+points" },
 *   ],
 * });
 * if (svg.split('class="marker"').length !== 5) throw new Error("expected four markers");
 * ```
 */
export function lineChart(opts: LineChartOptions): string {
  const width = opts.width ?? 640, height = opts.height ?? 400;
  const fs = opts.fontSize ?? 13, ts = fs + 3;

  const series = opts.series.map((ser, i) => ({
    name: ser.name,
    color: ser.color ?? PALETTE[i % PALETTE.length],
    style: ser.style ?? "line",
    points: ser.points.map(([x, y]): Point | null =>
      Number.isFinite(x) && Number.isFinite(y) ? [x, y] : null
    ),
  }));
  const finite = series.flatMap((ser) => ser.points.filter((p) => p !== null));
  const xt = axisTicks(finite.map((p) => p[0]), opts.xRange);
  const yt = axisTicks(finite.map((p) => p[1]), opts.yRange);
  const xLabels = xt.values.map((v) => formatTick(v, xt.step));
  const yLabels = yt.values.map((v) => formatTick(v, yt.step));

  const pad = 10, tick = 5;
  const left = pad + (opts.yLabel ? fs + pad / 2 : 0) +
    Math.max(0, ...yLabels.map((l) => textWidth(l, fs))) + tick + 4;
  const top = pad + (opts.title ? ts + pad : 0) + fs / 2;
  const bottom = tick + 4 + fs + (opts.xLabel ? pad / 2 + fs : 0) + pad;
  // Room for half of the last x tick label to the right of the axis end.
  const right = pad + textWidth(xLabels.at(-1) ?? "", fs) / 2;
  const pw = width - left - right, ph = height - top - bottom;
  if (pw < 20 || ph < 20) throw new Error(`lineChart: ${width}x${height} leaves no room to plot`);
  const X = (x: number) => left + (x - xt.lo) / (xt.hi - xt.lo) * pw;
  const Y = (y: number) => top + ph - (y - yt.lo) / (yt.hi - yt.lo) * ph;

  const out: string[] = [];
  out.push(el("g", { class: "grid", stroke: GRID, "stroke-width": 1 }, [
    ...xt.values.map((v) => el("line", { x1: X(v), y1: top, x2: X(v), y2: top + ph })),
    ...yt.values.map((v) => el("line", { x1: left, y1: Y(v), x2: left + pw, y2: Y(v) })),
  ]));
  out.push(el("rect", {
    class: "frame",
    x: left,
    y: top,
    width: pw,
    height: ph,
    fill: "none",
    stroke: AXIS,
  }));
  out.push(el("g", { class: "x-axis", fill: AXIS, stroke: AXIS, "font-size": fs }, [
    ...xt.values.flatMap((v, i) => [
      el("line", { class: "tick", x1: X(v), y1: top + ph, x2: X(v), y2: top + ph + tick }),
      text({
        class: "tick-label",
        x: X(v),
        y: top + ph + tick + 3 + ASCENT * fs,
        "text-anchor": "middle",
        stroke: "none",
      }, xLabels[i]),
    ]),
  ]));
  out.push(el("g", { class: "y-axis", fill: AXIS, stroke: AXIS, "font-size": fs }, [
    ...yt.values.flatMap((v, i) => [
      el("line", { class: "tick", x1: left - tick, y1: Y(v), x2: left, y2: Y(v) }),
      text({
        class: "tick-label",
        x: left - tick - 3,
        y: Y(v) + MIDDLE * fs,
        "text-anchor": "end",
        stroke: "none",
      }, yLabels[i]),
    ]),
  ]));
  if (opts.title) {
    out.push(text({
      class: "title",
      x: left + pw / 2,
      y: pad + ASCENT * ts,
      "text-anchor": "middle",
      "font-size": ts,
      fill: INK,
    }, opts.title));
  }
  if (opts.xLabel) {
    out.push(text({
      class: "x-label",
      x: left + pw / 2,
      y: height - pad - DESCENT * fs,
      "text-anchor": "middle",
      "font-size": fs,
      fill: INK,
    }, opts.xLabel));
  }
  if (opts.yLabel) {
    const x = pad + ASCENT * fs, y = top + ph / 2;
    out.push(text({
      class: "y-label",
      x,
      y,
      transform: `rotate(-90 ${fmtPair(x, y)})`,
      "text-anchor": "middle",
      "font-size": fs,
      fill: INK,
    }, opts.yLabel));
  }

  // Data. Segments are clipped to the plot area here rather than by a
  // clip-path, so that a diverged value does not put a coordinate of 1e15
  // into the file; markers of in-range points are drawn whole.
  const lineW = 2, markerR = 3.5;
  const inRange = ([x, y]: Point) => x >= xt.lo && x <= xt.hi && y >= yt.lo && y <= yt.hi;
  for (const ser of series) {
    const parts: string[] = [];
    if (ser.style !== "points") {
      const d = linePath(ser.points, X, Y, [left, top, left + pw, top + ph]);
      if (d) {
        parts.push(el("path", {
          class: "line",
          d,
          fill: "none",
          stroke: ser.color,
          "stroke-width": lineW,
          "stroke-linejoin": "round",
          "stroke-linecap": "round",
        }));
      }
    }
    // A lone finite point of a "line" series would be invisible without a marker.
    const lone = (i: number) => !ser.points[i - 1] && !ser.points[i + 1];
    ser.points.forEach((p, i) => {
      if (!p || !inRange(p) || (ser.style === "line" && !lone(i))) return;
      const r = ser.style === "line" ? markerR * 0.75 : markerR;
      parts.push(el("circle", { class: "marker", cx: X(p[0]), cy: Y(p[1]), r, fill: ser.color }));
    });
    out.push(el("g", { class: "series" }, parts));
  }
  if (series.length > 0) out.push(legend(series, { left, top, pw, ph, X, Y }, fs, lineW, markerR));
  return svgDocument(width, height, opts.title, out);
}

function fmtPair(x: number, y: number): string {
  return `${fmt(x)} ${fmt(y)}`;
}

/** Path data for the finite runs of `points`, each segment clipped to `box` (x0, y0, x1, y1). */
function linePath(
  points: readonly (Point | null)[],
  X: (x: number) => number,
  Y: (y: number) => number,
  box: readonly [number, number, number, number],
): string {
  const cmds: string[] = [];
  let pen: string | null = null;
  for (let i = 1; i < points.length; i++) {
    const a = points[i - 1], b = points[i];
    if (!a || !b) {
      pen = null;
      continue;
    }
    const seg = clipSegment(X(a[0]), Y(a[1]), X(b[0]), Y(b[1]), ...box);
    if (!seg) {
      pen = null;
      continue;
    }
    const start = fmtPair(seg[0], seg[1]), end = fmtPair(seg[2], seg[3]);
    if (start !== pen) cmds.push(`M${start}`);
    cmds.push(`L${end}`);
    // A segment clipped at its end leaves the plot: the next one starts anew.
    pen = end === fmtPair(X(b[0]), Y(b[1])) ? end : null;
  }
  return cmds.join(" ");
}

interface PlotArea {
  left: number;
  top: number;
  pw: number;
  ph: number;
  X: (x: number) => number;
  Y: (y: number) => number;
}

function legend(
  series: { name: string; color: string; style: string; points: (Point | null)[] }[],
  area: PlotArea,
  fs: number,
  lineW: number,
  markerR: number,
): string {
  const pad = 6, swatch = 22, rowH = 1.5 * fs;
  const w = pad + swatch + 6 + Math.max(...series.map((r) => textWidth(r.name, fs))) + pad;
  const h = 2 * pad + series.length * rowH - (rowH - fs);
  const inset = 8;
  const corners: [number, number][] = [
    [area.left + area.pw - inset - w, area.top + inset],
    [area.left + inset, area.top + inset],
    [area.left + area.pw - inset - w, area.top + area.ph - inset - h],
    [area.left + inset, area.top + area.ph - inset - h],
  ];
  // Score each corner by how many data points (and samples every ~2 px along
  // the lines) it would hide; the first least-covering one wins.
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
  let [x, y] = corners[0], bestHits = Infinity;
  for (const [cx, cy] of corners) {
    let hits = 0;
    for (const [sx, sy] of samples) {
      if (sx >= cx - 4 && sx <= cx + w + 4 && sy >= cy - 4 && sy <= cy + h + 4) hits++;
    }
    if (hits < bestHits) [x, y, bestHits] = [cx, cy, hits];
  }
  const entries = series.map((ser, i) => {
    const cy = y + pad + i * rowH + fs / 2, sx = x + pad;
    const parts: string[] = [];
    if (ser.style !== "points") {
      parts.push(el("line", {
        x1: sx,
        y1: cy,
        x2: sx + swatch,
        y2: cy,
        stroke: ser.color,
        "stroke-width": lineW,
      }));
    }
    if (ser.style !== "line") {
      parts.push(el("circle", { cx: sx + swatch / 2, cy, r: markerR, fill: ser.color }));
    }
    parts.push(text({ x: sx + swatch + 6, y: cy + MIDDLE * fs, fill: INK }, ser.name));
    return el("g", { class: "entry" }, parts);
  });
  return el("g", { class: "legend", "font-size": fs }, [
    el("rect", { x, y, width: w, height: h, fill: "#ffffff", stroke: LEGEND_BORDER }),
    ...entries,
  ]);
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
  /** Drawn left of the row by {@link gridFigure}. */
  label: string;
  /** The row's cells, left to right. */
  images: readonly GridImage[];
}

/** Options of {@link imageGrid} and {@link gridFigure}. */
export interface ImageGridOptions {
  /** Rows top to bottom; they may have different numbers of images. */
  rows: readonly GridRow[];
  /** Drawn centred above each column by {@link gridFigure}. */
  columnLabels?: readonly string[];
  /** Integer upscaling of every image, nearest neighbour (default 2). */
  scale?: number;
  /** Pixels between cells and around the grid (default 4). */
  gap?: number;
  /** Drawn above the grid by {@link gridFigure}. */
  title?: string;
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

/** Where the cells of an image grid go, in PNG pixels. */
export interface GridLayout {
  width: number;
  height: number;
  /** Left edge and width of each column. */
  colX: number[];
  colW: number[];
  /** Top edge and height of each row. */
  rowY: number[];
  rowH: number[];
}

/**
 * The cell layout of {@link imageGrid}: `gap` pixels around and between
 * cells; each column as wide as its widest image, each row as tall as its
 * tallest, both times `scale`.
 */
export function gridLayout(opts: ImageGridOptions): GridLayout {
  const scale = opts.scale ?? 2, gap = opts.gap ?? 4;
  if (!Number.isInteger(scale) || scale < 1) throw new Error(`imageGrid: bad scale ${scale}`);
  if (opts.rows.length === 0) throw new Error("imageGrid: no rows");
  const nCols = Math.max(0, ...opts.rows.map((r) => r.images.length));
  const colW = Array.from(
    { length: nCols },
    (_, j) => Math.max(0, ...opts.rows.map((r) => (r.images[j]?.width ?? 0) * scale)),
  );
  const rowH = opts.rows.map((r) => Math.max(0, ...r.images.map((img) => img.height * scale)));
  const place = (sizes: number[]) => {
    let at = gap;
    return sizes.map((s) => (at += s + gap) - s - gap);
  };
  const colX = place(colW), rowY = place(rowH);
  const sum = (a: number[]) => a.reduce((s, v) => s + v + gap, gap);
  return {
    width: Math.max(1, sum(colW)),
    height: Math.max(1, sum(rowH)),
    colX,
    colW,
    rowY,
    rowH,
  };
}

/**
 * Renders rows of images as one PNG of the cells alone (white background, no
 * text: {@link gridFigure} labels it), laid out by {@link gridLayout}. An
 * image is centred in its cell and upscaled by `scale` with nearest
 * neighbour. Pixel values go through {@link imageToRgb}: uint8 as is, float
 * min-max scaled per image unless the image gives a `range`.
 *
 * @example
 * ```ts
 * import { imageGrid } from "./figures.ts";
 * const img = { data: new Float32Array(16).map((_, i) => i), channels: 1 as const, height: 4, width: 4 };
 * const png = imageGrid({ rows: [{ label: "sample", images: [img, img] }] });
 * if (png.length === 0) throw new Error("empty");
 * ```
 */
export function imageGrid(opts: ImageGridOptions): Uint8Array {
  const scale = opts.scale ?? 2;
  const layout = gridLayout(opts);
  const W = layout.width;
  const rgb = new Uint8Array(W * layout.height * 3).fill(255);
  opts.rows.forEach((row, i) => {
    row.images.forEach((img, j) => {
      const src = imageToRgb(img);
      const x0 = layout.colX[j] + Math.floor((layout.colW[j] - img.width * scale) / 2);
      const y0 = layout.rowY[i] + Math.floor((layout.rowH[i] - img.height * scale) / 2);
      for (let y = 0; y < img.height * scale; y++) {
        for (let x = 0; x < img.width * scale; x++) {
          const s = (Math.floor(y / scale) * img.width + Math.floor(x / scale)) * 3;
          rgb.set(src.subarray(s, s + 3), ((y0 + y) * W + x0 + x) * 3);
        }
      }
    });
  });
  return encodeRgbPng(W, layout.height, rgb);
}

/**
 * An {@link imageGrid} PNG and an SVG that shows it with its labels as text:
 * the title above, each column label centred over its column, each row label
 * left of its row. The PNG is embedded (a data: URI) so the SVG stands alone,
 * drawn with nearest-neighbour scaling; when a column label is wider than its
 * column, the image is shown enlarged (by a whole factor) until it fits.
 *
 * @example
 * ```ts
 * import { gridFigure } from "./figures.ts";
 * const img = { data: new Uint8Array(4).fill(90), channels: 1 as const, height: 2, width: 2 };
 * const { svg } = gridFigure({ rows: [{ label: "a", images: [img] }], columnLabels: ["truth"] });
 * if (!svg.includes(">truth</text>")) throw new Error("no column label");
 * ```
 */
export function gridFigure(
  opts: ImageGridOptions & { fontSize?: number },
): { png: Uint8Array; svg: string } {
  const png = imageGrid(opts);
  const layout = gridLayout(opts);
  const fs = opts.fontSize ?? 13, ts = fs + 3, pad = 8;
  const labels = opts.columnLabels ?? [];
  const zoom = Math.max(
    1,
    ...layout.colW.map((w, j) =>
      labels[j] && w > 0 ? Math.ceil((textWidth(labels[j], fs) + pad) / (w + (opts.gap ?? 4))) : 1
    ),
  );
  const labelW = Math.max(0, ...opts.rows.map((r) => textWidth(r.label, fs)));
  const left = pad + (labelW > 0 ? labelW + pad : 0);
  const labelsTop = pad + (opts.title ? ts + pad : 0);
  const top = labelsTop + (labels.length > 0 ? fs + pad / 2 : 0);
  const width = left + layout.width * zoom + pad, height = top + layout.height * zoom + pad;
  const body: string[] = [];
  if (opts.title) {
    body.push(text({
      class: "title",
      x: width / 2,
      y: pad + ASCENT * ts,
      "text-anchor": "middle",
      "font-size": ts,
      fill: INK,
    }, opts.title));
  }
  body.push(el(
    "g",
    { class: "column-labels", "font-size": fs, "text-anchor": "middle", fill: INK },
    labels.slice(0, layout.colX.length).map((l, j) =>
      text(
        { x: left + (layout.colX[j] + layout.colW[j] / 2) * zoom, y: labelsTop + ASCENT * fs },
        l,
      )
    ),
  ));
  body.push(el(
    "g",
    { class: "row-labels", "font-size": fs, "text-anchor": "end", fill: INK },
    opts.rows.map((r, i) =>
      text({
        x: left - pad / 2,
        y: top + (layout.rowY[i] + layout.rowH[i] / 2) * zoom + MIDDLE * fs,
      }, r.label)
    ),
  ));
  body.push(el("image", {
    class: "grid",
    x: left,
    y: top,
    width: layout.width * zoom,
    height: layout.height * zoom,
    preserveAspectRatio: "none",
    style: "image-rendering:pixelated",
    href: `data:image/png;base64,${base64(png)}`,
  }));
  return { png, svg: svgDocument(width, height, opts.title ?? "image grid", body) };
}
