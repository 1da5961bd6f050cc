/**
 * Distiller: train a student from a teacher with the fused distillation loss, in the shape Keras
 * users know (`new Distiller({ teacher, student, ... }).fit(x, y, ...)`), typed.
 * `alpha` weighs the soft (distillation) term; the Keras example puts its alpha on the hard term.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import cliProgress from 'cli-progress';
import { distillationLoss, type TfDistillationLossOptions } from '../tfjs/ops.js';
import { topkDistillationLoss } from '../tfjs/topk-ops.js';
import { linearDistillationLoss } from '../tfjs/linear-ops.js';
import { fusedHeadPlan, type FusedHeadPlan } from './fused-head.js';
import type { MissingMass, TopKTeacher } from '../kernels/topk-types.js';
import { checkKnownKeys, describe, optionalBool, optionalChoice, requireObject } from '../kernels/validate.js';
import { TF_DISTILL_OPTION_KEYS } from '../tfjs/ops.js';
import { accuracy, agreement, argmaxRows, expectedCalibrationError } from './metrics.js';
import { datasetBatches, isBatchDataset, tensorBatches, type BatchDataset, type EpochBatches, type TopKBatch } from './batch-source.js';
import { readFitOptions, type FitPlan } from './fit-options.js';
import { labelsArray, type Labels } from './labels.js';

export type { BatchDataset } from './batch-source.js';
export type { Labels } from './labels.js';
import { classificationMetrics, logitsInBatches, modelSize, type ClassificationMetrics, type Latency, type ModelSize } from './evaluation.js';
import { teacherLogitsBatch, type TeacherLogits } from './teacher-cache.js';
import type { FeatureDistillationOptions, HintRegressor } from './feature-distillation.js';
import { alignmentPlan, releaseFailedTape, secondOrderFailure, type AlignmentPlan, type TeacherInputGradients, type ExplanationAlignmentOptions } from './alignment.js';

/** A model: a tfjs LayersModel, or a function from inputs to logits. Both must output logits. */
export type Model = LayersModel | ((x: tf.Tensor) => tf.Tensor);
/** A constant, or a value per epoch (0-based). */
export type Schedule = number | ((epoch: number) => number);
export interface DistillerOptions {
  /**
   * The teacher. May be left out when every fit gets `teacherLogits` (dense, or a top-k teacher
   * from a serving engine); evaluate and explanation alignment need it.
   */
  teacher?: Model;
  student: LayersModel;
  /** Softening temperature, or a schedule (default 4). */
  temperature?: Schedule;
  /** Weight of the soft term in [0, 1], or a schedule (default 0.9). */
  alpha?: Schedule;
  /** 'adam' (default), 'sgd', or any tf.Optimizer. */
  optimizer?: 'adam' | 'sgd' | tf.Optimizer;
  /** For 'adam' / 'sgd' (defaults 1e-3 / 1e-2). */
  learningRate?: number;
  /** Other loss options: divergence, beta, labelSmoothing, scaleByTemperatureSquared, ... */
  loss?: Omit<TfDistillationLossOptions, 'temperature' | 'alpha' | 'reduction' | 'computeTeacherGrad'> & {
    /** With a top-k teacher: what the unlisted columns hold (default 'renormalize'; see docs/served-teacher.md). */
    missingMass?: MissingMass;
  };
  /**
   * Explanation-aligned distillation, off by default: adds `weight · term` to the loss for
   * `inputGradient` (1 − cos between the student's and teacher's input gradients of the teacher's
   * argmax class; needs second-order gradients, see SecondOrderGradientError) and/or
   * `attentionTransfer` (distance between normalised activation maps of named layer pairs; the
   * teacher must be a LayersModel). The teacher must be runnable even with cached `teacherLogits`
   * (which still give the classes): attention transfer runs it every batch; the teacher's input
   * gradients are computed once per fit for a tensor `x` (see `cacheTeacher`). See
   * src/train/alignment.ts for the formulas.
   */
  explanationAlignment?: ExplanationAlignmentOptions;
  /**
   * What the teacher outputs: 'logits' (default). A teacher whose last layer applies softmax is
   * refused (a RangeError naming the layer) unless this says 'probabilities': then log p is used as
   * its logits (softmax(log p) = p, so nothing is lost), as distillationLossFn({ fromLogits: false })
   * does. Cached `teacherLogits` are taken to hold the same kind of output.
   */
  teacherOutput?: OutputKind;
  /** What the student outputs: 'logits' (default) or 'probabilities' (log p is trained as its logits), as for the teacher. */
  studentOutput?: OutputKind;
  /**
   * Feature (hint) distillation, FitNets: weight · Σ_pairs MSE(R(F_s), F_t) between the student's
   * output at a named layer, through a trainable regressor kdfuse creates ('conv1x1', 'linear' or
   * 'none'), and the teacher's output at a named layer. The regressors train with the student
   * (see `featureRegressors`). The teacher must be a LayersModel. See src/train/feature-distillation.ts.
   */
  featureDistillation?: FeatureDistillationOptions;
  /**
   * Train the student's last layer and the loss as one fused native pass (kd linearDistillationLoss):
   * the student must end in a Dense layer without activation on a `[rows, dim]` input; the layers
   * before it run in tfjs and get the hidden state's gradient. The `[rows, classes]` logits are never
   * formed during training, so large vocabularies train in a few tens of MB beyond the weights
   * (docs/fused-head.md). A student that does not qualify gets a RangeError saying why. Default false.
   */
  fusedHead?: boolean;
}

