import assert from "node:assert/strict";
import { decode } from "png";
import { Mae, type MaeConfig } from "../../src/models/mae.ts";
import { DropoutContext } from "../../src/nn.ts";
import { Rng } from "../../src/rng.ts";
import { tensor, tidy } from "../../src/tensor.ts";
import type { Results } from "../../src/repro/claims.ts";
import {
  encodeRgbPng,
  gridFigure,
  imageGrid,
  imageToRgb,
  lineChart,
  type LineChartOptions,
  niceTicks,
  type Rgb,
} from "../../src/repro/figures.ts";
import {
  GRID_COLUMNS,
  loadMae,
  PAPER_SWEEP,
  reconstruct,
  reconstructionRow,
  renderFigures,
  scaleSeries,
} from "../../src/repro/figures_report.ts";
import type { Profile } from "../../src/repro/profiles.ts";
import { markdown } from "../../src/repro/report.ts";
import { encodeSafetensors, type NamedArray } from "../../src/train/safetensors.ts";
import { gpuTest, rand } from "../_helpers.ts";

// ---------------------------------------------------------------------------
// Reading our own SVG back: a small XML parser and a chart reader that
// recovers data values the way a reader does, from the tick labels.
// ---------------------------------------------------------------------------

interface XmlNode {
  name: string;
  attrs: Record<string, string>;
  children: XmlNode[];
  text: string;
}

function unescape(s: string): string {
  return s.replaceAll("&lt;", "<").replaceAll("&gt;", ">").replaceAll("&quot;", '"')
    .replaceAll("&apos;", "'").replaceAll("&amp;", "&");
}

/** Parses well-formed XML without entities beyond the five predefined ones; throws on anything else. */
function parseXml(src: string): XmlNode {
  const root: XmlNode = { name: "#document", attrs: {}, children: [], text: "" };
  const stack = [root];
  const token =
    /<\?[^>]*\?>|<\/([\w:-]+)\s*>|<([\w:-]+)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|([^<]+)/g;
  let pos = 0;
  for (let m; (m = token.exec(src)) !== null; pos = token.lastIndex) {
    assert.equal(m.index, pos, `unparsable XML at ${pos}: ${src.slice(pos, pos + 40)}`);
    if (m[1]) {
      assert.equal(stack.pop()!.name, m[1], `mismatched </${m[1]}>`);
    } else if (m[2]) {
      const attrs: Record<string, string> = {};
      for (const [, k, v] of m[3].matchAll(/([\w:-]+)="([^"]*)"/g)) attrs[k] = unescape(v);
      const node = { name: m[2], attrs, children: [], text: "" };
      stack.at(-1)!.children.push(node);
      if (!m[4]) stack.push(node);
    } else if (m[5]) {
      stack.at(-1)!.text += unescape(m[5]);
    }
  }
  assert.equal(pos, src.length, "trailing XML");
  assert.equal(stack.length, 1, `unclosed <${stack.at(-1)!.name}>`);
  assert.equal(root.children.length, 1);
  return root.children[0];
}

function all(n: XmlNode, pred: (n: XmlNode) => boolean): XmlNode[] {
  const out = pred(n) ? [n] : [];
  for (const c of n.children) out.push(...all(c, pred));
  return out;
}
const byClass = (n: XmlNode, cls: string) => all(n, (x) => x.attrs.class === cls);
const one = (n: XmlNode, cls: string) => {
  const found = byClass(n, cls);
  assert.equal(found.length, 1, `exactly one .${cls}`);
  return found[0];
};
const num = (n: XmlNode, a: string) => {
  const v = Number(n.attrs[a]);
  assert.ok(Number.isFinite(v), `<${n.name}> ${a}="${n.attrs[a]}"`);
  return v;
};

/** One axis as drawn: tick labels at their pixel positions, and the pixel <-> value map they imply. */
function readAxis(svg: XmlNode, cls: "x-axis" | "y-axis") {
  const axis = one(svg, cls);
  const key = cls === "x-axis" ? "x1" : "y1";
  const ticks = axis.children.filter((c) => c.attrs.class === "tick").map((t) => num(t, key));
  const labels = axis.children.filter((c) => c.attrs.class === "tick-label").map((t) => t.text);
  assert.equal(ticks.length, labels.length);
  assert.ok(ticks.length >= 2, `${cls} has ${ticks.length} ticks`);
  const [p0, p1] = [ticks[0], ticks.at(-1)!];
  const [v0, v1] = [Number(labels[0]), Number(labels.at(-1))];
  const toValue = (px: number) => v0 + (px - p0) / (p1 - p0) * (v1 - v0);
  // Coordinates are printed to 0.01 px: allow a few hundredths of a pixel.
  const tol = 0.03 * Math.abs((v1 - v0) / (p1 - p0));
  return { ticks, labels, toValue, tol };
}

