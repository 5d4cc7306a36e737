import assert from "node:assert/strict";
import { decode } from "png";
import {
  Canvas,
  encodeRgbPng,
  imageGrid,
  imageToRgb,
  lineChart,
  niceTicks,
  type Rgb,
  textHeight,
  textWidth,
} from "../../src/repro/figures.ts";

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

const same = (a: Rgb, b: Rgb) => a[0] === b[0] && a[1] === b[1] && a[2] === b[2];
const WHITE: Rgb = [255, 255, 255];

// The digit 8 of a 5x7 font, written out by hand (not taken from the module).
const EIGHT = [
  ".###.",
  "#...#",
  "#...#",
  ".###.",
  "#...#",
  "#...#",
  ".###.",
];
// "L" is asymmetric both ways, so it shows the direction of a rotation.
const L = ["#....", "#....", "#....", "#....", "#....", "#....", "#####"];

Deno.test("Canvas.text() draws the 5x7 bitmap of '8' at its top-left corner", () => {
  const ink: Rgb = [0, 0, 0];
  for (const scale of [1, 3]) {
    const c = new Canvas(30, 30);
    c.text(4, 2, "8", ink, scale);
    const png = readPng(c.toPng());
    for (let y = 0; y < 30; y++) {
      for (let x = 0; x < 30; x++) {
        const gx = Math.floor((x - 4) / scale), gy = Math.floor((y - 2) / scale);
        const inGlyph = gx >= 0 && gx < 5 && gy >= 0 && gy < 7 && x >= 4 && y >= 2;
        const want = inGlyph && EIGHT[gy][gx] === "#" ? ink : WHITE;
        assert.deepEqual(png.at(x, y), want, `scale ${scale}, pixel (${x}, ${y})`);
      }
    }
  }
  assert.equal(textWidth("88", 2), 22);
  assert.equal(textHeight(2), 14);
});

Deno.test("Canvas.textUp() turns text a quarter turn counter-clockwise", () => {
  const c = new Canvas(12, 12);
  c.textUp(1, 2, "L", [0, 0, 0]);
  // Rotated CCW, glyph row gy becomes column x = 1 + gy and glyph column gx
  // becomes row y = 2 + (4 - gx): the L's foot now runs up the right edge.
  for (let gy = 0; gy < 7; gy++) {
    for (let gx = 0; gx < 5; gx++) {
      const want = L[gy][gx] === "#" ? 0 : 255;
      assert.equal(c.get(1 + gy, 2 + 4 - gx)[0], want, `glyph (${gx}, ${gy})`);
    }
  }
});

Deno.test("Canvas.line() joins its endpoints and clips far-off coordinates quickly", () => {
  const c = new Canvas(20, 10);
  const red: Rgb = [255, 0, 0];
  c.line(2, 3, 17, 3, red);
  for (let x = 2; x <= 17; x++) assert.deepEqual(c.get(x, 3), red);
  assert.deepEqual(c.get(1, 3), WHITE);
  assert.deepEqual(c.get(18, 3), WHITE);
  c.line(0, 0, 19, 9, red, 3);
  assert.deepEqual(c.get(0, 0), red);
  assert.deepEqual(c.get(19, 9), red);
  const t0 = performance.now();
  c.line(-1e12, 5, 1e12, 5, red);
  assert.ok(performance.now() - t0 < 50);
  assert.deepEqual(c.get(10, 5), red);
});

