/**
 * attributionHeatmap: PNGs decoded with pngjs and checked pixel by pixel. Colours are exact (the
 * stops of the ColorBrewer RdBu ramp with a white midpoint, rounded once to 8 bits); interpolated
 * ones within 1 per channel. Every test leaves tf.memory().numTensors as it found it.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { PNG } from 'pngjs';
import { attributionHeatmap, heatmapColor, type HeatmapOptions } from '../src/explain/index.js';
import { expectNoTensorLeaks } from './helpers.js';

type RGB = [number, number, number];
const RED: RGB = [0xb2, 0x18, 0x2b], BLUE: RGB = [0x21, 0x66, 0xac], WHITE: RGB = [255, 255, 255];
const LIGHT_RED: RGB = [0xf4, 0xa5, 0x82], LIGHT_BLUE: RGB = [0x92, 0xc5, 0xde];

function decode(bytes: Uint8Array) {
  // attributionHeatmap is declared as returning a Uint8Array (no Node types in the declarations); it is a Buffer
  expect(Buffer.isBuffer(bytes)).toBe(true);
  const png = PNG.sync.read(bytes as Buffer);
  const at = (x: number, y: number): RGB => {
    const i = (y * png.width + x) * 4;
    expect(png.data[i + 3], 'opaque').toBe(255);
    return [png.data[i]!, png.data[i + 1]!, png.data[i + 2]!];
  };
  return { width: png.width, height: png.height, at };
}

/** Pixels of a [h, w] heatmap at scale 1, row-major. */
function pixels(attr: number[] | Float32Array, h: number, w: number, options: HeatmapOptions = {}): RGB[] {
  const img = decode(attributionHeatmap(attr, { shape: [h, w], ...options }));
  expect([img.width, img.height]).toEqual([w, h]);
  return Array.from({ length: h * w }, (_, i) => img.at(i % w, Math.floor(i / w)));
}

function expectNear(got: RGB, want: readonly number[], tol = 1, what = ''): void {
  for (let c = 0; c < 3; c++) expect(Math.abs(got[c]! - want[c]!), `${what} channel ${c}: got [${got}], want [${want.map(Math.round)}]`).toBeLessThanOrEqual(tol);
}

let previousBackend: string;
let dir: string;
beforeAll(async () => {
  await tf.ready();
  previousBackend = tf.getBackend();
  await tf.setBackend('cpu');
  dir = mkdtempSync(join(tmpdir(), 'kdfuse-heatmap-'));
});
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await tf.setBackend(previousBackend);
});
expectNoTensorLeaks(() => tf.memory().numTensors);

describe('attributionHeatmap colours', () => {
  it("sign 'all': the positive maximum is the red end, its negative the blue end, zero white, halves the middle stops", () => {
    const px = pixels([-1, 0, 1, 0.5, -0.5, 0], 2, 3, { clipPercentile: 100 });
    expect(px[0]).toEqual(BLUE);
    expect(px[1]).toEqual(WHITE);
    expect(px[2]).toEqual(RED);
    expect(px[3]).toEqual(LIGHT_RED);
    expect(px[4]).toEqual(LIGHT_BLUE);
    expect(px[5]).toEqual(WHITE);
  });

  it("sign 'all' scales symmetrically around zero: with values in [-1, 2], -1 is half-way to blue", () => {
    const px = pixels([2, -1, 0, 1], 2, 2, { clipPercentile: 100 });
    expect(px[0]).toEqual(RED);
    expect(px[1]).toEqual(LIGHT_BLUE);
    expect(px[2]).toEqual(WHITE);
    expect(px[3]).toEqual(LIGHT_RED);
  });

  it('colours between stops are interpolated linearly and go from white towards red monotonically', () => {
    const px = pixels([0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1], 1, 9, { clipPercentile: 100 });
    expectNear(px[1]!, [(255 + 0xfd) / 2, (255 + 0xdb) / 2, (255 + 0xc7) / 2]);
    for (let i = 1; i < 9; i++) expect(px[i]![1], `green falls at ${i}`).toBeLessThan(px[i - 1]![1]);
    for (let t = -1; t <= 1; t += 0.01) {
      const c = heatmapColor(t);
      for (const v of c) expect(v >= 0 && v <= 255).toBe(true);
    }
    expect(heatmapColor(5)).toEqual([...RED]);
    expect(heatmapColor(-5)).toEqual([...BLUE]);
  });

  it('an all-zero map is all white', () => {
    for (const sign of ['all', 'positive', 'absolute'] as const) {
      for (const p of pixels(new Float32Array(12), 3, 4, { sign })) expect(p).toEqual(WHITE);
    }
  });

  it("sign 'positive': negatives are white, the scale is set by the positive values only", () => {
    const px = pixels([1, -10, 0.5, -0.5], 2, 2, { sign: 'positive', clipPercentile: 100 });
    expect(px[0]).toEqual(RED);
    expect(px[1]).toEqual(WHITE);
    expect(px[2]).toEqual(LIGHT_RED);
    expect(px[3]).toEqual(WHITE);
  });

  it("sign 'absolute': |value| on the white-to-red map, so +v and -v look the same", () => {
    const px = pixels([-1, 1, 0.5, -0.5, 0, 0.25], 2, 3, { sign: 'absolute', clipPercentile: 100 });
    expect(px[0]).toEqual(RED);
    expect(px[1]).toEqual(RED);
    expect(px[2]).toEqual(LIGHT_RED);
    expect(px[3]).toEqual(LIGHT_RED);
    expect(px[4]).toEqual(WHITE);
    expect(px[5]).toEqual([0xfd, 0xdb, 0xc7]);
  });
});

