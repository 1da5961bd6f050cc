// The README's fused head, runnable: a language-model head (hidden state -> Dense over the
// vocabulary) trained against teacher logits, composed from tfjs ops and then through
// kd.linearDistillationLoss, which never forms the logits. test/readme.test.ts runs both and
// checks the README shows this code.
import * as tf from '@tensorflow/tfjs';
import * as kd from 'kdfuse/tfjs';

export function composedHeadStep(optimizer: tf.Optimizer, hidden: tf.Tensor2D, kernel: tf.Variable, bias: tf.Variable, teacherLogits: tf.Tensor2D, yb: tf.Tensor1D): void {
  const T = 2, alpha = 0.5;
  optimizer.minimize(() => {
    const s = tf.add(tf.matMul(hidden, kernel), bias) as tf.Tensor2D;   // [rows, vocab] logits
    return kd.distillationLoss(s, teacherLogits, yb, { temperature: T, alpha }) as tf.Scalar;
  });
}

export function fusedHeadStep(optimizer: tf.Optimizer, hidden: tf.Tensor2D, kernel: tf.Variable, bias: tf.Variable, teacherLogits: tf.Tensor2D, yb: tf.Tensor1D): void {
  const T = 2, alpha = 0.5;
  optimizer.minimize(() => {
    return kd.linearDistillationLoss(hidden, kernel, bias, teacherLogits, yb, { temperature: T, alpha }) as tf.Scalar;
  });
}
