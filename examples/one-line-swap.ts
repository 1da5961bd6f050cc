// The README's one-line swap, runnable: a tfjs training step with the KD loss composed from tfjs ops,
// and the same step with kdfuse's fused loss. test/readme.test.ts runs both and checks the README
// shows this code.
import * as tf from '@tensorflow/tfjs';
import * as kd from 'kdfuse/tfjs';

export function composedStep(optimizer: tf.Optimizer, student: tf.LayersModel, teacher: tf.LayersModel, xb: tf.Tensor, yb: tf.Tensor1D): void {
  const T = 4, alpha = 0.9;
  optimizer.minimize(() => {
    const s = student.apply(xb) as tf.Tensor2D, t = teacher.predict(xb) as tf.Tensor2D;
    const kl = tf.sum(tf.mul(tf.softmax(tf.div(t, T)), tf.sub(tf.logSoftmax(tf.div(t, T)), tf.logSoftmax(tf.div(s, T)))), 1);
    const ce = tf.neg(tf.sum(tf.mul(tf.oneHot(yb, 10), tf.logSoftmax(s)), 1));
    return tf.mean(tf.add(tf.mul(kl, alpha * T * T), tf.mul(ce, 1 - alpha))) as tf.Scalar;
  });
}

export function fusedStep(optimizer: tf.Optimizer, student: tf.LayersModel, teacher: tf.LayersModel, xb: tf.Tensor, yb: tf.Tensor1D): void {
  const T = 4, alpha = 0.9;
  optimizer.minimize(() => {
    const s = student.apply(xb) as tf.Tensor2D, t = teacher.predict(xb) as tf.Tensor2D;
    return kd.distillationLoss(s, t, yb, { temperature: T, alpha }) as tf.Scalar;
  });
}