describe('attributionHeatmap clipping', () => {
  // 399 values evenly in [0, 1] and one outlier 1000 times larger
  const ramp = Float32Array.from({ length: 400 }, (_, i) => (i < 399 ? i / 398 : 1000));
  const half = 199; // value 0.5

  it('by default (99th percentile) an outlier does not wash out the rest', () => {
    const px = pixels(ramp, 20, 20);
    expect(px[399]).toEqual(RED); // the outlier, clipped to the end colour
    // the 99th percentile (order statistic floor(0.99 * 399) = 395) is 395/398; 0.5 is at t = 0.5 * 398/395
    expectNear(px[half]!, heatmapColor((0.5 * 398) / 395), 1, 'value 0.5');
    expectNear(px[half]!, LIGHT_RED, 2, 'value 0.5');
    expect(px[398]).toEqual(RED); // 1 > the percentile: clipped too
  });

  it('without clipping (100) the same outlier washes the rest out to near white', () => {
    const px = pixels(ramp, 20, 20, { clipPercentile: 100 });
    expect(px[399]).toEqual(RED);
    expectNear(px[half]!, WHITE, 1, 'value 0.5 next to an outlier of 1000');
  });

  it('on an 8 x 8 map the default percentile clips a single outlier (order statistic 62 of 64)', () => {
    const v = Float32Array.from({ length: 64 }, (_, i) => (i === 10 ? -500 : ((i % 8) - 3.5) / 3.5));
    const px = pixels(v, 8, 8);
    expect(px[10]).toEqual(BLUE);
    expect(px[7]).toEqual(RED); // value 1: the largest ordinary magnitude
    expect(px[0]).toEqual(BLUE); // value -1
  });

  it('a mostly-zero map uses its maximum rather than a zero percentile', () => {
    const v = new Float32Array(400);
    v[5] = 0.5;
    v[6] = 1;
    const px = pixels(v, 20, 20);
    expect(px[6]).toEqual(RED);
    expect(px[5]).toEqual(LIGHT_RED);
    expect(px[0]).toEqual(WHITE);
  });
});