/** A model's output: logits (the default) or probabilities from a final softmax. */
export type OutputKind = 'logits' | 'probabilities';
const OUTPUT_KINDS = ['logits', 'probabilities'] as const;

const DISTILLER_OPTION_KEYS = [
  'teacher', 'student', 'temperature', 'alpha', 'optimizer', 'learningRate', 'loss', 'explanationAlignment', 'teacherOutput', 'studentOutput',
  'featureDistillation', 'fusedHead',
] as const;
const LOSS_OPTION_KEYS = [
  ...TF_DISTILL_OPTION_KEYS.filter((k) => k !== 'temperature' && k !== 'alpha' && k !== 'reduction' && k !== 'computeTeacherGrad'),
  'missingMass',  // the top-k teacher's (teacherLogits: TopKTeacher)
];

/** The name of a LayersModel's output layer when it applies softmax (a Softmax layer or activation 'softmax'), else undefined. */
export function finalSoftmaxLayer(m: LayersModel): string | undefined {
  const layer = m.outputs[0]?.sourceLayer ?? m.layers[m.layers.length - 1];
  if (!layer) return undefined;
  const config = layer.getConfig() as { activation?: unknown };
  return layer.getClassName() === 'Softmax' || config.activation === 'softmax' ? layer.name : undefined;
}

/** Probabilities to logits: log p, with p clipped at 1e-30 so a 0 gives a large negative finite logit. */
const logOf = (p: tf.Tensor): tf.Tensor => tf.log(tf.maximum(p, 1e-30));

export interface EpochLogs {
  epoch: number;
  /** Mean training loss over the epoch: the distillation loss plus the weighted alignment terms, if any. */
  loss: number;
  /** With explanationAlignment or featureDistillation: the mean over the epoch of the weighted extra term(s) (included in `loss`). */
  alignmentLoss?: number;
  temperature: number;
  alpha: number;
  valLoss?: number;
  valAccuracy?: number;
  seconds: number;
}

export interface BatchLogs {
  epoch: number;
  batch: number;
  /** The batch's total loss (distillation plus weighted alignment terms). */
  loss: number;
  /** With explanationAlignment or featureDistillation: the batch's weighted extra term(s), included in `loss`. */
  alignmentLoss?: number;
}

