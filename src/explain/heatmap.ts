/**
 * Attribution heatmaps as PNG images, for a person to look at: one example's attributions laid out
 * as an h × w grid, coloured, optionally blended over the input image, and upscaled with nearest
 * neighbours (an 8 × 8 digit is unreadable at 8 × 8 pixels). Encoded with `pngjs`.
 *
 * Colours are the 9-class ColorBrewer RdBu ramp (Cynthia A. Brewer, colorbrewer2.org, Apache
 * License 2.0), with its light-grey midpoint #f7f7f7 replaced by pure white so that a zero
 * attribution is exactly white: sign 'all' uses the whole ramp (blue negative, white zero, red
 * positive, symmetric around zero); 'positive' and 'absolute' use its red half (white to red), so
 * a positive value has the same colour in every mode.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { PNG } from 'pngjs';
import { checkKnownKeys, describe } from '../kernels/validate.js';
import { checkChoice, checkOptions } from './model.js';

export type HeatmapSign = 'all' | 'positive' | 'absolute';
export const HEATMAP_SIGNS: readonly HeatmapSign[] = ['all', 'positive', 'absolute'];

/** One example's values: a tensor (its size-1 axes are ignored), a Float32Array or a number[]. */
export type HeatmapInput = tf.Tensor | Float32Array | readonly number[];

export interface HeatmapOptions {
  /** [height, width] of the grid; required when the input is flat (not a 2-D tensor). Row-major. */
  shape?: readonly [number, number];
  /**
   * 'all' (default): diverging blue–white–red, scaled symmetrically around zero; 'positive':
   * negative values shown as zero, white to red; 'absolute': |value|, white to red.
   */
  sign?: HeatmapSign;
  /**
   * Values at or above this percentile of the shown magnitudes (|attr| for 'all' and 'absolute',
   * max(attr, 0) for 'positive') get the end colour, so that a few outliers do not wash out the
   * rest. The percentile is the order statistic at floor(p/100 · (n − 1)) of the n sorted
   * magnitudes (numpy's method 'lower'); 100 is the maximum. In (0, 100], default 99.
   */
  clipPercentile?: number;
  /** A grayscale image in [0, 1] (0 black, 1 white) of the same h × w, blended with the colours. */
  overlay?: HeatmapInput;
  /**
   * Weight of the overlay in the blend: pixel = (1 − overlayAlpha) · colour + overlayAlpha · 255 ·
   * overlay, per channel, rounded. In [0, 1], default 0.5; needs overlay. For dark ink on white
   * paper pass 1 − x as the overlay of an image x whose ink is high.
   */
  overlayAlpha?: number;
  /** Integer upscale, nearest neighbour: the PNG is (h · scale) × (w · scale). Default 1. */
  scale?: number;
  /** Also write the PNG to this path (parent folders are created). */
  file?: string;
}

/** [position in [-1, 1], r, g, b]: ColorBrewer RdBu 9-class, midpoint replaced by white. */
export const HEATMAP_STOPS: readonly (readonly [number, number, number, number])[] = [
  [-1, 0x21, 0x66, 0xac], // #2166ac
  [-0.75, 0x43, 0x93, 0xc3], // #4393c3
  [-0.5, 0x92, 0xc5, 0xde], // #92c5de
  [-0.25, 0xd1, 0xe5, 0xf0], // #d1e5f0
  [0, 0xff, 0xff, 0xff], // #ffffff (ColorBrewer: #f7f7f7)
  [0.25, 0xfd, 0xdb, 0xc7], // #fddbc7
  [0.5, 0xf4, 0xa5, 0x82], // #f4a582
  [0.75, 0xd6, 0x60, 0x4d], // #d6604d
  [1, 0xb2, 0x18, 0x2b], // #b2182b
];

/** The largest side, in pixels, of a heatmap PNG. */
export const MAX_HEATMAP_SIDE = 16384;

