/**
 * The fused distillation head as a tfjs op: `hidden [rows, dim]`, a Dense layer's `kernel
 * [dim, cols]` and `bias [cols]` in, the distillation loss of `hidden · kernel + bias` out, with a
 * custom gradient for hidden, kernel and bias. The `[rows, cols]` logits never exist as a tensor
 * (docs/fused-head.md).
 */
import * as tf from '@tensorflow/tfjs-core';
import { linearDistillationLoss as linearKernel } from '../kernels/linear-loss.js';
import type { LinearDistillationLossOptions } from '../kernels/linear-types.js';
import type { TopKTeacher } from '../kernels/topk-types.js';
import { checkKnownKeys, describe, requireObject } from '../kernels/validate.js';
import { customOp } from './ops.js';
import { f32, f32Now, isTapeOn, labelsArray, lendGradArrays, requireTensor, scaleByUpstream, shape2d, type GradLease } from './tensors.js';

/** The option names of the tfjs op (TfLinearDistillationLossOptions). */
export const TF_LINEAR_OPTION_KEYS = [
  'temperature', 'alpha', 'scaleByTemperatureSquared', 'labelSmoothing', 'ignoreIndex', 'reduction', 'divergence', 'beta',
  'missingMass', 'teacherValues',
] as const;

/** The kernel's options, less the arrays and shapes the tensors carry. */
export type TfLinearDistillationLossOptions = Pick<LinearDistillationLossOptions, (typeof TF_LINEAR_OPTION_KEYS)[number]>;


/**
 * The teacher as the kernel takes it: dense logits `[rows, cols]`, or a top-k teacher; checked now,
 * its values read when the kernel runs (f32Now).
 */
function teacherOptions(teacher: unknown, rows: number, cols: number): () => Partial<LinearDistillationLossOptions> {
  if (teacher instanceof tf.Tensor) {
    const [tr, tc] = shape2d(teacher, 'teacher');
    if (tr !== rows || tc !== cols) throw new RangeError(`teacher must have the logits' shape [${rows}, ${cols}], got [${tr}, ${tc}]`);
    return () => ({ teacher: f32Now(teacher) });
  }
  if (typeof teacher === 'object' && teacher !== null && 'indices' in teacher && 'logprobs' in teacher) {
    const t = teacher as TopKTeacher;
    if (t.rows !== rows) throw new RangeError(`teacher must have one row per hidden row (${rows}), got ${String(t.rows)}`);
    if (t.cols !== cols) throw new RangeError(`teacher's cols must be the kernel's columns (${cols}), got ${String(t.cols)}`);
    return () => ({ k: t.k, teacherIndices: t.indices, teacherLogprobs: t.logprobs });
  }
  throw new TypeError(`teacher must be a tf.Tensor2D of logits or a TopKTeacher, got ${describe(teacher)}`);
}

/**
 * The distillation loss of a Dense head without activation, fused: the student's logits are
 * `hidden · kernel + bias` (`kernel` as a tfjs Dense layer holds it, `[dim, cols]`; `bias` `[cols]`
 * or null), the teacher is `[rows, cols]` logits or a TopKTeacher (a served teacher's top k), and
 * every option of distillationLoss applies. Returns a scalar (mean / sum) or one value per row
 * (none); differentiable in hidden, kernel and bias, so `optimizer.minimize` trains the head and,
 * through hidden, the layers below it.
 */