export interface FitOptions {
  epochs?: number;
  batchSize?: number;
  /** Shuffle the rows every epoch with a seeded permutation (default true). */
  shuffle?: boolean;
  seed?: number;
  validationData?: [tf.Tensor, Labels];
  /**
   * Teacher logits cached for `x` (same rows), so training never runs the teacher: dense
   * (cacheTeacherLogits), or a top-k teacher `{ indices, logprobs, rows, k, cols }` as a serving
   * engine returns it, trained with the top-k loss (see docs/served-teacher.md).
   */
  teacherLogits?: TeacherLogits | TopKTeacher;
  callbacks?: {
    onEpochEnd?: (epoch: number, logs: EpochLogs) => void | Promise<void>;
    onBatchEnd?: (batch: number, logs: BatchLogs) => void | Promise<void>;
  };
  /** Stop when `monitor` has not improved by `minDelta` for `patience` epochs. */
  earlyStopping?: { monitor?: 'loss' | 'valLoss' | 'valAccuracy'; patience?: number; minDelta?: number };
  /** 'progress' draws a progress bar on a terminal (default when stderr is a TTY); 'quiet' prints nothing. */
  verbose?: 'progress' | 'quiet';
}

export interface History {
  epochs: EpochLogs[];
  stoppedEarly: boolean;
}

export interface EvaluationReport {
  rows: number;
  studentAccuracy: number;
  teacherAccuracy: number;
  /** Top-1 agreement between student and teacher. */
  agreement: number;
  /** The distillation loss at the Distiller's current temperature and alpha (mean over rows). */
  kdLoss: number;
  studentEce: number;
  teacherEce: number;
  /** The student's per-class precision / recall / F1, macro-F1 and confusion matrix (src/train/evaluation.ts). */
  student: ClassificationMetrics;
  teacher: ClassificationMetrics;
  studentSize: ModelSize;
  /** Absent for a function teacher. */
  teacherSize?: ModelSize;
  /** Teacher bytes / student bytes (how many times smaller the student is); absent for a function teacher. */
  compressionRatio?: number;
  /** Median milliseconds per row over the evaluation batches, with batch size and backend; absent with latency: false. */
  studentLatency?: Latency;
  teacherLatency?: Latency;
}

/** Thrown when a batch gives a NaN or infinite loss; the student keeps its weights from before it. */
export class NonFiniteLossError extends Error {
  constructor(readonly epoch: number, readonly batch: number, readonly loss: number) {
    // described, not templated: a non-number (a tensor, disposed or not) must not make the constructor throw
    super(`the distillation loss is ${typeof loss === 'number' ? loss : describe(loss)} at epoch ${typeof epoch === 'number' ? epoch : describe(epoch)}, batch ${typeof batch === 'number' ? batch : describe(batch)}; ` +
      'training stopped and the student keeps the weights from before this batch');
    this.name = 'NonFiniteLossError';
  }
}

const isLayersModel = (m: unknown): m is LayersModel =>
  typeof m === 'object' && m !== null && typeof (m as LayersModel).predict === 'function' && Array.isArray((m as LayersModel).outputs);

function outputWidth(m: Model): number | undefined {
  if (!isLayersModel(m)) return undefined;
  const shape = m.outputs[0]?.shape;
  return shape ? (shape[shape.length - 1] ?? undefined) : undefined;
}

type TeacherBatch = tf.Tensor2D | TopKBatch;
const isTopK = (t: TeacherLogits | TopKTeacher): t is TopKTeacher => 'indices' in t && 'logprobs' in t;

function checkTopK(t: TopKTeacher, rows: number, width: number | undefined): void {
  const { indices, logprobs, k, cols } = t;
  if (!(indices instanceof Int32Array)) throw new TypeError(`teacherLogits.indices must be an Int32Array, got ${describe(indices)}`);
  if (!(logprobs instanceof Float32Array)) throw new TypeError(`teacherLogits.logprobs must be a Float32Array, got ${describe(logprobs)}`);
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`teacherLogits.k must be an integer >= 1, got ${String(k)}`);
  if (t.rows !== rows) throw new RangeError(`teacherLogits must have one row per row of x (${rows}), got ${t.rows}`);
  if (indices.length !== rows * k || logprobs.length !== rows * k) {
    throw new RangeError(`teacherLogits.indices and .logprobs must hold rows * k = ${rows * k} values, got ${indices.length} and ${logprobs.length}`);
  }
  if (width !== undefined && cols !== width) throw new RangeError(`teacherLogits.cols must be the student's output width ${width}, got ${String(cols)}`);
}

