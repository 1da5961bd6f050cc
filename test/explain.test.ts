/**
 * kdfuse/explain: quadrature, integrated gradients, noise tunnel, comparison and faithfulness.
 * Tolerances: Gauss–Legendre moments within 1e-12; rule weights sum to 1 within 1e-14; IG of a linear
 * model equals w ⊙ (x − x') within 1e-5 · max|expected| for every rule and step count; completeness on a
 * smooth nonlinear model |delta| <= 1e-3 · |F(x) − F(x')| at 64 Gauss–Legendre nodes; batch-size
 * invariance within 1e-6 · max|attribution|; symmetric features equal within 1e-7 · max|attribution|;
 * hand-computed comparison metrics within 1e-12. Every test leaves tf.memory().numTensors as it found it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import {
  compareAttributions,
  deletionCurve,
  explainDistillation,
  insertionCurve,
  integratedGradients,
  noiseTunnel,
  quadrature,
  QUADRATURE_METHODS,
  type ExplainModel,
} from '../src/explain/index.js';
import { expectArrayClose, expectClose, expectNoTensorLeaks, normal, rng } from './helpers.js';

const F = 8, C = 3, N = 4;
const rand = rng(11);
const xData = Float32Array.from({ length: N * F }, () => normal(rand));
const wData = Float32Array.from({ length: F * C }, () => normal(rand));
const bData = Float32Array.from({ length: C }, () => normal(rand));

let W: tf.Tensor2D, b: tf.Tensor1D, linear: (x: tf.Tensor) => tf.Tensor, smooth: tf.LayersModel;
let previousBackend: string;

/** w_k ⊙ (x − x') for the linear model, per example with its target k. */
function linearIG(x: Float32Array, base: Float32Array, targets: ArrayLike<number>): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length / F; i++) {
    for (let f = 0; f < F; f++) out[i * F + f] = wData[f * C + targets[i]!]! * (x[i * F + f]! - base[i * F + f]!);
  }
  return out;
}

beforeAll(async () => {
  await tf.ready();
  previousBackend = tf.getBackend();
  await tf.setBackend('cpu');
  W = tf.tensor2d(wData, [F, C]);
  b = tf.tensor1d(bData);
  linear = (x: tf.Tensor) => tf.add(tf.matMul(x as tf.Tensor2D, W), b);
  smooth = tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [F], units: 16, activation: 'tanh', kernelInitializer: tf.initializers.glorotNormal({ seed: 1 }) }),
      tf.layers.dense({ units: 12, activation: 'softplus', kernelInitializer: tf.initializers.glorotNormal({ seed: 2 }) }),
      tf.layers.dense({ units: C, kernelInitializer: tf.initializers.glorotNormal({ seed: 3 }) }),
    ],
  });
});

afterAll(async () => {
  tf.dispose([W, b]);
  smooth.dispose();
  await tf.setBackend(previousBackend);
});

expectNoTensorLeaks(() => tf.memory().numTensors);

