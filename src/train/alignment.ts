/**
 * Explanation-aligned distillation: extra loss terms that ask the student to match *why* the
 * teacher decides, not only *what* it outputs. Two terms, both off unless asked for:
 *
 * - inputGradient (e²KD-style, Parchami-Araghi et al., ECCV 2024, with input gradients standing in
 *   for Grad-CAM): c_i = the teacher's argmax class of row i,
 *   g_s = d s_{c_i}(x)/dx, g_t = d t_{c_i}(x)/dx, term = mean_i (1 − cos(g_s_i, g_t_i)).
 *   Its derivative w.r.t. the student's weights is a second-order gradient (tf.grad inside
 *   tf.variableGrads); see SecondOrderGradientError for what tfjs 4.22 cannot differentiate.
 * - gradCam (e²KD with Grad-CAM maps): per layer pair, M = ReLU(Σ_k α_k A_k) for the teacher's
 *   class (see src/explain/grad-cam.ts), term = mean_i (1 − cos(M_s_i, M_t_i)), summed over pairs.
 *   Second order, like inputGradient.
 * - attentionTransfer (Zagoruyko & Komodakis, ICLR 2017): per layer pair, Q = mean over channels
 *   of |A|^p, one row per example, L2-normalised; term = mean_i ||Q_s_i − Q_t_i||_2, summed over
 *   pairs. First-order only.
 *
 * Norms are smoothed, ||v||_ε = sqrt(Σ v² + ε) with ε = ALIGNMENT_EPS, so that an all-zero
 * gradient or activation map (a dead ReLU row) gives a finite value and a finite gradient instead
 * of 0/0 = NaN; ε is far below the squared norm of any real gradient or map in float32 work.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import type { SymbolicTensor } from '@tensorflow/tfjs-layers';
import { checkKnownKeys, describe } from '../kernels/validate.js';
import { requireNumericTensor } from '../tfjs/tensors.js';
import { findLayer, isLayersModel, subModel } from '../explain/layers.js';
import { gradCamLayer, gradCamMaps } from '../explain/grad-cam.js';
import { featurePlan, hintLoss, type HintRegressor } from './feature-distillation.js';

/** A constant, or a value per epoch (0-based). (The same shape as the Distiller's Schedule.) */
type Schedule = number | ((epoch: number) => number);
/** A teacher: a LayersModel or a function from inputs to logits. */
type Model = LayersModel | ((x: tf.Tensor) => tf.Tensor);

export interface ExplanationAlignmentOptions {
  /**
   * e²KD-style input-gradient alignment: weight · mean_i (1 − cos(g_s_i, g_t_i)). Needs second-order
   * gradients. `cacheTeacher` (default true): with a tensor `x`, the teacher's input gradients are
   * computed once per `fit` for every row (the teacher is frozen), costing rows × features floats;
   * false computes them per batch. With a dataset they are always computed per batch.
   */
  inputGradient?: { weight: Schedule; cacheTeacher?: boolean };
  /**
   * Attention transfer: weight · Σ_pairs mean_i ||Q_s_i − Q_t_i||_2 with Q = normalised mean_c |A|^p.
   * `pairs` name a teacher layer and a student layer with outputs [N, ...spatial, C] of the same
   * spatial size (channels may differ). `p` defaults to 2. The teacher must be a LayersModel.
   */
  attentionTransfer?: { weight: Schedule; pairs: Array<{ teacher: string; student: string }>; p?: number };
  /**
   * e²KD with Grad-CAM maps: weight · Σ_pairs mean_i (1 − cos(M_s_i, M_t_i)), M the Grad-CAM map
   * (kdfuse/explain's gradCamMaps) of the named layer for the teacher's argmax class. Both layers
   * must output [N, h, w, C] of the same h × w (channels may differ); the teacher must be a
   * LayersModel. Needs second-order gradients through the student's layers after the named one
   * (see SecondOrderGradientError).
   */
  gradCam?: { weight: Schedule; pairs: Array<{ teacher: string; student: string }> };
}

