/**
 * LIME (Ribeiro et al., KDD 2016) on a binary interpretable space: z ∈ {0,1}^M switches each feature
 * (or group) between its value in x (1) and in the baseline (0). Samples: the all-ones point first,
 * then for each further sample a number of players switched off, uniform in 1..M, and which ones,
 * uniformly (as the lime package does for images), seeded. Each sample is weighted by the
 * exponential kernel exp(−d²/width²), d the Euclidean distance from z to the all-ones point (as
 * the lime package does for tabular data), and a weighted ridge regression of f_t(sample) on z
 * gives the attributions (coefficients), intercept and weighted R² (score).
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkKnownKeys, describe } from '../kernels/validate.js';
import { resolveBaselines } from './baselines.js';
import { coalitionValues, resolveFeatureGroups, spreadGroups } from './coalitions.js';
import { weightedLeastSquares } from './least-squares.js';
import {
  argmax, checkModel, checkNumber, checkOptions, checkPositiveInt, checkSeed, forwardInBatches, pick, readInputs, resolveTargets,
  type ExplainModel, type Target,
} from './model.js';
import { uniformSource } from './random.js';

export interface LimeOptions {
  /** What "off" means: a number, a tensor (the inputs' shape or one example's), 'zeros' (default), 'uniform' or 'blur' (see integratedGradients). */
  baseline?: number | tf.Tensor | 'zeros' | 'uniform' | 'blur';
  /** Class explained: one for all examples, one per example, or 'predicted' (default). */
  target?: Target;
  /** Perturbed samples per example, the unperturbed one included (default 1000). */
  nSamples?: number;
  /** Width of the exponential kernel (default 0.75 · sqrt(M), M = features or groups). */
  kernelWidth?: number;
  /** Ridge penalty λ on the coefficients (default 0: ordinary weighted least squares). */
  regularization?: number;
  /** Seed of the sampling (default 0; also the 'uniform' baseline's seed). */
  seed?: number;
  /** Group id of each input feature (e.g. superpixelGroups): the groups are switched together. */
  featureGroups?: Int32Array;
  /** Model inputs per call (default 1024). */
  batchSize?: number;
}

export interface LimeResult {
  /** The inputs' shape: each feature carries its group's coefficient. The caller disposes it. */
  attributions: tf.Tensor;
  /** `[rows × groups]` coefficients. */
  groupAttributions: Float32Array;
  groups: number;
  /** The surrogate's intercept per example (its prediction with every player off). */
  intercept: Float32Array;
  /** Weighted R² of the surrogate fit per example. */
  score: Float32Array;
  scores: Float32Array;
  predictions: Int32Array;
  targets: Int32Array;
}

const KNOWN = ['baseline', 'target', 'nSamples', 'kernelWidth', 'regularization', 'seed', 'featureGroups', 'batchSize'] as const;

/** The binary samples (all-ones first) and their kernel weights. */
export function limeSamples(M: number, n: number, width: number, seed: number): { masks: Uint8Array; weights: Float64Array } {
  const masks = new Uint8Array(n * M).fill(1), weights = new Float64Array(n);
  const rand = uniformSource(seed), order = Int32Array.from({ length: M }, (_, j) => j);
  weights[0] = 1;
  for (let q = 1; q < n; q++) {
    const off = 1 + Math.floor(rand() * M);
    for (let j = 0; j < off; j++) {
      const k = j + Math.floor(rand() * (M - j)), tmp = order[j]!;
      order[j] = order[k]!;
      order[k] = tmp;
      masks[q * M + order[j]!] = 0;
    }
    weights[q] = Math.exp(-off / (width * width));  // d² = number of players off
  }
  return { masks, weights };
}

/** LIME attributions of the model's logits (or any `(x) => logits` function) for `target`. Async. */
export async function lime(model: ExplainModel, inputs: tf.Tensor, options: LimeOptions = {}): Promise<LimeResult> {
  const m = checkModel(model);
  const o = checkOptions(options);
  checkKnownKeys(o, KNOWN, 'lime');
  const nSamples = o.nSamples === undefined ? 1000 : checkPositiveInt(o.nSamples, 'nSamples');
  const batchSize = o.batchSize === undefined ? 1024 : checkPositiveInt(o.batchSize, 'batchSize');
  const seed = o.seed === undefined ? 0 : checkSeed(o.seed);
  const regularization = checkNumber(o.regularization, 'regularization', 0);
  if (regularization < 0) throw new RangeError(`regularization must be >= 0, got ${regularization}`);
  if (Array.isArray(o.baseline)) throw new TypeError(`lime: baseline must be one baseline (number, tf.Tensor, 'zeros', 'uniform' or 'blur'), got ${describe(o.baseline)}`);
  const x = await readInputs(inputs);
  const { rows, features: F, featureShape, data } = x;
  const fg = resolveFeatureGroups(o.featureGroups, F);
  const M = fg.groups;
  const kernelWidth = checkNumber(o.kernelWidth, 'kernelWidth', 0.75 * Math.sqrt(M));
  if (kernelWidth <= 0) throw new RangeError(`kernelWidth must be > 0, got ${kernelWidth}`);
  if (nSamples < 2) throw new RangeError(`nSamples must be >= 2 (the unperturbed input and at least one perturbation), got ${nSamples}`);
  const [baseline] = await resolveBaselines(o.baseline, x, { seed });

  const atX = await forwardInBatches(m, rows, featureShape, batchSize, 'logits', (p, buf, off) => buf.set(data.subarray(p * F, (p + 1) * F), off));
  const predictions = argmax(atX.scores, rows, atX.cols);
  const targets = resolveTargets(o.target, rows, atX.cols, predictions);
  const scores = pick(atX.scores, atX.cols, targets);

  const { masks, weights } = limeSamples(M, nSamples, kernelWidth, seed);
  const design = Float64Array.from(masks);
  const groupAttributions = new Float32Array(rows * M), flat = new Float32Array(rows * F);
  const intercept = new Float32Array(rows), score = new Float32Array(rows);
  for (let i = 0; i < rows; i++) {
    const values = await coalitionValues(m, data.subarray(i * F, (i + 1) * F), baseline!.subarray(i * F, (i + 1) * F), masks, fg, featureShape, targets[i]!, batchSize);
    const fit = weightedLeastSquares(design, values, weights, M, { ridge: regularization, intercept: true });
    groupAttributions.set(fit.coefficients, i * M);
    spreadGroups(fit.coefficients, fg, flat, i * F);
    intercept[i] = fit.intercept;
    score[i] = fit.r2;
  }
  return { attributions: tf.tensor(flat, inputs.shape), groupAttributions, groups: M, intercept, score, scores, predictions, targets };
}