describe('attributionHeatmap overlay, scale, inputs, file', () => {
  it('blends the overlay: pixel = round((1 - a) * colour + a * 255 * overlay) per channel', () => {
    const attr = [0, 1, -1, 0], overlay = [0, 0.5, 1, 0.25];
    const heat = [WHITE, RED, BLUE, WHITE];
    for (const a of [0.3, undefined]) {
      const alpha = a ?? 0.5;
      const px = pixels(attr, 2, 2, { clipPercentile: 100, overlay, ...(a === undefined ? {} : { overlayAlpha: a }) });
      px.forEach((p, i) => expect(p, `pixel ${i}, alpha ${alpha}`).toEqual(heat[i]!.map((c) => Math.round((1 - alpha) * c + alpha * 255 * overlay[i]!))));
    }
    expect(pixels(attr, 2, 2, { clipPercentile: 100, overlay, overlayAlpha: 0 })).toEqual(heat);
    expect(pixels(attr, 2, 2, { clipPercentile: 100, overlay, overlayAlpha: 1 })).toEqual(overlay.map((v) => [0, 0, 0].map(() => Math.round(255 * v))));
  });

  it('upscales by an integer with nearest neighbours: an 8 x 8 map at scale 16 is 128 x 128 of uniform blocks', () => {
    const v = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i * 1.7));
    const small = pixels(v, 8, 8);
    const big = decode(attributionHeatmap(v, { shape: [8, 8], scale: 16 }));
    expect([big.width, big.height]).toEqual([128, 128]);
    for (let y = 0; y < 128; y++) for (let x = 0; x < 128; x++) expect(big.at(x, y)).toEqual(small[Math.floor(y / 16) * 8 + Math.floor(x / 16)]);
    const wide = decode(attributionHeatmap(v, { shape: [4, 16], scale: 3 }));
    expect([wide.width, wide.height]).toEqual([48, 12]);
  });

  it('accepts a 2-D tensor (size-1 axes aside) without shape, a flat one with shape, Float32Array and number[] alike', () => {
    const v = Array.from({ length: 12 }, (_, i) => i - 5.5);
    const want = attributionHeatmap(v, { shape: [3, 4] });
    expect(Buffer.compare(attributionHeatmap(Float32Array.from(v), { shape: [3, 4] }), want)).toBe(0);
    const tensors = [tf.tensor2d(v, [3, 4]), tf.tensor4d(v, [1, 3, 4, 1]), tf.tensor1d(v)];
    try {
      expect(Buffer.compare(attributionHeatmap(tensors[0]!), want)).toBe(0);
      expect(Buffer.compare(attributionHeatmap(tensors[1]!), want)).toBe(0);
      expect(Buffer.compare(attributionHeatmap(tensors[2]!, { shape: [3, 4] }), want)).toBe(0);
      const overlay = tf.tensor2d(Array(12).fill(1), [3, 4]);
      expect(decode(attributionHeatmap(tensors[0]!, { overlay, overlayAlpha: 1 })).at(0, 0)).toEqual(WHITE);
      overlay.dispose();
    } finally {
      tf.dispose(tensors);
    }
    expect(want).toBeInstanceOf(Uint8Array);
    expect(want.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
  });

  it('writes the same bytes to file, creating the folder', () => {
    const file = join(dir, 'nested', 'digit.png');
    const buf = attributionHeatmap([1, -1, 0, 0.5], { shape: [2, 2], scale: 4, file });
    expect(Buffer.compare(readFileSync(file), buf)).toBe(0);
  });
});

