/**
 * Training from a top-k teacher: the tfjs op (value and gradient against the dense op on the
 * densified teacher), optimizer.minimize, model.compile via packTopKTargets, and the Distiller
 * trained once from the densified dense teacher and once from top-k, to the same weights.
 */
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { densifyTopKTeacher, type MissingMass, type TopKTeacher } from '../src/index.js';
import { distillationLoss, packTopKTargets, topkDistillationLoss, topkDistillationLossFn } from '../src/tfjs/index.js';
import { Distiller } from '../src/train/index.js';
import { expectArrayClose, expectClose, normal, randomLabels, randomLogits, rng } from './helpers.js';

/** The top k of random teacher distributions, as a serving engine returns them (some rows padded). */
function topkTeacher(seed: number, rows: number, cols: number, k: number): TopKTeacher {
  const rand = rng(seed);
  const indices = new Int32Array(rows * k).fill(-1), logprobs = new Float32Array(rows * k);
  for (let r = 0; r < rows; r++) {
    const z = Array.from({ length: cols }, () => normal(rand) * 2);
    const m = Math.max(...z);
    const lse = m + Math.log(z.reduce((a, v) => a + Math.exp(v - m), 0));
    const order = z.map((_, c) => c).sort((a, b) => z[b]! - z[a]!);
    const listed = r % 5 === 4 ? Math.max(1, k - 2) : k;
    for (let j = 0; j < listed; j++) {
      indices[r * k + j] = order[j]!;
      logprobs[r * k + j] = Math.min(0, z[order[j]!]! - lse);
    }
  }
  return { indices, logprobs, rows, k, cols };
}

describe('kdfuse/tfjs topkDistillationLoss', () => {
  for (const missingMass of ['renormalize', 'uniform'] as MissingMass[]) {
    it(`value and gradient equal the dense op on the densified teacher (${missingMass})`, () => {
      const rows = 12, cols = 40, k = 6;
      const t = topkTeacher(3, rows, cols, k);
      const dense = densifyTopKTeacher(t, missingMass);
      const rand = rng(4);
      const s = tf.tensor2d(randomLogits(rand, rows * cols), [rows, cols]);
      const y = randomLabels(rand, rows, cols, -100, 0.2);
      const opts = { temperature: 2, alpha: 0.7, labelSmoothing: 0.1, divergence: 'jsd' as const };
      const ids = tf.tensor2d(t.indices, [rows, k], 'int32'), lps = tf.tensor2d(t.logprobs, [rows, k]);
      const fTop = (x: tf.Tensor) => topkDistillationLoss(x as tf.Tensor2D, ids, lps, y, { ...opts, missingMass });
      const fDense = (x: tf.Tensor) => distillationLoss(x as tf.Tensor2D, tf.tensor2d(dense, [rows, cols]), y, opts);
      const [vTop, vDense] = [fTop(s).dataSync()[0]!, fDense(s).dataSync()[0]!];
      expectClose(vTop, vDense, 1e-5, 'loss');
      const gTop = tf.grad(fTop)(s).dataSync(), gDense = tf.grad(fDense)(s).dataSync();
      expectArrayClose(gTop, gDense, 1e-4, 'gradient', 1e-10, 1e-7);
      // per-row losses with an upstream gradient per row
      const wts = tf.tensor1d(randomLogits(rand, rows, 1));
      const gNone = tf.grad((x) => tf.sum(tf.mul(topkDistillationLoss(x as tf.Tensor2D, t.indices, t.logprobs, y, { ...opts, missingMass, reduction: 'none' }), wts)))(s);
      const gNoneDense = tf.grad((x) => tf.sum(tf.mul(distillationLoss(x as tf.Tensor2D, tf.tensor2d(dense, [rows, cols]), y, { ...opts, reduction: 'none' }), wts)))(s);
      expectArrayClose(gNone.dataSync(), gNoneDense.dataSync(), 1e-4, 'none gradient', 1e-10, 1e-7);
      tf.dispose([s, ids, lps, wts, gNone, gNoneDense]);
    });
  }

  it('trains with optimizer.minimize', () => {
    const rows = 32, cols = 20, k = 5;
    const t = topkTeacher(5, rows, cols, k);
    const logits = tf.variable(tf.zeros([rows, cols]));
    const opt = tf.train.adam(0.1);
    const loss = () => topkDistillationLoss(logits as unknown as tf.Tensor2D, t.indices, t.logprobs, undefined, { temperature: 1 }) as tf.Scalar;
    const first = loss().dataSync()[0]!;
    for (let i = 0; i < 30; i++) opt.minimize(loss);
    expect(loss().dataSync()[0]!).toBeLessThan(first * 0.2);
    tf.dispose([logits]);
    opt.dispose();
  });

  it('trains with model.compile through packTopKTargets', async () => {
    const n = 64, dim = 5, cols = 24, k = 4;
    const t = topkTeacher(6, n, cols, k);
    const rand = rng(7);
    const x = tf.tensor2d(randomLogits(rand, n * dim, 1), [n, dim]);
    const y = randomLabels(rand, n, cols);
    const model = tf.sequential({ layers: [tf.layers.dense({ units: cols, inputShape: [dim], kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) })] });
    const lossFn = topkDistillationLossFn({ k, temperature: 2, alpha: 0.8, missingMass: 'uniform' });
    model.compile({ optimizer: tf.train.adam(0.05), loss: lossFn });
    const yTrue = packTopKTargets(y, t.indices, t.logprobs, { cols });
    // the packed loss is the kernel's, row by row
    const direct = topkDistillationLoss(model.predict(x) as tf.Tensor2D, t.indices, t.logprobs, y, { temperature: 2, alpha: 0.8, missingMass: 'uniform', reduction: 'none' });
    expectArrayClose(lossFn(yTrue, model.predict(x) as tf.Tensor).dataSync(), direct.dataSync(), 1e-6, 'packed per-row loss');
    const h = await model.fit(x, yTrue, { epochs: 15, batchSize: 16, verbose: 0, shuffle: false });
    const l = h.history.loss as number[];
    expect(l[l.length - 1]!).toBeLessThan(l[0]!);
    expect(() => packTopKTargets(y, t.indices, t.logprobs, { cols: 2 * k })).toThrow(/cols must be at least 2k \+ 1/);
    tf.dispose([x, yTrue, direct]);
    model.dispose();
  });
});

