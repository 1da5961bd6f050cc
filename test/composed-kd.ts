/** The KD loss composed from tfjs ops, as tfjs users write it today: the oracle of the tfjs op tests. */
import * as tf from '@tensorflow/tfjs';

/** alpha T² KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) CE(y, softmax(s)), mean over rows (no labels: the KL term alone). */
export function composedLoss(s: tf.Tensor2D, t: tf.Tensor2D, labels: tf.Tensor1D | undefined, T: number, alpha: number): tf.Scalar {
  return tf.tidy(() => {
    const p = tf.softmax(tf.div(t, T));
    const kl = tf.sum(tf.mul(p, tf.sub(tf.logSoftmax(tf.div(t, T)), tf.logSoftmax(tf.div(s, T)))), 1);
    if (!labels) return tf.mean(tf.mul(kl, T * T)) as tf.Scalar;
    const ce = tf.neg(tf.sum(tf.mul(tf.oneHot(labels, s.shape[1]!), tf.logSoftmax(s)), 1));
    return tf.mean(tf.add(tf.mul(kl, alpha * T * T), tf.mul(ce, 1 - alpha))) as tf.Scalar;
  });
}