function noTeacher(): never {
  throw new RangeError('this Distiller has no teacher model: give fit teacherLogits (dense or top-k), or the Distiller a teacher');
}

const valueAt = (s: Schedule, epoch: number): number => (typeof s === 'function' ? s(epoch) : s);

export class Distiller {
  readonly teacher: Model;
  readonly student: LayersModel;
  readonly optimizer: tf.Optimizer;
  private readonly temperature: Schedule;
  private readonly alpha: Schedule;
  private readonly lossOptions: NonNullable<DistillerOptions['loss']>;
  private readonly alignment: AlignmentPlan | undefined;
  private epoch = 0;
  private readonly teacherOutput: OutputKind;
  private readonly studentOutput: OutputKind;
  /** Whether this Distiller made its optimizer (from 'adam' or 'sgd'), and so disposes it. */
  private readonly ownsOptimizer: boolean;
  /** With fusedHead: the student split into its body and its final Dense head. */
  private readonly head: FusedHeadPlan | undefined;

  constructor(options: DistillerOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError(`options must be an object, got ${describe(options)}`);
    const o = options as unknown as Record<string, unknown>;
    checkKnownKeys(o, DISTILLER_OPTION_KEYS, 'Distiller');
    if (options.loss !== undefined) checkKnownKeys(requireObject(options.loss, 'loss'), LOSS_OPTION_KEYS, 'Distiller loss');
    const { student } = options;
    const teacher: Model = options.teacher ?? noTeacher;
    if (!isLayersModel(student)) throw new TypeError(`student must be a tf.LayersModel, got ${describe(student)}`);
    if (!isLayersModel(teacher) && typeof teacher !== 'function') {
      throw new TypeError(`teacher must be a tf.LayersModel or a function (x) => logits, got ${describe(teacher)}`);
    }
    const wt = outputWidth(teacher), ws = outputWidth(student);
    if (wt !== undefined && ws !== undefined && wt !== ws) {
      throw new RangeError(`teacher and student must output the same number of classes, got teacher ${wt} and student ${ws}`);
    }
    this.teacherOutput = optionalChoice(o, 'teacherOutput', OUTPUT_KINDS, 'logits');
    this.studentOutput = optionalChoice(o, 'studentOutput', OUTPUT_KINDS, 'logits');
    // A softmax output trained on as if it were logits learns the wrong thing without any error:
    // refused unless the caller says the model outputs probabilities.
    for (const [role, model, kind] of [['teacher', teacher, this.teacherOutput], ['student', student, this.studentOutput]] as const) {
      const layer = isLayersModel(model) ? finalSoftmaxLayer(model) : undefined;
      if (layer !== undefined && kind === 'logits') {
        throw new RangeError(`${role}'s last layer '${layer}' applies softmax, so it outputs probabilities, not the logits the ` +
          `distillation loss needs: remove the softmax (recommended), or pass ${role}Output: 'probabilities' to use log p as logits`);
      }
    }
    if (options.explanationAlignment !== undefined && (this.teacherOutput === 'probabilities' || this.studentOutput === 'probabilities')) {
      throw new RangeError("explanationAlignment needs teacher and student that output logits (teacherOutput and studentOutput 'logits')");
    }
    this.teacher = teacher;
    this.student = student;
    this.temperature = options.temperature ?? 4;
    this.alpha = options.alpha ?? 0.9;
    this.lossOptions = options.loss ?? {};
    const opt = options.optimizer ?? 'adam';
    if (opt !== 'adam' && opt !== 'sgd' && !(opt instanceof tf.Optimizer)) throw new TypeError(`optimizer must be 'adam', 'sgd' or a tf.Optimizer, got ${describe(opt)}`);
    const fused = optionalBool(o, 'fusedHead', false);
    if (fused && (options.explanationAlignment !== undefined || options.featureDistillation !== undefined)) {
      throw new RangeError('fusedHead cannot be combined with explanationAlignment or featureDistillation: they need the student\'s logits or inner layers, which the fused head never forms as tensors');
    }
    if (fused && this.studentOutput !== 'logits') throw new RangeError("fusedHead needs a student that outputs logits (studentOutput 'logits')");
    this.head = fused ? fusedHeadPlan(student) : undefined;
    // last of the checks: it creates the feature regressors' variables
    this.alignment = alignmentPlan(options.explanationAlignment, teacher, student, options.featureDistillation);
    if (opt === 'adam') this.optimizer = tf.train.adam(options.learningRate ?? 1e-3);
    else if (opt === 'sgd') this.optimizer = tf.train.sgd(options.learningRate ?? 1e-2);
    else this.optimizer = opt;
    this.ownsOptimizer = !(opt instanceof tf.Optimizer);
  }

