/**
 * KernelSHAP and LIME against closed forms. Tolerances: exact KernelSHAP equals brute-force Shapley
 * values (float64 sums over the same float32 model outputs) within 1e-5 · max|φ| + 1e-6; on a linear
 * model f = xW + b, KernelSHAP (exact and sampled) gives w_t ⊙ (x − mean(background)) and LIME with
 * regularization 0 gives w_t ⊙ (x − baseline), within 1e-4 · max|expected| (float32 model outputs
 * of size ~10 through a float64 solve); efficiency Σφ = f(x) − E f(background) within 1e-4.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { kernelShap, lime, superpixelGroups, globalAttributions, explanationStability } from '../src/explain/index.js';
import { weightedLeastSquares } from '../src/explain/least-squares.js';
import { expectArrayClose, expectNoTensorLeaks, normal, rng } from './helpers.js';

const F = 6, C = 3, N = 3, B = 4;
const rand = rng(21);
const xData = Float32Array.from({ length: N * F }, () => normal(rand));
const bgData = Float32Array.from({ length: B * F }, () => normal(rand));
const wData = Float32Array.from({ length: F * C }, () => normal(rand));
const bData = Float32Array.from({ length: C }, () => normal(rand));

let W: tf.Tensor2D, b: tf.Tensor1D, linear: (x: tf.Tensor) => tf.Tensor, net: tf.LayersModel, previousBackend: string;

beforeAll(async () => {
  await tf.ready();
  previousBackend = tf.getBackend();
  await tf.setBackend('cpu');
  W = tf.tensor2d(wData, [F, C]);
  b = tf.tensor1d(bData);
  linear = (x: tf.Tensor) => tf.add(tf.matMul(tf.reshape(x, [x.shape[0]!, F]) as tf.Tensor2D, W), b);
  net = tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [F], units: 10, activation: 'tanh', kernelInitializer: tf.initializers.glorotNormal({ seed: 4 }) }),
      tf.layers.dense({ units: C, kernelInitializer: tf.initializers.glorotNormal({ seed: 5 }) }),
    ],
  });
});

afterAll(async () => {
  tf.dispose([W, b]);
  net.dispose();
  await tf.setBackend(previousBackend);
});

expectNoTensorLeaks(() => tf.memory().numTensors);

/** Shapley values of v(S) = mean_b f_t(x_S, b_rest), by the permutation-free subset formula, in float64. */
function bruteShapley(f: (rows: Float32Array, n: number) => Float32Array, x: Float32Array, bg: Float32Array, t: number): Float64Array {
  const Bn = bg.length / F, subsets = 1 << F;
  const inputs = new Float32Array(subsets * Bn * F);
  for (let s = 0; s < subsets; s++) for (let r = 0; r < Bn; r++) for (let j = 0; j < F; j++) {
    inputs[(s * Bn + r) * F + j] = (s >> j) & 1 ? x[j]! : bg[r * F + j]!;
  }
  const out = f(inputs, subsets * Bn);
  const v = new Float64Array(subsets);
  for (let s = 0; s < subsets; s++) for (let r = 0; r < Bn; r++) v[s]! += out[(s * Bn + r) * C + t]! / Bn;
  const fact = (n: number): number => (n <= 1 ? 1 : n * fact(n - 1));
  const phi = new Float64Array(F);
  for (let j = 0; j < F; j++) for (let s = 0; s < subsets; s++) {
    if ((s >> j) & 1) continue;
    let size = 0;
    for (let k = 0; k < F; k++) size += (s >> k) & 1;
    phi[j]! += (fact(size) * fact(F - size - 1) / fact(F)) * (v[s | (1 << j)]! - v[s]!);
  }
  return phi;
}

const runNet = (rows: Float32Array, n: number) => tf.tidy(() => (net.predict(tf.tensor2d(rows, [n, F])) as tf.Tensor).dataSync() as Float32Array);

describe('weightedLeastSquares (ml-matrix SVD)', () => {
  it('recovers an exact weighted linear fit and its intercept, and a min-norm solution when rank-deficient', () => {
    const rows = 7, cols = 2, design = new Float64Array(rows * cols), y = new Float64Array(rows), w = new Float64Array(rows);
    for (let r = 0; r < rows; r++) { design[r * 2] = r; design[r * 2 + 1] = r * r; y[r] = 3 - 2 * r + 0.5 * r * r; w[r] = 1 + r; }
    const fit = weightedLeastSquares(design, y, w, cols);
    expectArrayClose(fit.coefficients, [-2, 0.5], 1e-10, 'coefficients');
    expect(Math.abs(fit.intercept - 3)).toBeLessThan(1e-9);
    expect(Math.abs(fit.r2 - 1)).toBeLessThan(1e-12);
    // two identical columns: the minimum-norm split is half each
    const dup = new Float64Array(rows * 2);
    for (let r = 0; r < rows; r++) { dup[r * 2] = r; dup[r * 2 + 1] = r; y[r] = 4 * r; }
    expectArrayClose(weightedLeastSquares(dup, y, w, 2, { intercept: false }).coefficients, [2, 2], 1e-10, 'min-norm');
  });

  it('applies the ridge penalty: (ZᵀWZ + λI)β = ZᵀWy for a centred one-column design', () => {
    const z = Float64Array.from([-1, 0, 1]), y = Float64Array.from([-2, 0, 2]), w = Float64Array.from([1, 1, 1]);
    // ZᵀWZ = 2, ZᵀWy = 4: β = 4 / (2 + λ)
    expect(Math.abs(weightedLeastSquares(z, y, w, 1, { ridge: 2 }).coefficients[0]! - 1)).toBeLessThan(1e-12);
  });
});

