/** The Distiller on a small synthetic problem: training, callbacks, early stopping, errors, metrics. */
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { Distiller, NonFiniteLossError, cacheTeacherLogits, expectedCalibrationError } from '../src/train/index.js';
import { randomLogits, rng } from './helpers.js';

function problem(seed: number, n = 256, dim = 6, classes = 4) {
  const rand = rng(seed);
  const w = randomLogits(rand, dim * classes, 1);
  const x = randomLogits(rand, n * dim, 1);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0, bestV = -Infinity;
    for (let c = 0; c < classes; c++) {
      let v = 0;
      for (let d = 0; d < dim; d++) v += x[i * dim + d]! * w[d * classes + c]!;
      if (v > bestV) { bestV = v; best = c; }
    }
    y[i] = best;
  }
  // the teacher knows the rule: its logits are the generating scores, scaled
  const teacher = (xs: tf.Tensor): tf.Tensor => tf.mul(tf.matMul(xs as tf.Tensor2D, tf.tensor2d(w, [dim, classes])), 3);
  return { x: tf.tensor2d(x, [n, dim]), y, teacher, dim, classes };
}

const studentModel = (dim: number, classes: number, seed = 1) =>
  tf.sequential({ layers: [tf.layers.dense({ units: classes, inputShape: [dim], kernelInitializer: tf.initializers.glorotUniform({ seed }) })] });

