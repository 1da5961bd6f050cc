/**
 * The two host loops of integratedGradients, per batch of interpolated points q:
 *
 *     interpolate:  out[q*F + f]       = b[bRow[q]*F + f] + alpha[q] * (x[xRow[q]*F + f] - b[bRow[q]*F + f])
 *     accumulate:   acc[xRow[q]*F + f] += weight[q] * g[q*F + f] * (x[xRow[q]*F + f] - b[bRow[q]*F + f])
 *
 * (float64 arithmetic, the interpolated point rounded once to float32, acc in float64, points in
 * order q = 0, 1, ...). The plain loops below are the spec; the addon's igInterpolate/igAccumulate
 * (native/core/ig.cpp) compute the same thing in the same order, so the results are bit-identical.
 * Which one runs is decided per call by `igKernelsFor` (see there for why).
 */
import { nativeAddon } from './native.js';

export interface IgPoints {
  /** Row of x (the example) of each point. */
  xRow: Int32Array;
  /** Row of the stacked baselines of each point. */
  baselineRow: Int32Array;
}

export interface IgKernels {
  readonly name: 'native' | 'js';
  interpolate(x: Float32Array, baselines: Float32Array, features: number, p: IgPoints, alpha: Float64Array, out: Float32Array): void;
  accumulate(grad: Float32Array, x: Float32Array, baselines: Float32Array, features: number, p: IgPoints, weight: Float64Array, acc: Float64Array): void;
}

export const jsIgKernels: IgKernels = {
  name: 'js',
  interpolate(x, b, F, p, alpha, out) {
    const n = p.xRow.length;
    for (let q = 0; q < n; q++) {
      const xo = p.xRow[q]! * F, bo = p.baselineRow[q]! * F, a = alpha[q]!, o = q * F;
      for (let f = 0; f < F; f++) out[o + f] = b[bo + f]! + a * (x[xo + f]! - b[bo + f]!);
    }
  },
  accumulate(g, x, b, F, p, weight, acc) {
    const n = p.xRow.length;
    for (let q = 0; q < n; q++) {
      const xo = p.xRow[q]! * F, bo = p.baselineRow[q]! * F, w = weight[q]!, o = q * F;
      for (let f = 0; f < F; f++) acc[xo + f]! += w * g[o + f]! * (x[xo + f]! - b[bo + f]!);
    }
  },
};

function nativeKernels(): IgKernels | null {
  const a = nativeAddon;
  if (!a || typeof a.igInterpolate !== 'function' || typeof a.igAccumulate !== 'function') return null;
  const igInterpolate = a.igInterpolate.bind(a), igAccumulate = a.igAccumulate.bind(a);
  return {
    name: 'native',
    interpolate: (x, baselines, features, p, alpha, out) =>
      igInterpolate({ x, baselines, features, xRow: p.xRow, baselineRow: p.baselineRow, alpha, out }),
    accumulate: (grad, x, baselines, features, p, weight, acc) =>
      igAccumulate({ grad, x, baselines, features, xRow: p.xRow, baselineRow: p.baselineRow, weight, acc }),
  };
}

/** The addon's kernels, or null (no addon, KDFUSE_BACKEND=reference, or an addon without them). */
export const nativeIgKernels: IgKernels | null = nativeKernels();

export type IgKernelMode = 'auto' | 'native' | 'js';
let mode: IgKernelMode = 'auto';

/** For benchmarks and tests: force the JS loops or the native kernels ('native' falls back to JS without the addon). */
export function setIgKernelMode(m: IgKernelMode): void {
  if (m !== 'auto' && m !== 'native' && m !== 'js') throw new RangeError(`mode must be one of 'auto', 'native', 'js', got ${String(m)}`);
  mode = m;
}

/**
 * Below this many elements (points * features) per batch the JS loops are faster: an addon call and
 * its argument checks cost about 2-3 us, after which the native loops take about 1 ns per element
 * against about 4 ns for the JS loops (both loops together; measured: 32 x 8 JS 1.3 us, native
 * 3.0 us; 32 x 32 about even; 256 x 64 JS 65 us, native 16 us; 256 x 784 JS 781 us, native 161 us).
 */
export const NATIVE_IG_MIN_ELEMENTS = 1024;

/** The kernels integratedGradients uses for a batch of `points` points of `features` features. */
export function igKernelsFor(points: number, features: number): IgKernels {
  if (mode === 'js' || !nativeIgKernels) return jsIgKernels;
  if (mode === 'native') return nativeIgKernels;
  return points * features >= NATIVE_IG_MIN_ELEMENTS ? nativeIgKernels : jsIgKernels;
}

/**
 * The points start .. start + n - 1 of integratedGradients' order p = ((i * J) + j) * steps + k
 * (example i, baseline j, node k): their rows, alphas and weights (w_k / J). Baseline j of example i
 * is row j * rows + i of the stacked baselines.
 */
export function igBatchPoints(
  start: number, n: number, rows: number, J: number, alphas: Float64Array, weights: Float64Array,
): IgPoints & { alpha: Float64Array; weight: Float64Array } {
  const steps = alphas.length;
  const xRow = new Int32Array(n), baselineRow = new Int32Array(n), alpha = new Float64Array(n), weight = new Float64Array(n);
  for (let q = 0; q < n; q++) {
    const p = start + q, k = p % steps, ij = (p - k) / steps, j = ij % J, i = (ij - j) / J;
    xRow[q] = i;
    baselineRow[q] = j * rows + i;
    alpha[q] = alphas[k]!;
    weight[q] = weights[k]! / J;
  }
  return { xRow, baselineRow, alpha, weight };
}
