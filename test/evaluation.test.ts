/**
 * Evaluation numbers against hand-computed cases: per-class precision / recall / F1, macro-F1 and the
 * confusion matrix of a 6-row, 3-class example (exact fractions, compared within 1e-12); model sizes
 * of dense layers counted by hand; latency only checked to be reported, positive and labelled
 * (timings are never asserted).
 */
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { classificationMetrics, Distiller, evaluateClassifier, modelSize } from '../src/train/index.js';
import { expectArrayClose, expectNoTensorLeaks, onTfBackend } from './helpers.js';

onTfBackend(tf, 'cpu');
expectNoTensorLeaks(() => tf.memory().numTensors);

const labels = Int32Array.from([0, 0, 1, 1, 2, 2]);
const preds = Int32Array.from([0, 1, 1, 1, 0, 2]);

describe('classificationMetrics', () => {
  it('matches the hand-computed precision, recall, F1, macro-F1 and confusion matrix', () => {
    const m = classificationMetrics(preds, labels, 3);
    expect(m.confusion).toEqual([[1, 1, 0], [0, 2, 0], [1, 0, 1]]);
    expectArrayClose(m.precision, [1 / 2, 2 / 3, 1], 1e-12, 'precision');
    expectArrayClose(m.recall, [1 / 2, 1, 1 / 2], 1e-12, 'recall');
    expectArrayClose(m.f1, [1 / 2, 4 / 5, 2 / 3], 1e-12, 'f1');
    expect(Math.abs(m.macroF1 - (1 / 2 + 4 / 5 + 2 / 3) / 3)).toBeLessThan(1e-12);
    expect(m.support).toEqual([2, 2, 2]);
    expect(m.accuracy).toBeCloseTo(4 / 6, 12);
  });

  it('gives 0 (not NaN) for a class never predicted nor present, and counts it in macro-F1', () => {
    const m = classificationMetrics(preds, labels, 4);
    expect([m.precision[3], m.recall[3], m.f1[3]]).toEqual([0, 0, 0]);
    expect(Math.abs(m.macroF1 - (1 / 2 + 4 / 5 + 2 / 3) / 4)).toBeLessThan(1e-12);
    expect(() => classificationMetrics(preds, Int32Array.from([0, 0, 1, 1, 2, 7]), 3)).toThrow(/labels\[5\]/);
  });
});

describe('evaluateClassifier', () => {
  it('reports metrics, size, compression against a reference, and labelled latency', () => {
    const student = tf.sequential({ layers: [tf.layers.dense({ inputShape: [4], units: 3 })] });
    const teacher = tf.sequential({ layers: [tf.layers.dense({ inputShape: [4], units: 10 }), tf.layers.dense({ units: 3 })] });
    expect(modelSize(student)).toEqual({ parameters: 15, bytes: 60 });
    expect(modelSize(teacher)).toEqual({ parameters: 83, bytes: 332 });
    // a function model whose logits are one-hot rows of the predictions written in x's first column
    const oracle = (x: tf.Tensor) => tf.oneHot(tf.cast(tf.reshape(tf.slice(x, [0, 0], [-1, 1]), [-1]), 'int32'), 3).toFloat();
    const x = tf.tensor2d(Array.from(preds, (p) => [p, 0, 0, 0]));
    const r = evaluateClassifier(oracle, x, labels, { batchSize: 2, reference: teacher });
    expect(r.confusion).toEqual([[1, 1, 0], [0, 2, 0], [1, 0, 1]]);
    expect(r.size).toBeUndefined();
    expect(r.compressionRatio).toBeUndefined();
    expect(r.latency!.msPerRow).toBeGreaterThan(0);
    expect(r.latency!.batchSize).toBe(2);
    expect(r.latency!.batches).toBe(3);
    expect(r.latency!.backend).toBe('cpu');
    const s = evaluateClassifier(student, x, labels, { reference: teacher, latency: false });
    expect(s.size).toEqual({ parameters: 15, bytes: 60 });
    expect(s.compressionRatio).toBeCloseTo(332 / 60, 12);
    expect(s.latency).toBeUndefined();
    expect(() => evaluateClassifier(student, x, labels, { batchsize: 3 } as never)).toThrow(/did you mean 'batchSize'/);
    tf.dispose(x);
    student.dispose();
    teacher.dispose();
  });

  it('is what Distiller.evaluate reports for the student and the teacher', () => {
    const student = tf.sequential({ layers: [tf.layers.dense({ inputShape: [4], units: 3, kernelInitializer: tf.initializers.glorotNormal({ seed: 1 }) })] });
    const teacher = tf.sequential({ layers: [tf.layers.dense({ inputShape: [4], units: 8, activation: 'relu', kernelInitializer: tf.initializers.glorotNormal({ seed: 2 }) }), tf.layers.dense({ units: 3, kernelInitializer: tf.initializers.glorotNormal({ seed: 3 }) })] });
    const x = tf.randomNormal([10, 4], 0, 1, 'float32', 7);
    const y = Int32Array.from({ length: 10 }, (_, i) => i % 3);
    const d = new Distiller({ teacher, student });
    const r = d.evaluate(x, y, { batchSize: 4 });
    const alone = evaluateClassifier(student, x, y, { latency: false });
    expect(r.student.confusion).toEqual(alone.confusion);
    expect(r.student.macroF1).toBe(alone.macroF1);
    expect(r.teacher.confusion).toEqual(evaluateClassifier(teacher, x, y, { latency: false }).confusion);
    expect(r.studentSize).toEqual({ parameters: 15, bytes: 60 });
    expect(r.teacherSize).toEqual({ parameters: 67, bytes: 268 });
    expect(r.compressionRatio).toBeCloseTo(268 / 60, 12);
    expect(r.studentLatency!.msPerRow).toBeGreaterThan(0);
    expect(r.teacherLatency!.batchSize).toBe(4);
    expect(d.evaluate(x, y, { latency: false }).studentLatency).toBeUndefined();
    d.dispose();
    tf.dispose(x);
    student.dispose();
    teacher.dispose();
  });
});