  /**
   * Frees the optimizer's state tensors (Adam's moments) when this Distiller made the optimizer; an
   * optimizer you passed in stays yours. The teacher and student are never disposed here.
   */
  dispose(): void {
    if (this.ownsOptimizer) this.optimizer.dispose();
    this.alignment?.dispose();
  }

  /**
   * The feature-distillation regressors (kernel [in, out] and bias variables per pair; none for
   * regressor 'none'), trained with the student. To keep them, read or save their values before
   * `dispose()`, which frees them; the student never contains them.
   */
  get featureRegressors(): readonly HintRegressor[] {
    return this.alignment?.regressors ?? [];
  }

  /** The teacher's logits for a batch (no gradient flows into the teacher). */
  private teacherLogits(x: tf.Tensor): tf.Tensor2D {
    const t = isLayersModel(this.teacher) ? (this.teacher.predict(x) as tf.Tensor) : this.teacher(x);
    return (this.teacherOutput === 'probabilities' ? logOf(t) : t) as tf.Tensor2D;
  }

  /** Cached teacher outputs for a batch, as logits. */
  private cachedTeacherLogits(cache: TeacherLogits, idx: Int32Array): tf.Tensor2D {
    const t = teacherLogitsBatch(cache, idx);
    if (this.teacherOutput === 'logits') return t;
    const l = logOf(t) as tf.Tensor2D;
    t.dispose();
    return l;
  }

  /** The student's logits in training mode. */
  private studentLogits(x: tf.Tensor): tf.Tensor2D {
    const s = this.student.apply(x, { training: true }) as tf.Tensor;
    return (this.studentOutput === 'probabilities' ? logOf(s) : s) as tf.Tensor2D;
  }

  private checkWidths(s: tf.Tensor, t: tf.Tensor): void {
    if (s.shape[1] !== t.shape[1]) {
      throw new RangeError(`teacher and student must output the same number of classes, got teacher ${t.shape[1]} and student ${s.shape[1]}`);
    }
  }

  private lossOf(s: tf.Tensor2D, t: TeacherBatch, y: Int32Array, epoch: number): tf.Scalar {
    const { missingMass, ...dense } = this.lossOptions;
    const temperature = valueAt(this.temperature, epoch), alpha = valueAt(this.alpha, epoch);
    if (!(t instanceof tf.Tensor)) {
      return topkDistillationLoss(s, t.indices, t.logprobs, y, {
        ...dense, ...(missingMass ? { missingMass } : {}), temperature, alpha,
      }) as tf.Scalar;
    }
    this.checkWidths(s, t);
    return distillationLoss(s, t, y, { ...dense, temperature, alpha }) as tf.Scalar;
  }

