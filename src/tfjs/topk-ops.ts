/**
 * The top-k distillation loss as a tfjs op (custom gradient: the kernel's student gradient), and
 * its model.compile form: the k teacher entries travel in yTrue (packTopKTargets), since Keras-style
 * losses see only (yTrue, yPred). See docs/served-teacher.md.
 */
import * as tf from '@tensorflow/tfjs-core';
import { topkDistillationLoss as topkKernel } from '../kernels/topk-loss.js';
import type { TopKDistillationLossOptions } from '../kernels/topk-types.js';
import { checkKnownKeys, describe, requireDim } from '../kernels/validate.js';
import { customOp } from './ops.js';
import { f32, labelsArray, shape2d } from './tensors.js';

/** The kernel's options, less the arrays and shapes the tensors carry. */
export type TfTopKDistillationLossOptions = Omit<
  TopKDistillationLossOptions,
  'student' | 'rows' | 'cols' | 'k' | 'teacherIndices' | 'teacherLogprobs' | 'labels' | 'gradOutput' | 'computeStudentGrad' | 'out'
>;

/** A `[rows, k]` tensor or a flat array of rows * k values, as the kernel's typed array; k too. */
function entries<T extends Int32Array | Float32Array>(
  v: unknown, name: string, rows: number, make: (x: ArrayLike<number>) => T, want: new (n: number) => T,
): { data: T; k: number } {
  if (v instanceof tf.Tensor) {
    const [r, k] = shape2d(v, name);
    if (r !== rows) throw new RangeError(`${name} must have one row per student row (${rows}), got ${r}`);
    const d = v.dataSync();
    return { data: d instanceof want ? d as T : make(d as ArrayLike<number>), k };
  }
  if (!(v instanceof want)) throw new TypeError(`${name} must be a tf.Tensor2D or ${want.name}, got ${describe(v)}`);
  if (v.length % rows !== 0 || v.length === 0) {
    throw new RangeError(`${name} must hold rows * k values (a multiple of ${rows}), got ${v.length}`);
  }
  return { data: v, k: v.length / rows };
}

/**
 * The fused distillation loss of `[rows, cols]` student logits against a top-k teacher:
 * `teacherIndices` `[rows, k]` (int32 column ids, -1 pads) and `teacherLogprobs` `[rows, k]`.
 * A scalar (reduction mean / sum) or one value per row (none); differentiable in the student.
 */
export function topkDistillationLoss(
  studentLogits: tf.Tensor2D,
  teacherIndices: tf.Tensor2D | Int32Array,
  teacherLogprobs: tf.Tensor2D | Float32Array,
  labels?: tf.Tensor1D | Int32Array | number[],
  options: TfTopKDistillationLossOptions = {},
): tf.Tensor {
  const [rows, cols] = shape2d(studentLogits, 'studentLogits');
  const ids = entries(teacherIndices, 'teacherIndices', rows, (x) => Int32Array.from(x), Int32Array);
  const lps = entries(teacherLogprobs, 'teacherLogprobs', rows, (x) => Float32Array.from(x), Float32Array);
  if (ids.k !== lps.k) throw new RangeError(`teacherIndices and teacherLogprobs must have the same k, got ${ids.k} and ${lps.k}`);
  const y = labelsArray(labels);
  const none = options.reduction === 'none';
  const op = customOp((s: tf.Tensor) => {
    const r = topkKernel({
      ...options, student: f32(s), rows, cols, k: ids.k, teacherIndices: ids.data, teacherLogprobs: lps.data, labels: y,
    });
    const value = none ? tf.tensor1d(r.losses!) : tf.scalar(r.loss);
    return {
      value,
      gradFunc: (dy: tf.Tensor) => tf.tidy(() => {
        const g = tf.tensor2d(r.gradStudent!, [rows, cols]);
        return none ? tf.mul(g, tf.reshape(dy, [rows, 1])) : tf.mul(g, dy);
      }),
    };
  });
  return op(studentLogits);
}

export interface PackTopKTargetsOptions {
  /** The vocabulary size (the model's output width); must be at least 2k + 1. */
  cols: number;
  /** Labels equal to this mark rows without a label (default -100). */
  ignoreIndex?: number;
}

