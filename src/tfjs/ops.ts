/**
 * kdfuse's kernels as tfjs ops: they take and return tensors, run forward and backward on the
 * fused kernels, and are differentiable by tfjs autodiff (tf.grad, tf.variableGrads,
 * optimizer.minimize, model.fit) through tf.customGrad. The loss computes its gradient in the same
 * pass as its value and keeps it as a plain array until tfjs asks for it, so no tensor is held
 * when no gradient is taken.
 */
import * as tf from '@tensorflow/tfjs-core';
import { distillationLoss as lossKernel } from '../kernels/distill-loss.js';
import {
  logSoftmaxWithTemperature as logSoftmaxKernel,
  logSoftmaxWithTemperatureBackward as logSoftmaxBackwardKernel,
  softmaxWithTemperature as softmaxKernel,
  softmaxWithTemperatureBackward as softmaxBackwardKernel,
} from '../kernels/softmax.js';
import type { DistillationLossOptions } from '../kernels/types.js';
import { checkKnownKeys, requireObject } from '../kernels/validate.js';
import { f32, f32Now, isTapeOn, labelsArray, lendGradArrays, scaleByUpstream, shape2d } from './tensors.js';

/** The option names of the tfjs distillation loss (TfDistillationLossOptions). */
export const TF_DISTILL_OPTION_KEYS = [
  'temperature', 'alpha', 'scaleByTemperatureSquared', 'labelSmoothing', 'ignoreIndex', 'reduction', 'divergence', 'beta', 'computeTeacherGrad',
] as const;
const TF_KL_OPTION_KEYS = ['temperature', 'reduction', 'divergence', 'beta', 'scaleByTemperatureSquared'] as const;

type GradResult = { value: tf.Tensor; gradFunc: (dy: tf.Tensor) => tf.Tensor | tf.Tensor[] };
/** tf.customGrad over plain tensor arguments (its declared type also admits a save function). */
export function customOp(f: (...xs: tf.Tensor[]) => GradResult): (...xs: tf.Tensor[]) => tf.Tensor {
  const op = tf.customGrad(f as unknown as Parameters<typeof tf.customGrad>[0]);
  // Outside a gradient tape (inference, evaluation) tf.customGrad leaves its inner value tensor
  // alive; there no gradient can be asked for, so the value is returned directly.
  return (...xs: tf.Tensor[]) => (isTapeOn() ? op(...xs) : f(...xs).value);
}

/** Options of the tfjs ops: the kernel options, less the arrays and shapes the tensors carry. */
export type TfDistillationLossOptions = Omit<
  DistillationLossOptions,
  'student' | 'teacher' | 'rows' | 'cols' | 'labels' | 'gradOutput' | 'computeStudentGrad' | 'out'
>;

function softmaxOp(logits: tf.Tensor, temperature: number, log: boolean): tf.Tensor2D {
  const [rows, cols] = shape2d(logits, 'logits');
  const op = customOp((x: tf.Tensor) => {
    const y = (log ? logSoftmaxKernel : softmaxKernel)({ logits: f32(x), rows, cols, temperature });
    return {
      value: tf.tensor2d(y, [rows, cols]),
      gradFunc: (dy: tf.Tensor) => {
        const backward = log ? logSoftmaxBackwardKernel : softmaxBackwardKernel;
        return tf.tensor2d(backward({ output: y, gradOutput: f32(dy), rows, cols, temperature }), [rows, cols]);
      },
    };
  });
  return op(logits) as tf.Tensor2D;
}

/** `softmax(logits / T)` over the last axis of a `[rows, cols]` tensor. */
export function softmaxWithTemperature(logits: tf.Tensor2D, temperature = 1): tf.Tensor2D {
  return softmaxOp(logits, temperature, false);
}

/** `log softmax(logits / T)` over the last axis of a `[rows, cols]` tensor. */
export function logSoftmaxWithTemperature(logits: tf.Tensor2D, temperature = 1): tf.Tensor2D {
  return softmaxOp(logits, temperature, true);
}

/**
 * The fused distillation loss of `[rows, cols]` student and teacher logits: a scalar (reduction
 * `mean` / `sum`) or one value per row (`none`). The teacher is a constant unless
 * `computeTeacherGrad: true` (online / mutual distillation), when gradients flow into it too.
 * `alpha` weighs the soft (distillation) term; Keras's example puts its alpha on the hard term.
 */