  /** With fusedHead: the loss from the body's hidden state through the fused Dense head. */
  private fusedLossOf(head: FusedHeadPlan, x: tf.Tensor, t: TeacherBatch, y: Int32Array, epoch: number): tf.Scalar {
    const { missingMass, ...dense } = this.lossOptions;
    const temperature = valueAt(this.temperature, epoch), alpha = valueAt(this.alpha, epoch);
    const hidden = head.hidden(x);
    const rows = hidden.shape[0];
    if (t instanceof tf.Tensor) {
      if (t.shape[1] !== head.cols) {
        throw new RangeError(`teacher and student must output the same number of classes, got teacher ${t.shape[1]} and student ${head.cols}`);
      }
      return linearDistillationLoss(hidden, head.kernel(), head.bias(), t, y, { ...dense, temperature, alpha }) as tf.Scalar;
    }
    const teacher = { indices: t.indices, logprobs: t.logprobs, rows, k: t.k, cols: head.cols };
    return linearDistillationLoss(hidden, head.kernel(), head.bias(), teacher, y, {
      ...dense, ...(missingMass ? { missingMass } : {}), temperature, alpha,
    }) as tf.Scalar;
  }

  /**
   * One optimizer step; returns the batch loss (and the weighted alignment term, when configured),
   * or throws NonFiniteLossError before changing weights.
   */
  private step(xb: tf.Tensor, tb: TeacherBatch, yb: Int32Array, epoch: number, batch: number, teacherGrad?: TeacherInputGradients): { loss: number; alignment?: number } {
    const plan = this.alignment;
    const vars = [...this.student.trainableWeights.map((w) => w.read() as tf.Variable), ...(plan?.variables ?? [])];
    let alignment: number | undefined;
    const head = this.head;
    let lossFn = head ? () => this.fusedLossOf(head, xb, tb, yb, epoch) : () => this.lossOf(this.studentLogits(xb), tb, yb, epoch);
    let secondOrder = false;
    if (plan) {
      if (!(tb instanceof tf.Tensor)) throw new RangeError('explanationAlignment needs the dense teacher logits or the teacher model, not a top-k teacher');
      const targets = plan.teacherTargets(xb, tb, epoch, teacherGrad);  // outside the tape: constants
      secondOrder = targets.inputGrad !== undefined || targets.camMaps !== undefined;
      lossFn = () => {
        const { logits, term } = plan.studentPass(xb, targets, epoch);
        const kd = this.lossOf(logits, tb, yb, epoch);
        alignment = term ? term.dataSync()[0]! : 0;
        return term ? tf.add(kd, term) as tf.Scalar : kd;
      };
    }
    let value: tf.Scalar, grads: tf.NamedTensorMap;
    try {
      ({ value, grads } = tf.variableGrads(lossFn, vars));
    } catch (e) {
      releaseFailedTape();
      throw secondOrder ? secondOrderFailure(e) : e;  // tfjs kernels without a second-order gradient, named
    }
    const loss = value.dataSync()[0]!;
    if (!Number.isFinite(loss)) {
      tf.dispose([value, ...Object.values(grads)]);
      throw new NonFiniteLossError(epoch, batch, loss);
    }
    this.optimizer.applyGradients(grads);
    tf.dispose([value, ...Object.values(grads)]);
    return alignment === undefined ? { loss } : { loss, alignment };
  }

  /**
   * Trains the student: `fit(x, y, options)` with tensors (rows shuffled with a seed each epoch), or
   * `fit(dataset, options)` with a tf.data.Dataset of `{ xs, ys }` batches (ys: integer labels, or
   * one-hot rows), taken in the dataset's own order.
   */
  async fit(x: tf.Tensor, y: Labels, options?: FitOptions): Promise<History>;
  async fit(dataset: BatchDataset, options?: FitOptions): Promise<History>;
  async fit(x: tf.Tensor | BatchDataset, yOrOptions?: Labels | FitOptions, maybeOptions?: FitOptions): Promise<History> {
    const isDataset = isBatchDataset(x);
    if (!(x instanceof tf.Tensor) && !isDataset) throw new TypeError(`x must be a tf.Tensor or a tf.data.Dataset, got ${describe(x)}`);
    const plan = readFitOptions(isDataset ? (yOrOptions as FitOptions | undefined) : maybeOptions);
    const teacherGrads: { all?: TeacherInputGradients } = {};  // disposed when fit ends
    const epochBatches = isDataset ? this.datasetSource(x, plan) : this.tensorSource(x as tf.Tensor, yOrOptions as Labels, plan, teacherGrads);
    const history: History = { epochs: [], stoppedEarly: false };
    try {
      for (let e = 0; e < plan.epochs; e++) {
        const epoch = this.epoch++;
        const logs = await this.trainEpoch(epochBatches, epoch, plan);
        history.epochs.push(logs);
        await plan.callbacks.onEpochEnd?.(epoch, logs);
        if (plan.earlyStopping.update(logs)) {
          history.stoppedEarly = true;
          break;
        }
      }
    } finally {
      if (teacherGrads.all) tf.dispose([teacherGrads.all.inputGrad, teacherGrads.all.oneHot]);
    }
    return history;
  }

