/**
 * Baselines x' for integrated gradients, each resolved to one array per example `[rows, features]`.
 * The choice of baseline decides what an attribution means (Sturmfels et al., "Visualizing the
 * Impact of Feature Attribution Baselines", Distill 2020), so several are offered, and a list of
 * them is averaged over (expected gradients with a fixed set of references).
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe } from '../kernels/validate.js';
import { checkFinite, checkNumber, type InputData } from './model.js';
import { uniformSource } from './random.js';

/** A constant, a tensor (the inputs' shape, or one example's shape, shared), or a named kind. */
export type Baseline = number | tf.Tensor | 'zeros' | 'uniform' | 'blur';

export interface BaselineOptions {
  /** Seed of the 'uniform' baseline (default 0); the i-th 'uniform' of a list uses seed + i. */
  seed?: number;
  /** Range of the 'uniform' baseline (default [0, 1]). */
  uniformRange?: [number, number];
  /**
   * Image shape of one example for 'blur': [H, W] or [H, W, C] (channels last), its product equal
   * to the example's size. Default: the example's own shape when it has 2 or 3 axes.
   */
  shape?: number[];
  /** Standard deviation of the Gaussian blur in pixels (default max(H, W) / 4). */
  blurSigma?: number;
}

export async function resolveBaselines(spec: unknown, x: InputData, o: BaselineOptions): Promise<Float32Array[]> {
  const list = Array.isArray(spec) ? spec : [spec === undefined ? 'zeros' : spec];
  if (list.length === 0) throw new RangeError('baseline must not be an empty list');
  const out: Float32Array[] = [];
  for (let j = 0; j < list.length; j++) {
    const name = Array.isArray(spec) ? `baseline[${j}]` : 'baseline';
    out.push(await resolveOne(list[j], name, x, o, j));
  }
  return out;
}

async function resolveOne(b: unknown, name: string, x: InputData, o: BaselineOptions, index: number): Promise<Float32Array> {
  const n = x.rows * x.features;
  if (typeof b === 'number') {
    if (!Number.isFinite(b)) throw new RangeError(`${name} must be finite, got ${b}`);
    return new Float32Array(n).fill(b);
  }
  if (b === 'zeros') return new Float32Array(n);
  if (b === 'uniform') return uniformBaseline(n, o, index);
  if (b === 'blur') return blurBaseline(x, o);
  if (b instanceof tf.Tensor) return tensorBaseline(b, name, x);
  if (typeof b === 'string') throw new RangeError(`${name} must be a number, a tf.Tensor, 'zeros', 'uniform', 'blur' or a list of those, got '${b}'`);
  throw new TypeError(`${name} must be a number, a tf.Tensor, 'zeros', 'uniform', 'blur' or a list of those, got ${describe(b)}`);
}

async function tensorBaseline(b: tf.Tensor, name: string, x: InputData): Promise<Float32Array> {
  const full = [x.rows, ...x.featureShape];
  const same = (s: number[], t: number[]) => s.length === t.length && s.every((v, i) => v === t[i]);
  const perExample = same(b.shape, full), shared = same(b.shape, x.featureShape);
  if (!perExample && !shared) {
    throw new RangeError(`${name} must have the inputs' shape [${full.join(', ')}] or one example's shape [${x.featureShape.join(', ')}], got [${b.shape.join(', ')}]`);
  }
  const v = Float32Array.from((await b.data()) as ArrayLike<number>);
  checkFinite(v, name);
  if (perExample) return v;
  const out = new Float32Array(x.rows * x.features);
  for (let i = 0; i < x.rows; i++) out.set(v, i * x.features);
  return out;
}

function uniformBaseline(n: number, o: BaselineOptions, index: number): Float32Array {
  const seed = checkNumber(o.seed, 'seed', 0);
  const range: unknown = o.uniformRange ?? [0, 1];
  if (!Array.isArray(range)) throw new TypeError(`uniformRange must be [low, high], got ${describe(range)}`);
  const [lo, hi] = range as unknown[];
  if (!(range.length === 2 && typeof lo === 'number' && typeof hi === 'number' && Number.isFinite(lo) && Number.isFinite(hi) && lo <= hi)) {
    throw new RangeError(`uniformRange must be [low, high] of finite numbers with low <= high, got [${range.map(String).join(', ')}]`);
  }
  const rand = uniformSource(seed + index);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * rand());
}

function imageShape(x: InputData, o: BaselineOptions): [number, number, number] {
  const s = o.shape ?? (x.featureShape.length === 2 || x.featureShape.length === 3 ? x.featureShape : undefined);
  if (!s) {
    throw new RangeError(`baseline 'blur' needs shape ([H, W] or [H, W, C]) for examples of shape [${x.featureShape.join(', ')}]`);
  }
  if (!Array.isArray(s) || (s.length !== 2 && s.length !== 3) || !s.every((v) => Number.isSafeInteger(v) && v >= 1)) {
    throw new RangeError(`shape must be [H, W] or [H, W, C] of positive integers, got ${Array.isArray(s) ? `[${s.join(', ')}]` : describe(s)}`);
  }
  const [h, w, c = 1] = s as number[];
  if (h! * w! * c !== x.features) throw new RangeError(`shape [${s.join(', ')}] must hold one example's ${x.features} elements, holds ${h! * w! * c}`);
  return [h!, w!, c];
}

/** The normalised 1-D Gaussian of standard deviation sigma, radius ceil(3 sigma). */
function gaussianKernel(sigma: number): Float64Array {
  const r = Math.max(1, Math.ceil(3 * sigma));
  const k = Float64Array.from({ length: 2 * r + 1 }, (_, i) => Math.exp(-((i - r) ** 2) / (2 * sigma * sigma)));
  const s = k.reduce((a, b) => a + b, 0);
  return k.map((v) => v / s);
}

/**
 * Each example blurred by a separable Gaussian over H and W (each channel alone). At the borders the
 * kernel is cut and renormalised, so a constant image stays constant.
 */
function blurBaseline(x: InputData, o: BaselineOptions): Float32Array {
  const [h, w, c] = imageShape(x, o);
  const sigma = o.blurSigma ?? Math.max(h, w) / 4;
  if (typeof sigma !== 'number' || !Number.isFinite(sigma) || sigma <= 0) throw new RangeError(`blurSigma must be a finite number > 0, got ${String(sigma)}`);
  const k = gaussianKernel(sigma), r = (k.length - 1) / 2;
  const out = new Float32Array(x.data.length);
  const src = new Float64Array(x.features), tmp = new Float64Array(x.features);
  // 1-D blur of `a` into `b` along an axis of length `len` whose neighbours are `stride` apart
  const pass = (a: Float64Array, b: Float64Array, len: number, stride: number, pos: (e: number) => number) => {
    for (let e = 0; e < x.features; e++) {
      const p = pos(e);
      let acc = 0, norm = 0;
      for (let t = Math.max(-r, -p); t <= Math.min(r, len - 1 - p); t++) {
        acc += k[t + r]! * a[e + t * stride]!;
        norm += k[t + r]!;
      }
      b[e] = acc / norm;
    }
  };
  for (let i = 0; i < x.rows; i++) {
    for (let e = 0; e < x.features; e++) src[e] = x.data[i * x.features + e]!;
    pass(src, tmp, w, c, (e) => Math.floor(e / c) % w);      // along W
    pass(tmp, src, h, w * c, (e) => Math.floor(e / (w * c)));  // along H
    out.set(src, i * x.features);
  }
  return out;
}
