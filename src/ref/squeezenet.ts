/**
 * SqueezeNet 1.1 forward in f64 from the plain-loop conv references, written
 * from the network's definition (torchvision's layer list), independent of
 * src/models/squeezenet.ts: the reference its forward and (by finite
 * differences) its gradients are audited against.
 * @module
 */

import { concatChannelsRef, conv2dRef, convOutSize, maxPool2dRef, poolOutSize } from "./conv.ts";
import { reluRef } from "./elementwise.ts";

type A = ArrayLike<number>;

/** An f64 activation and its (n, c, h, w) shape. */
interface Act {
  v: Float64Array;
  n: number;
  c: number;
  h: number;
  w: number;
}

function convRelu(x: Act, w: A, b: A, k: number, size: number, stride: number, pad: number): Act {
  const d = {
    n: x.n,
    c: x.c,
    h: x.h,
    w: x.w,
    k,
    kh: size,
    kw: size,
    strideH: stride,
    strideW: stride,
    padH: pad,
    padW: pad,
  };
  const { ho, wo } = convOutSize(d);
  return { v: reluRef(conv2dRef(x.v, w, b, d)), n: x.n, c: k, h: ho, w: wo };
}

function pool(x: Act): Act {
  const d = { n: x.n, c: x.c, h: x.h, w: x.w, kernel: 3, stride: 2, pad: 0, ceil: true };
  const { ho, wo } = poolOutSize(d);
  return { v: maxPool2dRef(x.v, d).y, n: x.n, c: x.c, h: ho, w: wo };
}

function fire(x: Act, p: (name: string) => A, prefix: string, s: number, e: number): Act {
  const w = (n: string) => p(`${prefix}.${n}.weight`), b = (n: string) => p(`${prefix}.${n}.bias`);
  const sq = convRelu(x, w("squeeze"), b("squeeze"), s, 1, 1, 0);
  const e1 = convRelu(sq, w("expand1x1"), b("expand1x1"), e, 1, 1, 0);
  const e3 = convRelu(sq, w("expand3x3"), b("expand3x3"), e, 3, 1, 1);
  return { v: concatChannelsRef(e1.v, e3.v, x.n, sq.h * sq.w), n: x.n, c: 2 * e, h: sq.h, w: sq.w };
}

/**
 * SqueezeNet 1.1 on x (n, c, h, w) with parameters by torchvision name.
 * `upTo: "features5"` stops after features[:5] (the SMAE critic) and returns
 * (n, 128, h', w'); otherwise the logits (n, classes) after the classifier
 * (dropout as identity, 1x1 conv, ReLU, global average pool).
 */
export function squeezeNetRef(
  x: A,
  shape: [n: number, c: number, h: number, w: number],
  params: Map<string, A>,
  upTo: "features5" | "logits" = "logits",
): { y: Float64Array; shape: number[] } {
  const p = (name: string) => {
    const v = params.get(name);
    if (!v) throw new Error(`squeezeNetRef: no parameter '${name}'`);
    return v;
  };
  const [n, c, h, w] = shape;
  let a: Act = { v: Float64Array.from(x), n, c, h, w };
  a = pool(convRelu(a, p("features.0.weight"), p("features.0.bias"), 64, 3, 2, 0));
  a = fire(a, p, "features.3", 16, 64);
  a = fire(a, p, "features.4", 16, 64);
  if (upTo === "features5") return { y: a.v, shape: [a.n, a.c, a.h, a.w] };
  a = fire(pool(a), p, "features.6", 32, 128);
  a = fire(a, p, "features.7", 32, 128);
  a = fire(pool(a), p, "features.9", 48, 192);
  a = fire(a, p, "features.10", 48, 192);
  a = fire(a, p, "features.11", 64, 256);
  a = fire(a, p, "features.12", 64, 256);
  const classes = p("classifier.1.bias").length;
  const z = convRelu(a, p("classifier.1.weight"), p("classifier.1.bias"), classes, 1, 1, 0);
  const hw = z.h * z.w;
  const y = new Float64Array(n * classes);
  for (let i = 0; i < n * classes; i++) {
    let s = 0;
    for (let q = 0; q < hw; q++) s += z.v[i * hw + q];
    y[i] = s / hw;
  }
  return { y, shape: [n, classes] };
}