  /** fit's batches from a tf.data.Dataset: the teacher runs per batch (no cached logits to align with). */
  private datasetSource(ds: BatchDataset, plan: FitPlan): (epoch: number) => EpochBatches {
    if (plan.teacherLogits) throw new RangeError('teacherLogits are row-aligned with a tensor x; with a dataset the teacher runs per batch');
    return datasetBatches(ds);
  }

  /**
   * fit's batches from the rows of x, with the cached teacher logits (dense or top-k) when given.
   * The teacher is frozen: its input gradients for the alignment term are computed once, at the
   * first batch whose weight is > 0 (never, while it stays 0), into `grads.all`.
   */
  private tensorSource(x: tf.Tensor, y: Labels, plan: FitPlan, grads: { all?: TeacherInputGradients }): (epoch: number) => EpochBatches {
    const rows = x.shape[0]!;
    const labels = labelsArray(y, rows, 'y');
    const t = plan.teacherLogits;
    const topk = t && isTopK(t) ? t : undefined;
    const dense = topk ? undefined : t as TeacherLogits | undefined;
    if (topk) {
      checkTopK(topk, rows, outputWidth(this.student));
      if (this.alignment) throw new RangeError('explanationAlignment needs the dense teacher logits or the teacher model, not a top-k teacher');
    } else if (dense && dense.rows !== rows) {
      throw new RangeError(`teacherLogits must have one row per row of x (${rows}), got ${dense.rows}`);
    }
    const align = this.alignment;
    const teacherGradients = align?.cachesTeacherInputGradients
      ? (epoch: number) => (align.weights(epoch).inputGradient > 0
        ? (grads.all ??= align.teacherInputGradients(x, (idx) => (dense
          ? this.cachedTeacherLogits(dense, idx)
          : this.teacherLogits(tf.gather(x, tf.tensor1d(idx, 'int32')))), Math.max(plan.batchSize, 256)))
        : undefined)
      : undefined;
    return tensorBatches({
      x, labels, batchSize: plan.batchSize, shuffle: plan.shuffle, seed: plan.seed,
      ...(dense ? { denseRows: (idx: Int32Array) => this.cachedTeacherLogits(dense, idx) } : {}),
      ...(topk ? { topk } : {}),
      ...(teacherGradients ? { teacherGradients } : {}),
    });
  }

  /** One epoch: every batch's step (progress bar, onBatchEnd), then the epoch's figures and validation. */
  private async trainEpoch(epochBatches: (epoch: number) => EpochBatches, epoch: number, plan: FitPlan): Promise<EpochLogs> {
    const started = performance.now();  // the epoch's seconds include making its order, as before the split
    const source = epochBatches(epoch);
    const bar = plan.quiet || source.total === 0 ? undefined : new cliProgress.SingleBar(
      { format: `epoch ${epoch + 1}/${plan.epochs} [{bar}] {value}/{total} batches | loss {loss}`, hideCursor: true, clearOnComplete: false, stream: process.stderr },
      cliProgress.Presets.shades_classic,
    );
    bar?.start(source.total, 0, { loss: '-' });
    let sum = 0, seen = 0, alignSum = 0;
    for (let b = 0; ; b++) {
      const batch = await source.next();
      if (!batch) break;
      try {
        const { loss, alignment } = tf.tidy(() => this.step(batch.xb, batch.tk ?? batch.tb ?? this.teacherLogits(batch.xb), batch.yb, epoch, b, batch.gt));
        sum += loss * batch.yb.length;
        seen += batch.yb.length;
        alignSum += (alignment ?? 0) * batch.yb.length;
        bar?.update(b + 1, { loss: loss.toFixed(4) });
        await plan.callbacks.onBatchEnd?.(b, alignment === undefined ? { epoch, batch: b, loss } : { epoch, batch: b, loss, alignmentLoss: alignment });
      } finally {
        tf.dispose(batch.owned);
      }
    }
    bar?.stop();
    const logs: EpochLogs = {
      epoch,
      loss: seen ? sum / seen : NaN,
      temperature: valueAt(this.temperature, epoch),
      alpha: valueAt(this.alpha, epoch),
      seconds: (performance.now() - started) / 1000,
    };
    if (this.alignment) logs.alignmentLoss = seen ? alignSum / seen : NaN;
    if (plan.validation) {
      const r = this.evaluate(plan.validation.x, plan.validation.labels, { epoch, latency: false });
      logs.valLoss = r.kdLoss;
      logs.valAccuracy = r.studentAccuracy;
    }
    return logs;
  }

