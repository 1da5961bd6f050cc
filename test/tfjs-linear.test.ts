/**
 * kdfuse/tfjs linearDistillationLoss (the fused head) against the same head composed from tfjs
 * ops (matMul, add, the KD loss written with tf.softmax / tf.logSoftmax), on the cpu and wasm
 * backends. Values within 1e-5 relative, gradients within 1e-5 · max|grad|, three SGD steps the
 * same weights within 1e-4 relative.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import * as kdtf from '../src/tfjs/index.js';
import { expectArrayClose, expectClose, randomLogits, rng } from './helpers.js';
import { composedLoss } from './composed-kd.js';

/** The composed head: matMul + bias, then the KD loss from tf ops. */
function composed(h: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D | null, t: tf.Tensor2D, labels: tf.Tensor1D, T: number, alpha: number): tf.Scalar {
  return tf.tidy(() => composedLoss((b ? tf.add(tf.matMul(h, w), b) : tf.matMul(h, w)) as tf.Tensor2D, t, labels, T, alpha));
}

for (const backendName of ['cpu', 'wasm'] as const) {
  describe(`kdfuse/tfjs linearDistillationLoss on the ${backendName} backend`, () => {
    let previous: string;
    beforeAll(async () => {
      await tf.ready();
      previous = tf.getBackend();
      await tf.setBackend(backendName);
      await tf.ready();
    });
    afterAll(async () => {
      await tf.setBackend(previous);
    });

    const rand = rng(backendName === 'cpu' ? 31 : 32);
    const rows = 12, dim = 16, cols = 40, T = 2, alpha = 0.5;
    const hData = randomLogits(rand, rows * dim, 1), wData = randomLogits(rand, dim * cols, 0.5), bData = randomLogits(rand, cols, 0.3);
    const tData = randomLogits(rand, rows * cols, 2.5);
    const yData = Array.from({ length: rows }, () => Math.floor(rand() * cols));

    it('value and gradients of hidden, kernel and bias match the composed head; no tensor left behind', () => {
      const before = tf.memory().numTensors;
      tf.tidy(() => {
        const h = tf.tensor2d(hData, [rows, dim]), w = tf.tensor2d(wData, [dim, cols]), b = tf.tensor1d(bData);
        const t = tf.tensor2d(tData, [rows, cols]), y = tf.tensor1d(yData, 'int32');
        const fused = (hh: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) =>
          kdtf.linearDistillationLoss(hh as tf.Tensor2D, ww as tf.Tensor2D, bb as tf.Tensor1D, t, y, { temperature: T, alpha }) as tf.Scalar;
        const plain = (hh: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) => composed(hh as tf.Tensor2D, ww as tf.Tensor2D, bb as tf.Tensor1D, t, y, T, alpha);
        expectClose(fused(h, w, b).dataSync()[0]!, plain(h, w, b).dataSync()[0]!, 1e-5, 'loss');
        const gf = tf.grads(fused)([h, w, b]), gp = tf.grads(plain)([h, w, b]);
        ['hidden', 'kernel', 'bias'].forEach((name, i) => expectArrayClose(gf[i]!.dataSync(), gp[i]!.dataSync(), 1e-5, name));
        // an upstream gradient other than 1
        const g3 = tf.grad((hh: tf.Tensor) => tf.mul(fused(hh, w, b), 3))(h);
        expectArrayClose(g3.dataSync(), tf.mul(gp[0]!, 3).dataSync(), 1e-5, 'hidden, dy = 3');
      });
      expect(tf.memory().numTensors).toBe(before);
    });

    it('leaves no tensor behind outside tf.tidy (forward, gradients, and the loss with no tape)', () => {
      const h = tf.tensor2d(hData, [rows, dim]), w = tf.variable(tf.tensor2d(wData, [dim, cols])), b = tf.variable(tf.tensor1d(bData));
      const t = tf.tensor2d(tData, [rows, cols]), y = tf.tensor1d(yData, 'int32');
      const before = tf.memory().numTensors;
      const { value, grads } = tf.variableGrads(() => kdtf.linearDistillationLoss(h, w, b, t, y, { temperature: T, alpha }) as tf.Scalar, [w, b]);
      expect(tf.memory().numTensors).toBe(before + 1 + 2);  // the value and two gradients, nothing else
      tf.dispose([value, ...Object.values(grads)]);
      const plain = kdtf.linearDistillationLoss(h, w, b, t, y, { temperature: T, alpha });
      expect(tf.memory().numTensors).toBe(before + 1);
      plain.dispose();
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([h, w, b, t, y]);
    });

    it('two uses on one tape (two teachers, one head): gradients add up, none overwritten', () => {
      tf.tidy(() => {
        const h = tf.tensor2d(hData, [rows, dim]), w = tf.tensor2d(wData, [dim, cols]), b = tf.tensor1d(bData);
        const t1 = tf.tensor2d(tData, [rows, cols]), t2 = tf.mul(t1, -0.5) as tf.Tensor2D, y = tf.tensor1d(yData, 'int32');
        const both = (ww: tf.Tensor) => tf.add(
          kdtf.linearDistillationLoss(h, ww as tf.Tensor2D, b, t1, y, { temperature: T, alpha }),
          tf.mul(kdtf.linearDistillationLoss(h, ww as tf.Tensor2D, b, t2, y, { temperature: T, alpha }), 2)) as tf.Scalar;
        const plain = (ww: tf.Tensor) => tf.add(composed(h, ww as tf.Tensor2D, b, t1, y, T, alpha), tf.mul(composed(h, ww as tf.Tensor2D, b, t2, y, T, alpha), 2)) as tf.Scalar;
        expectArrayClose(tf.grad(both)(w).dataSync(), tf.grad(plain)(w).dataSync(), 1e-5, 'kernel, two losses');
      });
    });

    it('gradients kept from one call stay as they were while later calls reuse memory', () => {
      tf.tidy(() => {
        const h = tf.tensor2d(hData, [rows, dim]), w = tf.variable(tf.tensor2d(wData, [dim, cols])), b = tf.variable(tf.tensor1d(bData));
        const t = tf.tensor2d(tData, [rows, cols]), y = tf.tensor1d(yData, 'int32');
        const loss = (tt: tf.Tensor2D) => () => kdtf.linearDistillationLoss(h, w, b, tt, y, { temperature: T, alpha }) as tf.Scalar;
        const first = tf.variableGrads(loss(t), [w, b]);
        const kept = first.grads[w.name]!.dataSync().slice();
        for (let i = 0; i < 3; i++) {
          const other = tf.variableGrads(loss(tf.mul(t, -1) as tf.Tensor2D), [w, b]);
          tf.dispose([other.value, ...Object.values(other.grads)]);
        }
        expect(Array.from(first.grads[w.name]!.dataSync())).toEqual(Array.from(kept));
        tf.dispose([w, b]);
      });
    });

    it('without a bias, and reduction none with per-row upstream gradients', () => {
      tf.tidy(() => {
        const h = tf.tensor2d(hData, [rows, dim]), w = tf.tensor2d(wData, [dim, cols]);
        const t = tf.tensor2d(tData, [rows, cols]), y = tf.tensor1d(yData, 'int32');
        const weights = tf.tensor1d(Array.from({ length: rows }, (_, r) => 0.5 + r / rows));
        const fused = (hh: tf.Tensor, ww: tf.Tensor) =>
          tf.sum(tf.mul(kdtf.linearDistillationLoss(hh as tf.Tensor2D, ww as tf.Tensor2D, null, t, y, { temperature: T, alpha, reduction: 'none' }), weights));
        const plain = (hh: tf.Tensor, ww: tf.Tensor) =>
          tf.sum(tf.mul(kdtf.distillationLoss(tf.matMul(hh as tf.Tensor2D, ww as tf.Tensor2D), t, y, { temperature: T, alpha, reduction: 'none' }), weights));
        expectClose(fused(h, w).dataSync()[0]!, plain(h, w).dataSync()[0]!, 1e-5, 'weighted loss');
        const gf = tf.grads(fused)([h, w]), gp = tf.grads(plain)([h, w]);
        expectArrayClose(gf[0]!.dataSync(), gp[0]!.dataSync(), 1e-5, 'hidden');
        expectArrayClose(gf[1]!.dataSync(), gp[1]!.dataSync(), 1e-5, 'kernel');
      });
    });

    it('a top-k teacher: equals topkDistillationLoss on the composed logits', () => {
      tf.tidy(() => {
        const k = 5;
        const indices = new Int32Array(rows * k), logprobs = new Float32Array(rows * k);
        for (let r = 0; r < rows; r++) {
          const row = Array.from(tData.subarray(r * cols, (r + 1) * cols));
          const m = Math.max(...row), lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
          row.map((_, c) => c).sort((a, b) => row[b]! - row[a]!).slice(0, k).forEach((c, j) => {
            indices[r * k + j] = c;
            logprobs[r * k + j] = row[c]! - lse;
          });
        }
        const teacher = { indices, logprobs, rows, k, cols };
        const h = tf.tensor2d(hData, [rows, dim]), w = tf.tensor2d(wData, [dim, cols]), b = tf.tensor1d(bData), y = tf.tensor1d(yData, 'int32');
        const fused = (ww: tf.Tensor) => kdtf.linearDistillationLoss(h, ww as tf.Tensor2D, b, teacher, y, { temperature: T }) as tf.Scalar;
        const plain = (ww: tf.Tensor) => kdtf.topkDistillationLoss(tf.add(tf.matMul(h, ww as tf.Tensor2D), b) as tf.Tensor2D, indices, logprobs, y, { temperature: T }) as tf.Scalar;
        expectClose(fused(w).dataSync()[0]!, plain(w).dataSync()[0]!, 1e-5, 'loss');
        expectArrayClose(tf.grad(fused)(w).dataSync(), tf.grad(plain)(w).dataSync(), 1e-5, 'kernel');
      });
    });

    it('optimizer.minimize trains a Dense head through it: the same weights as the composed head after 3 SGD steps', () => {
      const run = (fusedHead: boolean): Float32Array[] => {
        const model = tf.sequential({ layers: [tf.layers.dense({ units: cols, inputShape: [dim], kernelInitializer: 'glorotNormal', biasInitializer: 'zeros' })] });
        model.layers[0]!.setWeights([tf.tensor2d(wData, [dim, cols]), tf.tensor1d(bData)]);
        const [kernel, bias] = model.layers[0]!.trainableWeights.map((v) => (v as unknown as { val: tf.Variable }).val);
        const h = tf.tensor2d(hData, [rows, dim]), t = tf.tensor2d(tData, [rows, cols]), y = tf.tensor1d(yData, 'int32');
        const opt = tf.train.sgd(0.5);
        for (let step = 0; step < 3; step++) {
          opt.minimize(() => (fusedHead
            ? kdtf.linearDistillationLoss(h, kernel as tf.Tensor2D, bias as tf.Tensor1D, t, y, { temperature: T, alpha })
            : composed(h, kernel as tf.Tensor2D, bias as tf.Tensor1D, t, y, T, alpha)) as tf.Scalar);
        }
        const out = model.getWeights().map((x) => x.dataSync() as Float32Array);
        tf.dispose([h, t, y, opt as unknown as tf.Tensor]);
        model.dispose();
        return out;
      };
      const a = run(true), b = run(false);
      expectArrayClose(a[0]!, b[0]!, 1e-4, 'kernel after 3 steps');
      expectArrayClose(a[1]!, b[1]!, 1e-4, 'bias after 3 steps');
    });

    it('bad input names the argument', () => {
      tf.tidy(() => {
        const h = tf.tensor2d(hData, [rows, dim]), w = tf.tensor2d(wData, [dim, cols]), t = tf.tensor2d(tData, [rows, cols]);
        expect(() => kdtf.linearDistillationLoss(h, tf.zeros([dim + 1, cols]) as tf.Tensor2D, null, t)).toThrow(/kernel must have hidden's 16 rows/);
        expect(() => kdtf.linearDistillationLoss(h, w, tf.zeros([3]) as tf.Tensor1D, t)).toThrow(/bias must have shape \[40\]/);
        expect(() => kdtf.linearDistillationLoss(h, w, null, tf.zeros([rows, cols + 1]) as tf.Tensor2D)).toThrow(/teacher must have the logits' shape/);
        expect(() => kdtf.linearDistillationLoss(h, w, null, [1, 2] as unknown as tf.Tensor2D)).toThrow(TypeError);
        expect(() => kdtf.linearDistillationLoss(h, w, null, t, null, { temprature: 2 } as never)).toThrow(/temprature/);
      });
    });
  });
}