describe('kernelShap', () => {
  it("'exact' equals brute-force Shapley values of the interventional value function on a nonlinear model", async () => {
    const x = tf.tensor2d(xData, [N, F]), bg = tf.tensor2d(bgData, [B, F]);
    const r = await kernelShap(net, x, { background: bg, nSamples: 'exact', target: [0, 1, 2] });
    const a = await r.attributions.data();
    expect(r.exact).toBe(true);
    expect(r.coalitions).toBe(2 ** F - 2);
    for (let i = 0; i < N; i++) {
      const phi = bruteShapley(runNet, xData.subarray(i * F, (i + 1) * F), bgData, i);
      expectArrayClose(a.subarray(i * F, (i + 1) * F), phi, 1e-5, `row ${i}`, 1e-3, 1e-6);
      let sum = 0;
      for (const v of phi) sum += v;
      expect(Math.abs(r.scores[i]! - r.baseValue[i]! - sum)).toBeLessThan(1e-4);
    }
    tf.dispose([x, bg, r.attributions]);
  });

  it('gives w_t ⊙ (x − mean(background)) for a linear function, exact and sampled (seeded, paired)', async () => {
    const x = tf.tensor2d(xData, [N, F]), bg = tf.tensor2d(bgData, [B, F]);
    for (const nSamples of ['exact', 20] as const) {
      const r = await kernelShap(linear, x, { background: bg, nSamples, seed: 3 });
      const a = await r.attributions.data();
      const expected = new Float32Array(N * F);
      for (let i = 0; i < N; i++) for (let j = 0; j < F; j++) {
        let mean = 0;
        for (let q = 0; q < B; q++) mean += bgData[q * F + j]! / B;
        expected[i * F + j] = wData[j * C + r.targets[i]!]! * (xData[i * F + j]! - mean);
      }
      expectArrayClose(a, expected, 1e-4, `linear, nSamples ${String(nSamples)}`);
      expect(r.exact).toBe(nSamples === 'exact');
      r.attributions.dispose();
    }
    tf.dispose([x, bg]);
  });

  it('with featureGroups, each feature carries its group value, and groups follow the grouped closed form', async () => {
    const x = tf.tensor2d(xData, [N, F]), bg = tf.tensor2d(bgData, [B, F]);
    const groups = Int32Array.from([5, 5, 9, 9, 9, 0]);  // renumbered 0 -> 0, 5 -> 1, 9 -> 2
    const r = await kernelShap(linear, x, { background: bg, featureGroups: groups, target: 1 });
    expect(r.groups).toBe(3);
    const members = [[5], [0, 1], [2, 3, 4]];
    for (let i = 0; i < N; i++) {
      const expected = members.map((fs) => fs.reduce((s, j) => {
        let mean = 0;
        for (let q = 0; q < B; q++) mean += bgData[q * F + j]! / B;
        return s + wData[j * C + 1]! * (xData[i * F + j]! - mean);
      }, 0));
      expectArrayClose(r.groupAttributions.subarray(i * 3, i * 3 + 3), expected, 1e-4, `groups row ${i}`);
    }
    const a = await r.attributions.data();
    expect(a[0]).toBe(a[1]);
    expect(a[0]).toBe(r.groupAttributions[1]);
    tf.dispose([x, bg, r.attributions]);
  });

  it('is reproducible from its seed and refuses bad options', async () => {
    const x = tf.tensor2d(xData, [N, F]), bg = tf.tensor2d(bgData, [B, F]);
    const r1 = await kernelShap(net, x, { background: bg, nSamples: 30, seed: 9 });
    const r2 = await kernelShap(net, x, { background: bg, nSamples: 30, seed: 9 });
    expect(Array.from(await r1.attributions.data())).toEqual(Array.from(await r2.attributions.data()));
    tf.dispose([r1.attributions, r2.attributions]);
    await expect(kernelShap(net, x, { background: bg, nSampels: 3 } as never)).rejects.toThrow(/unknown option 'nSampels'.*nSamples/);
    await expect(kernelShap(net, x, {} as never)).rejects.toThrow(TypeError);
    const bad = tf.zeros([2, 5]);
    await expect(kernelShap(net, x, { background: bad })).rejects.toThrow(/background must have shape/);
    bad.dispose();
    const wide = tf.zeros([1, 21]);
    await expect(kernelShap((t: tf.Tensor) => tf.sum(t, 1, true), wide, { background: wide, nSamples: 'exact' })).rejects.toThrow(/refused above 20/);
    tf.dispose([x, bg, wide]);
  });
});