  /**
   * Student and teacher accuracy, their top-1 agreement, the KD loss and calibration (ECE) on x;
   * per-class precision / recall / F1, macro-F1 and confusion matrices; model sizes and the
   * compression ratio; and (unless `latency: false`) inference latency per row of each model,
   * measured on this evaluation pass (see src/train/evaluation.ts).
   */
  evaluate(x: tf.Tensor, y: Labels, options: { batchSize?: number; epoch?: number; latency?: boolean } = {}): EvaluationReport {
    if (!(x instanceof tf.Tensor)) throw new TypeError(`x must be a tf.Tensor, got ${describe(x)}`);
    const o = requireObject(options, 'options');
    checkKnownKeys(o, ['batchSize', 'epoch', 'latency'], 'Distiller.evaluate');
    const rows = x.shape[0]!;
    const labels = labelsArray(y, rows, 'y');
    const batchSize = options.batchSize ?? 256;
    if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be an integer >= 1, got ${String(batchSize)}`);
    const epoch = options.epoch ?? Math.max(0, this.epoch - 1);
    const timed = optionalBool(o, 'latency', true);
    const sRun = logitsInBatches(this.student, x, batchSize, timed), tRun = logitsInBatches(this.teacher, x, batchSize, timed);
    // a model declared to output probabilities is evaluated on log p, as it is trained
    const asLogits = (v: Float32Array, kind: OutputKind) => (kind === 'probabilities' ? v.map((p) => Math.log(Math.max(p, 1e-30))) : v);
    const s = asLogits(sRun.logits, this.studentOutput), t = asLogits(tRun.logits, this.teacherOutput);
    const cols = s.length / rows;
    if (t.length !== s.length) {
      throw new RangeError(`teacher and student must output the same number of classes, got teacher ${t.length / rows} and student ${cols}`);
    }
    const kdLoss = tf.tidy(() => this.lossOf(tf.tensor2d(s, [rows, cols]), tf.tensor2d(t, [rows, cols]), labels, epoch).dataSync()[0]!);
    const ps = argmaxRows(s, rows, cols), pt = argmaxRows(t, rows, cols);
    const studentSize = modelSize(this.student)!, teacherSize = modelSize(this.teacher);
    const report: EvaluationReport = {
      rows,
      studentAccuracy: accuracy(ps, labels),
      teacherAccuracy: accuracy(pt, labels),
      agreement: agreement(ps, pt),
      kdLoss,
      studentEce: expectedCalibrationError(s, rows, cols, labels),
      teacherEce: expectedCalibrationError(t, rows, cols, labels),
      student: classificationMetrics(ps, labels, cols),
      teacher: classificationMetrics(pt, labels, cols),
      studentSize,
    };
    if (teacherSize) {
      report.teacherSize = teacherSize;
      if (studentSize.bytes > 0) report.compressionRatio = teacherSize.bytes / studentSize.bytes;
    }
    if (sRun.latency) report.studentLatency = sRun.latency;
    if (tRun.latency) report.teacherLatency = tRun.latency;
    return report;
  }
}