export function distillationLoss(
  studentLogits: tf.Tensor2D,
  teacherLogits: tf.Tensor2D,
  labels?: tf.Tensor1D | Int32Array | number[],
  options: TfDistillationLossOptions = {},
): tf.Tensor {
  checkKnownKeys(requireObject(options, 'options'), TF_DISTILL_OPTION_KEYS, 'distillationLoss');
  const [rows, cols] = shape2d(studentLogits, 'studentLogits');
  const [tr, tc] = shape2d(teacherLogits, 'teacherLogits');
  if (tr !== rows || tc !== cols) {
    throw new RangeError(`teacherLogits must have the student's shape [${rows}, ${cols}], got [${tr}, ${tc}]`);
  }
  const y = labelsArray(labels);
  const none = options.reduction === 'none';
  const withTeacher = options.computeTeacherGrad === true;

  // Value and gradients in one fused call, the gradients into lent arrays (lendGradArrays) and the
  // inputs read in place where the backend allows (f32Now); the gradients are scaled by the
  // upstream dy in place when asked for, so a training step makes no other [rows, cols] array.
  const n = rows * cols;
  // no tape (inference, evaluation): no gradient can be asked for, so none is computed. Asked
  // here: inside the custom op's forward function tfjs records nothing.
  const tape = isTapeOn();
  const compute = (s: tf.Tensor, t: tf.Tensor) => {
    const lease = tape ? lendGradArrays(withTeacher ? 'distill-st' : 'distill-s', withTeacher ? [n, n] : [n]) : undefined;
    const out = lease ? { gradStudent: lease.arrays[0]!, ...(withTeacher ? { gradTeacher: lease.arrays[1]! } : {}) } : undefined;
    let r: ReturnType<typeof lossKernel>;
    try {
      r = lossKernel({
        ...options, student: f32Now(s), teacher: f32Now(t), rows, cols, labels: y, ...(out ? { out } : {}),
        ...(tape ? {} : { computeStudentGrad: false, computeTeacherGrad: false }),
      });
    } catch (e) {
      lease?.cancel();
      throw e;
    }
    const value = none ? tf.tensor1d(r.losses!) : tf.scalar(r.loss);
    const grads = (dy: tf.Tensor, wanted: Float32Array[]): tf.Tensor[] => {
      const d = dy.dataSync();
      const made: tf.Tensor[] = [];
      try {
        for (const g of wanted) made.push(tf.tensor2d(scaleByUpstream(g, d, none ? cols : n), [rows, cols]));
        return made;
      } finally {
        lease?.done(made);
      }
    };
    return { r, value, grads };
  };

  if (withTeacher) {
    const op = customOp((s: tf.Tensor, t: tf.Tensor) => {
      const { r, value, grads } = compute(s, t);
      return { value, gradFunc: (dy: tf.Tensor) => grads(dy, [r.gradStudent!, r.gradTeacher!]) };
    });
    return op(studentLogits, teacherLogits);
  }
  const teacher = teacherLogits;
  const op = customOp((s: tf.Tensor) => {
    const { r, value, grads } = compute(s, teacher);
    return { value, gradFunc: (dy: tf.Tensor) => grads(dy, [r.gradStudent!])[0]! };
  });
  return op(studentLogits);
}

export interface TfKlDivergenceOptions {
  temperature?: number;
  reduction?: 'mean' | 'sum' | 'none';
  divergence?: 'kl' | 'reverse-kl' | 'jsd';
  beta?: number;
  /** Multiply by T^2 (default false: the plain divergence). */
  scaleByTemperatureSquared?: boolean;
}

/** `D(softmax(teacher / T) || softmax(student / T))` per row, reduced; differentiable in the student. */
export function klDivergence(teacherLogits: tf.Tensor2D, studentLogits: tf.Tensor2D, options: TfKlDivergenceOptions = {}): tf.Tensor {
  checkKnownKeys(requireObject(options, 'options'), TF_KL_OPTION_KEYS, 'klDivergence');
  return distillationLoss(studentLogits, teacherLogits, undefined, {
    ...options,
    scaleByTemperatureSquared: options.scaleByTemperatureSquared ?? false,
  });
}
