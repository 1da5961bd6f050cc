/**
 * Time of one loss forward+backward with the fused op and with the composed tfjs ops a user writes
 * today, measured back to back on the same tensors (median of repeated runs).
 */
import * as tf from '@tensorflow/tfjs';
import { distillationLoss } from '../tfjs/ops.js';

function composed(s: tf.Tensor, t: tf.Tensor, y: tf.Tensor, T: number, alpha: number): tf.Scalar {
  const p = tf.softmax(tf.div(t, T));
  const kl = tf.sum(tf.mul(p, tf.sub(tf.logSoftmax(tf.div(t, T)), tf.logSoftmax(tf.div(s, T)))), 1);
  const ce = tf.neg(tf.sum(tf.mul(tf.oneHot(y as tf.Tensor1D, s.shape[1]!), tf.logSoftmax(s)), 1));
  return tf.mean(tf.add(tf.mul(kl, alpha * T * T), tf.mul(ce, 1 - alpha))) as tf.Scalar;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export function timeLoss(rows: number, cols: number, T: number, alpha: number, reps = 200): { fusedMs: number; composedMs: number } {
  const s = tf.randomNormal([rows, cols], 0, 3, 'float32', 1), t = tf.randomNormal([rows, cols], 0, 3, 'float32', 2);
  const y = tf.tensor1d(Array.from({ length: rows }, (_, i) => i % cols), 'int32');
  const labels = Array.from(y.dataSync());
  const run = (fused: boolean): number => {
    const t0 = performance.now();
    tf.tidy(() => {
      const g = tf.grad((x: tf.Tensor) => (fused ? distillationLoss(x as tf.Tensor2D, t as tf.Tensor2D, labels, { temperature: T, alpha }) as tf.Scalar : composed(x, t, y, T, alpha)))(s);
      g.dataSync();
    });
    return performance.now() - t0;
  };
  for (let i = 0; i < 10; i++) { run(true); run(false); }  // warm up both
  const f: number[] = [], c: number[] = [];
  for (let i = 0; i < reps; i++) { f.push(run(true)); c.push(run(false)); }
  tf.dispose([s, t, y]);
  return { fusedMs: median(f), composedMs: median(c) };
}