describe('Distiller with a top-k teacher', () => {
  const n = 96, dim = 6, cols = 16, k = 5;
  const studentModel = () =>
    tf.sequential({ layers: [tf.layers.dense({ units: cols, inputShape: [dim], kernelInitializer: tf.initializers.glorotUniform({ seed: 11 }) })] });

  for (const missingMass of ['renormalize', 'uniform'] as MissingMass[]) {
    it(`trains without a teacher model to the weights the densified dense teacher gives (${missingMass})`, async () => {
      const t = topkTeacher(8, n, cols, k);
      const rand = rng(9);
      const x = tf.tensor2d(randomLogits(rand, n * dim, 1), [n, dim]);
      const y = randomLabels(rand, n, cols);
      const train = async (teacherLogits: TopKTeacher | { logits: Float32Array; rows: number; cols: number }) => {
        const student = studentModel();
        const d = new Distiller({ student, temperature: 2, alpha: 0.7, optimizer: 'sgd', learningRate: 0.5, loss: { missingMass, divergence: 'kl' } });
        const h = await d.fit(x, y, { epochs: 3, batchSize: 32, seed: 4, verbose: 'quiet', teacherLogits });
        const w = student.getWeights().map((v) => v.dataSync().slice());
        student.dispose();
        d.dispose();
        return { w, loss: h.epochs.map((e) => e.loss) };
      };
      const fromTopK = await train(t);
      const fromDense = await train({ logits: densifyTopKTeacher(t, missingMass), rows: n, cols });
      for (let i = 0; i < fromTopK.w.length; i++) {
        const a = fromTopK.w[i]!, b = fromDense.w[i]!;
        let worst = 0;
        for (let j = 0; j < a.length; j++) worst = Math.max(worst, Math.abs(a[j]! - b[j]!));
        expect(worst, `weights ${i}`).toBeLessThanOrEqual(1e-5);
      }
      // and it trained: the loss went down
      expect(fromTopK.loss[2]!).toBeLessThan(fromTopK.loss[0]!);
      x.dispose();
    });
  }

  it('refuses a mismatched top-k teacher, and says there is no teacher to evaluate with', async () => {
    const t = topkTeacher(10, n, cols, k);
    const x = tf.zeros([n, dim]);
    const student = studentModel();
    const d = new Distiller({ student });
    await expect(d.fit(x, new Int32Array(n), { teacherLogits: { ...t, rows: n - 1 }, verbose: 'quiet' })).rejects.toThrow(/one row per row of x/);
    await expect(d.fit(x, new Int32Array(n), { teacherLogits: { ...t, cols: cols + 1 }, verbose: 'quiet' })).rejects.toThrow(/output width/);
    await expect(d.fit(x, new Int32Array(n), { verbose: 'quiet', epochs: 1 })).rejects.toThrow(/no teacher model/);
    expect(() => d.evaluate(x, new Int32Array(n))).toThrow(/no teacher model/);
    student.dispose();
    x.dispose();
  });
});