describe('quadrature', () => {
  it('Gauss–Legendre with n nodes integrates monomials of degree <= 2n - 1 exactly (1e-12) and its weights sum to 1', () => {
    for (let n = 1; n <= 20; n++) {
      const { alphas, weights } = quadrature('gauss-legendre', n);
      for (let k = 1; k < n; k++) expect(alphas[k]!).toBeGreaterThan(alphas[k - 1]!);
      expect(alphas[0]!).toBeGreaterThan(0);
      expect(alphas[n - 1]!).toBeLessThan(1);
      for (let d = 0; d <= 2 * n - 1; d++) {
        let s = 0;
        for (let k = 0; k < n; k++) s += weights[k]! * alphas[k]! ** d;
        expect(Math.abs(s - 1 / (d + 1)), `n=${n}, degree ${d}`).toBeLessThan(1e-12);
      }
    }
    // degree 2n is not exact: the rule really has n nodes
    const { alphas, weights } = quadrature('gauss-legendre', 3);
    const s6 = alphas.reduce((s, a, k) => s + weights[k]! * a ** 6, 0);
    expect(Math.abs(s6 - 1 / 7)).toBeGreaterThan(1e-6);
  });

  it('every rule has weights summing to 1 (1e-14); trapezoid is 1/(n-1) inside and 1/(2(n-1)) at the ends', () => {
    for (const method of QUADRATURE_METHODS) {
      for (const n of [1, 2, 3, 10, 50, 257]) {
        if (method === 'trapezoid' && n < 2) continue;
        const { alphas, weights } = quadrature(method, n);
        expect(alphas.length).toBe(n);
        expect(Math.abs(weights.reduce((a, v) => a + v, 0) - 1), `${method} n=${n}`).toBeLessThan(1e-14);
        for (const a of alphas) expect(a >= 0 && a <= 1).toBe(true);
      }
    }
    const t = quadrature('trapezoid', 5);
    expect(Array.from(t.alphas)).toEqual([0, 0.25, 0.5, 0.75, 1]);
    expect(Array.from(t.weights)).toEqual([0.125, 0.25, 0.25, 0.25, 0.125]);
    expect(Array.from(quadrature('riemann-left', 4).alphas)).toEqual([0, 0.25, 0.5, 0.75]);
    expect(Array.from(quadrature('riemann-right', 4).alphas)).toEqual([0.25, 0.5, 0.75, 1]);
    expect(Array.from(quadrature('riemann-middle', 4).alphas)).toEqual([0.125, 0.375, 0.625, 0.875]);
    expect(Array.from(quadrature('gauss-legendre', 1).alphas)).toEqual([0.5]);
    expect(() => quadrature('trapezoid', 1)).toThrow(new RangeError('steps must be >= 2 for trapezoid, got 1'));
    expect(() => quadrature('riemann-left', 0)).toThrow(RangeError);
    expect(() => quadrature('simpson' as never, 4)).toThrow(/method must be one of/);
  });
});