/** Everything a reader takes from a line chart, in data units. */
function readChart(src: string) {
  const svg = parseXml(src);
  assert.equal(svg.name, "svg");
  const x = readAxis(svg, "x-axis"), y = readAxis(svg, "y-axis");
  const frame = one(svg, "frame");
  const fx = num(frame, "x"), fy = num(frame, "y");
  const series = byClass(svg, "series").map((g) => {
    const paths = g.children.filter((c) => c.attrs.class === "line");
    assert.ok(paths.length <= 1, "one path a series");
    const runs = paths.flatMap((p) =>
      p.attrs.d.split("M").filter(Boolean).map((sub) =>
        [...sub.matchAll(/(-?[\d.]+) (-?[\d.]+)/g)].map(([, px, py]) => [+px, +py] as const)
      )
    );
    const markers = g.children.filter((c) => c.attrs.class === "marker")
      .map((c) => [num(c, "cx"), num(c, "cy")] as const);
    const color = paths[0]?.attrs.stroke ?? g.children[0]?.attrs.fill;
    return {
      color,
      pixels: runs,
      runs: runs.map((r) => r.map(([px, py]) => [x.toValue(px), y.toValue(py)])),
      markers: markers.map(([px, py]) => [x.toValue(px), y.toValue(py)]),
    };
  });
  const legend = byClass(svg, "entry").map((e) => ({
    name: e.children.find((c) => c.name === "text")!.text,
    color: e.children[0].attrs.stroke ?? e.children[0].attrs.fill,
  }));
  const texts = (cls: string) => byClass(svg, cls).map((t) => t.text);
  return {
    svg,
    width: num(svg, "width"),
    height: num(svg, "height"),
    viewBox: svg.attrs.viewBox,
    accessibleTitle: svg.children.find((c) => c.name === "title")?.text,
    title: texts("title"),
    xLabel: texts("x-label"),
    yLabel: byClass(svg, "y-label"),
    x,
    y,
    frame: {
      left: fx,
      right: fx + num(frame, "width"),
      top: fy,
      bottom: fy + num(frame, "height"),
    },
    xRange: [x.toValue(fx), x.toValue(fx + num(frame, "width"))],
    yRange: [y.toValue(fy + num(frame, "height")), y.toValue(fy)],
    series,
    legend,
  };
}

function assertPointsNear(
  got: readonly (readonly number[])[],
  want: readonly (readonly number[])[],
  tol: [number, number],
  what: string,
) {
  assert.equal(got.length, want.length, `${what}: ${got.length} points, want ${want.length}`);
  got.forEach((g, i) => {
    for (const k of [0, 1]) {
      assert.ok(
        Math.abs(g[k] - want[i][k]) <= tol[k],
        `${what} point ${i}: ${g} is not ${want[i]} (tolerance ${tol})`,
      );
    }
  });
}

// ---------------------------------------------------------------------------
// Line charts
// ---------------------------------------------------------------------------

