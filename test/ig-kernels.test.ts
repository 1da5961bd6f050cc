/**
 * The integrated-gradients host loops (src/kernels/ig.ts): the addon's igInterpolate /
 * igAccumulate against the JS loops, bit for bit (same float64 operations in the same order);
 * integratedGradients with either, bit for bit; the raw addon functions' argument checks.
 * Native-only tests are skipped without the addon (KDFUSE_BACKEND=reference).
 */
import { afterEach, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { nativeAddon } from '../src/kernels/native.js';
import {
  igBatchPoints,
  igKernelsFor,
  jsIgKernels,
  nativeIgKernels,
  NATIVE_IG_MIN_ELEMENTS,
  setIgKernelMode,
  type IgPoints,
} from '../src/kernels/ig.js';
import { integratedGradients } from '../src/explain/integrated-gradients.js';
import { quadrature } from '../src/explain/quadrature.js';
import { normal, rng } from './helpers.js';

const native = nativeIgKernels;
const bytes = (a: Float32Array | Float64Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const expectBitIdentical = (a: Float32Array | Float64Array, b: Float32Array | Float64Array, what: string) => {
  expect(a.length, what).toBe(b.length);
  const i = a.findIndex((v, k) => !Object.is(v, b[k]));
  expect(i, `${what}: first difference at ${i}: ${a[i]} vs ${b[i]}`).toBe(-1);
  expect(bytes(a).equals(bytes(b)), what).toBe(true);
};

function problem(seed: number, rows: number, J: number, F: number, n: number) {
  const rand = rng(seed);
  // mixed magnitudes so that the order of float64 operations shows in the last bits
  const x = Float32Array.from({ length: rows * F }, () => normal(rand) * 10 ** Math.floor(rand() * 6 - 3));
  const baselines = Float32Array.from({ length: J * rows * F }, () => normal(rand) * 10 ** Math.floor(rand() * 4 - 2));
  const p: IgPoints = {
    xRow: Int32Array.from({ length: n }, () => Math.floor(rand() * rows)),
    baselineRow: Int32Array.from({ length: n }, () => Math.floor(rand() * J * rows)),
  };
  const alpha = Float64Array.from({ length: n }, () => rand());
  const weight = Float64Array.from({ length: n }, () => rand() / 7);
  const grad = Float32Array.from({ length: n * F }, () => normal(rand) * 10 ** Math.floor(rand() * 6 - 3));
  return { x, baselines, p, alpha, weight, grad };
}

afterEach(() => setIgKernelMode('auto'));

describe('IG kernels: native vs JS loops', () => {
  it.skipIf(!native)('interpolate and accumulate are bit-identical, over several sizes and repeated, unordered rows', () => {
    for (const [seed, rows, J, F, n] of [[1, 3, 2, 5, 17], [2, 12, 1, 64, 256], [3, 4, 3, 784, 40], [4, 1, 1, 1, 1], [5, 7, 4, 33, 0]] as const) {
      const { x, baselines, p, alpha, weight, grad } = problem(seed, rows, J, F, n);
      const outJ = new Float32Array(n * F), outN = new Float32Array(n * F);
      jsIgKernels.interpolate(x, baselines, F, p, alpha, outJ);
      native!.interpolate(x, baselines, F, p, alpha, outN);
      expectBitIdentical(outN, outJ, `interpolate ${rows}x${F}, ${n} points`);
      // accumulate twice into a non-zero start, as over two batches
      const accJ = Float64Array.from({ length: rows * F }, (_, i) => Math.sin(i) * 1e3);
      const accN = Float64Array.from(accJ);
      for (let r = 0; r < 2; r++) {
        jsIgKernels.accumulate(grad, x, baselines, F, p, weight, accJ);
        native!.accumulate(grad, x, baselines, F, p, weight, accN);
      }
      expectBitIdentical(accN, accJ, `accumulate ${rows}x${F}, ${n} points`);
    }
  });

  it.skipIf(!native)('the points of igBatchPoints, every batching: bit-identical sums', () => {
    const rows = 5, J = 3, F = 24, { alphas, weights } = quadrature('gauss-legendre', 9);
    const { x, baselines } = problem(7, rows, J, F, 0);
    const total = rows * J * alphas.length, grad = Float32Array.from({ length: total * F }, (_, i) => Math.cos(i * 0.37));
    const run = (k: typeof jsIgKernels, batch: number) => {
      const acc = new Float64Array(rows * F);
      for (let start = 0; start < total; start += batch) {
        const n = Math.min(batch, total - start), pts = igBatchPoints(start, n, rows, J, alphas, weights);
        const out = new Float32Array(n * F);
        k.interpolate(x, baselines, F, pts, pts.alpha, out);
        k.accumulate(grad.subarray(start * F, (start + n) * F), x, baselines, F, pts, pts.weight, acc);
      }
      return acc;
    };
    const ref = run(jsIgKernels, 7);
    for (const batch of [1, 7, 50, total]) expectBitIdentical(run(native!, batch), ref, `batch ${batch}`);
  });

  it('igKernelsFor: JS below NATIVE_IG_MIN_ELEMENTS or without the addon, native above; modes force either', () => {
    expect(igKernelsFor(4, 8).name).toBe('js');
    expect(igKernelsFor(256, 64).name).toBe(native ? 'native' : 'js');
    expect(igKernelsFor(1, NATIVE_IG_MIN_ELEMENTS).name).toBe(native ? 'native' : 'js');
    setIgKernelMode('js');
    expect(igKernelsFor(256, 64).name).toBe('js');
    setIgKernelMode('native');
    expect(igKernelsFor(4, 8).name).toBe(native ? 'native' : 'js');
    expect(() => setIgKernelMode('gpu' as never)).toThrow(RangeError);
  });

  it.runIf(process.env.KDFUSE_BACKEND === 'reference')('KDFUSE_BACKEND=reference: no native kernels, the JS loops run', () => {
    expect(nativeIgKernels).toBeNull();
    setIgKernelMode('native');
    expect(igKernelsFor(256, 784)).toBe(jsIgKernels);
  });
});

describe('integratedGradients with native and JS loops', () => {
  it.skipIf(!native)('gives bit-identical attributions, deltas and scores (dense model, baseline list, uneven batches)', async () => {
    const prev = tf.getBackend() as string | undefined;
    await tf.setBackend('cpu');
    const start = tf.memory().numTensors;
    const m = tf.sequential();
    m.add(tf.layers.dense({ units: 16, activation: 'tanh', inputShape: [64], kernelInitializer: tf.initializers.glorotNormal({ seed: 3 }) }));
    m.add(tf.layers.dense({ units: 10, kernelInitializer: tf.initializers.glorotNormal({ seed: 4 }) }));
    const x = tf.randomNormal([6, 64], 0, 1, 'float32', 9);
    const b2 = tf.randomNormal([6, 64], 0, 0.3, 'float32', 10);
    const run = async (mode: 'js' | 'native') => {
      setIgKernelMode(mode);
      const r = await integratedGradients(m, x, { steps: 20, baseline: ['zeros', b2], batchSize: 50 });
      const attr = (await r.attributions.data()) as Float32Array;
      r.attributions.dispose();
      return { attr, delta: r.delta, scores: r.scores };
    };
    const js = await run('js'), nat = await run('native');
    expectBitIdentical(nat.attr, js.attr, 'attributions');
    expectBitIdentical(nat.delta, js.delta, 'delta');
    expectBitIdentical(nat.scores, js.scores, 'scores');
    x.dispose(); b2.dispose(); m.dispose();
    expect(tf.memory().numTensors).toBe(start);
    if (prev) await tf.setBackend(prev);
  });
});

describe('raw addon igInterpolate / igAccumulate: argument checks', () => {
  const a = nativeAddon!;
  const ok = () => {
    const x = new Float32Array(12), baselines = new Float32Array(8);
    return {
      interp: { x, baselines, features: 4, xRow: Int32Array.of(0, 2), baselineRow: Int32Array.of(1, 0), alpha: Float64Array.of(0.5, 1), out: new Float32Array(8) },
      acc: { grad: new Float32Array(8), x, baselines, features: 4, xRow: Int32Array.of(0, 2), baselineRow: Int32Array.of(1, 0), weight: Float64Array.of(0.5, 1), acc: new Float64Array(12) },
    };
  };
  type Case = [string, (o: ReturnType<typeof ok>) => unknown, ErrorConstructor, RegExp];
  const cases: Case[] = [
    ['no options', () => a.igInterpolate!(undefined as never), TypeError, /options must be an object/],
    ['x not a Float32Array', (o) => a.igInterpolate!({ ...o.interp, x: [1, 2, 3, 4] as never }), TypeError, /^x must be a Float32Array/],
    ['x a Float64Array', (o) => a.igAccumulate!({ ...o.acc, x: new Float64Array(12) as never }), TypeError, /^x must be a Float32Array, got Float64Array/],
    ['baselines missing', (o) => a.igInterpolate!({ ...o.interp, baselines: undefined as never }), TypeError, /^baselines must be a Float32Array/],
    ['features a string', (o) => a.igInterpolate!({ ...o.interp, features: '4' as never }), TypeError, /^features must be a number/],
    ['features 0', (o) => a.igInterpolate!({ ...o.interp, features: 0 }), RangeError, /^features must be an integer >= 1/],
    ['features 2.5', (o) => a.igAccumulate!({ ...o.acc, features: 2.5 }), RangeError, /^features must be an integer >= 1/],
    ['x length not a multiple of features', (o) => a.igInterpolate!({ ...o.interp, features: 5, out: new Float32Array(10) }), RangeError, /^x must have a length that is a positive multiple of features = 5, got 12/],
    ['baselines empty', (o) => a.igInterpolate!({ ...o.interp, baselines: new Float32Array(0) }), RangeError, /^baselines must have a length/],
    ['xRow an Array', (o) => a.igInterpolate!({ ...o.interp, xRow: [0, 2] as never }), TypeError, /^xRow must be an Int32Array/],
    ['baselineRow a Uint32Array', (o) => a.igAccumulate!({ ...o.acc, baselineRow: Uint32Array.of(1, 0) as never }), TypeError, /^baselineRow must be an Int32Array/],
    ['baselineRow too short', (o) => a.igInterpolate!({ ...o.interp, baselineRow: Int32Array.of(1) }), RangeError, /^baselineRow must have xRow.length = 2 elements, got 1/],
    ['alpha a Float32Array', (o) => a.igInterpolate!({ ...o.interp, alpha: Float32Array.of(0.5, 1) as never }), TypeError, /^alpha must be a Float64Array, got Float32Array/],
    ['alpha too long', (o) => a.igInterpolate!({ ...o.interp, alpha: Float64Array.of(0.5, 1, 1) }), RangeError, /^alpha must have xRow.length = 2 elements, got 3/],
    ['alpha NaN', (o) => a.igInterpolate!({ ...o.interp, alpha: Float64Array.of(0.5, NaN) }), RangeError, /^alpha\[1\] must be a finite number, got NaN/],
    ['weight Infinity', (o) => a.igAccumulate!({ ...o.acc, weight: Float64Array.of(Infinity, 1) }), RangeError, /^weight\[0\] must be a finite number, got Infinity/],
    ['weight missing', (o) => a.igAccumulate!({ ...o.acc, weight: undefined as never }), TypeError, /^weight must be a Float64Array/],
    ['xRow out of range', (o) => a.igInterpolate!({ ...o.interp, xRow: Int32Array.of(0, 3) }), RangeError, /^xRow\[1\] must be an integer in \[0, 3\), got 3/],
    ['baselineRow negative', (o) => a.igAccumulate!({ ...o.acc, baselineRow: Int32Array.of(-1, 0) }), RangeError, /^baselineRow\[0\] must be an integer in \[0, 2\), got -1/],
    ['out a Float64Array', (o) => a.igInterpolate!({ ...o.interp, out: new Float64Array(8) as never }), TypeError, /^out must be a Float32Array/],
    ['out too short', (o) => a.igInterpolate!({ ...o.interp, out: new Float32Array(7) }), RangeError, /^out must have xRow.length \* features = 8 elements, got 7/],
    ['out sharing memory with x', (o) => a.igInterpolate!({ ...o.interp, out: o.interp.x.subarray(0, 8) }), RangeError, /^out must not share memory with x/],
    ['grad missing', (o) => a.igAccumulate!({ ...o.acc, grad: undefined as never }), TypeError, /^grad must be a Float32Array/],
    ['grad too long', (o) => a.igAccumulate!({ ...o.acc, grad: new Float32Array(9) }), RangeError, /^grad must have xRow.length \* features = 8 elements, got 9/],
    ['acc a Float32Array', (o) => a.igAccumulate!({ ...o.acc, acc: new Float32Array(12) as never }), TypeError, /^acc must be a Float64Array, got Float32Array/],
    ['acc too short', (o) => a.igAccumulate!({ ...o.acc, acc: new Float64Array(8) }), RangeError, /^acc must have x.length = 12 elements, got 8/],
    ['acc sharing memory with grad', (o) => {
      const buf = new ArrayBuffer(200);
      return a.igAccumulate!({ ...o.acc, grad: new Float32Array(buf, 0, 8), acc: new Float64Array(buf, 8, 12) });
    }, RangeError, /^acc must not share memory with grad/],
    ['x detached', (o) => {
      const x = new Float32Array(12);
      structuredClone(x.buffer, { transfer: [x.buffer] });
      return a.igInterpolate!({ ...o.interp, x });
    }, TypeError, /^x must be a usable Float32Array, got one whose buffer was detached/],
  ];
  for (const [what, call, Kind, msg] of cases) {
    it.skipIf(!native)(`${what}: ${Kind.name} ${msg.source.slice(0, 40)}`, () => {
      const o = ok();
      let err: unknown;
      try {
        call(o);
      } catch (e) {
        err = e;
      }
      expect(err, what).toBeInstanceOf(Kind);
      expect((err as Error).message).toMatch(msg);
    });
  }

  it.skipIf(!native)('valid calls, including zero points, succeed and leave the inputs alone', () => {
    const o = ok();
    o.interp.x.fill(2);
    o.interp.baselines.fill(1);
    a.igInterpolate!(o.interp);
    expect(Array.from(o.interp.out)).toEqual([1.5, 1.5, 1.5, 1.5, 2, 2, 2, 2]);
    a.igAccumulate!({ ...o.acc, grad: new Float32Array(8).fill(4) });
    expect(Array.from(o.acc.acc)).toEqual([2, 2, 2, 2, 0, 0, 0, 0, 4, 4, 4, 4]);
    a.igInterpolate!({ ...o.interp, xRow: new Int32Array(0), baselineRow: new Int32Array(0), alpha: new Float64Array(0), out: new Float32Array(0) });
    a.igAccumulate!({ ...o.acc, grad: new Float32Array(0), xRow: new Int32Array(0), baselineRow: new Int32Array(0), weight: new Float64Array(0) });
    expect(Array.from(o.interp.x)).toEqual(new Array(12).fill(2));
  });
});