describe('integratedGradients', () => {
  it('is exactly w ⊙ (x − x′) for a linear model, for every rule and step count (1e-5)', async () => {
    const x = tf.tensor2d(xData, [N, F]);
    const baseData = Float32Array.from({ length: N * F }, () => normal(rand));
    const base = tf.tensor2d(baseData, [N, F]);
    const targets = [0, 2, 1, 2];
    for (const method of QUADRATURE_METHODS) {
      for (const steps of [1, 2, 3, 7, 50]) {
        if (method === 'trapezoid' && steps < 2) continue;
        for (const [baseline, bd] of [['zeros', new Float32Array(N * F)], [base, baseData]] as const) {
          const r = await integratedGradients(linear, x, { target: targets, baseline, steps, method });
          expectArrayClose(r.attributions.dataSync(), linearIG(xData, bd, targets), 1e-5, `${method} steps=${steps}`);
          for (const d of r.delta) expect(Math.abs(d)).toBeLessThan(1e-4);
          expect(Array.from(r.targets)).toEqual(targets);
          r.attributions.dispose();
        }
      }
    }
    tf.dispose([x, base]);
  });

  it('keeps the input shape: [N, 2, 4] inputs through a reshaping model, a number baseline and a shared baseline', async () => {
    const x = tf.tensor3d(xData, [N, 2, 4]);
    const model = (z: tf.Tensor) => linear(tf.reshape(z, [z.shape[0]!, F])) as tf.Tensor;
    const r = await integratedGradients(model, x, { target: 1, baseline: 0.5, steps: 4 });
    expect(r.attributions.shape).toEqual([N, 2, 4]);
    expectArrayClose(r.attributions.dataSync(), linearIG(xData, new Float32Array(N * F).fill(0.5), [1, 1, 1, 1]), 1e-5, 'number baseline');
    // one example's shape is shared by all examples
    const shared = tf.fill([2, 4], 0.5);
    const s = await integratedGradients(model, x, { target: 1, baseline: shared, steps: 4 });
    expectArrayClose(s.attributions.dataSync(), r.attributions.dataSync(), 1e-6, 'shared baseline');
    tf.dispose([x, shared, r.attributions, s.attributions]);
  });

  it('completeness on a smooth nonlinear LayersModel: |delta| <= 1e-3 · |F(x) − F(x′)| at 64 Gauss–Legendre nodes', async () => {
    const x = tf.tensor2d(xData, [N, F]);
    for (const output of ['logits', 'probabilities'] as const) {
      const r = await integratedGradients(smooth, x, { steps: 64, method: 'gauss-legendre', output, target: [0, 1, 2, 0] });
      for (let i = 0; i < N; i++) {
        const gap = Math.abs(r.scores[i]! - r.baselineScores[i]!);
        expect(gap, `F(x) - F(x') of example ${i}`).toBeGreaterThan(1e-3);
        expect(Math.abs(r.delta[i]!), `${output} example ${i}`).toBeLessThanOrEqual(1e-3 * gap);
      }
      r.attributions.dispose();
    }
    // a coarse left Riemann sum is visibly incomplete on the same model: delta measures something
    const coarse = await integratedGradients(smooth, x, { steps: 2, method: 'riemann-left', target: [0, 1, 2, 0] });
    expect(Math.max(...Array.from(coarse.delta, Math.abs))).toBeGreaterThan(1e-3);
    tf.dispose([x, coarse.attributions]);
  });

  it('gives the same attributions for batchSize 1, 7 and 1000 (1e-6)', async () => {
    const x = tf.tensor2d(xData, [N, F]);
    const runs = [];
    for (const batchSize of [1, 7, 1000]) {
      const r = await integratedGradients(smooth, x, { steps: 9, batchSize, baseline: ['zeros', 'uniform'], target: 'predicted' });
      runs.push({ a: r.attributions.dataSync().slice(), d: r.delta });
      r.attributions.dispose();
    }
    for (const r of runs.slice(1)) {
      expectArrayClose(r.a, runs[0]!.a, 1e-6, 'attributions');
      expectArrayClose(r.d, runs[0]!.d, 1e-6, 'delta', 1e-3);
    }
    tf.dispose(x);
  });

  it('symmetry: two identical features with identical weights get identical attributions', async () => {
    const w = tf.tensor2d([0.7, -0.2, 0.7, -0.2, 1.5, 0.3], [3, 2]);  // rows 0 and 1 equal
    const model = (z: tf.Tensor) => tf.tanh(tf.matMul(z as tf.Tensor2D, w));
    const x = tf.tensor2d([0.9, 0.9, -1.2, 2.0, 2.0, 0.4], [2, 3]);  // features 0 and 1 equal
    const r = await integratedGradients(model, x, { target: [0, 1], steps: 16 });
    const a = r.attributions.dataSync();
    for (let i = 0; i < 2; i++) expectClose(a[i * 3]!, a[i * 3 + 1]!, 1e-7, `example ${i}`);
    tf.dispose([w, x, r.attributions]);
  });

  it("'predicted' explains each example's argmax, the same as passing those classes", async () => {
    const x = tf.tensor2d(xData, [N, F]);
    const am = tf.tidy(() => tf.argMax(linear(x), 1));
    const argmax = Array.from(am.dataSync());
    am.dispose();
    const p = await integratedGradients(linear, x, { target: 'predicted', steps: 3 });
    const q = await integratedGradients(linear, x, { target: Int32Array.from(argmax), steps: 3 });
    const d = await integratedGradients(linear, x, { steps: 3 });  // the default
    expect(Array.from(p.predictions)).toEqual(argmax);
    expect(Array.from(p.targets)).toEqual(argmax);
    expectArrayClose(p.attributions.dataSync(), q.attributions.dataSync(), 0, 'predicted vs explicit');
    expectArrayClose(d.attributions.dataSync(), q.attributions.dataSync(), 0, 'default vs explicit');
    tf.dispose([x, p.attributions, q.attributions, d.attributions]);
  });

  it('averages over a list of baselines (expected gradients), with delta against the mean baseline score', async () => {
    const x = tf.tensor2d(xData, [N, F]);
    const b1 = tf.randomNormal([N, F], 0, 1, 'float32', 5), b2 = tf.randomNormal([F], 0, 1, 'float32', 6);
    const opts = { target: 2, steps: 32, method: 'gauss-legendre' as const };
    const both = await integratedGradients(smooth, x, { ...opts, baseline: [b1, b2, 'zeros'] });
    const each: Awaited<ReturnType<typeof integratedGradients>>[] = [];
    for (const baseline of [b1, b2, 'zeros' as const]) {
      const r = await integratedGradients(smooth, x, { ...opts, baseline });
      each.push(r);
    }
    const mean = both.attributions.dataSync().map((_, e) => each.reduce((s, r) => s + r.attributions.dataSync()[e]!, 0) / 3);
    expectArrayClose(both.attributions.dataSync(), mean, 1e-6, 'mean of IGs');
    for (let i = 0; i < N; i++) {
      expectClose(both.baselineScores[i]!, each.reduce((s, r) => s + r.baselineScores[i]!, 0) / 3, 1e-6, 'baseline score');
      expect(Math.abs(both.delta[i]!)).toBeLessThan(1e-3 * Math.max(1, Math.abs(both.scores[i]! - both.baselineScores[i]!)));
    }
    tf.dispose([x, b1, b2, both.attributions, ...each.map((r) => r.attributions)]);
  });

  it("seeded 'uniform' and 'blur' baselines; blur keeps a constant image constant", async () => {
    const x = tf.tensor3d(xData.map((v) => v * 0.1 + 0.5), [2, 4, 4]);
    const v = tf.tensor2d(Float32Array.from({ length: 32 }, () => normal(rand)), [16, 2]);
    const model = (z: tf.Tensor) => tf.matMul(tf.reshape(z, [-1, 16]), v);
    const u1 = await integratedGradients(model, x, { baseline: 'uniform', seed: 3, steps: 2, target: 0 });
    const u2 = await integratedGradients(model, x, { baseline: 'uniform', seed: 3, steps: 2, target: 0 });
    const u3 = await integratedGradients(model, x, { baseline: 'uniform', seed: 4, steps: 2, target: 0 });
    expect(Array.from(u1.attributions.dataSync())).toEqual(Array.from(u2.attributions.dataSync()));
    expect(Array.from(u1.attributions.dataSync())).not.toEqual(Array.from(u3.attributions.dataSync()));
    for (const d of u1.delta) expect(Math.abs(d)).toBeLessThan(1e-5);
    // the blurred baseline of a constant image is that image: attributions all zero
    const c = tf.fill([2, 16], 0.3);
    const blurConst = await integratedGradients(model, c, { baseline: 'blur', shape: [4, 4], steps: 2, target: 0 });
    expectArrayClose(blurConst.attributions.dataSync(), new Float32Array(32), 0, 'blur of a constant', 1e-10, 1e-6);
    // blur of a real [4, 4] image: not the image itself, and completeness holds for the linear model
    const blurred = await integratedGradients(model, x, { baseline: 'blur', blurSigma: 1, steps: 2, target: 1 });
    expect(Math.max(...Array.from(blurred.attributions.dataSync(), Math.abs))).toBeGreaterThan(1e-3);
    for (const d of blurred.delta) expect(Math.abs(d)).toBeLessThan(1e-5);
    const blurredFlat = await integratedGradients(model, c, { baseline: 'blur', shape: [2, 4, 2], steps: 2, target: 1 });
    blurredFlat.attributions.dispose();
    tf.dispose(v);
    tf.dispose([x, c, u1.attributions, u2.attributions, u3.attributions, blurConst.attributions, blurred.attributions]);
  });

  it('accepts a GraphModel-like object with execute only, and a multi-output predict (first output explained)', async () => {
    const x = tf.tensor2d(xData, [N, F]);
    const viaFn = await integratedGradients(linear, x, { target: 1, steps: 2 });
    const viaExecute = await integratedGradients({ execute: (z: tf.Tensor) => linear(z) as tf.Tensor }, x, { target: 1, steps: 2 });
    const viaPredict = await integratedGradients({ predict: (z: tf.Tensor) => [linear(z) as tf.Tensor, tf.zeros([z.shape[0]!, 5])] }, x, { target: 1, steps: 2 });
    expectArrayClose(viaExecute.attributions.dataSync(), viaFn.attributions.dataSync(), 0, 'execute');
    expectArrayClose(viaPredict.attributions.dataSync(), viaFn.attributions.dataSync(), 0, 'predict');
    tf.dispose([x, viaFn.attributions, viaExecute.attributions, viaPredict.attributions]);
  });

  it('explains a real GraphModel (loaded from memory): completeness within 1e-5, no leaks', async () => {
    const node = (name: string, op: string, input: string[], attr: object) => ({ name, op, input, attr });
    const float = { type: 'DT_FLOAT' };
    const modelTopology = {
      node: [
        node('x', 'Placeholder', [], { dtype: float, shape: { shape: { dim: [{ size: '-1' }, { size: '3' }] } } }),
        node('W', 'Const', [], { dtype: float, value: { tensor: { dtype: 'DT_FLOAT', tensorShape: { dim: [{ size: '3' }, { size: '2' }] } } } }),
        node('mm', 'MatMul', ['x', 'W'], { T: float, transpose_a: { b: false }, transpose_b: { b: false } }),
        node('y', 'Tanh', ['mm'], { T: float }),
      ],
      versions: { producer: 1 },
    };
    const weights = new Float32Array([0.5, -1, 2, 0.3, 0.1, 0.7]);
    const gm = await tf.loadGraphModel(tf.io.fromMemory({
      modelTopology, weightSpecs: [{ name: 'W', shape: [3, 2], dtype: 'float32' }], weightData: weights.buffer, format: 'graph-model',
    }));
    const x = tf.tensor2d([[1, 2, 3], [0.5, -1, 0.2]]);
    const before = tf.memory().numTensors;
    const r = await integratedGradients(gm, x, { target: [0, 1], steps: 64 });
    for (let i = 0; i < 2; i++) expect(Math.abs(r.delta[i]!)).toBeLessThan(1e-5 * Math.max(1e-3, Math.abs(r.scores[i]! - r.baselineScores[i]!)) + 1e-7);
    r.attributions.dispose();
    expect(tf.memory().numTensors).toBe(before);
    gm.dispose();
    x.dispose();
  });

  it('rejects bad arguments with a TypeError or RangeError naming the argument', async () => {
    const x = tf.tensor2d(xData, [N, F]);
    const bad = async (opts: unknown, type: typeof TypeError | typeof RangeError, message: RegExp, inputs: unknown = x, model: unknown = linear) => {
      const p = integratedGradients(model as ExplainModel, inputs as tf.Tensor, opts as object);
      await expect(p, String(message)).rejects.toThrow(type);
      await expect(integratedGradients(model as ExplainModel, inputs as tf.Tensor, opts as object)).rejects.toThrow(message);
    };
    const v = tf.tensor1d([1, 2, 3]);
    const wrongBase = tf.zeros([N, F + 1]);
    const nan = tf.tensor2d([NaN, 1], [1, 2]);
    await bad({}, TypeError, /^model must be a tfjs LayersModel, GraphModel or a function .* got number 3$/, x, 3);
    await bad({}, TypeError, /^inputs must be a tf.Tensor, got Float32Array$/, xData);
    await bad({}, RangeError, /^inputs must have a batch axis .* got shape \[3\]$/, v);
    await bad({}, RangeError, /^inputs must be finite, got NaN/, nan);
    await bad({ target: 3 }, RangeError, /^target must be an integer class index in \[0, 3\), got 3$/);
    await bad({ target: -1 }, RangeError, /^target must be an integer class index/);
    await bad({ target: [0, 1, 2, 7] }, RangeError, /^target\[3\] must be an integer class index in \[0, 3\), got 7$/);
    await bad({ target: [0, 1] }, RangeError, /^target must have one class per example \(4\), got 2$/);
    await bad({ target: 'top' }, RangeError, /^target must be .* or 'predicted', got 'top'$/);
    await bad({ target: {} }, TypeError, /^target must be a number/);
    await bad({ steps: 0 }, RangeError, /^steps must be an integer >= 1, got 0$/);
    await bad({ steps: 2.5 }, RangeError, /^steps must be an integer >= 1, got 2.5$/);
    await bad({ steps: '50' }, TypeError, /^steps must be a number, got string '50'$/);
    await bad({ steps: 1, method: 'trapezoid' }, RangeError, /^steps must be >= 2 for trapezoid, got 1$/);
    await bad({ method: 'simpson' }, RangeError, /^method must be one of 'riemann-left', .* got 'simpson'$/);
    await bad({ batchSize: 0 }, RangeError, /^batchSize must be an integer >= 1, got 0$/);
    await bad({ output: 'softmax' }, RangeError, /^output must be one of 'logits', 'probabilities', got 'softmax'$/);
    await bad({ baseline: wrongBase }, RangeError, /^baseline must have the inputs' shape \[4, 8\] or one example's shape \[8\], got \[4, 9\]$/);
    await bad({ baseline: ['zeros', 'noise'] }, RangeError, /^baseline\[1\] must be a number, a tf.Tensor, 'zeros', 'uniform', 'blur'/);
    await bad({ baseline: [] }, RangeError, /^baseline must not be an empty list$/);
    await bad({ baseline: 'blur' }, RangeError, /^baseline 'blur' needs shape/);
    await bad({ baseline: 'blur', shape: [3, 3] }, RangeError, /^shape \[3, 3\] must hold one example's 8 elements/);
    await bad([], TypeError, /^options must be an object, got Array$/);
    await bad({ baseline: 'uniform', uniformRange: [1, 0] }, RangeError, /^uniformRange must be \[low, high\] .* got \[1, 0\]$/);
    await bad({ baseline: 'uniform', seed: '1' }, TypeError, /^seed must be a number, got string '1'$/);
    await bad({ baseline: 'blur', shape: [2, 4], blurSigma: 0 }, RangeError, /^blurSigma must be a finite number > 0, got 0$/);
    await bad({}, RangeError, /^model must output \[batch, classes\] with one row per input \(4\), got shape \[4, 3, 1\]$/, x, (z: tf.Tensor) => tf.expandDims(linear(z) as tf.Tensor, 2));
    tf.dispose([v, wrongBase, nan, x]);
  });
});

describe('noiseTunnel', () => {
  it('is reproducible with a seed, differs with another, and vargrad = E[a²] − E[a]² (1e-5)', async () => {
    const x = tf.tensor2d(xData, [N, F]);
    const explain = (z: tf.Tensor) => integratedGradients(smooth, z, { target: [0, 1, 2, 0], steps: 8 });
    const run = (type: 'smoothgrad' | 'smoothgrad-squared' | 'vargrad', seed: number) => noiseTunnel(explain, x, { type, samples: 4, stdev: 0.3, seed });
    const a = await run('smoothgrad', 7), b = await run('smoothgrad', 7), c = await run('smoothgrad', 8);
    expect(Array.from(a.attributions.dataSync())).toEqual(Array.from(b.attributions.dataSync()));
    expect(Array.from(a.attributions.dataSync())).not.toEqual(Array.from(c.attributions.dataSync()));
    expect(a.deltas.length).toBe(4);
    const sq = await run('smoothgrad-squared', 7), vg = await run('vargrad', 7);
    const m = a.attributions.dataSync(), s2 = sq.attributions.dataSync();
    expectArrayClose(vg.attributions.dataSync(), s2.map((v, e) => Math.max(0, v - m[e]! * m[e]!)), 1e-5, 'vargrad', 1e-10, 1e-7);
    for (const v of vg.attributions.dataSync()) expect(v).toBeGreaterThanOrEqual(0);
    // stdev 0 is the plain explanation, averaged over identical samples
    const plain = await explain(x);
    const zero = await noiseTunnel(explain, x, { samples: 2, stdev: 0 });
    expectArrayClose(zero.attributions.dataSync(), plain.attributions.dataSync(), 1e-6, 'stdev 0');
    await expect(noiseTunnel(explain, x, { samples: 0 })).rejects.toThrow(/^samples must be an integer >= 1, got 0$/);
    await expect(noiseTunnel(explain, x, { stdev: -1 })).rejects.toThrow(RangeError);
    await expect(noiseTunnel(explain, x, { type: 'smooth' as never })).rejects.toThrow(/^type must be one of/);
    await expect(noiseTunnel(3 as never, x)).rejects.toThrow(TypeError);
    tf.dispose([x, a.attributions, b.attributions, c.attributions, sq.attributions, vg.attributions, plain.attributions, zero.attributions]);
  });
});

describe('compareAttributions', () => {
  it('matches hand-computed cosine, Spearman and top-k (1e-12)', async () => {
    // example 0: orthogonal; example 1: identical; example 2: reversed order; example 3: ties
    const a = tf.tensor2d([1, 0, 0, 0, 1, 2, 3, 4, 1, 2, 3, 4, 1, 1, 2, 3], [4, 4]);
    const b = tf.tensor2d([0, 1, 0, 0, 1, 2, 3, 4, 4, 3, 2, 1, 1, 2, 2, 3], [4, 4]);
    const r = await compareAttributions(a, b, { topK: 2 });
    expect(r.topK).toBe(2);
    expect(Math.abs(r.cosine[0]!)).toBeLessThan(1e-12);
    expectClose(r.cosine[1]!, 1, 1e-12, 'identical cosine');
    expectClose(r.cosine[2]!, 20 / 30, 1e-12, 'reversed cosine');
    expectClose(r.spearman[1]!, 1, 1e-12, 'identical spearman');
    expectClose(r.spearman[2]!, -1, 1e-12, 'reversed spearman');
    // ranks a: [1.5, 1.5, 3, 4], b: [1, 2.5, 2.5, 4]; centred [-1, -1, .5, 1.5] and [-1.5, 0, 0, 1.5]: 3.75 / 4.5
    expectClose(r.spearman[3]!, 3.75 / 4.5, 1e-12, 'tied spearman');
    // example 0 ranks a: [4, 2, 2, 2], b: [2, 4, 2, 2] → Pearson −1/3
    expectClose(r.spearman[0]!, -1 / 3, 1e-12, 'orthogonal spearman');
    // top-2 by |v|: ex0 {0,1} vs {1,0} (ties by index), ex1 equal, ex2 {3,2} vs {0,1}, ex3 {3,2} vs {3,1}
    expect(Array.from(r.topKIntersection)).toEqual([1, 1, 0, 0.5]);
    expectClose(r.mean.topKIntersection, 2.5 / 4, 1e-12, 'mean top-k');
    expectClose(r.mean.cosine, (r.cosine[0]! + 1 + 20 / 30 + r.cosine[3]!) / 4, 1e-12, 'mean cosine');
    // top-k uses |v|: negative attributions count
    const s = await compareAttributions(Float32Array.from([-5, 1, 0, 2]), Float32Array.from([5, 0, 1, 2]), { topK: 1 });
    expect(s.topKIntersection[0]).toBe(1);
    // Float32Arrays with rows; a zero vector has no cosine (NaN, left out of the mean)
    const t = await compareAttributions(Float32Array.from([0, 0, 1, 2]), Float32Array.from([1, 1, 1, 2]), { rows: 2, topK: 1 });
    expect(Number.isNaN(t.cosine[0])).toBe(true);
    expect(Number.isNaN(t.spearman[0])).toBe(true);
    expectClose(t.mean.cosine, 1, 1e-12, 'nan-skipping mean');
    const narrow = tf.zeros([4, 3]);
    await expect(compareAttributions(a, narrow)).rejects.toThrow(/^b must have a's shape \[4, 4\], got \[4, 3\]$/);
    narrow.dispose();
    await expect(compareAttributions(a, b, { topK: 5 })).rejects.toThrow(/^topK must be at most the number of features \(4\), got 5$/);
    await expect(compareAttributions(a, [1, 2] as never)).rejects.toThrow(/^b must be a tf.Tensor or Float32Array, got Array$/);
    tf.dispose([a, b]);
  });
});

describe('faithfulness', () => {
  it('deletion in attribution order falls faster than random (smaller AUC); insertion rises faster', async () => {
    const n = 16, f = 32;
    const r = rng(5);
    const w = tf.tensor2d(Float32Array.from({ length: f * 2 }, () => normal(r)), [f, 2]);
    const model = (z: tf.Tensor) => tf.matMul(z as tf.Tensor2D, w);
    const x = tf.tensor2d(Float32Array.from({ length: n * f }, () => normal(r)), [n, f]);
    const ig = await integratedGradients(model, x, { target: 0, steps: 2 });
    const del = await deletionCurve(model, x, ig.attributions, { target: 0, steps: 16, output: 'logits', seed: 1 });
    const ins = await insertionCurve(model, x, ig.attributions, { target: 0, steps: 16, output: 'logits', seed: 1 });
    expect(del.fractions.length).toBe(17);
    expect(del.curves.length).toBe(n);
    // the curve starts at F(x) and, for deletion to zero of a linear model, ends at F(0) = 0
    const fx = ig.scores;
    for (let i = 0; i < n; i++) {
      expectClose(del.curves[i]![0]!, fx[i]!, 1e-5, 'deletion start', 1e-3);
      expect(Math.abs(del.curves[i]![16]!)).toBeLessThan(1e-5);
      expectClose(ins.curves[i]![16]!, fx[i]!, 1e-5, 'insertion end', 1e-3);
      expect(del.auc[i]!).toBeLessThan(del.control!.auc[i]! + 1e-9);
      expect(ins.auc[i]!).toBeGreaterThan(ins.control!.auc[i]! - 1e-9);
    }
    expect(del.meanAuc).toBeLessThan(del.control!.meanAuc);
    expect(ins.meanAuc).toBeGreaterThan(ins.control!.meanAuc);
    // the default score is the probability; order 'random' is the control alone
    const pr = await deletionCurve(model, x, ig.attributions.dataSync() as Float32Array, { order: 'random', seed: 1, steps: 16, target: 0, batchSize: 5 });
    expect(pr.control).toBeUndefined();
    for (const c of pr.curves) for (const v of c) expect(v >= 0 && v <= 1).toBe(true);
    const wide = tf.zeros([n, f + 1]);
    await expect(deletionCurve(model, x, wide)).rejects.toThrow(/^attributions must have x's shape \[16, 32\], got \[16, 33\]$/);
    wide.dispose();
    await expect(deletionCurve(model, x, ig.attributions, { steps: 0 })).rejects.toThrow(/^steps must be an integer >= 1, got 0$/);
    await expect(insertionCurve(model, x, ig.attributions, { order: 'best' as never })).rejects.toThrow(RangeError);
    tf.dispose([w, x, ig.attributions]);
  });
});

describe('explainDistillation', () => {
  it('explains teacher and student on the teacher’s predicted classes and compares them', async () => {
    const x = tf.tensor2d(xData, [N, F]);
    const same = await explainDistillation(smooth, smooth, x, { steps: 8, topK: 3, faithfulness: { steps: 4 } });
    expectClose(same.comparison.mean.cosine, 1, 1e-6, 'self cosine');
    expectClose(same.comparison.mean.spearman, 1, 1e-12, 'self spearman');
    expect(same.comparison.mean.topKIntersection).toBe(1);
    expect(same.predictionAgreement).toBe(1);
    expect(Array.from(same.targets)).toEqual(Array.from(same.teacher.predictions));
    expect(same.teacher.deletion!.auc.length).toBe(N);
    expect(same.student.insertion!.meanAuc).toBeCloseTo(same.teacher.insertion!.meanAuc, 6);

    const other = await explainDistillation(smooth, linear, x, { steps: 8, faithfulness: false, target: 1 });
    expect(Array.from(other.targets)).toEqual([1, 1, 1, 1]);
    expect(other.teacher.deletion).toBeUndefined();
    expect(other.comparison.cosine.length).toBe(N);
    expect(other.student.attributions.shape).toEqual([N, F]);
    await expect(explainDistillation(smooth, 'student' as never, x)).rejects.toThrow(/^student must be a tfjs LayersModel/);
    await expect(explainDistillation(smooth, linear, x, { faithfulness: 1 as never })).rejects.toThrow(/^faithfulness must be an object or false, got number 1$/);
    tf.dispose([x, same.teacher.attributions, same.student.attributions, other.teacher.attributions, other.student.attributions]);
  });
});
