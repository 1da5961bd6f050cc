/**
 * Noise tunnel around an attribution method (SmoothGrad, Smilkov et al. 2017; VarGrad, Adebayo et
 * al. 2018): explain `samples` noisy copies x + N(0, stdev^2) and combine the attributions, as mean
 * ('smoothgrad'), mean of squares ('smoothgrad-squared') or variance ('vargrad'). The noise is
 * seeded, so the result is reproducible. Give the explainer fixed targets: with 'predicted' each
 * noisy copy could explain a different class.
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkKnownKeys, describe } from '../kernels/validate.js';
import { checkChoice, checkNumber, checkOptions, checkPositiveInt, readInputs } from './model.js';
import { normalSource } from './random.js';

export type NoiseTunnelType = 'smoothgrad' | 'smoothgrad-squared' | 'vargrad';

/** An attribution method: a tensor of the inputs' shape, or a result holding one (as IG's does). */
export type ExplainFn = (
  x: tf.Tensor,
) => Promise<tf.Tensor | { attributions: tf.Tensor; delta?: Float32Array }> | tf.Tensor | { attributions: tf.Tensor; delta?: Float32Array };

export interface NoiseTunnelOptions {
  type?: NoiseTunnelType;
  /** Noisy copies (default 10). */
  samples?: number;
  /** Standard deviation of the noise (default 0.15 * (max - min) of the inputs, as SmoothGrad suggests). */
  stdev?: number;
  /** Seed of the noise (default 0). */
  seed?: number;
}

export interface NoiseTunnelResult {
  /** The inputs' shape; the caller disposes it. */
  attributions: tf.Tensor;
  /** The explainer's delta for each sample, where it gave one. */
  deltas: Float32Array[];
}

export async function noiseTunnel(explainFn: ExplainFn, inputs: tf.Tensor, options: NoiseTunnelOptions = {}): Promise<NoiseTunnelResult> {
  if (typeof explainFn !== 'function') throw new TypeError(`explainFn must be a function (x: tf.Tensor) => attributions, got ${describe(explainFn)}`);
  const o = checkOptions(options);
  checkKnownKeys(o, ['type', 'samples', 'stdev', 'seed'], 'noiseTunnel');
  const type = checkChoice(o.type, 'type', ['smoothgrad', 'smoothgrad-squared', 'vargrad'] as const, 'smoothgrad');
  const samples = o.samples === undefined ? 10 : checkPositiveInt(o.samples, 'samples');
  const seed = checkNumber(o.seed, 'seed', 0);
  const x = await readInputs(inputs);
  let lo = Infinity, hi = -Infinity;
  for (const v of x.data) (lo = Math.min(lo, v)), (hi = Math.max(hi, v));
  const stdev = checkNumber(o.stdev, 'stdev', 0.15 * (hi - lo));
  if (stdev < 0) throw new RangeError(`stdev must be >= 0, got ${stdev}`);

  const noise = normalSource(seed);
  const sum = new Float64Array(x.data.length), sumSq = new Float64Array(x.data.length);
  const deltas: Float32Array[] = [];
  for (let s = 0; s < samples; s++) {
    const noisy = Float32Array.from(x.data, (v) => v + stdev * noise());
    const xt = tf.tensor(noisy, inputs.shape);
    let result: Awaited<ReturnType<ExplainFn>>;
    try {
      result = await explainFn(xt);
    } finally {
      xt.dispose();
    }
    const attr = result instanceof tf.Tensor ? result : result?.attributions;
    if (!(attr instanceof tf.Tensor)) throw new TypeError(`explainFn must return a tf.Tensor or { attributions: tf.Tensor }, got ${describe(result)}`);
    if (!(result instanceof tf.Tensor) && result.delta instanceof Float32Array) deltas.push(result.delta);
    const same = attr.shape.length === inputs.shape.length && attr.shape.every((v, i) => v === inputs.shape[i]);
    if (!same) {
      attr.dispose();
      throw new RangeError(`explainFn must return attributions of the inputs' shape [${inputs.shape.join(', ')}], got [${attr.shape.join(', ')}]`);
    }
    const a = await attr.data();
    attr.dispose();
    for (let e = 0; e < a.length; e++) {
      sum[e]! += a[e]!;
      sumSq[e]! += a[e]! * a[e]!;
    }
  }
  const out = new Float32Array(sum.length);
  for (let e = 0; e < out.length; e++) {
    const mean = sum[e]! / samples, meanSq = sumSq[e]! / samples;
    out[e] = type === 'smoothgrad' ? mean : type === 'smoothgrad-squared' ? meanSq : Math.max(0, meanSq - mean * mean);
  }
  return { attributions: tf.tensor(out, inputs.shape), deltas };
}
