/**
 * Global summaries of local attributions: which features matter over a data set (mean |attribution|
 * per feature, overall and per explained class), and how stable a method's explanations are under
 * small input noise (mean cosine between the attributions of x and of x + noise).
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkKnownKeys, requireObject } from '../kernels/validate.js';
import { attributeWith, EXPLAIN_METHODS, type ExplainMethod } from './methods.js';
import { checkChoice, checkModel, checkNumber, checkPositiveInt, checkSeed, readInputs, type ExplainModel, type Target } from './model.js';
import { normalSource } from './random.js';

export interface GlobalAttributionsOptions {
  /** Class explained per example (default 'predicted'). */
  target?: Target;
  /** The method's own options (e.g. { layer } for 'gradcam', { background } for 'kernelshap'). */
  methodOptions?: Record<string, unknown>;
}

export interface GlobalAttributions {
  /** Mean |attribution| per feature over all examples, `[features]`. */
  meanAbs: Float32Array;
  /** Mean |attribution| per feature over the examples explained for each class, `[classes × features]` (zeros for a class never explained). */
  perClass: Float32Array;
  /** Examples explained for each class. */
  classCounts: Int32Array;
  classes: number;
  /** meanAbs in one example's shape (e.g. [H, W, C]), for attributionHeatmap. The caller disposes it. */
  heatmap: tf.Tensor;
}

/** Mean |attribution| per feature and per class over the rows of `xs`, with `method` ('ig', 'gradcam', 'kernelshap', 'lime'). */
export async function globalAttributions(method: ExplainMethod, model: ExplainModel, xs: tf.Tensor, options: GlobalAttributionsOptions = {}): Promise<GlobalAttributions> {
  const m = checkChoice(method, 'method', EXPLAIN_METHODS, 'ig');
  checkModel(model);
  const o = requireObject(options, 'options');
  checkKnownKeys(o, ['target', 'methodOptions'], 'globalAttributions');
  const mo = o.methodOptions === undefined ? {} : requireObject(o.methodOptions, 'methodOptions');
  const x = await readInputs(xs, 'xs');
  const r = await attributeWith(m, model, xs, mo, o.target as Target | undefined);
  const a = (await r.attributions.data()) as Float32Array;
  r.attributions.dispose();
  const F = x.features, classes = Math.max(...r.predictions, ...r.targets) + 1;
  const meanAbs = new Float64Array(F), perClass = new Float64Array(classes * F), classCounts = new Int32Array(classes);
  for (let i = 0; i < x.rows; i++) {
    const c = r.targets[i]!;
    classCounts[c]!++;
    for (let f = 0; f < F; f++) {
      const v = Math.abs(a[i * F + f]!);
      meanAbs[f]! += v / x.rows;
      perClass[c * F + f]! += v;
    }
  }
  for (let c = 0; c < classes; c++) for (let f = 0; f < F; f++) if (classCounts[c]) perClass[c * F + f]! /= classCounts[c]!;
  const mean32 = Float32Array.from(meanAbs);
  return { meanAbs: mean32, perClass: Float32Array.from(perClass), classCounts, classes, heatmap: tf.tensor(mean32, x.featureShape) };
}

export interface ExplanationStabilityOptions {
  /** Perturbed copies per example (default 5). */
  samples?: number;
  /** Noise standard deviation as a fraction of the range of xs, max − min (default 0.05). */
  noiseLevel?: number;
  /** Seed of the noise (default 0). */
  seed?: number;
  /** The class explained, for x and its perturbations alike (default: x's predicted class). */
  target?: Target;
  /** The method's own options. */
  methodOptions?: Record<string, unknown>;
}

export interface ExplanationStability {
  /** Mean cosine over examples and perturbations, in [−1, 1]: 1 means the perturbations left the explanations' direction unchanged. */
  score: number;
  /** Per example: the mean cosine over its perturbations. */
  perExample: Float32Array;
}

function cosine(a: Float32Array, b: Float32Array, off: number, F: number): number {
  let dot = 0, na = 0, nb = 0;
  for (let f = 0; f < F; f++) {
    const u = a[off + f]!, v = b[off + f]!;
    dot += u * v; na += u * u; nb += v * v;
  }
  // two all-zero explanations agree; one all-zero explanation says nothing in common with the other
  if (na === 0 || nb === 0) return na === nb ? 1 : 0;
  return dot / Math.sqrt(na * nb);
}

/** Mean cosine between the attributions of each example and of `samples` noisy copies of it (seeded Gaussian noise). */
export async function explanationStability(method: ExplainMethod, model: ExplainModel, xs: tf.Tensor, options: ExplanationStabilityOptions = {}): Promise<ExplanationStability> {
  const m = checkChoice(method, 'method', EXPLAIN_METHODS, 'ig');
  checkModel(model);
  const o = requireObject(options, 'options');
  checkKnownKeys(o, ['samples', 'noiseLevel', 'seed', 'target', 'methodOptions'], 'explanationStability');
  const samples = o.samples === undefined ? 5 : checkPositiveInt(o.samples, 'samples');
  const noiseLevel = checkNumber(o.noiseLevel, 'noiseLevel', 0.05);
  if (noiseLevel < 0) throw new RangeError(`noiseLevel must be >= 0, got ${noiseLevel}`);
  const seed = o.seed === undefined ? 0 : checkSeed(o.seed);
  const mo = o.methodOptions === undefined ? {} : requireObject(o.methodOptions, 'methodOptions');
  const x = await readInputs(xs, 'xs');
  const { rows, features: F, data } = x;
  let lo = Infinity, hi = -Infinity;
  for (const v of data) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  const sigma = noiseLevel * (hi - lo);

  const ref = await attributeWith(m, model, xs, mo, o.target as Target | undefined);
  const a0 = (await ref.attributions.data()) as Float32Array;
  ref.attributions.dispose();
  const noise = normalSource(seed), perExample = new Float64Array(rows);
  for (let s = 0; s < samples; s++) {
    const noisy = Float32Array.from(data, (v) => v + sigma * noise());
    const xt = tf.tensor(noisy, xs.shape);
    try {
      const r = await attributeWith(m, model, xt, mo, ref.targets);
      const a = (await r.attributions.data()) as Float32Array;
      r.attributions.dispose();
      for (let i = 0; i < rows; i++) perExample[i]! += cosine(a0, a, i * F, F) / samples;
    } finally {
      xt.dispose();
    }
  }
  let score = 0;
  for (const v of perExample) score += v / rows;
  return { score, perExample: Float32Array.from(perExample) };
}
