/**
 * Distiller({ fusedHead: true }): the student's last Dense layer and the loss as one fused pass.
 * The same training as the unfused Distiller (weights within 1e-4 relative after 3 epochs of SGD,
 * with a body and without one, dense and top-k teacher), and a RangeError saying why for students
 * that do not qualify.
 */
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { Distiller, cacheTeacherLogits, type FitOptions } from '../src/train/index.js';
import { expectArrayClose, randomLogits, rng } from './helpers.js';

const dim = 6, classes = 12, n = 120;

function problem(seed: number) {
  const rand = rng(seed);
  const w = randomLogits(rand, dim * classes, 1);
  const x = tf.tensor2d(randomLogits(rand, n * dim, 1), [n, dim]);
  const teacher = (xs: tf.Tensor): tf.Tensor => tf.mul(tf.matMul(xs as tf.Tensor2D, tf.tensor2d(w, [dim, classes])), 3);
  const y = Int32Array.from(tf.argMax(teacher(x), 1).dataSync());
  return { x, y, teacher };
}

function student(kind: 'body' | 'head-only', seed: number): tf.Sequential {
  const init = (s: number) => tf.initializers.glorotUniform({ seed: s });
  return kind === 'body'
    ? tf.sequential({ layers: [
      tf.layers.dense({ units: 10, inputShape: [dim], activation: 'tanh', kernelInitializer: init(seed) }),
      tf.layers.dense({ units: classes, kernelInitializer: init(seed + 1), biasInitializer: tf.initializers.randomUniform({ minval: -0.2, maxval: 0.2, seed: seed + 2 }) }),
    ] })
    : tf.sequential({ layers: [tf.layers.dense({ units: classes, inputShape: [dim], kernelInitializer: init(seed) })] });
}

async function train(kind: 'body' | 'head-only', fusedHead: boolean, teacherLogits?: 'dense' | 'topk'): Promise<Float32Array[]> {
  const p = problem(4);
  const s = student(kind, 21);
  const d = new Distiller({ teacher: p.teacher, student: s, temperature: 2, alpha: 0.7, optimizer: 'sgd', learningRate: 0.05, fusedHead, loss: { labelSmoothing: 0.05 } });
  let cache: FitOptions = {};
  if (teacherLogits === 'dense') cache = { teacherLogits: cacheTeacherLogits(p.teacher, p.x) };
  if (teacherLogits === 'topk') {
    const k = 4, t = (p.teacher(p.x) as tf.Tensor2D).arraySync();
    const indices = new Int32Array(n * k), logprobs = new Float32Array(n * k);
    t.forEach((row, r) => {
      const m = Math.max(...row), lse = m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0));
      row.map((_, c) => c).sort((a, b) => row[b]! - row[a]!).slice(0, k).forEach((c, j) => {
        indices[r * k + j] = c;
        logprobs[r * k + j] = row[c]! - lse;
      });
    });
    cache = { teacherLogits: { indices, logprobs, rows: n, k, cols: classes } };
  }
  await d.fit(p.x, p.y, { epochs: 3, batchSize: 20, seed: 5, verbose: 'quiet', ...cache });
  const w = s.getWeights().map((t) => t.dataSync() as Float32Array);
  d.dispose();
  s.dispose();
  p.x.dispose();
  return w;
}

describe('Distiller fusedHead', () => {
  for (const [kind, teacher] of [['body', undefined], ['head-only', undefined], ['body', 'dense'], ['body', 'topk']] as const) {
    it(`trains to the same weights as the unfused student (${kind}, ${teacher ?? 'teacher model'})`, async () => {
      const fused = await train(kind, true, teacher), plain = await train(kind, false, teacher);
      expect(fused.length).toBe(plain.length);
      fused.forEach((w, i) => expectArrayClose(w, plain[i]!, 1e-4, `weight ${i}`));
      // and training moved them
      const start = student(kind, 21).getWeights().map((t) => t.dataSync());
      expect(Math.max(...Array.from(fused.at(-2)!, (v, i) => Math.abs(v - start.at(-2)![i]!)))).toBeGreaterThan(1e-3);
    });
  }

  it('refuses students that do not qualify, saying why', () => {
    const p = problem(6);
    const soft = tf.sequential({ layers: [tf.layers.dense({ units: classes, inputShape: [dim], activation: 'relu' })] });
    expect(() => new Distiller({ teacher: p.teacher, student: soft, fusedHead: true })).toThrow(/without activation.*applies relu/);
    const notDense = tf.sequential({ layers: [tf.layers.dense({ units: classes, inputShape: [dim] }), tf.layers.dropout({ rate: 0.1 })] });
    expect(() => new Distiller({ teacher: p.teacher, student: notDense, fusedHead: true })).toThrow(/last layer is Dense; '.*' is Dropout/);
    const seq3d = tf.sequential({ layers: [tf.layers.dense({ units: classes, inputShape: [3, dim] })] });
    expect(() => new Distiller({ teacher: p.teacher, student: seq3d, fusedHead: true })).toThrow(/\[rows, dim\] input/);
    const ok = student('body', 1);
    expect(() => new Distiller({ teacher: p.teacher, student: ok, fusedHead: true, explanationAlignment: { inputGradient: { weight: 1 } } })).toThrow(/cannot be combined/);
    expect(() => new Distiller({ teacher: p.teacher, student: ok, fusedHead: 'yes' as unknown as boolean })).toThrow(TypeError);
    tf.dispose([soft, notDense, seq3d, ok, p.x] as unknown as tf.Tensor[]);
  });
});