Deno.test("lineChart() draws each series at the data values its tick labels say", () => {
  const loss: [number, number][] = [[0, 2.5], [1.5, 1.9], [4, 1.1], [6.2, 0.7], [9.8, 0.2]];
  const acc: [number, number][] = [[0, 0.4], [5, 1.3], [9, 2.1]];
  const c = readChart(lineChart({
    title: "Pre-training",
    xLabel: "step",
    yLabel: "loss",
    series: [
      { name: "loss", points: loss },
      { name: "probe", points: acc, style: "line+points", color: "#123456" },
    ],
  }));
  // x data 0..9.8 in steps of 2 widens to 0..10; y 0.2..2.5 takes steps of 0.5.
  assert.deepEqual(c.x.labels, ["0", "2", "4", "6", "8", "10"]);
  assert.deepEqual(c.y.labels, ["0", "0.5", "1.0", "1.5", "2.0", "2.5"]);
  assertPointsNear([c.xRange, c.yRange], [[0, 10], [0, 2.5]], [c.x.tol, c.y.tol], "axis ranges");
  // Ticks are evenly spaced: every tick's position maps back to its own label.
  for (const a of [c.x, c.y]) {
    a.ticks.forEach((p, i) => assert.ok(Math.abs(a.toValue(p) - Number(a.labels[i])) <= a.tol));
  }
  // y grows upwards.
  assert.ok(c.y.ticks[0] > c.y.ticks.at(-1)!);
  assert.equal(c.series.length, 2);
  const tol: [number, number] = [c.x.tol, c.y.tol];
  assert.equal(c.series[0].runs.length, 1);
  assertPointsNear(c.series[0].runs[0], loss, tol, "loss line");
  assert.equal(c.series[0].markers.length, 0, "a plain line has no markers");
  assertPointsNear(c.series[1].runs[0], acc, tol, "probe line");
  assertPointsNear(c.series[1].markers, acc, tol, "probe markers");
  assert.equal(c.series[1].color, "#123456");
  assert.deepEqual(c.legend, [
    { name: "loss", color: c.series[0].color },
    { name: "probe", color: "#123456" },
  ]);
  assert.notEqual(c.series[0].color, undefined);
  assert.deepEqual(c.title, ["Pre-training"]);
  assert.equal(c.accessibleTitle, "Pre-training");
  assert.deepEqual(c.xLabel, ["step"]);
  assert.equal(c.yLabel.length, 1);
  assert.equal(c.yLabel[0].text, "loss");
  assert.match(c.yLabel[0].attrs.transform, /^rotate\(-90 /);
  // Text is text: every label sits inside the drawing, and tick labels by their ticks.
  for (const t of all(c.svg, (n) => n.name === "text")) {
    assert.ok(num(t, "x") >= 0 && num(t, "x") <= c.width, `${t.text} x`);
    assert.ok(num(t, "y") >= 0 && num(t, "y") <= c.height, `${t.text} y`);
  }
  const xTickText = byClass(one(c.svg, "x-axis"), "tick-label");
  xTickText.forEach((t, i) => assert.equal(num(t, "x"), c.x.ticks[i]));
  assert.ok(xTickText.every((t) => num(t, "y") > c.frame.bottom), "x tick labels below the plot");
});

Deno.test("lineChart() defaults to 640x400, takes a requested size, and scales by its viewBox", () => {
  const series = [{ name: "a", points: [[0, 1], [1, 2]] as [number, number][] }];
  const d = readChart(lineChart({ title: "t", xLabel: "x", yLabel: "y", series }));
  assert.deepEqual([d.width, d.height, d.viewBox], [640, 400, "0 0 640 400"]);
  const r = readChart(
    lineChart({ title: "t", xLabel: "x", yLabel: "y", series, width: 500, height: 300 }),
  );
  assert.deepEqual([r.width, r.height, r.viewBox], [500, 300, "0 0 500 300"]);
  assert.ok(r.frame.right <= 500 && r.frame.bottom <= 300 && r.frame.left > 0 && r.frame.top > 0);
  assert.throws(
    () => lineChart({ title: "", xLabel: "", yLabel: "", series, width: 60, height: 40 }),
    /60x40 leaves no room/,
  );
});

Deno.test("lineChart() breaks a line at NaN, marks a lone point and keeps an empty series' legend entry", () => {
  const c = readChart(lineChart({
    title: "t",
    xLabel: "x",
    yLabel: "y",
    series: [
      { name: "nan", points: [[0, 1], [1, 2], [2, NaN], [3, 2], [4, Infinity], [5, 3], [6, 4]] },
      { name: "empty", points: [] },
    ],
  }));
  const tol: [number, number] = [c.x.tol, c.y.tol];
  // [0, 1]-[1, 2] and [5, 3]-[6, 4] are lines; [3, 2] stands alone between two gaps.
  assert.equal(c.series[0].runs.length, 2);
  assertPointsNear(c.series[0].runs[0], [[0, 1], [1, 2]], tol, "first run");
  assertPointsNear(c.series[0].runs[1], [[5, 3], [6, 4]], tol, "second run");
  assertPointsNear(c.series[0].markers, [[3, 2]], tol, "lone point");
  assert.deepEqual(c.series[1].runs, []);
  assert.deepEqual(c.series[1].markers, []);
  assert.deepEqual(c.legend.map((e) => e.name), ["nan", "empty"]);
});

Deno.test("lineChart() pads a single value's range and draws a chart with no series at all", () => {
  const one = readChart(lineChart({
    title: "",
    xLabel: "",
    yLabel: "",
    series: [{ name: "one", points: [[3, 2]] }],
  }));
  // A single value v gets [0.9 v, 1.1 v], which is already whole steps of 0.1 (y) / 0.1 (x: 2.7..3.3).
  assertPointsNear([one.xRange, one.yRange], [[2.7, 3.3], [1.8, 2.2]], [one.x.tol, one.y.tol], "");
  assertPointsNear(one.series[0].markers, [[3, 2]], [one.x.tol, one.y.tol], "the lone point");
  assert.deepEqual(one.title, []);
  const zeros = readChart(lineChart({
    title: "",
    xLabel: "",
    yLabel: "",
    series: [{ name: "zeros", points: [[0, 0], [0, 0]] }],
  }));
  assertPointsNear([zeros.yRange], [[-1, 1]], [zeros.y.tol, zeros.y.tol], "zero range");
  const none = readChart(lineChart({ title: "t", xLabel: "x", yLabel: "y", series: [] }));
  assert.deepEqual([none.xRange, none.yRange], [[0, 1], [0, 1]]);
  assert.deepEqual(none.legend, []);
  assert.equal(byClass(none.svg, "legend").length, 0);
});

Deno.test("lineChart() clips data outside a fixed range to the frame and rejects an empty range", () => {
  const c = readChart(lineChart({
    title: "t",
    xLabel: "x",
    yLabel: "y",
    yRange: [0, 1],
    xRange: [0, 2],
    series: [{ name: "diverged", points: [[0, 0.5], [1, 1e15], [2, -1e15]], style: "line+points" }],
  }));
  assert.deepEqual(c.y.labels, ["0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
  const { left, right, top, bottom } = c.frame;
  for (const run of c.series[0].pixels) {
    for (const [px, py] of run) {
      assert.ok(px >= left && px <= right && py >= top && py <= bottom, `(${px}, ${py}) outside`);
    }
  }
  // The first segment leaves through the top, the second crosses the whole plot.
  const tol: [number, number] = [c.x.tol, c.y.tol];
  assert.equal(c.series[0].runs.length, 2);
  assertPointsNear(c.series[0].runs[0], [[0, 0.5], [0.5 / 1e15, 1]], tol, "run to the top");
  assertPointsNear(c.series[0].runs[1], [[1.5, 1], [1.5, 0]], tol, "run across");
  // Only the in-range point keeps its marker.
  assertPointsNear(c.series[0].markers, [[0, 0.5]], tol, "markers");
  assert.throws(
    () => lineChart({ title: "", xLabel: "", yLabel: "", yRange: [1, 1], series: [] }),
    /lo < hi/,
  );
});

Deno.test("lineChart() escapes markup in titles, labels and series names", () => {
  const opts: LineChartOptions = {
    title: 'loss < 1 & "rising"',
    xLabel: "a<b",
    yLabel: "it's",
    series: [{ name: "<script>", points: [[0, 0], [1, 1]] }],
  };
  const c = readChart(lineChart(opts));
  assert.deepEqual(c.title, [opts.title]);
  assert.deepEqual(c.xLabel, ["a<b"]);
  assert.equal(c.yLabel[0].text, "it's");
  assert.deepEqual(c.legend.map((e) => e.name), ["<script>"]);
});

Deno.test("lineChart() puts the legend in the corner the data leaves free", () => {
  // A zigzag through the top fifth and a line down near the right edge: only
  // the bottom-left corner is free.
  const zigzag = Array.from({ length: 21 }, (_, i) => [i / 2, i % 2 ? 8 : 10] as [number, number]);
  const c = readChart(lineChart({
    title: "",
    xLabel: "",
    yLabel: "",
    series: [
      { name: "zigzag", points: zigzag },
      { name: "edge", points: [[9, 10], [9, 0]] },
    ],
  }));
  const box = one(c.svg, "legend").children[0];
  const top = num(box, "y"), bottom = top + num(box, "height");
  assert.ok(top > (c.frame.top + c.frame.bottom) / 2 && bottom < c.frame.bottom, `y ${top}`);
  assert.ok(num(box, "x") + num(box, "width") < (c.frame.left + c.frame.right) / 2);
});

Deno.test("niceTicks() picks steps of 1, 2 or 5 times a power of ten and prints them exactly", () => {
  assert.deepEqual(niceTicks(0.2, 2.5, 5, true), {
    lo: 0,
    hi: 2.5,
    step: 0.5,
    values: [0, 0.5, 1, 1.5, 2, 2.5],
  });
  assert.deepEqual(niceTicks(0, 9800, 5, true).values, [0, 2000, 4000, 6000, 8000, 10000]);
  assert.deepEqual(niceTicks(0, 0.5, 5, false).values, [0, 0.1, 0.2, 0.3, 0.4, 0.5]);
  const fixed = niceTicks(3, 97, 5, false);
  assert.equal(fixed.lo, 3);
  assert.deepEqual(fixed.values, [20, 40, 60, 80]);
  assert.throws(() => niceTicks(1, 1), /lo < hi/);
});

// ---------------------------------------------------------------------------
// Image grids (PNG) and their labelled SVG
// ---------------------------------------------------------------------------

/** A decoded RGB PNG with a pixel accessor. */
function readPng(bytes: Uint8Array) {
  const png = decode(bytes);
  assert.equal(png.channels, 3);
  assert.equal(png.depth, 8);
  const at = (x: number, y: number): Rgb => {
    const i = (y * png.width + x) * 3;
    return [png.data[i], png.data[i + 1], png.data[i + 2]];
  };
  return { width: png.width, height: png.height, at };
}

const WHITE: Rgb = [255, 255, 255];

Deno.test("encodeRgbPng() round-trips through fast-png's decoder and checks the byte count", () => {
  const rgb = new Uint8Array([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 8, 7]);
  const png = readPng(encodeRgbPng(2, 2, rgb));
  assert.equal(png.width, 2);
  assert.equal(png.height, 2);
  assert.deepEqual(png.at(1, 1), [9, 8, 7]);
  assert.throws(() => encodeRgbPng(2, 2, rgb.subarray(3)), /expected 12 bytes/);
});

/** A 3x2 RGB image whose pixels are all different and none white or black. */
function knownImage() {
  const hwc = new Uint8Array(2 * 3 * 3);
  for (let i = 0; i < hwc.length; i++) hwc[i] = 10 + 13 * i;
  const chw = new Uint8Array(hwc.length);
  for (let p = 0; p < 6; p++) for (let k = 0; k < 3; k++) chw[k * 6 + p] = hwc[p * 3 + k];
  const pixel = (x: number, y: number): Rgb => {
    const i = (y * 3 + x) * 3;
    return [hwc[i], hwc[i + 1], hwc[i + 2]];
  };
  return { hwc, chw, pixel };
}

Deno.test("imageGrid() puts a uint8 image's pixels exactly at gap, gap with scale 1 and no labels", () => {
  const { hwc, chw, pixel } = knownImage();
  const gap = 5;
  for (const [data, layout] of [[hwc, "hwc"], [chw, "chw"]] as const) {
    const png = readPng(imageGrid({
      rows: [{ label: "", images: [{ data, channels: 3, height: 2, width: 3, layout }] }],
      scale: 1,
      gap,
    }));
    assert.equal(png.width, gap + 3 + gap);
    assert.equal(png.height, gap + 2 + gap);
    for (let y = 0; y < 2; y++) {
      for (let x = 0; x < 3; x++) assert.deepEqual(png.at(gap + x, gap + y), pixel(x, y), layout);
    }
    assert.deepEqual(png.at(gap - 1, gap), WHITE);
    assert.deepEqual(png.at(gap + 3, gap + 1), WHITE);
  }
});

Deno.test("imageGrid() upscales every cell into its row and column, white between; the PNG holds no text", () => {
  const { hwc, pixel } = knownImage();
  const img = { data: hwc, channels: 3 as const, height: 2, width: 3, layout: "hwc" as const };
  const scale = 4, gap = 3;
  const png = readPng(imageGrid({
    title: "Figure 2",
    columnLabels: ["masked", "truth"],
    rows: [{ label: "random", images: [img, img] }, { label: "block", images: [img] }],
    scale,
    gap,
  }));
  const cw = 3 * scale, ch = 2 * scale;
  assert.equal(png.width, gap + cw + gap + cw + gap);
  assert.equal(png.height, gap + ch + gap + ch + gap);
  const cells = [[0, 0], [1, 0], [0, 1]];
  const inCell = (x: number, y: number) =>
    cells.find(([j, i]) => {
      const x0 = gap + j * (cw + gap), y0 = gap + i * (ch + gap);
      return x >= x0 && x < x0 + cw && y >= y0 && y < y0 + ch;
    });
  for (let y = 0; y < png.height; y++) {
    for (let x = 0; x < png.width; x++) {
      const c = inCell(x, y);
      const want = c
        ? pixel(
          Math.floor((x - gap - c[0] * (cw + gap)) / scale),
          Math.floor((y - gap - c[1] * (ch + gap)) / scale),
        )
        : WHITE;
      assert.deepEqual(png.at(x, y), want, `pixel (${x}, ${y})`);
    }
  }
});

Deno.test("gridFigure() labels the embedded PNG: title on top, column labels over columns, row labels left of rows", () => {
  const { hwc } = knownImage();
  const img = { data: hwc, channels: 3 as const, height: 2, width: 3, layout: "hwc" as const };
  const opts = {
    title: "Reconstructions",
    columnLabels: ["masked input", "truth"],
    rows: [{ label: "random 1", images: [img, img] }, { label: "block", images: [img, img] }],
    scale: 8,
    gap: 4,
  };
  const { png, svg } = gridFigure(opts);
  assert.deepEqual(png, imageGrid(opts));
  const doc = parseXml(svg);
  const image = one(doc, "grid");
  assert.equal(image.name, "image");
  const href = image.attrs.href;
  assert.ok(href.startsWith("data:image/png;base64,"));
  assert.deepEqual(
    Uint8Array.from(atob(href.slice(href.indexOf(",") + 1)), (c) => c.charCodeAt(0)),
    png,
  );
  const [ix, iy, iw, ih] = ["x", "y", "width", "height"].map((a) => num(image, a));
  const { width, height } = readPng(png);
  // Shown at a whole multiple of its pixel size, so cells stay crisp.
  const zoom = iw / width;
  assert.ok(Number.isInteger(zoom) && zoom >= 1 && ih / height === zoom, `zoom ${zoom}`);
  assert.deepEqual(one(doc, "title").text, "Reconstructions");
  assert.ok(num(one(doc, "title"), "y") < iy);
  // Column j of the PNG spans gap + j (24 + gap) .. + 24 pixels.
  const cols = one(doc, "column-labels").children;
  assert.deepEqual(cols.map((t) => t.text), opts.columnLabels);
  cols.forEach((t, j) => {
    const x0 = ix + (4 + j * 28) * zoom, x1 = x0 + 24 * zoom;
    assert.ok(Math.abs(num(t, "x") - (x0 + x1) / 2) <= 0.01, `column label ${j} centred`);
    assert.ok(num(t, "y") < iy, "column labels above the image");
  });
  const rows = one(doc, "row-labels").children;
  assert.deepEqual(rows.map((t) => t.text), ["random 1", "block"]);
  assert.equal(one(doc, "row-labels").attrs["text-anchor"], "end");
  rows.forEach((t, i) => {
    const y0 = iy + (4 + i * 20) * zoom, y1 = y0 + 16 * zoom;
    assert.ok(num(t, "y") > y0 && num(t, "y") < y1, `row label ${i} beside its row`);
    assert.ok(num(t, "x") <= ix, "row labels left of the image");
  });
  assert.ok(num(doc, "width") >= ix + iw && num(doc, "height") >= iy + ih);
});

Deno.test("gridFigure() enlarges the image when a column label is wider than its column", () => {
  const img = { data: new Uint8Array(4).fill(7), channels: 1 as const, height: 2, width: 2 };
  const { svg } = gridFigure({
    rows: [{ label: "", images: [img] }],
    columnLabels: ["a rather long column label"],
    scale: 1,
    gap: 1,
  });
  const image = one(parseXml(svg), "grid");
  // 2 px of image under ~26 characters of 13 px text: shown many times larger.
  assert.ok(num(image, "width") / 4 >= 50, `width ${num(image, "width")}`);
});

Deno.test("imageGrid() min-max scales a float image to 0..255 and draws gray as equal RGB", () => {
  const data = new Float32Array([-3, 0.5, 7, 2]);
  const png = readPng(imageGrid({
    rows: [{ label: "", images: [{ data, channels: 1, height: 1, width: 4 }] }],
    scale: 1,
    gap: 1,
  }));
  assert.deepEqual(png.at(1, 1), [0, 0, 0]);
  assert.deepEqual(png.at(3, 1), [255, 255, 255]);
  const mid = Math.round((0.5 + 3) / 10 * 255);
  assert.deepEqual(png.at(2, 1), [mid, mid, mid]);
});

Deno.test("imageToRgb() honours a fixed range, a constant image and non-finite values", () => {
  const ranged = imageToRgb({
    data: new Float32Array([-1, 0, 0.5, 2]),
    channels: 1,
    height: 2,
    width: 2,
    range: [0, 1],
  });
  assert.deepEqual([...ranged].filter((_, i) => i % 3 === 0), [0, 0, 128, 255]);
  const flat = imageToRgb({ data: new Float32Array([4, 4]), channels: 1, height: 1, width: 2 });
  assert.deepEqual([...flat], [128, 128, 128, 128, 128, 128]);
  const bad = imageToRgb({ data: new Float32Array([0, NaN, 1]), channels: 1, height: 1, width: 3 });
  assert.deepEqual([...bad], [0, 0, 0, 255, 0, 255, 255, 255, 255]);
  const u8 = imageToRgb({ data: new Uint8Array([7, 200]), channels: 1, height: 1, width: 2 });
  assert.deepEqual([...u8], [7, 7, 7, 200, 200, 200]);
  assert.throws(
    () => imageToRgb({ data: new Uint8Array(5), channels: 3, height: 1, width: 2 }),
    /needs 6 values/,
  );
});

// ---------------------------------------------------------------------------
// The report's figures from results, checkpoints and the GPU
// ---------------------------------------------------------------------------

/** A 12x12 RGB MAE in 4x4 patches: 9 tokens of 48 values. */
const TINY_MAE: MaeConfig = {
  encoder: {
    imageSize: 12,
    channels: 3,
    patch: 4,
    width: 32,
    depth: 1,
    heads: 2,
    mlp: 64,
    dropout: 0,
  },
  decoderWidth: 32,
  decoderDepth: 1,
  decoderHeads: 2,
  decoderMlp: 64,
  maskRatio: 0.75,
  masking: "random",
  normPixLoss: false,
};

/** A pre-training checkpoint of `mae` whose config says `seed` (tensors, metadata), as the trainer writes one. */
async function checkpointOf(mae: Mae, seed: number) {
  const tensors = new Map<string, NamedArray>();
  for (const store of mae.stores) {
    for (const [name, data] of await store.read()) {
      tensors.set(name, { shape: [...store.get(name).shape], data });
    }
  }
  const { encoder, ...objective } = TINY_MAE;
  const config = { mode: "pretrain", seed, encoder, mae: objective };
  return { tensors, metadata: { config: JSON.stringify(config) } };
}

gpuTest(
  "loadMae() loads every parameter of a pretrain checkpoint by name and refuses a missing or mis-sized one",
  async (gpu) => {
    const source = new Mae(gpu, TINY_MAE, 11);
    const { tensors, metadata } = await checkpointOf(source, 7);
    const dir = await Deno.makeTempDir();
    const path = `${dir}/checkpoint.safetensors`;
    await Deno.writeFile(path, encodeSafetensors(tensors, metadata));
    const { mae, config } = await loadMae(path, gpu);
    assert.equal(config.seed, 7);
    // The model is built from seed 7, so equality with seed 11 means the values were loaded.
    const fresh = new Mae(gpu, TINY_MAE, 7);
    for (const [i, store] of mae.stores.entries()) {
      const got = await store.read(), want = await source.stores[i].read();
      const init = await fresh.stores[i].read();
      assert.deepEqual([...got.keys()], [...want.keys()]);
      for (const [name, v] of want) assert.deepEqual(got.get(name), v, name);
      assert.ok([...want].some(([name, v]) => v.some((x, k) => x !== init.get(name)![k])));
    }
    for (const m of [mae, fresh]) m.destroy();

    const missing = new Map(tensors);
    missing.delete("decoder.head.b");
    await Deno.writeFile(path, encodeSafetensors(missing, metadata));
    await assert.rejects(
      loadMae(path, gpu),
      new RegExp(`checkpoint ${path} has no parameter 'decoder.head.b'`),
    );
    const short = new Map(tensors);
    short.set("encoder.norm.w", { shape: [3], data: new Float32Array(3) });
    await Deno.writeFile(path, encodeSafetensors(short, metadata));
    await assert.rejects(loadMae(path, gpu), /'encoder.norm.w' has 3 values, the model wants 32/);
    const probe = { config: metadata.config.replace('"pretrain"', '"probe"') };
    await Deno.writeFile(path, encodeSafetensors(tensors, probe));
    await assert.rejects(loadMae(path, gpu), /a 'probe' checkpoint holds no MAE/);
    source.destroy();
  },
);

/** f64 reference: (B, T, p p C) patch vectors in (py, px, c) order -> (B, C, H, W) images. */
function unpatchifyRef(patches: ArrayLike<number>, B: number, C: number, S: number, p: number) {
  const side = S / p, T = side * side, P = p * p * C;
  const out = new Float64Array(B * C * S * S);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const ty = Math.floor(t / side), tx = t % side;
      for (let py = 0; py < p; py++) {
        for (let px = 0; px < p; px++) {
          for (let c = 0; c < C; c++) {
            out[((b * C + c) * S + ty * p + py) * S + tx * p + px] =
              patches[(b * T + t) * P + (py * p + px) * C + c];
          }
        }
      }
    }
  }
  return out;
}

gpuTest(
  "reconstruct() lays out an MAE's prediction as the f64 reference does, and the grid PNG shows exactly that",
  async (gpu) => {
    const B = 2, C = 3, S = 12, p = 4, T = 9, P = 48;
    const mae = new Mae(gpu, TINY_MAE, 5);
    const host = rand(3, B * C * S * S, -2, 2);
    const images = tensor(gpu, host, [B, C, S, S]);
    const masking = tidy(() => mae.sampleMasking(new Rng(1), B));
    const r = await reconstruct(mae, images, masking);

    // The reference takes the model's own outputs and does the rest on the CPU.
    const { pred, target, mask } = tidy(() => {
      const o = mae.forward(images, masking, new DropoutContext(false, 0, 0, 0));
      return { pred: o.pred, target: o.target, mask: o.mask };
    });
    const [Pd, Td, M] = await Promise.all(
      [pred, target, mask].map(async (t) => await t.read() as Float32Array),
    );
    assert.equal(M.reduce((a, v) => a + v, 0), B * 7, "7 of 9 tokens masked per image");
    let lo = Infinity, hi = -Infinity;
    for (const v of host) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
    const gray = Math.fround((lo + hi) / 2);
    const compose = (pick: (b: number, t: number, k: number) => number) => {
      const out = new Float64Array(B * T * P);
      for (let b = 0; b < B; b++) {
        for (let t = 0; t < T; t++) {
          for (let k = 0; k < P; k++) out[(b * T + t) * P + k] = pick(b, t, k);
        }
      }
      return unpatchifyRef(out, B, C, S, p);
    };
    const at = (a: ArrayLike<number>) => (b: number, t: number, k: number) =>
      a[(b * T + t) * P + k];
    const masked = (b: number, t: number) => M[b * T + t] === 1;
    const want = {
      truth: compose(at(Td)),
      masked: compose((b, t, k) => masked(b, t) ? gray : at(Td)(b, t, k)),
      recon: compose((b, t, k) => masked(b, t) ? at(Pd)(b, t, k) : at(Td)(b, t, k)),
    };
    assert.deepEqual(r.shape, [B, C, S, S]);
    assert.deepEqual(r.range, [lo, hi]);
    // Without normPixLoss the ground truth is the input itself.
    assert.deepEqual([...want.truth], [...host]);
    for (const k of ["truth", "masked", "recon"] as const) {
      assert.deepEqual([...r[k]], [...want[k]], k);
    }
    // A prediction differs from the target, so the masked patches really are the prediction.
    assert.ok(want.recon.some((v, i) => v !== want.truth[i]));

    // The grid: row b holds masked input, reconstruction and ground truth of image b.
    const scale = 2, gap = 4, cell = S * scale;
    const rows = [0, 1].map((b) => reconstructionRow(`random ${b + 1}`, r, b));
    assert.deepEqual(rows.map((row) => row.label), ["random 1", "random 2"]);
    const png = readPng(imageGrid({ rows, columnLabels: GRID_COLUMNS, scale, gap }));
    assert.equal(png.width, gap + 3 * (cell + gap));
    assert.equal(png.height, gap + B * (cell + gap));
    const byte = (v: number) => Math.round(Math.min(1, Math.max(0, (v - lo) / (hi - lo))) * 255);
    for (let b = 0; b < B; b++) {
      (["masked", "recon", "truth"] as const).forEach((k, j) => {
        for (let y = 0; y < cell; y++) {
          for (let x = 0; x < cell; x++) {
            const px = Math.floor(x / scale), py = Math.floor(y / scale);
            const rgb = [0, 1, 2].map((c) => byte(want[k][((b * C + c) * S + py) * S + px]));
            assert.deepEqual(
              png.at(gap + j * (cell + gap) + x, gap + b * (cell + gap) + y),
              rgb,
              `image ${b}, ${k}, pixel (${x}, ${y})`,
            );
          }
        }
      });
    }
    for (const t of [images, pred, target, mask, masking.idsKeep, masking.idsRestore]) t.dispose();
    mae.destroy();
  },
);

gpuTest(
  "renderFigures() charts each run's training curve and the sweep against the paper as SVG",
  async (gpu) => {
    const out = await Deno.makeTempDir(), runs = await Deno.makeTempDir();
    const curve = [[0, 2.3], [5, 1.7], [10, 1.2]];
    await Deno.mkdir(`${runs}/scratch`);
    await Deno.writeTextFile(
      `${runs}/scratch/metrics.jsonl`,
      [
        ...curve.map(([step, loss]) => JSON.stringify({ type: "train", step, loss })),
        JSON.stringify({ type: "eval", step: 10, accuracy: 0.3 }),
      ].join("\n") + "\n",
    );
    const results: Results = new Map([
      ["scratch", { seeds: [4], metrics: [{ dir: `${runs}/scratch` }] }],
      ["pretrain-mae-random", { notrun: "not in this profile" }],
      ["probe-mae-r50", {
        seeds: [1, 2],
        metrics: [{ eval: { accuracy: 0.2 } }, { eval: { accuracy: 0.3 } }],
      }],
      ["probe-mae-r75", {
        seeds: [1, 2],
        metrics: [{ eval: { accuracy: 0.4 } }, { eval: { accuracy: 0.5 } }],
      }],
    ]);
    const profile = { name: "smoke", roots: {} } as Profile;
    const written = await renderFigures(out, results, profile, gpu);
    assert.deepEqual(written, ["curves_classify.svg", "sweep.svg"]);
    assert.deepEqual([...Deno.readDirSync(out)].map((e) => e.name).sort(), written.toSorted());

    const classify = readChart(await Deno.readTextFile(`${out}/curves_classify.svg`));
    assert.deepEqual(classify.title, ["Classification loss (CE)"]);
    assert.deepEqual(classify.legend.map((e) => e.name), ["scratch (seed 4)"]);
    const tol: [number, number] = [classify.x.tol, classify.y.tol];
    assertPointsNear(classify.series[0].runs[0], curve, tol, "scratch curve");

    const sweep = readChart(await Deno.readTextFile(`${out}/sweep.svg`));
    assert.deepEqual(sweep.xLabel, ["masking ratio (%)"]);
    assert.deepEqual(sweep.legend.map((e) => e.name), ["paper (TIN)", "ours (smoke)"]);
    const stol: [number, number] = [sweep.x.tol, sweep.y.tol];
    const paper = Object.entries(PAPER_SWEEP).map(([r, a]) => [Number(r), a]);
    assert.deepEqual(sweep.series[0].runs, [], "the paper's points are not joined");
    assertPointsNear(sweep.series[0].markers, paper, stol, "paper points");
    // Ours: the mean over seeds, in percent.
    assertPointsNear(sweep.series[1].runs[0], [[50, 25], [75, 45]], stol, "our line");
    assertPointsNear(sweep.series[1].markers, [[50, 25], [75, 45]], stol, "our points");
  },
);

Deno.test("the report shows the SVG figures inline and links the grid's PNG", () => {
  const md = markdown({
    study: "tin",
    title: "t",
    profile: "smoke",
    profileReason: "chosen",
    seeds: [1],
    adapter: { description: "cpu", software: true },
    commit: "abc",
    started: "2026-01-01T00:00:00Z",
    seconds: 1,
    shard: null,
    claims: [],
    experiments: {},
    runs: [],
    figures: ["curves_pretrain.svg", "figure2.svg", "figure2.png"],
  });
  const figures = md.slice(md.indexOf("## Figures"));
  assert.deepEqual(
    [...figures.matchAll(/!\[[^\]]*\]\(([^)]+)\)/g)].map((m) => m[1]),
    ["curves_pretrain.svg", "figure2.svg"],
  );
  assert.match(figures, /(?<!!)\[figure2\.png\]\(figure2\.png\)/);
});