Deno.test("encodeRgbPng() round-trips through fast-png's decoder and checks the byte count", () => {
  const rgb = new Uint8Array([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 8, 7]);
  const png = readPng(encodeRgbPng(2, 2, rgb));
  assert.equal(png.width, 2);
  assert.equal(png.height, 2);
  assert.deepEqual(png.at(1, 1), [9, 8, 7]);
  assert.throws(() => encodeRgbPng(2, 2, rgb.subarray(3)), /expected 12 bytes/);
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

Deno.test("lineChart() renders at the requested size with the series colour across the plot", () => {
  const color: Rgb = [10, 200, 90];
  const bytes = lineChart({
    title: "Loss",
    xLabel: "step",
    yLabel: "loss",
    width: 500,
    height: 300,
    xRange: [0, 10],
    yRange: [0, 10],
    series: [{ name: "flat", points: [[0, 5], [10, 5]], color }],
  });
  const png = readPng(bytes);
  assert.equal(png.width, 500);
  assert.equal(png.height, 300);
  // A horizontal line at mid-range spans the plot: one row of the image holds
  // a long run of the series colour, far longer than the legend swatch.
  let longest = 0, row = -1;
  for (let y = 0; y < png.height; y++) {
    let run = 0;
    for (let x = 0; x < png.width; x++) {
      run = same(png.at(x, y), color) ? run + 1 : 0;
      if (run > longest) [longest, row] = [run, y];
    }
  }
  assert.ok(longest > 0.6 * png.width, `longest run ${longest}`);
  assert.ok(Math.abs(row - png.height / 2) < 0.15 * png.height, `row ${row}`);
  assert.deepEqual(png.at(0, 0), WHITE);
});

Deno.test("lineChart() defaults to 640x400 and draws each style's markers in the series colour", () => {
  const paper: Rgb = [120, 120, 120], ours: Rgb = [200, 30, 30];
  const png = readPng(lineChart({
    title: "Masking ratio",
    xLabel: "masking ratio (%)",
    yLabel: "probe accuracy (%)",
    series: [
      { name: "paper", points: [[25, 60], [50, 65], [75, 68]], style: "points", color: paper },
      { name: "ours", points: [[25, 55], [50, 61], [75, 63]], style: "line+points", color: ours },
    ],
  }));
  assert.equal(png.width, 640);
  assert.equal(png.height, 400);
  let nPaper = 0, nOurs = 0;
  for (let y = 0; y < png.height; y++) {
    for (let x = 0; x < png.width; x++) {
      if (same(png.at(x, y), paper)) nPaper++;
      if (same(png.at(x, y), ours)) nOurs++;
    }
  }
  assert.ok(nPaper > 3 * 20, `paper pixels ${nPaper}`); // three discs of radius 3 and more
  assert.ok(nOurs > nPaper, `ours pixels ${nOurs}`); // the line adds to its discs
});

Deno.test("lineChart() accepts a single point, constant data, NaN and empty series", () => {
  const cases = [
    [{ name: "one", points: [[3, 0.5]] as [number, number][] }],
    [{ name: "const", points: [[0, 2], [1, 2], [2, 2]] as [number, number][] }],
    [{ name: "zeros", points: [[0, 0], [0, 0]] as [number, number][] }],
    [
      { name: "nan", points: [[0, NaN], [1, 1], [2, Infinity], [3, 2]] as [number, number][] },
      { name: "empty", points: [] },
    ],
    [{ name: "empty", points: [] }],
    [],
  ];
  for (const series of cases) {
    const png = readPng(lineChart({ title: "t", xLabel: "x", yLabel: "y", series }));
    assert.equal(png.width, 640);
  }
  const lone: Rgb = [0, 128, 255];
  const png = readPng(lineChart({
    title: "",
    xLabel: "",
    yLabel: "",
    series: [{ name: "", points: [[3, 0.5]], color: lone }],
  }));
  let n = 0;
  for (let y = 0; y < png.height; y++) {
    for (let x = 0; x < png.width; x++) if (same(png.at(x, y), lone)) n++;
  }
  assert.ok(n > 0, "a lone point of a line series is still visible");
});

Deno.test("lineChart() clips data outside a fixed range and rejects an empty range", () => {
  const t0 = performance.now();
  lineChart({
    title: "t",
    xLabel: "x",
    yLabel: "y",
    yRange: [0, 1],
    series: [{ name: "diverged", points: [[0, 0.5], [1, 1e15], [2, -1e15]] }],
  });
  assert.ok(performance.now() - t0 < 1000);
  assert.throws(
    () => lineChart({ title: "", xLabel: "", yLabel: "", yRange: [1, 1], series: [] }),
    /lo < hi/,
  );
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

Deno.test("imageGrid() places cells right of row labels and below column labels, upscaled", () => {
  const { hwc, pixel } = knownImage();
  const img = { data: hwc, channels: 3 as const, height: 2, width: 3, layout: "hwc" as const };
  const scale = 4;
  const png = readPng(imageGrid({
    title: "Figure 2",
    columnLabels: ["masked", "truth"],
    rows: [{ label: "random", images: [img, img] }, { label: "block", images: [img] }],
    scale,
  }));
  // Find the cells by their top-left colour, then check every upscaled pixel.
  const hits: [number, number][] = [];
  for (let y = 0; y < png.height; y++) {
    for (let x = 0; x < png.width; x++) {
      const left = x > 0 ? png.at(x - 1, y) : WHITE, up = y > 0 ? png.at(x, y - 1) : WHITE;
      if (same(png.at(x, y), pixel(0, 0)) && same(left, WHITE) && same(up, WHITE)) {
        hits.push([x, y]);
      }
    }
  }
  assert.equal(hits.length, 3);
  const labelW = textWidth("random", 2);
  for (const [x0, y0] of hits) {
    assert.ok(x0 > labelW, `cell at x ${x0} overlaps the row labels`);
    assert.ok(y0 > textHeight(3) + textHeight(2), `cell at y ${y0} overlaps the labels`);
    for (let y = 0; y < 2 * scale; y++) {
      for (let x = 0; x < 3 * scale; x++) {
        const want = pixel(Math.floor(x / scale), Math.floor(y / scale));
        assert.deepEqual(png.at(x0 + x, y0 + y), want);
      }
    }
  }
  // Two cells share a row, two share a column.
  assert.equal(hits[0][1], hits[1][1]);
  assert.equal(hits[0][0], hits[2][0]);
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