describe('attributionHeatmap errors name the argument', () => {
  const v = [1, 2, 3, 4];
  const bad: [string, () => unknown, ErrorConstructor, RegExp][] = [
    ['attr a string', () => attributionHeatmap('x' as never, { shape: [1, 1] }), TypeError, /^attr must be a tf\.Tensor, Float32Array or number\[\], got string/],
    ['attr holding a string', () => attributionHeatmap([1, 'a'] as never, { shape: [1, 2] }), TypeError, /^attr must hold numbers, got string 'a' at index 1/],
    ['attr empty', () => attributionHeatmap([], { shape: [1, 1] }), RangeError, /^attr must not be empty/],
    ['flat attr without shape', () => attributionHeatmap(v), TypeError, /^shape \(\[height, width\]\) is required .*got a flat Array of 4/],
    ['batch tensor without shape', () => {
      const t = tf.zeros([2, 2, 2]);
      try { return attributionHeatmap(t); } finally { t.dispose(); }
    }, TypeError, /^shape .* is required .*tensor of shape \[2, 2, 2\]/],
    ['shape of the wrong size', () => attributionHeatmap(v, { shape: [2, 3] }), RangeError, /^attr must have shape's 2 × 3 = 6 elements, got 4/],
    ['shape not a pair', () => attributionHeatmap(v, { shape: [4] as never }), TypeError, /^shape must be \[height, width\], got an Array of 1/],
    ['shape a string', () => attributionHeatmap(v, { shape: '2x2' as never }), TypeError, /^shape must be \[height, width\], got string/],
    ['shape zero', () => attributionHeatmap(v, { shape: [0, 4] }), RangeError, /^shape's height must be an integer >= 1, got 0/],
    ['shape fractional', () => attributionHeatmap(v, { shape: [2, 2.5] }), RangeError, /^shape's width must be an integer >= 1, got 2\.5/],
    ['NaN', () => attributionHeatmap([1, 2, NaN, 4], { shape: [2, 2] }), RangeError, /^attr must be finite, got NaN at flat index 2/],
    ['Infinity', () => attributionHeatmap(new Float32Array([Infinity, 0, 0, 0]), { shape: [2, 2] }), RangeError, /^attr must be finite, got Infinity at flat index 0/],
    ['bad sign', () => attributionHeatmap(v, { shape: [2, 2], sign: 'negative' as never }), RangeError, /^sign must be one of 'all', 'positive', 'absolute', got 'negative'/],
    ['sign a number', () => attributionHeatmap(v, { shape: [2, 2], sign: 1 as never }), TypeError, /^sign must be one of .*got number 1/],
    ['scale 0', () => attributionHeatmap(v, { shape: [2, 2], scale: 0 }), RangeError, /^scale must be an integer >= 1, got 0/],
    ['scale 1.5', () => attributionHeatmap(v, { shape: [2, 2], scale: 1.5 }), RangeError, /^scale must be an integer >= 1, got 1\.5/],
    ['scale a string', () => attributionHeatmap(v, { shape: [2, 2], scale: '2' as never }), TypeError, /^scale must be a number, got string '2'/],
    ['scale too large', () => attributionHeatmap(v, { shape: [2, 2], scale: 10_000 }), RangeError, /^scale must keep the image within 16384 pixels a side, got 20000 × 20000/],
    ['clipPercentile 0', () => attributionHeatmap(v, { shape: [2, 2], clipPercentile: 0 }), RangeError, /^clipPercentile must be in \(0, 100\], got 0/],
    ['clipPercentile 101', () => attributionHeatmap(v, { shape: [2, 2], clipPercentile: 101 }), RangeError, /^clipPercentile must be in \(0, 100\], got 101/],
    ['clipPercentile NaN', () => attributionHeatmap(v, { shape: [2, 2], clipPercentile: NaN }), RangeError, /^clipPercentile must be in \(0, 100\], got NaN/],
    ['clipPercentile a string', () => attributionHeatmap(v, { shape: [2, 2], clipPercentile: '99' as never }), TypeError, /^clipPercentile must be a number/],
    ['overlay of the wrong size', () => attributionHeatmap(v, { shape: [2, 2], overlay: [0, 1] }), RangeError, /^overlay must have attr's 2 × 2 = 4 elements, got 2/],
    ['overlay out of [0, 1]', () => attributionHeatmap(v, { shape: [2, 2], overlay: [0, 1, 1.5, 0] }), RangeError, /^overlay must be in \[0, 1\], got 1\.5 at flat index 2/],
    ['overlay NaN', () => attributionHeatmap(v, { shape: [2, 2], overlay: [0, NaN, 1, 0] }), RangeError, /^overlay must be in \[0, 1\], got NaN at flat index 1/],
    ['overlay a string', () => attributionHeatmap(v, { shape: [2, 2], overlay: 'img' as never }), TypeError, /^overlay must be a tf\.Tensor/],
    ['overlayAlpha 2', () => attributionHeatmap(v, { shape: [2, 2], overlay: [0, 0, 0, 0], overlayAlpha: 2 }), RangeError, /^overlayAlpha must be in \[0, 1\], got 2/],
    ['overlayAlpha without overlay', () => attributionHeatmap(v, { shape: [2, 2], overlayAlpha: 0.5 }), TypeError, /^overlayAlpha needs overlay/],
    ['file empty', () => attributionHeatmap(v, { shape: [2, 2], file: '' }), TypeError, /^file must be a non-empty string, got an empty string/],
    ['options not an object', () => attributionHeatmap(v, 3 as never), TypeError, /^options must be an object, got number 3/],
  ];
  for (const [what, call, type, message] of bad) {
    it(what, () => {
      let err: unknown;
      try {
        call();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(type);
      expect((err as Error).message).toMatch(message);
    });
  }

  it('a disposed tensor is a TypeError', () => {
    const t = tf.zeros([2, 2]);
    t.dispose();
    expect(() => attributionHeatmap(t)).toThrow(/^attr must be a live tf\.Tensor, got a disposed one/);
  });
});
