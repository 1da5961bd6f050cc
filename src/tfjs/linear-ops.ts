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
import { f32, f32Now, labelsArray, requireTensor, shape2d } from './tensors.js';

/** The option names of the tfjs op (TfLinearDistillationLossOptions). */
export const TF_LINEAR_OPTION_KEYS = [
  'temperature', 'alpha', 'scaleByTemperatureSquared', 'labelSmoothing', 'ignoreIndex', 'reduction', 'divergence', 'beta',
  'missingMass', 'teacherValues',
] as const;

/** The kernel's options, less the arrays and shapes the tensors carry. */
export type TfLinearDistillationLossOptions = Pick<LinearDistillationLossOptions, (typeof TF_LINEAR_OPTION_KEYS)[number]>;

/**
 * Gradient arrays kept between calls, so a training loop does not touch fresh pages every step (on
 * these machines that costs about as much as the fused head itself). A set is lent to one call
 * from its kernel run until its gradient tensors exist; a call that finds its set still lent (the op
 * used twice on one tape) or still in use gets arrays of its own. "In use": the wasm backend copies
 * a tensor's values into its heap, so never once the tensors exist; the cpu backend keeps the array
 * itself as the tensor's storage, so until the backend no longer holds any of the tensors made from
 * it (its data store, reference-counted, no longer has their data ids). Other backends (webgl,
 * webgpu, tfjs-node) keep the array until they upload it: they get new arrays every call.
 */
interface GradSet { h: Float32Array; w: Float32Array; b: Float32Array; lent: boolean; held: object[] }
const gradSets = new Map<string, GradSet>();

/** Whether the current backend's storage still holds `dataId` (cpu); undefined: arrays are not reused here. */
function heldBy(): ((dataId: object) => boolean) | undefined {
  const name = tf.getBackend();
  if (name === 'wasm') return () => false;
  if (name !== 'cpu') return undefined;
  const data = (tf.backend() as unknown as { data?: { has?(id: object): boolean } }).data;
  return typeof data?.has === 'function' ? (id) => data.has!(id) : undefined;
}

function lendGradSet(rows: number, dim: number, cols: number, held: (id: object) => boolean): GradSet {
  const key = `${tf.getBackend()}:${rows}x${dim}x${cols}`;
  const make = (): GradSet => ({ h: new Float32Array(rows * dim), w: new Float32Array(dim * cols), b: new Float32Array(cols), lent: true, held: [] });
  const kept = gradSets.get(key);
  if (kept && !kept.lent && !kept.held.some(held)) {
    kept.lent = true;
    kept.held = [];
    return kept;
  }
  const set = make();
  if (!kept || !kept.lent) gradSets.set(key, set);  // a set still lent stays with its call
  return set;
}

function isTapeOn(): boolean {
  const engine = tf.engine() as unknown as { isTapeOn?: () => boolean };
  return !engine.isTapeOn || engine.isTapeOn();
}

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
  const held = heldBy();

  /** A kernel run, and the lent gradient set its gradients are in (wasm; undefined elsewhere). */
  type Run = { r: ReturnType<typeof linearKernel>; set: GradSet | undefined };
  const call = (h: tf.Tensor, w: tf.Tensor, b: tf.Tensor | null, grads: boolean, gradOutput?: Float32Array): Run => {
    const set = grads && held ? lendGradSet(rows, dim, cols, held) : undefined;
    const out = set ? { gradHidden: set.h, gradWeight: set.w, ...(b ? { gradBias: set.b } : {}) } : undefined;
    try {
      // the inputs' values right before the call (views of the wasm heap there: see f32Now)
      const r = linearKernel({
        ...options, ...teacherArgs(), hidden: f32Now(h), weight: f32Now(w), ...(b ? { bias: f32Now(b) } : {}), rows, dim, cols,
        ...(y ? { labels: y } : {}), computeHiddenGrad: grads, computeWeightGrad: grads,
        ...(gradOutput ? { gradOutput } : {}), ...(out ? { out } : {}),
      });
      return { r, set };
    } catch (e) {
      if (set) set.lent = false;
      throw e;
    }
  };
  // The gradients as tensors, times the scalar upstream gradient (1 under optimizer.minimize: no
  // multiply); the lent set is given back once the tensors exist (holding copies on wasm, the arrays on cpu).
  const gradTensors = ({ r, set }: Run, b: tf.Tensor | null, dy: number): tf.Tensor[] => {
    const scaled = (g: Float32Array): Float32Array => {
      if (dy !== 1) for (let i = 0; i < g.length; i++) g[i]! *= dy;
      return g;
    };
    try {
      const gs: tf.Tensor[] = [tf.tensor2d(scaled(r.gradHidden!), [rows, dim]), tf.tensor2d(scaled(r.gradWeight!), [dim, cols])];
      if (b) gs.push(tf.tensor1d(scaled(r.gradBias!)));
      if (set) set.held = gs.map((t) => t.dataId);
      return gs;
    } finally {
      if (set) set.lent = false;
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
