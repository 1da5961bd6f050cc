/**
 * Integrated gradients (Sundararajan et al., ICML 2017) for tfjs models:
 *
 *     IG(x) = (x - x') * integral_0^1 dF_k(x' + a (x - x'))/dx da
 *     delta = sum(IG(x)) - (F_k(x) - F_k(x'))      (completeness, per example)
 *
 * The integral is a quadrature rule over all (example, baseline, node) points, evaluated
 * `batchSize` points per model call whatever the number of examples, so memory is bounded and the
 * result does not depend on the batching. Gradients are read back and accumulated in float64 on the
 * host, in the same order for every batching.
 */
import * as tf from '@tensorflow/tfjs-core';
import { resolveBaselines, type Baseline, type BaselineOptions } from './baselines.js';
import {
  argmax,
  checkChoice,
  checkModel,
  checkOptions,
  checkPositiveInt,
  forwardInBatches,
  modelScores,
  pick,
  readInputs,
  resolveTargets,
  type ExplainModel,
  type OutputKind,
  type Target,
} from './model.js';
import { checkMethod, checkSteps, quadrature, type QuadratureMethod } from './quadrature.js';
import { igBatchPoints, igKernelsFor } from '../kernels/ig.js';
import { checkKnownKeys } from '../kernels/validate.js';

export interface IntegratedGradientsOptions extends BaselineOptions {
  /** Class explained: one for all examples, one per example, or 'predicted' (default). */
  target?: Target;
  /** Reference input(s) x' (default 'zeros'); a list is averaged over (expected gradients). */
  baseline?: Baseline | Baseline[];
  /** Quadrature nodes on the path (default 50). */
  steps?: number;
  /** Quadrature rule (default 'gauss-legendre'). */
  method?: QuadratureMethod;
  /** Interpolated inputs per model call (default 256): bounds memory. */
  batchSize?: number;
  /** Explain the model's output as is ('logits', default) or its softmax over the last axis. */
  output?: OutputKind;
}

export interface IntegratedGradientsResult {
  /** The inputs' shape; the caller disposes it. */
  attributions: tf.Tensor;
  /** Per example: sum(attributions) - (F(x) - F(x')), F(x') averaged over the baselines. */
  delta: Float32Array;
  /** Argmax of the model output at x, per example. */
  predictions: Int32Array;
  /** The classes explained. */
  targets: Int32Array;
  /** F_target(x) per example. */
  scores: Float32Array;
  /** F_target(x') per example, averaged over the baselines. */
  baselineScores: Float32Array;
}

interface Resolved {
  model: ExplainModel;
  steps: number;
  method: QuadratureMethod;
  batchSize: number;
  output: OutputKind;
}

/** The option names of integratedGradients (IntegratedGradientsOptions, with the baseline's). */
export const IG_OPTION_KEYS = ['target', 'baseline', 'steps', 'method', 'batchSize', 'output', 'seed', 'uniformRange', 'shape', 'blurSigma'] as const;

function resolveOptions(model: unknown, options: unknown): Resolved & { o: Record<string, unknown> } {
  const m = checkModel(model);
  const o = checkOptions(options);
  checkKnownKeys(o, IG_OPTION_KEYS, 'integratedGradients');
  const method = o.method === undefined ? 'gauss-legendre' : checkMethod(o.method);
  const steps = o.steps === undefined ? 50 : checkSteps(o.steps, method);
  const batchSize = o.batchSize === undefined ? 256 : checkPositiveInt(o.batchSize, 'batchSize');
  const output = checkChoice(o.output, 'output', ['logits', 'probabilities'] as const, 'logits');
  return { model: m, steps, method, batchSize, output, o };
}

export async function integratedGradients(
  model: ExplainModel,
  inputs: tf.Tensor,
  options: IntegratedGradientsOptions = {},
): Promise<IntegratedGradientsResult> {
  const { model: m, steps, method, batchSize, output, o } = resolveOptions(model, options);
  const x = await readInputs(inputs);
  const baselines = await resolveBaselines(o.baseline, x, o as BaselineOptions);
  const { rows, features: F, featureShape, data } = x;
  const J = baselines.length;

  // F at x and at every baseline: predictions, targets, and the completeness gap
  const atX = await forwardInBatches(m, rows, featureShape, batchSize, output, (p, buf, off) => buf.set(data.subarray(p * F, (p + 1) * F), off));
  const cols = atX.cols;
  const predictions = argmax(atX.scores, rows, cols);
  const targets = resolveTargets(o.target, rows, cols, predictions);
  const scores = pick(atX.scores, cols, targets);
  const baselineScores = new Float64Array(rows);
  for (const b of baselines) {
    const atB = await forwardInBatches(m, rows, featureShape, batchSize, output, (p, buf, off) => buf.set(b.subarray(p * F, (p + 1) * F), off));
    pick(atB.scores, cols, targets).forEach((v, i) => (baselineScores[i]! += v / J));
  }

  // points p = ((i * J) + j) * steps + k: example i, baseline j, node k
  const { alphas, weights } = quadrature(method, steps);
  const acc = new Float64Array(rows * F);
  const total = rows * J * steps;
  // baseline j of example i is row j * rows + i of the stacked baselines
  const stacked = new Float32Array(J * rows * F);
  baselines.forEach((b, j) => stacked.set(b, j * rows * F));
  for (let start = 0; start < total; start += batchSize) {
    const n = Math.min(batchSize, total - start);
    const pts = igBatchPoints(start, n, rows, J, alphas, weights), kernels = igKernelsFor(n, F);
    const buf = new Float32Array(n * F), tgt = new Int32Array(n);
    kernels.interpolate(data, stacked, F, pts, pts.alpha, buf);
    for (let q = 0; q < n; q++) tgt[q] = targets[pts.xRow[q]!]!;
    // d/dz of sum_q F_{t_q}(z_q): rows are independent, so row q holds dF_{t_q}/dx at point q
    const g = tf.tidy(() => {
      const mask = tf.oneHot(tf.tensor1d(tgt, 'int32'), cols);
      return tf.grad((z: tf.Tensor) => tf.sum(tf.mul(modelScores(m, z, output), mask)))(tf.tensor(buf, [n, ...featureShape]));
    });
    const gv = (await g.data()) as Float32Array;
    g.dispose();
    kernels.accumulate(gv, data, stacked, F, pts, pts.weight, acc);
  }

  const delta = new Float32Array(rows);
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let f = 0; f < F; f++) s += acc[i * F + f]!;
    delta[i] = s - (scores[i]! - baselineScores[i]!);
  }
  return {
    attributions: tf.tensor(Float32Array.from(acc), inputs.shape),
    delta,
    predictions,
    targets,
    scores,
    baselineScores: Float32Array.from(baselineScores),
  };
}