Deno.test("scaleSeries() draws each comparison's paired mean difference and its interval ends by size", () => {
  const acc = (xs: number[]) => ({
    seeds: xs.map((_, i) => i + 1),
    metrics: xs.map((a) => ({ eval: { accuracy: a } })),
  });
  const results: Results = new Map([
    ["probe-mae-random-n1024", acc([0.70, 0.72, 0.74])],
    ["probe-random-init-n1024", acc([0.60, 0.61, 0.65])],
    ["probe-mae-random-n4096", acc([0.80, 0.80, 0.80])],
    ["probe-random-init-n4096", acc([0.78, 0.78, 0.78])],
    // Fine-tuning ran at one size only; scratch at 4096 is missing, so that size is left out.
    ["finetune-mae-random-n1024", acc([0.8, 0.8, 0.8])],
    ["scratch-n1024", acc([0.79, 0.79, 0.79])],
    ["finetune-mae-random-n4096", acc([0.9, 0.9, 0.9])],
  ]);
  const s = scaleSeries(results);
  assert.deepEqual(s.map((x) => x.name), [
    "probe: MAE - random init",
    "probe: MAE - random init, 95% interval ends",
    "fine-tune: MAE - scratch",
    "fine-tune: MAE - scratch, 95% interval ends",
  ]);
  // Paired by seed: differences 10, 11, 9 pp at 1024 (mean 10, sd 1), 2 pp at 4096.
  const close = (a: number, b: number) => Math.abs(a - b) < 1e-9;
  assert.ok(close(s[0].points[0][1], 10) && s[0].points[0][0] === 1);
  assert.ok(close(s[0].points[1][1], 2) && s[0].points[1][0] === 4);
  const half = 4.302652729911275 / Math.sqrt(3); // t(0.975, 2) sd / sqrt(n)
  // (summarize() reads t from a table to 3 decimals.)
  assert.ok(Math.abs(s[1].points[0][1] - (10 - half)) < 1e-3);
  assert.ok(Math.abs(s[1].points[1][1] - (10 + half)) < 1e-3);
  assert.equal(s[2].points.length, 1);
  assert.deepEqual(scaleSeries(new Map()), []);
});