/** The ε under the square root of every norm in the alignment terms (see the file comment). */
export const ALIGNMENT_EPS = 1e-12;

/** ||row||_ε for each row of a [N, D] tensor, as [N, 1]. */
function smoothNorm(v: tf.Tensor2D): tf.Tensor2D {
  return tf.sqrt(tf.add(tf.sum(tf.square(v), 1, true), ALIGNMENT_EPS)) as tf.Tensor2D;
}

/** [N, ...] -> [N, D]: each example one row. */
const rows = (t: tf.Tensor): tf.Tensor2D => tf.reshape(t, [t.shape[0]!, -1]) as tf.Tensor2D;

/** Per-row cosine similarity of two [N, ...] tensors of the same shape, as [N]. */
export function rowCosine(a: tf.Tensor, b: tf.Tensor): tf.Tensor1D {
  requireNumericTensor(a, 'a');
  requireNumericTensor(b, 'b');
  if (a.rank < 1 || !tf.util.arraysEqual(a.shape, b.shape)) {
    throw new RangeError(`a and b must have the same shape [N, ...], got [${a.shape.join(', ')}] and [${b.shape.join(', ')}]`);
  }
  return tf.tidy(() => {
    const ra = rows(a), rb = rows(b);
    const dot = tf.sum(tf.mul(ra, rb), 1, true);
    return tf.reshape(tf.div(dot, tf.mul(smoothNorm(ra), smoothNorm(rb))), [ra.shape[0]]) as tf.Tensor1D;
  });
}

/** The input-gradient term: mean over rows of 1 − cos(g_s_i, g_t_i), each row's gradient flattened. */
export function inputGradientLoss(studentGrad: tf.Tensor, teacherGrad: tf.Tensor): tf.Scalar {
  requireNumericTensor(studentGrad, 'studentGrad');
  requireNumericTensor(teacherGrad, 'teacherGrad');
  if (!tf.util.arraysEqual(studentGrad.shape, teacherGrad.shape)) {
    throw new RangeError(`student and teacher input gradients must have the same shape, got [${studentGrad.shape.join(', ')}] and [${teacherGrad.shape.join(', ')}]`);
  }
  return tf.tidy(() => tf.mean(tf.sub(1, rowCosine(studentGrad, teacherGrad))) as tf.Scalar);
}

/**
 * The Grad-CAM alignment term of one layer pair: mean over rows of 1 − cos(M_s_i, M_t_i), each
 * row's map [h, w] flattened. The maps come from gradCamMaps for the teacher's class; the student's
 * is differentiable in its weights (a second-order gradient), the teacher's a constant.
 */
export function gradCamAlignmentLoss(studentMaps: tf.Tensor, teacherMaps: tf.Tensor, pair = 'Grad-CAM pair'): tf.Scalar {
  requireNumericTensor(studentMaps, 'studentMaps');
  requireNumericTensor(teacherMaps, 'teacherMaps');
  if (typeof pair !== 'string') pair = 'Grad-CAM pair';
  if (!tf.util.arraysEqual(studentMaps.shape, teacherMaps.shape)) {
    throw new RangeError(`${pair}: student and teacher Grad-CAM maps must have the same shape, got student [${studentMaps.shape.join(', ')}] and teacher [${teacherMaps.shape.join(', ')}]`);
  }
  return tf.tidy(() => tf.mean(tf.sub(1, rowCosine(studentMaps, teacherMaps))) as tf.Scalar);
}

/** One-hot rows of the teacher's top class: the class both input gradients are taken for. */
function teacherOneHot(teacherLogits: tf.Tensor2D): tf.Tensor2D {
  // tidy: teacherTargets is public and may be called outside fit's tidy (the argMax and int one-hot would leak)
  return tf.tidy(() => tf.cast(tf.oneHot(tf.argMax(teacherLogits, 1), teacherLogits.shape[1]!), 'float32') as tf.Tensor2D);
}