/** Colour of t in [-1, 1] (clamped), linear in sRGB between the stops; channels as floats in [0, 255]. */
export function heatmapColor(t: number): [number, number, number] {
  if (typeof t !== 'number') throw new TypeError(`t must be a number, got ${describe(t)}`);
  if (Number.isNaN(t)) throw new RangeError('t must be a number in [-1, 1] (clipped), got NaN');
  const c = Math.min(1, Math.max(-1, t));
  let i = 0;
  while (i + 2 < HEATMAP_STOPS.length && c > HEATMAP_STOPS[i + 1]![0]) i++;
  const [p0, r0, g0, b0] = HEATMAP_STOPS[i]!, [p1, r1, g1, b1] = HEATMAP_STOPS[i + 1]!;
  const f = (c - p0) / (p1 - p0);
  return [r0 + f * (r1 - r0), g0 + f * (g1 - g0), b0 + f * (b1 - b0)];
}

/** Reads one example as a flat Float32Array and its 2-D shape when the input itself says it. */
function readValues(v: unknown, name: string): { data: Float32Array; grid?: [number, number] } {
  if (v instanceof tf.Tensor) {
    if (v.isDisposed) throw new TypeError(`${name} must be a live tf.Tensor, got a disposed one`);
    const dims = (v.shape as number[]).filter((d) => d !== 1);
    const data = Float32Array.from(v.dataSync() as ArrayLike<number>);
    return dims.length === 2 ? { data, grid: [dims[0]!, dims[1]!] } : { data };
  }
  if (v instanceof Float32Array) return { data: v };
  if (Array.isArray(v)) {
    v.forEach((x: unknown, i) => {
      if (typeof x !== 'number') throw new TypeError(`${name} must hold numbers, got ${describe(x)} at index ${i}`);
    });
    return { data: Float32Array.from(v as number[]) };
  }
  throw new TypeError(`${name} must be a tf.Tensor, Float32Array or number[], got ${describe(v)}`);
}

function checkShape(v: unknown): [number, number] {
  if (!Array.isArray(v) || v.length !== 2) {
    throw new TypeError(`shape must be [height, width], got ${Array.isArray(v) ? `an Array of ${v.length}` : describe(v)}`);
  }
  const [h, w] = v as unknown[];
  for (const [d, n] of [[h, 'height'], [w, 'width']] as const) {
    if (typeof d !== 'number') throw new TypeError(`shape's ${n} must be a number, got ${describe(d)}`);
    if (!Number.isSafeInteger(d) || d < 1) throw new RangeError(`shape's ${n} must be an integer >= 1, got ${String(d)}`);
  }
  return [h as number, w as number];
}

function checkUnit(v: unknown, name: string, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number') throw new TypeError(`${name} must be a number, got ${describe(v)}`);
  if (!(v >= 0 && v <= 1)) throw new RangeError(`${name} must be in [0, 1], got ${String(v)}`);
  return v;
}

/** The magnitude at or above which the end colour is used (see clipPercentile); 0 when all are 0. */
function clipValue(magnitudes: Float32Array, percentile: number): number {
  const sorted = Float32Array.from(magnitudes).sort();
  const m = sorted[Math.floor((percentile / 100) * (sorted.length - 1))]!;
  // a mostly-zero map would clip everything nonzero to the end colour: fall back to the maximum
  return m > 0 ? m : sorted[sorted.length - 1]!;
}

/**
 * One example's attributions as a PNG heatmap (RGB, 8 bits), returned as bytes (a Node Buffer, declared as
 * the Uint8Array it extends so the declarations need no Node types) and, with
 * `file`, also written there. NaN or ±Infinity in `attr` is an error (RangeError naming the flat
 * index), as everywhere in kdfuse: a heatmap must not hide a broken attribution.
 */
