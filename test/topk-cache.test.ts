/** cacheTeacherTopK against a float64 computation from the teacher's dense logits. */
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { cacheTeacherTopK, cacheTeacherLogits } from '../src/train/index.js';
import { randomLogits, rng } from './helpers.js';

/** log-softmax in float64 and the k largest per row (ids by decreasing log-probability). */
function denseTopK(logits: Float32Array, rows: number, cols: number, k: number): { ids: number[][]; lps: number[][] } {
  const ids: number[][] = [], lps: number[][] = [];
  for (let r = 0; r < rows; r++) {
    const z = Array.from(logits.subarray(r * cols, (r + 1) * cols));
    const m = Math.max(...z);
    const lse = m + Math.log(z.reduce((s, v) => s + Math.exp(v - m), 0));
    const order = z.map((_, c) => c).sort((a, b) => z[b]! - z[a]!).slice(0, k);
    ids.push(order);
    lps.push(order.map((c) => z[c]! - lse));
  }
  return { ids, lps };
}

const teacherModel = () => tf.sequential({ layers: [
  tf.layers.dense({ units: 16, inputShape: [6], activation: 'tanh', kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }) }),
  tf.layers.dense({ units: 50, kernelInitializer: tf.initializers.randomNormal({ seed: 4, stddev: 2 }) }),
] });

describe('cacheTeacherTopK', () => {
  it.each([1, 5, 50])('k = %i matches the dense log-softmax top-k (batches of 7 over 23 rows)', (k) => {
    const m = teacherModel();
    const x = tf.tensor2d(randomLogits(rng(k), 23 * 6, 1), [23, 6]);
    const dense = cacheTeacherLogits(m, x);
    const want = denseTopK(dense.logits, 23, 50, k);
    const t = cacheTeacherTopK(m, x, { k, batchSize: 7, teacherName: 'mlp' });
    expect([t.rows, t.k, t.cols]).toEqual([23, k, 50]);
    expect(t.meta).toEqual({ teacher: 'mlp', vocab_size: 50, k, temperature: 1 });
    for (let r = 0; r < 23; r++) {
      expect(Array.from(t.indices.subarray(r * k, (r + 1) * k))).toEqual(want.ids[r]);
      for (let j = 0; j < k; j++) expect(Math.abs(t.logprobs[r * k + j]! - want.lps[r]![j]!)).toBeLessThanOrEqual(1e-5);
    }
    // k = cols keeps every class: the probabilities sum to 1
    if (k === 50) for (let r = 0; r < 23; r++) expect(t.logprobs.subarray(r * k, (r + 1) * k).reduce((s, v) => s + Math.exp(v), 0)).toBeCloseTo(1, 5);
    tf.dispose(x);
    m.dispose();
  });

  it('takes a function teacher and leaves no tensors behind', () => {
    const w = tf.tensor2d(randomLogits(rng(9), 4 * 10, 1), [4, 10]);
    const x = tf.tensor2d(randomLogits(rng(10), 9 * 4, 1), [9, 4]);
    const before = tf.memory().numTensors;
    const t = cacheTeacherTopK((xb) => tf.matMul(xb, w), x, { k: 3, batchSize: 4 });
    expect(tf.memory().numTensors).toBe(before);
    const dense = tf.tidy(() => tf.matMul(x, w).dataSync() as Float32Array);
    const want = denseTopK(dense, 9, 10, 3);
    expect(Array.from(t.indices)).toEqual(want.ids.flat());
    tf.dispose([w, x]);
  });

  it('refuses bad arguments by name', () => {
    const m = teacherModel();
    const x = tf.zeros([2, 6]);
    expect(() => cacheTeacherTopK(m, x, { k: 51 })).toThrow(/k must be at most the teacher's 50 classes, got 51/);
    expect(() => cacheTeacherTopK(m, x, { k: 0 })).toThrow(RangeError);
    expect(() => cacheTeacherTopK(m, x, {} as never)).toThrow(/k must be a number/);
    expect(() => cacheTeacherTopK(m, x, { k: 2, batchsize: 1 } as never)).toThrow(/unknown option 'batchsize'; did you mean 'batchSize'/);
    expect(() => cacheTeacherTopK({} as never, x, { k: 2 })).toThrow(/teacher must be a tf.LayersModel/);
    expect(() => cacheTeacherTopK(m, [1] as never, { k: 2 })).toThrow(/x must be a tf.Tensor/);
    tf.dispose(x);
    m.dispose();
  });
});