/**
 * d f(x)_{c_i} / dx for each row i, where `oneHot` [N, C] marks c_i: the gradient of Σ_i f(x)_{i,c_i}
 * w.r.t. x, which is row i's own class-score gradient as long as rows do not interact (true for
 * any model without batch statistics). Inside a gradient tape this is differentiable again (the
 * backward ops are recorded on the outer tape), which is how the student's term is trained.
 */
export function classInputGradient(f: (x: tf.Tensor) => tf.Tensor, x: tf.Tensor, oneHot: tf.Tensor2D): tf.Tensor {
  if (typeof f !== 'function') throw new TypeError(`f must be a function (x) => logits, got ${describe(f)}`);
  requireNumericTensor(x, 'x');
  requireNumericTensor(oneHot, 'oneHot');
  if (oneHot.rank !== 2 || oneHot.shape[0] !== x.shape[0]) {
    throw new RangeError(`oneHot must be [N, classes] with N = x.shape[0] = ${x.shape[0]}, got [${oneHot.shape.join(', ')}]`);
  }
  return tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(f(xx), oneHot)))(x);
}

/**
 * |a|^p elementwise. p = 2 is a square. Other p must avoid pow(0, p − 1) = ∞ in the gradient
 * (0 · ∞ = NaN for p < 1): where a = 0 the base is replaced by 1 and the result masked to 0. The
 * mask is step(|a|) (1 where a ≠ 0), because tf.equal has no registered gradient and would break
 * the tape.
 */
function absPow(a: tf.Tensor, p: number): tf.Tensor {
  if (p === 2) return tf.square(a);
  const abs = tf.abs(a), nonzero = tf.step(abs);
  return tf.mul(nonzero, tf.pow(tf.add(abs, tf.sub(1, nonzero)), p));
}

/** Zagoruyko & Komodakis's attention map: Q = mean over the last (channel) axis of |A|^p, one row per example, L2-normalised. */
export function attentionMap(activation: tf.Tensor, p = 2): tf.Tensor2D {
  requireNumericTensor(activation, 'activation');
  if (activation.rank < 3 || activation.size === 0) {
    throw new RangeError(`an attention map needs a non-empty activation [N, ...spatial, C], got shape [${activation.shape.join(', ')}]`);
  }
  checkExponent(p);
  return tf.tidy(() => {
    const q = rows(tf.mean(absPow(activation, p), -1));
    return tf.div(q, smoothNorm(q)) as tf.Tensor2D;
  });
}

/** The exponent p of |A|^p: a finite number > 0 (at 0 every map is constant). */
function checkExponent(p: unknown): void {
  if (typeof p !== 'number') throw new TypeError(`p must be a number, got ${describe(p)}`);
  if (!(Number.isFinite(p) && p > 0)) throw new RangeError(`p must be a finite number > 0, got ${p}`);
}

/** The attention-transfer term of one layer pair: mean over rows of ||Q_s_i − Q_t_i||_ε (the 2-norm, not squared). */
export function attentionTransferLoss(studentActivation: tf.Tensor, teacherActivation: tf.Tensor, p = 2, pair = 'attention pair'): tf.Scalar {
  requireNumericTensor(studentActivation, 'studentActivation');
  requireNumericTensor(teacherActivation, 'teacherActivation');
  if (typeof pair !== 'string') pair = 'attention pair';
  const ss = studentActivation.shape.slice(1, -1), ts = teacherActivation.shape.slice(1, -1);
  if (studentActivation.shape[0] !== teacherActivation.shape[0] || !tf.util.arraysEqual(ss, ts)) {
    throw new RangeError(`${pair}: student and teacher activations must have the same batch and spatial size, got student [${studentActivation.shape.join(', ')}] and teacher [${teacherActivation.shape.join(', ')}]`);
  }
  return tf.tidy(() => tf.mean(smoothNorm(tf.sub(attentionMap(studentActivation, p), attentionMap(teacherActivation, p)))) as tf.Scalar);
}