describe('lime', () => {
  it('gives w_t ⊙ (x − baseline) and intercept f_t(baseline) for a linear function with regularization 0', async () => {
    const x = tf.tensor2d(xData, [N, F]), base = tf.tensor1d(bgData.subarray(0, F));
    const r = await lime(linear, x, { baseline: base, regularization: 0, nSamples: 200, seed: 1 });
    const a = await r.attributions.data();
    const expected = new Float32Array(N * F);
    for (let i = 0; i < N; i++) {
      let fb = bData[r.targets[i]!]!;
      for (let j = 0; j < F; j++) {
        expected[i * F + j] = wData[j * C + r.targets[i]!]! * (xData[i * F + j]! - bgData[j]!);
        fb += wData[j * C + r.targets[i]!]! * bgData[j]!;
      }
      expect(Math.abs(r.intercept[i]! - fb)).toBeLessThan(1e-4);
      expect(r.score[i]).toBeGreaterThan(1 - 1e-6);
    }
    expectArrayClose(a, expected, 1e-4, 'lime linear');
    tf.dispose([x, base, r.attributions]);
  });

  it('shrinks with regularization, groups superpixels, and refuses bad options', async () => {
    const x = tf.tensor2d(xData, [N, F]);
    const r0 = await lime(linear, x, { nSamples: 100 }), r1 = await lime(linear, x, { nSamples: 100, regularization: 100 });
    let n0 = 0, n1 = 0;
    for (const v of r0.groupAttributions) n0 += v * v;
    for (const v of r1.groupAttributions) n1 += v * v;
    expect(n1).toBeLessThan(n0);
    tf.dispose([r0.attributions, r1.attributions]);
    expect(Array.from(superpixelGroups([4, 4], 2))).toEqual([0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3]);
    await expect(lime(linear, x, { kernelWidht: 1 } as never)).rejects.toThrow(/did you mean 'kernelWidth'/);
    await expect(lime(linear, x, { kernelWidth: 0 })).rejects.toThrow(RangeError);
    await expect(lime(linear, x, { featureGroups: new Int32Array(3) })).rejects.toThrow(/one group id per input feature \(6\)/);
    tf.dispose(x);
  });
});

describe('globalAttributions and explanationStability', () => {
  it('averages |attribution| per feature and per class (hand-checked on a linear model)', async () => {
    const x = tf.tensor2d(xData, [N, F]), bg = tf.tensor2d(bgData, [B, F]);
    const g = await globalAttributions('kernelshap', linear, x, { target: [0, 0, 2], methodOptions: { background: bg, nSamples: 'exact' } });
    const mean = (j: number) => bgData.filter((_, k) => k % F === j).reduce((s, v) => s + v / B, 0);
    const phi = (i: number, j: number, t: number) => Math.abs(wData[j * C + t]! * (xData[i * F + j]! - mean(j)));
    expect(Array.from(g.classCounts)).toEqual([2, 0, 1]);
    expectArrayClose(g.meanAbs, Array.from({ length: F }, (_, j) => (phi(0, j, 0) + phi(1, j, 0) + phi(2, j, 2)) / 3), 1e-4, 'meanAbs');
    expectArrayClose(g.perClass.subarray(0, F), Array.from({ length: F }, (_, j) => (phi(0, j, 0) + phi(1, j, 0)) / 2), 1e-4, 'class 0');
    expect(g.heatmap.shape).toEqual([F]);
    tf.dispose([x, bg, g.heatmap]);
  });

  it('scores 1 for a linear model under integrated gradients (attributions w ⊙ x stay aligned) and less under noise for a nonlinear one', async () => {
    const x = tf.tensor2d(xData, [N, F]);
    const s0 = await explanationStability('ig', linear, x, { noiseLevel: 0, samples: 2 });
    expect(Math.abs(s0.score - 1)).toBeLessThan(1e-6);
    const s1 = await explanationStability('ig', net, x, { noiseLevel: 0.5, samples: 3, seed: 2 });
    expect(s1.score).toBeLessThan(1);
    expect(s1.perExample.length).toBe(N);
    await expect(explanationStability('shap' as never, net, x)).rejects.toThrow(/method must be one of/);
    tf.dispose(x);
  });
});