export function attributionHeatmap(attr: HeatmapInput, options: HeatmapOptions = {}): Uint8Array {
  const o = checkOptions(options);
  checkKnownKeys(o, ['shape', 'sign', 'clipPercentile', 'overlay', 'overlayAlpha', 'scale', 'file'], 'attributionHeatmap');
  const { data, grid } = readValues(attr, 'attr');
  if (data.length === 0) throw new RangeError('attr must not be empty');
  let shape: [number, number];
  if (o.shape !== undefined) {
    shape = checkShape(o.shape);
    if (shape[0] * shape[1] !== data.length) {
      throw new RangeError(`attr must have shape's ${shape[0]} × ${shape[1]} = ${shape[0] * shape[1]} elements, got ${data.length}`);
    }
  } else if (grid) {
    shape = grid;
  } else {
    const what = attr instanceof tf.Tensor ? `a tensor of shape [${attr.shape.join(', ')}]` : `a flat ${describe(attr)} of ${data.length}`;
    throw new TypeError(`shape ([height, width]) is required unless attr is a 2-D tensor (size-1 axes aside), got ${what}`);
  }
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) throw new RangeError(`attr must be finite, got ${String(data[i])} at flat index ${i}`);
  }
  const sign = checkChoice(o.sign, 'sign', HEATMAP_SIGNS, 'all');
  const percentile = o.clipPercentile ?? 99;
  if (typeof percentile !== 'number') throw new TypeError(`clipPercentile must be a number, got ${describe(percentile)}`);
  if (!(percentile > 0 && percentile <= 100)) throw new RangeError(`clipPercentile must be in (0, 100], got ${String(percentile)}`);
  const scale = o.scale ?? 1;
  if (typeof scale !== 'number') throw new TypeError(`scale must be a number, got ${describe(scale)}`);
  if (!Number.isSafeInteger(scale) || scale < 1) throw new RangeError(`scale must be an integer >= 1, got ${String(scale)}`);
  const [h, w] = shape, H = h * scale, W = w * scale;
  if (H > MAX_HEATMAP_SIDE || W > MAX_HEATMAP_SIDE) {
    throw new RangeError(`scale must keep the image within ${MAX_HEATMAP_SIDE} pixels a side, got ${W} × ${H} (scale ${scale})`);
  }
  let overlay: Float32Array | undefined;
  if (o.overlay !== undefined) {
    overlay = readValues(o.overlay, 'overlay').data;
    if (overlay.length !== data.length) throw new RangeError(`overlay must have attr's ${h} × ${w} = ${data.length} elements, got ${overlay.length}`);
    for (let i = 0; i < overlay.length; i++) {
      if (!(overlay[i]! >= 0 && overlay[i]! <= 1)) throw new RangeError(`overlay must be in [0, 1], got ${String(overlay[i])} at flat index ${i}`);
    }
  }
  if (o.overlayAlpha !== undefined && overlay === undefined) throw new TypeError('overlayAlpha needs overlay, got overlay undefined');
  const alpha = checkUnit(o.overlayAlpha, 'overlayAlpha', 0.5);
  const file = o.file;
  if (file !== undefined && (typeof file !== 'string' || file.length === 0)) {
    throw new TypeError(`file must be a non-empty string, got ${typeof file === 'string' ? 'an empty string' : describe(file)}`);
  }

  const shown = data.map((v) => (sign === 'positive' ? Math.max(v, 0) : sign === 'absolute' ? Math.abs(v) : v));
  const m = clipValue(sign === 'all' ? shown.map(Math.abs) : shown, percentile);
  // colour of each cell, blended with the overlay, as 8-bit RGB
  const cells = new Uint8Array(h * w * 3);
  for (let i = 0; i < h * w; i++) {
    const rgb = heatmapColor(m > 0 ? shown[i]! / m : 0);
    for (let c = 0; c < 3; c++) {
      const v = overlay ? (1 - alpha) * rgb[c]! + alpha * 255 * overlay[i]! : rgb[c]!;
      cells[i * 3 + c] = Math.round(v);
    }
  }
  const png = new PNG({ width: W, height: H, colorType: 2, inputColorType: 2, inputHasAlpha: false, bitDepth: 8 });
  const pixels = Buffer.alloc(W * H * 3);
  for (let y = 0; y < H; y++) {
    const row = Math.floor(y / scale) * w;
    for (let x = 0; x < W; x++) {
      const s = (row + Math.floor(x / scale)) * 3, d = (y * W + x) * 3;
      pixels[d] = cells[s]!;
      pixels[d + 1] = cells[s + 1]!;
      pixels[d + 2] = cells[s + 2]!;
    }
  }
  png.data = pixels;
  const buf = PNG.sync.write(png, { colorType: 2, inputColorType: 2, inputHasAlpha: false, bitDepth: 8 });
  if (file !== undefined) {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, buf);
  }
  return buf;
}