export function linearDistillationLoss(
  hidden: tf.Tensor2D,
  kernel: tf.Tensor2D | tf.Variable,
  bias: tf.Tensor1D | tf.Variable | null,
  teacher: tf.Tensor2D | TopKTeacher,
  labels: tf.Tensor1D | Int32Array | number[] | null = null,
  options: TfLinearDistillationLossOptions = {},
): tf.Tensor {
  checkKnownKeys(requireObject(options, 'options'), TF_LINEAR_OPTION_KEYS, 'linearDistillationLoss');
  const [rows, dim] = shape2d(hidden, 'hidden');
  const [kd, cols] = shape2d(kernel, 'kernel');
  if (kd !== dim) throw new RangeError(`kernel must have hidden's ${dim} rows (shape [dim, cols]), got shape [${kd}, ${cols}]`);
  if (bias !== null && bias !== undefined) {
    const b = requireTensor(bias, 'bias');
    if (b.rank !== 1 || b.shape[0] !== cols) throw new RangeError(`bias must have shape [${cols}], got [${b.shape.join(', ')}]`);
  }
  const teacherArgs = teacherOptions(teacher, rows, cols);
  const y = labelsArray(labels);
  const none = options.reduction === 'none';

  /** A kernel run, and the lent arrays its gradients are in (see lendGradArrays; undefined: fresh ones). */
  type Run = { r: ReturnType<typeof linearKernel>; set: GradLease | undefined };
  const call = (h: tf.Tensor, w: tf.Tensor, b: tf.Tensor | null, grads: boolean, gradOutput?: Float32Array): Run => {
    const set = grads ? lendGradArrays('linear', [rows * dim, dim * cols, cols]) : undefined;
    const out = set ? { gradHidden: set.arrays[0]!, gradWeight: set.arrays[1]!, ...(b ? { gradBias: set.arrays[2]! } : {}) } : undefined;
    try {
      // the inputs' values right before the call (views of the wasm heap there: see f32Now)
      const r = linearKernel({
        ...options, ...teacherArgs(), hidden: f32Now(h), weight: f32Now(w), ...(b ? { bias: f32Now(b) } : {}), rows, dim, cols,
        ...(y ? { labels: y } : {}), computeHiddenGrad: grads, computeWeightGrad: grads,
        ...(gradOutput ? { gradOutput } : {}), ...(out ? { out } : {}),
      });
      return { r, set };
    } catch (e) {
      set?.cancel();
      throw e;
    }
  };
  // The gradients as tensors, times the scalar upstream gradient (1 under optimizer.minimize: no
  // multiply); the lent set is given back once the tensors exist (holding copies on wasm, the arrays on cpu).
  const gradTensors = ({ r, set }: Run, b: tf.Tensor | null, dy: number): tf.Tensor[] => {
    const scaled = (g: Float32Array): Float32Array => scaleByUpstream(g, [dy]);
    let gs: tf.Tensor[] = [];
    try {
      gs = [tf.tensor2d(scaled(r.gradHidden!), [rows, dim]), tf.tensor2d(scaled(r.gradWeight!), [dim, cols])];
      if (b) gs.push(tf.tensor1d(scaled(r.gradBias!)));
      return gs;
    } finally {
      set?.done(gs);
    }
  };

  const inputs: tf.Tensor[] = bias ? [hidden, kernel, bias] : [hidden, kernel];
  if (!isTapeOn()) {  // no gradient can be asked for: the loss alone (one product instead of three)
    const { r } = call(hidden, kernel, bias, false);
    return none ? tf.tensor1d(r.losses!) : tf.scalar(r.loss);
  }
  const op = customOp((...xs: tf.Tensor[]) => {
    // tf.customGrad appends its save function to the arguments: take the inputs only
    const [h, w] = xs as [tf.Tensor, tf.Tensor];
    const b = bias ? xs[2]! : null;
    if (none) {
      // per-row upstream gradients are known only in gradFunc: the loss now, the gradients then
      const { r } = call(h, w, b, false);
      return {
        value: tf.tensor1d(r.losses!),
        gradFunc: (dy: tf.Tensor) => gradTensors(call(h, w, b, true, f32(dy)), b, 1),
      };
    }
    const run = call(h, w, b, true);
    return {
      value: tf.scalar(run.r.loss),
      gradFunc: (dy: tf.Tensor) => gradTensors(run, b, dy.dataSync()[0]!),
    };
  });
  return op(...inputs);
}
