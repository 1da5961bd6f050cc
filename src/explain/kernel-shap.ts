/**
 * KernelSHAP (Lundberg & Lee, NeurIPS 2017) with the interventional value function:
 *
 *     v(S) = mean over background rows b of f_t(x_S, b_rest)         (f: the model's logits)
 *     φ = argmin Σ_z π(z) (v(z) − φ_0 − Σ_j z_j φ_j)²   subject to φ_0 = E_b f_t(b), Σ_j φ_j = f_t(x) − φ_0
 *     π(z) = (M − 1) / (C(M, |z|) · |z| · (M − |z|))                   (the Shapley kernel)
 *
 * The constraint is substituted away (φ_M = Δ − Σ_{j<M} φ_j), leaving an unconstrained weighted
 * least squares over M − 1 coefficients. Enumerating every coalition with 0 < |z| < M gives the
 * exact Shapley values of v; otherwise coalitions are sampled in complementary pairs, their sizes
 * drawn from the kernel's distribution over sizes and the members uniformly (so each sample has
 * weight 1), seeded. Features can be grouped (superpixels): the players are then the groups.
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkKnownKeys, describe } from '../kernels/validate.js';
import { coalitionValues, resolveFeatureGroups, spreadGroups, type FeatureGroups } from './coalitions.js';
import { weightedLeastSquares } from './least-squares.js';
import {
  argmax, checkFinite, checkModel, checkSeed, checkOptions, checkPositiveInt, forwardInBatches, pick, readInputs, resolveTargets,
  type ExplainModel, type Target,
} from './model.js';
import { uniformSource } from './random.js';

/** Above this many features (or groups), 'exact' enumeration (2^M coalitions) is refused. */
export const KERNEL_SHAP_MAX_EXACT = 20;

export interface KernelShapOptions {
  /** Background rows `[B, ...features]` (or one example's shape): the distribution "absent" features are drawn from. Required. */
  background: tf.Tensor;
  /** Class explained: one for all examples, one per example, or 'predicted' (default). */
  target?: Target;
  /**
   * Coalitions evaluated per example: 'auto' (default: 2·M + 2048, as the shap package), a number
   * (rounded up to even: pairs), or 'exact' (all 2^M − 2; refused above 20 players). A budget of
   * 2^M − 2 or more is exact enumeration.
   */
  nSamples?: 'auto' | 'exact' | number;
  /** Seed of the coalition sampling (default 0). */
  seed?: number;
  /** Group id of each input feature (e.g. superpixelGroups): the groups are the players. */
  featureGroups?: Int32Array;
  /** Model inputs per call (default 1024): coalitions × background rows are batched. */
  batchSize?: number;
}

export interface KernelShapResult {
  /** The inputs' shape: each feature carries its group's Shapley value. The caller disposes it. */
  attributions: tf.Tensor;
  /** `[rows × groups]`: one value per player (equal to the per-feature values without groups). */
  groupAttributions: Float32Array;
  groups: number;
  /** E_b f_t(b) per example, for its target t. */
  baseValue: Float32Array;
  /** f_t(x) per example: baseValue + Σ groupAttributions (efficiency). */
  scores: Float32Array;
  predictions: Int32Array;
  targets: Int32Array;
  /** Whether every coalition was enumerated. */
  exact: boolean;
  /** Coalitions evaluated per example. */
  coalitions: number;
}

const KNOWN = ['background', 'target', 'nSamples', 'seed', 'featureGroups', 'batchSize'] as const;

function binomial(n: number, k: number): number {
  let r = 1;
  for (let i = 1; i <= k; i++) r = (r * (n - k + i)) / i;
  return r;
}

/** Reads a background (or LIME baseline) tensor as rows of the inputs' example shape. */
export async function readReferenceRows(t: unknown, name: string, featureShape: number[]): Promise<Float32Array> {
  if (!(t instanceof tf.Tensor)) throw new TypeError(`${name} must be a tf.Tensor [rows, ${featureShape.join(', ')}] (or one example's shape), got ${describe(t)}`);
  const same = (a: number[], b: number[]) => a.length === b.length && a.every((v, i) => v === b[i]);
  if (!same(t.shape, featureShape) && !(t.rank === featureShape.length + 1 && t.shape[0]! >= 1 && same(t.shape.slice(1), featureShape))) {
    throw new RangeError(`${name} must have shape [rows, ${featureShape.join(', ')}] or [${featureShape.join(', ')}], got [${t.shape.join(', ')}]`);
  }
  const raw = await t.data();
  const data = raw instanceof Float32Array ? raw : Float32Array.from(raw as ArrayLike<number>);
  checkFinite(data, name);
  return data;
}

/** The coalitions and their weights: every one (exact), or `n` sampled in complementary pairs. */
export function shapCoalitions(M: number, n: number | 'exact', seed: number): { masks: Uint8Array; weights: Float64Array; exact: boolean } {
  if (n === 'exact') {
    const Q = 2 ** M - 2, masks = new Uint8Array(Q * M), weights = new Float64Array(Q);
    for (let code = 1, q = 0; code < 2 ** M - 1; code++, q++) {
      let s = 0;
      for (let j = 0; j < M; j++) if ((code >>> j) & 1) { masks[q * M + j] = 1; s++; }
      weights[q] = (M - 1) / (binomial(M, s) * s * (M - s));
    }
    return { masks, weights, exact: true };
  }
  const pairs = Math.ceil(n / 2), masks = new Uint8Array(2 * pairs * M), weights = new Float64Array(2 * pairs).fill(1);
  // P(size = s) ∝ (M − 1) / (s (M − s)): the kernel summed over the C(M, s) coalitions of size s
  const cdf = new Float64Array(M - 1);
  let total = 0;
  for (let s = 1; s < M; s++) cdf[s - 1] = total += 1 / (s * (M - s));
  const rand = uniformSource(seed), order = Int32Array.from({ length: M }, (_, j) => j);
  for (let p = 0; p < pairs; p++) {
    const u = rand() * total;
    let s = 1;
    while (s < M - 1 && cdf[s - 1]! <= u) s++;
    for (let j = 0; j < s; j++) {  // partial Fisher–Yates: the first s of a random order
      const k = j + Math.floor(rand() * (M - j)), tmp = order[j]!;
      order[j] = order[k]!;
      order[k] = tmp;
    }
    const a = 2 * p * M, b = a + M;
    masks.fill(1, b, b + M);
    for (let j = 0; j < s; j++) { masks[a + order[j]!] = 1; masks[b + order[j]!] = 0; }
  }
  return { masks, weights, exact: false };
}