describe('Distiller', () => {
  it('learns from the teacher: accuracy and agreement rise, callbacks fire, schedules apply', async () => {
    const p = problem(1);
    const student = studentModel(p.dim, p.classes);
    const d = new Distiller({ teacher: p.teacher, student, temperature: (e) => 4 - e * 0.1, alpha: 0.5, optimizer: 'adam', learningRate: 0.05 });
    const before = d.evaluate(p.x, p.y);
    const epochsSeen: number[] = [];
    let batches = 0;
    const h = await d.fit(p.x, p.y, {
      epochs: 10, batchSize: 32, seed: 3, verbose: 'quiet',
      callbacks: { onEpochEnd: (e) => { epochsSeen.push(e); }, onBatchEnd: () => { batches++; } },
    });
    const after = d.evaluate(p.x, p.y);
    expect(epochsSeen).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(batches).toBe(10 * 8);
    expect(h.epochs[3]!.temperature).toBeCloseTo(3.7, 10);
    expect(h.epochs[9]!.loss).toBeLessThan(h.epochs[0]!.loss);
    expect(after.studentAccuracy).toBeGreaterThan(Math.max(before.studentAccuracy, 0.85));
    expect(after.agreement).toBeGreaterThan(0.85);
    expect(after.teacherAccuracy).toBe(1);
    student.dispose();
  });

  it('is reproducible with a seed, and offline teacher logits give the same training', async () => {
    const p = problem(2);
    const run = async (cached: boolean) => {
      const student = studentModel(p.dim, p.classes, 7);
      const d = new Distiller({ teacher: p.teacher, student, temperature: 2, alpha: 0.8, learningRate: 0.01 });
      await d.fit(p.x, p.y, { epochs: 3, batchSize: 50, seed: 9, verbose: 'quiet', ...(cached ? { teacherLogits: cacheTeacherLogits(p.teacher, p.x) } : {}) });
      const w = student.getWeights()[0]!.dataSync().slice();
      student.dispose();
      return w;
    };
    const a = await run(false), b = await run(false), c = await run(true);
    expect(Array.from(a)).toEqual(Array.from(b));
    for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - c[i]!)).toBeLessThan(1e-5);
  });

  it('trains from a tf.data.Dataset of { xs, ys } batches (integer or one-hot labels)', async () => {
    const p = problem(6);
    const xs = p.x.arraySync() as number[][];
    for (const oneHot of [false, true]) {
      const ys = oneHot ? Array.from(p.y, (c) => Array.from({ length: p.classes }, (_, k) => (k === c ? 1 : 0))) : Array.from(p.y);
      const ds = tf.data.zip({ xs: tf.data.array(xs), ys: tf.data.array(ys as number[]) }).batch(32) as unknown as Parameters<Distiller['fit']>[0];
      const student = studentModel(p.dim, p.classes, 11);
      const d = new Distiller({ teacher: p.teacher, student, alpha: 0.5, learningRate: 0.05 });
      await d.fit(ds as never, { epochs: 1, verbose: 'quiet' });  // the optimizer creates its state here
      const before = tf.memory().numTensors;
      const h = await d.fit(ds as never, { epochs: 8, verbose: 'quiet' });
      expect(tf.memory().numTensors).toBe(before);
      expect(h.epochs.length).toBe(8);
      expect(d.evaluate(p.x, p.y).studentAccuracy).toBeGreaterThan(0.85);
      student.dispose();
    }
  });

  it('dispose() frees the optimizer it made (Adam moments), and leaves one passed in to its owner', async () => {
    const p = problem(8);
    const student = studentModel(p.dim, p.classes, 5);
    const start = tf.memory().numTensors;
    const d = new Distiller({ teacher: p.teacher, student, optimizer: 'adam', learningRate: 0.01 });
    await d.fit(p.x, p.y, { epochs: 1, batchSize: 64, verbose: 'quiet' });
    expect(tf.memory().numTensors).toBeGreaterThan(start);  // the moments of the kernel and bias
    d.dispose();
    expect(tf.memory().numTensors).toBe(start);
    const mine = tf.train.adam(0.01);
    const d2 = new Distiller({ teacher: p.teacher, student, optimizer: mine });
    await d2.fit(p.x, p.y, { epochs: 1, batchSize: 64, verbose: 'quiet' });
    const withState = tf.memory().numTensors;
    d2.dispose();
    expect(tf.memory().numTensors).toBe(withState);
    mine.dispose();
    expect(tf.memory().numTensors).toBe(start);
    student.dispose();
  });

  it('stops early when the monitored value stops improving', async () => {
    const p = problem(3);
    const student = studentModel(p.dim, p.classes);
    const d = new Distiller({ teacher: p.teacher, student, learningRate: 1e-9 });  // effectively frozen: no improvement
    const h = await d.fit(p.x, p.y, { epochs: 50, verbose: 'quiet', validationData: [p.x, p.y], earlyStopping: { monitor: 'valLoss', patience: 2, minDelta: 1e-3 } });
    expect(h.stoppedEarly).toBe(true);
    expect(h.epochs.length).toBe(3);
    student.dispose();
  });

  it('a non-finite loss stops training, names the epoch and batch, and keeps the last good weights', async () => {
    const p = problem(4, 64);
    const student = studentModel(p.dim, p.classes);
    // a teacher whose logits turn NaN-free but infinite for the student: mask the student with -Infinity
    let calls = 0;
    const teacher = (xs: tf.Tensor) => { calls++; return calls >= 2 ? tf.fill([xs.shape[0]!, p.classes], Infinity) : p.teacher(xs); };
    const d = new Distiller({ teacher, student, learningRate: 0.01 });
    const w0 = student.getWeights()[0]!.dataSync().slice();
    let err: unknown;
    try {
      await d.fit(p.x, p.y, { epochs: 1, batchSize: 32, shuffle: false, verbose: 'quiet' });
    } catch (e) {
      err = e;
    }
    // +Infinity teacher logits are rejected by the kernel as bad input (RangeError), before any update
    expect(err).toBeInstanceOf(RangeError);
    expect(String((err as Error).message)).toMatch(/teacher/);
    const w1 = student.getWeights()[0]!.dataSync();
    expect(Array.from(w1)).not.toEqual(Array.from(w0));  // the first batch did train

    // an infinite (not NaN) loss: the student's probability 0 where the teacher's is not
    const masked = tf.sequential({ layers: [tf.layers.dense({ units: p.classes, inputShape: [p.dim], biasInitializer: 'zeros' })] });
    masked.layers[0]!.setWeights([masked.layers[0]!.getWeights()[0]!, tf.tensor1d([-Infinity, 0, 0, 0])]);
    const d2 = new Distiller({ teacher: p.teacher, student: masked, alpha: 1 });
    const before = masked.getWeights()[0]!.dataSync().slice();
    await expect(d2.fit(p.x, p.y, { epochs: 2, batchSize: 64, verbose: 'quiet' })).rejects.toThrow(NonFiniteLossError);
    await expect(d2.fit(p.x, p.y, { epochs: 2, batchSize: 64, verbose: 'quiet' })).rejects.toThrow(/epoch \d+, batch 0/);
    expect(Array.from(masked.getWeights()[0]!.dataSync())).toEqual(Array.from(before));
    masked.dispose();
    student.dispose();
  });

  it('rejects mismatched teacher/student widths, bad labels and bad options clearly', async () => {
    const p = problem(5, 32);
    const wide = tf.sequential({ layers: [tf.layers.dense({ units: 5, inputShape: [p.dim] })] });
    const narrow = studentModel(p.dim, p.classes);
    expect(() => new Distiller({ teacher: wide, student: narrow })).toThrow(/same number of classes, got teacher 5 and student 4/);
    expect(() => new Distiller({ teacher: p.teacher, student: {} as tf.LayersModel })).toThrow(TypeError);
    const d = new Distiller({ teacher: p.teacher, student: narrow });
    await expect(d.fit(p.x, new Int32Array(32).fill(9), { verbose: 'quiet' })).rejects.toThrow(/labels\[0\]/);
    await expect(d.fit(p.x, [1, 2], { verbose: 'quiet' })).rejects.toThrow(RangeError);
    await expect(d.fit(p.x, p.y, { epochs: 0, verbose: 'quiet' })).rejects.toThrow(/epochs/);
    const fnTeacher = new Distiller({ teacher: (x) => tf.zeros([x.shape[0]!, 3]), student: narrow });
    await expect(fnTeacher.fit(p.x, p.y, { verbose: 'quiet' })).rejects.toThrow(/same number of classes/);
    wide.dispose();
    narrow.dispose();
  });

  it('expected calibration error on hand-computed cases', () => {
    // two rows, confident and right (p = 1 / (1 + e^-10) ~ 1), and a coin flip that is wrong
    const logits = new Float32Array([10, 0, 0, 0]);
    const ece = expectedCalibrationError(logits, 2, 2, [0, 1]);
    // row 0: conf 0.9999546, correct; row 1: conf 0.5, wrong (argmax 0): bins differ
    const c0 = 1 / (1 + Math.exp(-10));
    expect(ece).toBeCloseTo(((1 - c0) + 0.5) / 2, 6);
  });
});
