/**
 * kdfuse/tfjs against the same losses composed from tfjs ops, on the cpu and wasm backends.
 * Tolerances: values within 1e-5 relative, gradients within 1e-5 * max|grad|; 50 optimizer steps
 * with either loss give the same parameters within 1e-4 relative.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import * as kdtf from '../src/tfjs/index.js';
import { expectArrayClose, expectClose, randomLogits, rng } from './helpers.js';
import { composedLoss } from './composed-kd.js';


for (const backendName of ['cpu', 'wasm'] as const) {
  describe(`kdfuse/tfjs on the ${backendName} backend`, () => {
    let previous: string;
    beforeAll(async () => {
      await tf.ready();
      previous = tf.getBackend();
      await tf.setBackend(backendName);
      await tf.ready();
      expect(tf.getBackend()).toBe(backendName);
    });
    afterAll(async () => {
      await tf.setBackend(previous);
    });

    const rand = rng(backendName === 'cpu' ? 1 : 2);
    const rows = 16, cols = 10, T = 3, alpha = 0.8;
    const sData = randomLogits(rand, rows * cols), tData = randomLogits(rand, rows * cols);
    const yData = Array.from({ length: rows }, () => Math.floor(rand() * cols));

    it('distillationLoss value and student gradient match the composed ops', () => {
      const s = tf.tensor2d(sData, [rows, cols]), t = tf.tensor2d(tData, [rows, cols]), y = tf.tensor1d(yData, 'int32');
      for (const labels of [undefined, y]) {
        const fused = tf.valueAndGrad((x: tf.Tensor) => kdtf.distillationLoss(x as tf.Tensor2D, t, labels, { temperature: T, alpha }) as tf.Scalar)(s);
        const composed = tf.valueAndGrad((x: tf.Tensor) => composedLoss(x as tf.Tensor2D, t, labels, T, alpha))(s);
        expectClose(fused.value.dataSync()[0]!, composed.value.dataSync()[0]!, 1e-5, 'loss');
        expectArrayClose(fused.grad.dataSync(), composed.grad.dataSync(), 1e-5, 'grad');
        tf.dispose([fused.value, fused.grad, composed.value, composed.grad]);
      }
      tf.dispose([s, t, y]);
    });

    it('gradients reuse memory safely: kept gradients stay intact, two uses on one tape add up', () => {
      tf.tidy(() => {
        const s = tf.variable(tf.tensor2d(sData, [rows, cols])), t = tf.tensor2d(tData, [rows, cols]), y = tf.tensor1d(yData, 'int32');
        const loss = (tt: tf.Tensor2D) => () => kdtf.distillationLoss(s, tt, y, { temperature: T, alpha }) as tf.Scalar;
        const first = tf.variableGrads(loss(t), [s]);
        const kept = first.grads[s.name]!.dataSync().slice();
        for (let i = 0; i < 3; i++) {
          const other = tf.variableGrads(loss(tf.mul(t, -1) as tf.Tensor2D), [s]);
          tf.dispose([other.value, ...Object.values(other.grads)]);
        }
        expect(Array.from(first.grads[s.name]!.dataSync())).toEqual(Array.from(kept));
        const t2 = tf.mul(t, 0.5) as tf.Tensor2D;
        const both = (x: tf.Tensor) => tf.add(kdtf.distillationLoss(x as tf.Tensor2D, t, y, { temperature: T, alpha }),
          tf.mul(kdtf.distillationLoss(x as tf.Tensor2D, t2, y, { temperature: T, alpha }), 3)) as tf.Scalar;
        const plain = (x: tf.Tensor) => tf.add(composedLoss(x as tf.Tensor2D, t, y, T, alpha), tf.mul(composedLoss(x as tf.Tensor2D, t2, y, T, alpha), 3)) as tf.Scalar;
        expectArrayClose(tf.grad(both)(s).dataSync(), tf.grad(plain)(s).dataSync(), 1e-5, 'two losses on one tape');
        s.dispose();
      });
    });

    it('teacher gradient flows only when asked for (online distillation)', () => {
      const s = tf.tensor2d(sData, [rows, cols]), t = tf.tensor2d(tData, [rows, cols]);
      const [gs, gt] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
        kdtf.distillationLoss(a as tf.Tensor2D, b as tf.Tensor2D, undefined, { temperature: T, computeTeacherGrad: true }) as tf.Scalar)([s, t]);
      const [cs, ct] = tf.grads((a: tf.Tensor, b: tf.Tensor) => composedLoss(a as tf.Tensor2D, b as tf.Tensor2D, undefined, T, 1))([s, t]);
      expectArrayClose(gs!.dataSync(), cs!.dataSync(), 1e-5, 'gradStudent');
      expectArrayClose(gt!.dataSync(), ct!.dataSync(), 1e-5, 'gradTeacher');
      tf.dispose([s, t, gs!, gt!, cs!, ct!]);
    });

    it('reduction none, softmax and log-softmax ops match tfjs, with their gradients', () => {
      const s = tf.tensor2d(sData, [rows, cols]), t = tf.tensor2d(tData, [rows, cols]);
      const w = tf.tensor2d(randomLogits(rand, rows * cols, 1), [rows, cols]);
      const none = kdtf.distillationLoss(s, t, undefined, { temperature: T, reduction: 'none' });
      const perRow = tf.tidy(() => tf.mul(tf.sum(tf.mul(tf.softmax(tf.div(t, T)), tf.sub(tf.logSoftmax(tf.div(t, T)), tf.logSoftmax(tf.div(s, T)))), 1), T * T));
      expectArrayClose(none.dataSync(), perRow.dataSync(), 1e-5, 'losses');
      for (const log of [false, true]) {
        const ours = (x: tf.Tensor) => tf.sum(tf.mul(w, (log ? kdtf.logSoftmaxWithTemperature : kdtf.softmaxWithTemperature)(x as tf.Tensor2D, T)));
        const theirs = (x: tf.Tensor) => tf.sum(tf.mul(w, (log ? tf.logSoftmax : tf.softmax)(tf.div(x, T))));
        const a = tf.valueAndGrad(ours as (x: tf.Tensor) => tf.Scalar)(s), b = tf.valueAndGrad(theirs as (x: tf.Tensor) => tf.Scalar)(s);
        expectClose(a.value.dataSync()[0]!, b.value.dataSync()[0]!, 1e-5, `${log ? 'log-' : ''}softmax value`);
        expectArrayClose(a.grad.dataSync(), b.grad.dataSync(), 1e-5, `${log ? 'log-' : ''}softmax grad`);
        tf.dispose([a.value, a.grad, b.value, b.grad]);
      }
      tf.dispose([s, t, w, none, perRow]);
    });

    it('50 optimizer steps with the fused and the composed loss give the same parameters', () => {
      const inDim = 8, n = 32;
      const x = tf.tensor2d(randomLogits(rand, n * inDim, 1), [n, inDim]);
      const teacher = tf.tensor2d(randomLogits(rand, n * cols), [n, cols]);
      const labels = tf.tensor1d(Array.from({ length: n }, () => Math.floor(rand() * cols)), 'int32');
      const w0 = randomLogits(rand, inDim * cols, 0.1);
      const train = (fused: boolean): Float32Array => {
        const w = tf.variable(tf.tensor2d(w0, [inDim, cols]));
        const b = tf.variable(tf.zeros([cols]));
        const opt = tf.train.adam(0.01);
        for (let step = 0; step < 50; step++) {
          opt.minimize(() => {
            const logits = tf.add(tf.matMul(x, w), b) as tf.Tensor2D;
            return fused
              ? kdtf.distillationLoss(logits, teacher, labels, { temperature: T, alpha }) as tf.Scalar
              : composedLoss(logits, teacher, labels, T, alpha);
          });
        }
        const out = w.dataSync().slice() as Float32Array;
        tf.dispose([w, b]);
        opt.dispose();
        return out;
      };
      const a = train(true), c = train(false);
      for (let i = 0; i < a.length; i++) expectClose(a[i]!, c[i]!, 1e-4, `w[${i}]`, 1e-2);
      tf.dispose([x, teacher, labels]);
    });

    it('a training step leaks no tensors', () => {
      const x = tf.tensor2d(randomLogits(rand, 4 * 3, 1), [4, 3]);
      const teacher = tf.tensor2d(randomLogits(rand, 4 * cols), [4, cols]);
      const w = tf.variable(tf.randomNormal([3, cols]));
      const opt = tf.train.sgd(0.1);
      const step = () => opt.minimize(() => kdtf.distillationLoss(tf.matMul(x, w) as tf.Tensor2D, teacher, [1, 2, 3, 4], { temperature: 2 }) as tf.Scalar);
      step();  // the optimizer allocates its state on the first step
      const before = tf.memory().numTensors;
      step();
      step();
      expect(tf.memory().numTensors).toBe(before);
      const inference = tf.memory().numTensors;
      tf.tidy(() => { kdtf.distillationLoss(tf.matMul(x, w) as tf.Tensor2D, teacher); });
      expect(tf.memory().numTensors).toBe(inference);
      tf.dispose([x, teacher, w]);
      opt.dispose();
    });

    it('model.compile with distillationLossFn trains a softmax-output model (fromLogits: false)', async () => {
      const n = 64, inDim = 4, classes = 3;
      const x = tf.tensor2d(randomLogits(rand, n * inDim, 1), [n, inDim]);
      const teacherProbs = tf.softmax(tf.tensor2d(randomLogits(rand, n * classes), [n, classes]));
      const labels = Array.from({ length: n }, () => Math.floor(rand() * classes));
      const yTrue = kdtf.packTargets(labels, teacherProbs as tf.Tensor2D, { fromLogits: false });
      // the packing round-trips: labels exactly, teacher log-probabilities within float32 noise
      const back = kdtf.unpackTargets(yTrue);
      expect(back.labels).toEqual(labels);
      expectArrayClose(tf.softmax(back.teacherLogits).dataSync(), teacherProbs.dataSync(), 1e-5, 'unpacked teacher');
      const model = tf.sequential({ layers: [tf.layers.dense({ units: classes, inputShape: [inDim], activation: 'softmax', kernelInitializer: 'zeros' })] });
      const lossFn = kdtf.distillationLossFn({ fromLogits: false, temperature: 2, alpha: 0.5 });
      model.compile({ optimizer: tf.train.sgd(0.5), loss: lossFn });
      // the loss tfjs reports equals the kernel's on the same predictions
      const pred = model.predict(x) as tf.Tensor2D;
      const manual = tf.mean(lossFn(yTrue, pred)).dataSync()[0]!;
      const evaluated = (model.evaluate(x, yTrue) as tf.Scalar).dataSync()[0]!;
      expectClose(evaluated, manual, 1e-5, 'evaluate');
      const h = await model.fit(x, yTrue, { epochs: 20, batchSize: 64, verbose: 0 });
      const losses = h.history.loss as number[];
      expect(losses.every(Number.isFinite)).toBe(true);
      expect(losses[losses.length - 1]!).toBeLessThan(losses[0]!);
      tf.dispose([x, teacherProbs, yTrue, pred]);
      model.dispose();
    });

    it('rejects mismatched shapes with clear errors', () => {
      const a = tf.zeros([2, 3]) as tf.Tensor2D, b = tf.zeros([2, 4]) as tf.Tensor2D, c = tf.zeros([6]);
      expect(() => kdtf.distillationLoss(a, b)).toThrow(RangeError);
      expect(() => kdtf.distillationLoss(a, b)).toThrow(/teacherLogits/);
      expect(() => kdtf.softmaxWithTemperature(c as unknown as tf.Tensor2D)).toThrow(/logits must be a rank-2/);
      expect(() => kdtf.distillationLoss([1, 2] as unknown as tf.Tensor2D, b)).toThrow(TypeError);
      expect(() => kdtf.distillationLoss(a, a, [0, 5])).toThrow(/labels\[1\]/);
      tf.dispose([a, b, c]);
    });
  });
}