/** φ from the coalition values by the constrained weighted least squares (see the file comment). */
export function shapFromValues(values: Float64Array, masks: Uint8Array, weights: Float64Array, M: number, base: number, full: number): Float64Array {
  const delta = full - base, phi = new Float64Array(M);
  if (M === 1) { phi[0] = delta; return phi; }
  const Q = values.length, cols = M - 1, design = new Float64Array(Q * cols), y = new Float64Array(Q);
  for (let q = 0; q < Q; q++) {
    const zM = masks[q * M + M - 1]!;
    for (let j = 0; j < cols; j++) design[q * cols + j] = masks[q * M + j]! - zM;
    y[q] = values[q]! - base - zM * delta;
  }
  const fit = weightedLeastSquares(design, y, weights, cols, { intercept: false });
  let rest = delta;
  for (let j = 0; j < cols; j++) { phi[j] = fit.coefficients[j]!; rest -= phi[j]!; }
  phi[M - 1] = rest;
  return phi;
}

/**
 * KernelSHAP attributions of the model's logits (or any `(x) => logits` function) for `target`.
 * Async; one model call per `batchSize` perturbed inputs.
 */
export async function kernelShap(model: ExplainModel, inputs: tf.Tensor, options: KernelShapOptions): Promise<KernelShapResult> {
  const m = checkModel(model);
  const o = checkOptions(options);
  checkKnownKeys(o, KNOWN, 'kernelShap');
  if (o.background === undefined) throw new TypeError('kernelShap: options.background is required (a tf.Tensor of background rows)');
  const batchSize = o.batchSize === undefined ? 1024 : checkPositiveInt(o.batchSize, 'batchSize');
  const seed = o.seed === undefined ? 0 : checkSeed(o.seed);
  const x = await readInputs(inputs);
  const { rows, features: F, featureShape, data } = x;
  const fg: FeatureGroups = resolveFeatureGroups(o.featureGroups, F);
  const M = fg.groups;
  let n: number | 'exact';
  const ns = o.nSamples;
  if (ns === undefined || ns === 'auto') n = 2 * M + 2048;
  else if (ns === 'exact') n = 'exact';
  else if (typeof ns === 'number') n = checkPositiveInt(ns, 'nSamples');
  else if (typeof ns === 'string') throw new RangeError(`nSamples must be 'auto', 'exact' or an integer >= 1, got '${ns}'`);
  else throw new TypeError(`nSamples must be 'auto', 'exact' or an integer >= 1, got ${describe(ns)}`);
  if (n === 'exact' && M > KERNEL_SHAP_MAX_EXACT) {
    throw new RangeError(`nSamples 'exact' enumerates 2^M coalitions and is refused above ${KERNEL_SHAP_MAX_EXACT} features or groups, got M = ${M}; pass a number of samples, or featureGroups`);
  }
  if (n !== 'exact' && M <= 30 && n >= 2 ** M - 2) n = 'exact';
  const background = await readReferenceRows(o.background, 'background', featureShape);

  const atX = await forwardInBatches(m, rows, featureShape, batchSize, 'logits', (p, buf, off) => buf.set(data.subarray(p * F, (p + 1) * F), off));
  const cols = atX.cols;
  const predictions = argmax(atX.scores, rows, cols);
  const targets = resolveTargets(o.target, rows, cols, predictions);
  const scores = pick(atX.scores, cols, targets);
  const B = background.length / F;
  const atB = await forwardInBatches(m, B, featureShape, batchSize, 'logits', (p, buf, off) => buf.set(background.subarray(p * F, (p + 1) * F), off));
  if (atB.cols !== cols) throw new RangeError(`model must output the same number of classes for background and inputs, got ${atB.cols} and ${cols}`);
  const baseValue = new Float32Array(rows);
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let b = 0; b < B; b++) s += atB.scores[b * cols + targets[i]!]!;
    baseValue[i] = s / B;
  }

  const { masks, weights, exact } = M === 1 ? { masks: new Uint8Array(0), weights: new Float64Array(0), exact: true } : shapCoalitions(M, n, seed);
  const groupAttributions = new Float32Array(rows * M), flat = new Float32Array(rows * F);
  for (let i = 0; i < rows; i++) {
    const xi = data.subarray(i * F, (i + 1) * F);
    const values = M === 1 ? new Float64Array(0) : await coalitionValues(m, xi, background, masks, fg, featureShape, targets[i]!, batchSize);
    const phi = shapFromValues(values, masks, weights, M, baseValue[i]!, scores[i]!);
    groupAttributions.set(phi, i * M);
    spreadGroups(phi, fg, flat, i * F);
  }
  return {
    attributions: tf.tensor(flat, inputs.shape),
    groupAttributions, groups: M, baseValue, scores, predictions, targets, exact,
    coalitions: masks.length / Math.max(M, 1),
  };
}