/**
 * Thrown (at the first batch, before any weight changes) when tfjs cannot take the second-order
 * gradient that the input-gradient term needs. Found with tfjs 4.22: `MaxPoolGrad` and
 * `AvgPoolGrad` (the backward kernels of max/average pooling) have no registered gradient on any
 * backend; on the wasm backend `Conv2DBackpropFilter` is not registered at all, so conv students
 * cannot be trained there even without alignment. Dense (matMul + ReLU) and conv2d + ReLU models
 * without pooling work on cpu.
 */
export class SecondOrderGradientError extends Error {
  constructor(readonly kernel: string, readonly backend: string, message: string, readonly cause?: unknown) {
    // a message that is not a string is described, not converted: String() of a disposed tensor throws
    super(typeof message === 'string' ? message : describe(message));
    this.name = 'SecondOrderGradientError';
  }
}

/** Turns tfjs's "no gradient for kernel X" / "kernel X not registered" into a SecondOrderGradientError; other errors pass through. */
export function secondOrderFailure(e: unknown): unknown {
  const msg = e instanceof Error ? e.message : '';
  const backend = tf.getBackend();
  const noGrad = /gradient function not found for (\w+)/.exec(msg);
  if (noGrad) {
    const k = noGrad[1]!;
    return new SecondOrderGradientError(k, backend,
      `explanationAlignment.inputGradient and .gradCam need the second-order gradient of the student, and tfjs has no gradient registered for the kernel '${k}' ` +
      `(the backward pass of ${k.replace(/Grad$/, '')}), so the term cannot be trained for this student; ` +
      'use explanationAlignment.attentionTransfer instead (it needs only first-order gradients), or a student without that op (e.g. strided conv2d instead of pooling)', e);
  }
  const missing = /Kernel '(\w+)' not registered for backend '(\w+)'/.exec(msg);
  if (missing) {
    const k = missing[1]!;
    return new SecondOrderGradientError(k, missing[2]!,
      `explanationAlignment (inputGradient, gradCam): the kernel '${k}' is not registered for the tfjs '${missing[2]}' backend, so the student's gradient cannot be computed there ` +
      `(for '${k}' this fails even without alignment); use the 'cpu' backend`, e);
  }
  return e;
}

/**
 * Disposes what a failed tf.variableGrads left on tfjs's gradient tape. tfjs 4.22 keeps a clone of
 * every tensor the backward pass needs and frees them only when the backward pass succeeds, so an
 * error in it (such as a missing second-order gradient) would leak them all.
 */
export function releaseFailedTape(): void {
  const state = (tf.engine() as unknown as { state: { gradientDepth: number; activeTape: Array<{ saved?: tf.Tensor[] }> | null } }).state;
  if (state.gradientDepth !== 0 || !state.activeTape) return;  // only when no gradient computation is still in flight
  for (const node of state.activeTape) for (const t of node.saved ?? []) t.dispose();
  state.activeTape = null;
}

/** What the teacher contributes to a batch's alignment terms, computed outside the gradient tape (constants). */
export interface TeacherTargets {
  /** The teacher's argmax class per row (for inputGradient and gradCam). */
  oneHot?: tf.Tensor2D;
  inputGrad?: tf.Tensor;
  activations?: tf.Tensor[];
  /** The teacher's features at the featureDistillation pairs. */
  features?: tf.Tensor[];
  /** The teacher's Grad-CAM maps at the gradCam pairs. */
  camMaps?: tf.Tensor3D[];
}

/** The teacher's input gradients and the (one-hot) classes they are for, row-aligned. */
export interface TeacherInputGradients {
  inputGrad: tf.Tensor;
  oneHot: tf.Tensor2D;
}

/** The weight of each extra loss term at an epoch (0 when not configured). */
export interface TermWeights {
  inputGradient: number;
  attentionTransfer: number;
  gradCam: number;
  featureDistillation: number;
}

