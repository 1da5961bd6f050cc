/**
 * A loss for `model.compile({ loss })`. Keras-style losses see only (yTrue, yPred), and tfjs-layers
 * requires yTrue to have the model output's shape [rows, C], so the labels travel inside the
 * teacher's outputs. `packTargets(labels, teacherOutputs)` stores the teacher's log-probabilities
 * (all <= 0; softmax of them at any T equals the teacher's), except in the label's column, which
 * holds 1 - log p(label) (>= 1). A row with no positive entry has no label (it is ignored by the
 * hard term). Packed targets lose at most one float32 ulp of 1 (6e-8) in the label's log-probability.
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkKnownKeys, describe, requireObject } from '../kernels/validate.js';
import { distillationLoss, TF_DISTILL_OPTION_KEYS, type TfDistillationLossOptions } from './ops.js';
import { shape2d } from './tensors.js';

export interface DistillationLossFnOptions extends Omit<TfDistillationLossOptions, 'reduction' | 'computeTeacherGrad'> {
  /** The student model outputs logits (true, default) or probabilities from a softmax layer (false). */
  fromLogits?: boolean;
}

export interface PackTargetsOptions {
  /** teacherOutputs are logits (true, default) or probabilities (false). */
  fromLogits?: boolean;
  /** Labels equal to this mark rows without a label (default -100). */
  ignoreIndex?: number;
}

/** Probabilities to logits, `log p`, with p clipped at 1e-30 so a 0 gives a large negative finite logit. */
function logitsOf(p: tf.Tensor): tf.Tensor {
  return tf.log(tf.maximum(p, tf.scalar(1e-30)));
}

/** yTrue for distillationLossFn, `[rows, C]`: the teacher's log-probabilities with the label marked. */
export function packTargets(
  labels: tf.Tensor1D | Int32Array | number[],
  teacherOutputs: tf.Tensor2D,
  options: PackTargetsOptions = {},
): tf.Tensor2D {
  checkKnownKeys(requireObject(options, 'options'), ['fromLogits', 'ignoreIndex'], 'packTargets');
  const [rows, cols] = shape2d(teacherOutputs, 'teacherOutputs');
  const { fromLogits = true, ignoreIndex = -100 } = options;
  let y: number[];
  if (labels instanceof tf.Tensor) {
    if (labels.isDisposed) throw new TypeError(`labels must be a live tf.Tensor, got a disposed one`);
    y = Array.from(labels.dataSync() as ArrayLike<number>);
  }
  else if (labels instanceof Int32Array || Array.isArray(labels)) y = Array.from(labels);
  else throw new TypeError(`labels must be a tf.Tensor1D, Int32Array or number[], got ${describe(labels)}`);
  if (y.length !== rows) throw new RangeError(`labels must have one entry per row of teacherOutputs (${rows}), got ${y.length}`);
  y.forEach((v, i) => {
    if (v !== ignoreIndex && !(Number.isInteger(v) && v >= 0 && v < cols)) {
      throw new RangeError(`labels[${i}] must be an integer in [0, ${cols}) or ignoreIndex (${ignoreIndex}), got ${v}`);
    }
  });
  return tf.tidy(() => {
    const logp = fromLogits ? tf.logSoftmax(teacherOutputs) : tf.logSoftmax(logitsOf(teacherOutputs));
    // 1 at each row's label column (none for an ignored row); built here because tf.oneHot refuses
    // a depth of 1 (a single-class teacher)
    const m = new Float32Array(rows * cols);
    y.forEach((v, r) => { if (v !== ignoreIndex) m[r * cols + v] = 1; });
    const mark = tf.tensor2d(m, [rows, cols]);
    // label column: 1 - logp; elsewhere logp
    return tf.add(logp, tf.mul(mark, tf.sub(1, tf.mul(logp, 2)))) as tf.Tensor2D;
  });
}

/** Labels and teacher log-probabilities back from packTargets' encoding. */
export function unpackTargets(yTrue: tf.Tensor2D, ignoreIndex = -100): { labels: number[]; teacherLogits: tf.Tensor2D } {
  const [rows, cols] = shape2d(yTrue, 'yTrue');
  const v = yTrue.dataSync();
  const labels = new Array<number>(rows).fill(ignoreIndex);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) if (v[r * cols + c]! > 0) labels[r] = c;
  // 1 - x at the label's column restores log p there; other entries are already log p
  const teacherLogits = tf.tidy(() => {
    const marked = tf.greater(yTrue, 0);
    return tf.where(marked, tf.sub(1, yTrue), yTrue) as tf.Tensor2D;
  });
  return { labels, teacherLogits };
}

/** `(yTrue, yPred) => per-example loss` for model.compile; tfjs averages it over the batch. */
export function distillationLossFn(options: DistillationLossFnOptions = {}): (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.Tensor {
  const keys = [...TF_DISTILL_OPTION_KEYS.filter((k) => k !== 'reduction' && k !== 'computeTeacherGrad'), 'fromLogits'];
  checkKnownKeys(requireObject(options, 'options'), keys, 'distillationLossFn');
  const { fromLogits = true, ...lossOptions } = options;
  const ignoreIndex = options.ignoreIndex ?? -100;
  return (yTrue: tf.Tensor, yPred: tf.Tensor): tf.Tensor => {
    const [rows, cols] = shape2d(yPred, 'yPred');
    const [tr, tc] = shape2d(yTrue, 'yTrue');
    if (tr !== rows || tc !== cols) {
      throw new RangeError(`yTrue must have yPred's shape [${rows}, ${cols}] (see packTargets), got [${tr}, ${tc}]`);
    }
    const { labels, teacherLogits } = unpackTargets(yTrue as tf.Tensor2D, ignoreIndex);
    const s = fromLogits ? yPred : logitsOf(yPred);
    return distillationLoss(s as tf.Tensor2D, teacherLogits, labels, { ...lossOptions, ignoreIndex, reduction: 'none' });
  };
}
