/** The demo's dense models: a wide teacher and a small student, both emitting logits. */
import * as tf from '@tensorflow/tfjs';

export function denseModel(hidden: number[], seed: number, inputs = 64, classes = 10): tf.Sequential {
  const model = tf.sequential();
  hidden.forEach((units, i) => {
    model.add(tf.layers.dense({
      units,
      activation: 'relu',
      ...(i === 0 ? { inputShape: [inputs] } : {}),
      kernelInitializer: tf.initializers.heNormal({ seed: seed + i }),
    }));
  });
  model.add(tf.layers.dense({ units: classes, kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 100 }) }));
  return model;
}

/** Softmax cross-entropy on logits with integer labels given one-hot. */
export const crossEntropyFromLogits = (yTrue: tf.Tensor, yPred: tf.Tensor): tf.Tensor => tf.losses.softmaxCrossEntropy(yTrue, yPred);