/** The validated alignment and feature-distillation options, with the intermediate-output models built once. */
export interface AlignmentPlan {
  /** Weights at an epoch, checked (finite, >= 0); 0 when a term is not configured. */
  weights(epoch: number): TermWeights;
  /**
   * The teacher's side for a batch (no tape; the teacher gets no parameter gradients). `cached`: this
   * batch's rows of teacherInputGradients, when the caller computed them once for all rows.
   */
  teacherTargets(x: tf.Tensor, teacherLogits: tf.Tensor2D, epoch: number, cached?: TeacherInputGradients): TeacherTargets;
  /** Whether the input-gradient term is configured and its teacher gradients may be computed once per fit. */
  readonly cachesTeacherInputGradients: boolean;
  /**
   * g_t for every row of x, computed `batchSize` rows at a time (the teacher is frozen, so it never
   * changes), with the one-hot classes they were taken for: the student's side must use the very
   * same classes, not ones recomputed from logits of another batching that could break a near-tie
   * the other way.
   */
  teacherInputGradients(x: tf.Tensor, teacherLogits: (rows: Int32Array) => tf.Tensor2D, batchSize: number): TeacherInputGradients;
  /** Inside the tape: the student's logits and the weighted sum of the active terms (null if none). */
  studentPass(x: tf.Tensor, targets: TeacherTargets, epoch: number): { logits: tf.Tensor2D; term: tf.Scalar | null };
  /** Trainable variables trained beside the student's (the feature-distillation regressors). */
  readonly variables: tf.Variable[];
  /** The feature-distillation regressors (empty without featureDistillation). */
  readonly regressors: HintRegressor[];
  /** Frees the regressors' variables. */
  dispose(): void;
}

function checkWeight(w: unknown, name: string): Schedule {
  if (typeof w === 'function') return w as Schedule;
  if (typeof w !== 'number') throw new TypeError(`${name} must be a number or a function (epoch) => number, got ${describe(w)}`);
  if (!Number.isFinite(w) || w < 0) throw new RangeError(`${name} must be finite and >= 0, got ${String(w)}`);
  return w;
}

function weightAt(s: Schedule, epoch: number, name: string): number {
  const w = typeof s === 'function' ? s(epoch) : s;
  if (typeof w !== 'number' || !Number.isFinite(w) || w < 0) throw new RangeError(`${name} at epoch ${epoch} must be finite and >= 0, got ${describe(w)}`);
  return w;
}

type PairSpec = { teacher: string; student: string };

/** Checks `pairs` is a non-empty array of { teacher, student } layer names. */
function checkPairs(v: unknown, name: string): PairSpec[] {
  if (!Array.isArray(v)) throw new TypeError(`${name}.pairs must be an array of { teacher, student } layer names, got ${describe(v)}`);
  if (v.length === 0) throw new RangeError(`${name}.pairs must name at least one { teacher, student } layer pair, got an empty array`);
  return v.map((pair: unknown, i: number) => {
    const pn = `${name}.pairs[${i}]`;
    const q = pair as Record<string, unknown> | null;
    if (typeof q !== 'object' || q === null) throw new TypeError(`${pn} must be { teacher: string, student: string }, got ${describe(pair)}`);
    if (typeof q.teacher !== 'string') throw new TypeError(`${pn}.teacher must be a layer name (string), got ${describe(q.teacher)}`);
    if (typeof q.student !== 'string') throw new TypeError(`${pn}.student must be a layer name (string), got ${describe(q.student)}`);
    return { teacher: q.teacher, student: q.student };
  });
}

type Layer = LayersModel['layers'][number];
interface CamPair { label: string; tLayer: Layer; sLayer: Layer; tCam: LayersModel; sCam: LayersModel }

/**
 * Validates `explanationAlignment` (and `featureDistillation`) and builds what the terms need;
 * undefined when no term is configured.
 */