/**
 * yTrue for topkDistillationLossFn, `[rows, cols]` (tfjs-layers wants yTrue in the output's shape):
 * per row, column 0 holds the label (or ignoreIndex), columns 1..k the teacher's column ids and
 * k+1..2k its log-probabilities; the rest is 0 and never read. Needs cols >= 2k + 1. All values
 * are exact in float32 (ids and labels are integers below 2^24).
 */
export function packTopKTargets(
  labels: tf.Tensor1D | Int32Array | number[] | undefined,
  teacherIndices: Int32Array,
  teacherLogprobs: Float32Array,
  options: PackTopKTargetsOptions,
): tf.Tensor2D {
  if (typeof options !== 'object' || options === null) throw new TypeError(`options must be an object, got ${describe(options)}`);
  checkKnownKeys(options as unknown as Record<string, unknown>, ['cols', 'ignoreIndex'], 'packTopKTargets');
  const cols = requireDim(options.cols, 'cols');
  const ignoreIndex = options.ignoreIndex ?? -100;
  if (!(teacherIndices instanceof Int32Array)) throw new TypeError(`teacherIndices must be an Int32Array, got ${describe(teacherIndices)}`);
  if (!(teacherLogprobs instanceof Float32Array)) throw new TypeError(`teacherLogprobs must be a Float32Array, got ${describe(teacherLogprobs)}`);
  const y = labelsArray(labels);
  const rows = y ? y.length : undefined;
  if (rows === undefined) throw new TypeError('labels must be given (use ignoreIndex for rows without one)');
  if (teacherIndices.length % rows !== 0 || teacherLogprobs.length !== teacherIndices.length) {
    throw new RangeError(`teacherIndices and teacherLogprobs must both hold rows * k values (rows = ${rows}), got ${teacherIndices.length} and ${teacherLogprobs.length}`);
  }
  const k = teacherIndices.length / rows;
  if (cols < 2 * k + 1) throw new RangeError(`cols must be at least 2k + 1 = ${2 * k + 1} to pack k = ${k} entries, got ${cols}`);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    out[r * cols] = y![r]!;
    out.set(teacherIndices.subarray(r * k, (r + 1) * k), r * cols + 1);
    out.set(teacherLogprobs.subarray(r * k, (r + 1) * k), r * cols + 1 + k);
  }
  return tf.tensor2d(out, [rows, cols]);
}

export interface TopKDistillationLossFnOptions extends TfTopKDistillationLossOptions {
  /** Entries per row packed by packTopKTargets. */
  k: number;
}

/** `(yTrue, yPred) => per-example loss` for model.compile, yTrue from packTopKTargets; yPred are logits. */
export function topkDistillationLossFn(options: TopKDistillationLossFnOptions): (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.Tensor {
  if (typeof options !== 'object' || options === null) throw new TypeError(`options must be an object, got ${describe(options)}`);
  const { k: kOpt, ...lossOptions } = options;
  const k = requireDim(kOpt, 'k');
  return (yTrue: tf.Tensor, yPred: tf.Tensor): tf.Tensor => {
    const [rows, cols] = shape2d(yPred, 'yPred');
    const [tr, tc] = shape2d(yTrue, 'yTrue');
    if (tr !== rows || tc !== cols) throw new RangeError(`yTrue must have yPred's shape [${rows}, ${cols}] (see packTopKTargets), got [${tr}, ${tc}]`);
    const v = yTrue.dataSync();
    const labels = new Int32Array(rows), ids = new Int32Array(rows * k), lps = new Float32Array(rows * k);
    for (let r = 0; r < rows; r++) {
      labels[r] = v[r * cols]!;
      for (let j = 0; j < k; j++) {
        ids[r * k + j] = v[r * cols + 1 + j]!;
        lps[r * k + j] = v[r * cols + 1 + k + j]!;
      }
    }
    return topkDistillationLoss(yPred as tf.Tensor2D, ids, lps, labels, { ...lossOptions, reduction: 'none' });
  };
}