export function alignmentPlan(options: unknown, teacher: Model, student: LayersModel, featureDistillation?: unknown): AlignmentPlan | undefined {
  if (options === undefined && featureDistillation === undefined) return undefined;
  const o: Record<string, unknown> = options === undefined ? {} : options as Record<string, unknown>;
  if (options !== undefined && (typeof options !== 'object' || options === null || Array.isArray(options))) {
    throw new TypeError(`explanationAlignment must be an object, got ${describe(options)}`);
  }
  checkKnownKeys(o, ['inputGradient', 'attentionTransfer', 'gradCam'], 'Distiller explanationAlignment');

  let igWeight: Schedule | undefined;
  let cacheTeacher = true;
  if (o.inputGradient !== undefined) {
    const ig = o.inputGradient;
    if (typeof ig !== 'object' || ig === null) throw new TypeError(`explanationAlignment.inputGradient must be an object { weight, cacheTeacher? }, got ${describe(ig)}`);
    checkKnownKeys(ig as Record<string, unknown>, ['weight', 'cacheTeacher'], 'Distiller explanationAlignment.inputGradient');
    igWeight = checkWeight((ig as { weight?: unknown }).weight, 'explanationAlignment.inputGradient.weight');
    const c = (ig as { cacheTeacher?: unknown }).cacheTeacher;
    if (c !== undefined && typeof c !== 'boolean') throw new TypeError(`explanationAlignment.inputGradient.cacheTeacher must be a boolean, got ${describe(c)}`);
    cacheTeacher = c ?? true;
  }

  let at: { weight: Schedule; p: number; pairs: Array<{ label: string; tOut: SymbolicTensor; sOut: SymbolicTensor }> } | undefined;
  if (o.attentionTransfer !== undefined) {
    const a = o.attentionTransfer as Record<string, unknown>;
    const name = 'explanationAlignment.attentionTransfer';
    if (typeof a !== 'object' || a === null) throw new TypeError(`${name} must be an object { weight, pairs, p? }, got ${describe(a)}`);
    checkKnownKeys(a, ['weight', 'pairs', 'p'], `Distiller ${name}`);
    const weight = checkWeight(a.weight, `${name}.weight`);
    const p = a.p === undefined ? 2 : a.p;  // null is a wrong type, not the default
    if (typeof p !== 'number') throw new TypeError(`${name}.p must be a number, got ${describe(p)}`);
    if (!Number.isFinite(p) || p <= 0) throw new RangeError(`${name}.p must be finite and > 0, got ${String(p)}`);
    const specs = checkPairs(a.pairs, name);
    if (!isLayersModel(teacher)) throw new TypeError(`${name} needs the teacher as a tf.LayersModel (to read its intermediate layers), got ${describe(teacher)}`);
    const pairs = specs.map((q, i) => {
      const pn = `${name}.pairs[${i}]`;
      const tl = findLayer(teacher, q.teacher, 'teacher', `${pn}.teacher`), sl = findLayer(student, q.student, 'student', `${pn}.student`);
      const tShape = tl.outputShape as (number | null)[], sShape = sl.outputShape as (number | null)[];
      const label = `${pn} (teacher '${q.teacher}', student '${q.student}')`;
      if (!Array.isArray(tShape) || !Array.isArray(sShape) || tShape.length < 3 || sShape.length < 3) {
        throw new RangeError(`${label}: both layers must output [N, ...spatial, C] (e.g. conv2d's [N, H, W, C]), got teacher [${String(tShape)}] and student [${String(sShape)}]`);
      }
      const ts = tShape.slice(1, -1), ss = sShape.slice(1, -1);
      // null (unknown) sizes are checked per batch instead
      if (ts.length !== ss.length || ts.some((d, k) => d !== null && ss[k] !== null && d !== ss[k])) {
        throw new RangeError(`${label}: spatial sizes must match, got teacher [${ts.join(', ')}] and student [${ss.join(', ')}]`);
      }
      return { label, tOut: tl.output as SymbolicTensor, sOut: sl.output as SymbolicTensor };
    });
    at = { weight, p, pairs };
  }

  let cam: { weight: Schedule; pairs: CamPair[] } | undefined;
  if (o.gradCam !== undefined) {
    const name = 'explanationAlignment.gradCam';
    const g = o.gradCam as Record<string, unknown>;
    if (typeof g !== 'object' || g === null || Array.isArray(g)) throw new TypeError(`${name} must be an object { weight, pairs }, got ${describe(g)}`);
    checkKnownKeys(g, ['weight', 'pairs'], name);
    const weight = checkWeight(g.weight, `${name}.weight`);
    const specs = checkPairs(g.pairs, name);
    if (!isLayersModel(teacher)) throw new TypeError(`${name} needs the teacher as a tf.LayersModel (to read its intermediate layers), got ${describe(teacher)}`);
    const pairs = specs.map((q, i): CamPair => {
      const pn = `${name}.pairs[${i}]`;
      const tLayer = gradCamLayer(teacher, q.teacher, `${pn}.teacher`, 'teacher'), sLayer = gradCamLayer(student, q.student, `${pn}.student`, 'student');
      const ts = (tLayer.outputShape as number[]).slice(1, 3), ss = (sLayer.outputShape as number[]).slice(1, 3);
      const label = `${pn} (teacher '${q.teacher}', student '${q.student}')`;
      if (!tf.util.arraysEqual(ts, ss)) throw new RangeError(`${label}: the Grad-CAM maps' sizes must match, got teacher [${ts.join(', ')}] and student [${ss.join(', ')}]`);
      return { label, tLayer, sLayer, tCam: subModel(teacher, [tLayer.output as SymbolicTensor]), sCam: subModel(student, [sLayer.output as SymbolicTensor]) };
    });
    cam = { weight, pairs };
  }

  const fd = featurePlan(featureDistillation, teacher, student);
  if (igWeight === undefined && at === undefined && cam === undefined && fd === undefined) return undefined;

  // one forward of each model serves attention transfer and the feature hints
  const nAt = at?.pairs.length ?? 0, nFd = fd?.pairs.length ?? 0;
  const teacherOuts = [...(at?.pairs.map((q) => q.tOut) ?? []), ...((fd?.teacherOutputs ?? []) as SymbolicTensor[])];
  const studentOuts = [...(at?.pairs.map((q) => q.sOut) ?? []), ...((fd?.studentOutputs ?? []) as SymbolicTensor[])];
  const teacherModel = teacherOuts.length && isLayersModel(teacher) ? subModel(teacher, teacherOuts) : undefined;
  const studentModel = studentOuts.length ? subModel(student, [...studentOuts, student.outputs[0]!]) : undefined;
  const regressors = fd?.pairs.map((q) => q.regressor) ?? [];
  const variables = regressors.flatMap((r) => (r.kernel && r.bias ? [r.kernel, r.bias] : []));

  const weights = (epoch: number): TermWeights => ({
    inputGradient: igWeight === undefined ? 0 : weightAt(igWeight, epoch, 'explanationAlignment.inputGradient.weight'),
    attentionTransfer: at === undefined ? 0 : weightAt(at.weight, epoch, 'explanationAlignment.attentionTransfer.weight'),
    gradCam: cam === undefined ? 0 : weightAt(cam.weight, epoch, 'explanationAlignment.gradCam.weight'),
    featureDistillation: fd === undefined ? 0 : weightAt(fd.weight, epoch, 'featureDistillation.weight'),
  });
  const callTeacher = (x: tf.Tensor) => (isLayersModel(teacher) ? (teacher.apply(x) as tf.Tensor) : teacher(x));

  return {
    weights,
    variables,
    regressors,
    dispose() {
      tf.dispose(variables);
    },
    cachesTeacherInputGradients: igWeight !== undefined && cacheTeacher,
    teacherInputGradients(x, logitsOf, batchSize) {
      const n = x.shape[0]!, grads: tf.Tensor[] = [], hots: tf.Tensor2D[] = [];
      let done = false;
      try {
        for (let start = 0; start < n; start += batchSize) {
          const idx = Int32Array.from({ length: Math.min(batchSize, n - start) }, (_, i) => start + i);
          const oneHot = tf.tidy(() => teacherOneHot(logitsOf(idx)));
          hots.push(oneHot);
          grads.push(tf.tidy(() => classInputGradient(callTeacher, tf.gather(x, tf.tensor1d(idx, 'int32')), oneHot)));
        }
        const result = {
          inputGrad: grads.length === 1 ? grads[0]! : tf.concat(grads, 0),
          oneHot: hots.length === 1 ? hots[0]! : tf.concat(hots, 0),
        };
        done = true;
        return result;
      } finally {
        // a single part on success is the result itself
        if (!done || grads.length > 1) tf.dispose(grads);
        if (!done || hots.length > 1) tf.dispose(hots);
      }
    },
    teacherTargets(x, teacherLogits, epoch, cached) {
      const w = weights(epoch), out: TeacherTargets = {};
      if (w.inputGradient > 0) {
        // classes from the teacher's logits (cached or live), unless they come with cached gradients;
        // g_t needs the teacher itself unless cached
        out.oneHot = cached ? tf.clone(cached.oneHot) : teacherOneHot(teacherLogits);
        out.inputGrad = cached ? tf.clone(cached.inputGrad) : classInputGradient(callTeacher, x, out.oneHot);
      }
      if (cam && w.gradCam > 0) {
        out.oneHot ??= teacherOneHot(teacherLogits);
        out.camMaps = cam.pairs.map((q) => gradCamMaps(teacher as LayersModel, q.tLayer, x, out.oneHot!, { camModel: q.tCam }));
      }
      const needAt = at !== undefined && w.attentionTransfer > 0, needFd = fd !== undefined && w.featureDistillation > 0;
      if (teacherModel && (needAt || needFd)) {
        const acts = teacherModel.predict(x, { batchSize: x.shape[0]! });
        const all = Array.isArray(acts) ? acts : [acts];
        out.activations = all.slice(0, nAt);
        out.features = all.slice(nAt);
      }
      return out;
    },
    studentPass(x, targets, epoch) {
      const w = weights(epoch);
      const terms: tf.Scalar[] = [];
      let logits: tf.Tensor2D;
      const needAt = at !== undefined && w.attentionTransfer > 0, needFd = fd !== undefined && w.featureDistillation > 0;
      if (studentModel && (needAt || needFd)) {
        const outs = studentModel.apply(x, { training: true }) as tf.Tensor[];
        logits = outs[outs.length - 1] as tf.Tensor2D;
        if (needAt) {
          const perPair = at!.pairs.map((q, k) => attentionTransferLoss(outs[k]!, targets.activations![k]!, at!.p, q.label));
          terms.push(tf.mul(tf.addN(perPair), w.attentionTransfer) as tf.Scalar);
        }
        if (needFd) {
          const perPair = fd!.pairs.map((q, k) => hintLoss(outs[nAt + k]!, targets.features![k]!, q.regressor, q.label));
          terms.push(tf.mul(tf.addN(perPair), w.featureDistillation) as tf.Scalar);
        }
      } else {
        logits = student.apply(x, { training: true }) as tf.Tensor2D;
      }
      if (w.inputGradient > 0) {
        // a second student forward, under tf.grad: its backward ops land on the outer tape
        const gs = classInputGradient((xx) => student.apply(xx, { training: true }) as tf.Tensor, x, targets.oneHot!);
        terms.push(tf.mul(inputGradientLoss(gs, targets.inputGrad!), w.inputGradient) as tf.Scalar);
      }
      if (cam && w.gradCam > 0) {
        const perPair = cam.pairs.map((q, k) => {
          const ms = gradCamMaps(student, q.sLayer, x, targets.oneHot!, { training: true, camModel: q.sCam });
          return gradCamAlignmentLoss(ms, targets.camMaps![k]!, q.label);
        });
        terms.push(tf.mul(tf.addN(perPair), w.gradCam) as tf.Scalar);
      }
      return { logits, term: terms.length === 0 ? null : terms.length === 1 ? terms[0]! : (tf.addN(terms) as tf.Scalar) };
    },
  };
}
