/**
 * Feature (hint) distillation, FitNets (Romero et al., ICLR 2015): the student's output at a named
 * layer passes through a small trainable regressor to the shape of the teacher's output at a named
 * layer, and the term is the mean squared error between the two:
 *
 *     term = weight · Σ_pairs mean over elements of (R(F_s) − F_t)²
 *
 * Regressors (created here, trained with the student by the same optimizer):
 * - 'conv1x1': per position, the last (channel) axis C_s → C_t (a 1×1 convolution); the other axes
 *   (spatial sizes) must match.
 * - 'linear': each example's features flattened, D_s → D_t, reshaped to the teacher's shape.
 * - 'none': no regressor; the shapes must be equal.
 * Kernels start Glorot-uniform from a fixed seed (the pair's index), biases at zero.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { checkKnownKeys, describe, optionalChoice, requireObject } from '../kernels/validate.js';
import { requireNumericTensor } from '../tfjs/tensors.js';
import { checkChoice } from '../explain/model.js';
import { findLayer, isLayersModel } from '../explain/layers.js';

type Schedule = number | ((epoch: number) => number);
/** The regressors featureDistillation can put between a student layer and its teacher layer. */
export const FEATURE_REGRESSORS = ['linear', 'conv1x1', 'none'] as const;
export type FeatureRegressor = (typeof FEATURE_REGRESSORS)[number];

export interface FeatureDistillationOptions {
  /** Layer pairs: the teacher's layer is the hint, the student's the guided layer. */
  pairs: Array<{ teacher: string; student: string }>;
  /** Weight of the term (>= 0), or a schedule per epoch. */
  weight: Schedule;
  /** How the student's features are mapped to the teacher's shape (default 'conv1x1' when both are [N, ...spatial, C], else 'linear'). */
  regressor?: FeatureRegressor;
  /**
   * Start the regressors from these (e.g. loadFeatureRegressors' result, or another Distiller's
   * featureRegressors), one per pair in the same order, instead of the Glorot start. Their values
   * are copied: the Distiller trains and frees its own variables, the caller keeps these. Each must
   * name the pair's layers and fit its shapes; without `regressor`, each pair takes its kind.
   */
  initialRegressors?: readonly HintRegressor[];
}

/** A regressor's trainable weights, for saving with the student or discarding (Distiller.dispose frees them). */
export interface HintRegressor {
  teacher: string;
  student: string;
  kind: FeatureRegressor;
  /** [in, out] (absent for 'none'). */
  kernel?: tf.Variable;
  bias?: tf.Variable;
}

export interface FeaturePair {
  label: string;
  teacherShape: number[];
  regressor: HintRegressor;
}

/** R(F_s): the regressor applied to the student's features. */
export function applyRegressor(r: HintRegressor, studentFeature: tf.Tensor, teacherShape: number[]): tf.Tensor {
  checkHintRegressor(r, 'regressor');
  requireNumericTensor(studentFeature, 'studentFeature');
  if (!Array.isArray(teacherShape) || !teacherShape.every((d) => Number.isInteger(d) && d > 0)) {
    throw new TypeError(`teacherShape must be an array of positive integers (the teacher feature's shape without the batch axis), got ${describe(teacherShape)}`);
  }
  if (r.kind === 'none' || !r.kernel) return studentFeature;
  // the matrix product's inner size: every feature of a row (linear) or the channels (1x1 conv)
  const inner = r.kind === 'linear' ? studentFeature.size / Math.max(studentFeature.shape[0]!, 1) : studentFeature.shape[studentFeature.rank - 1]!;
  if (studentFeature.rank < 2 || r.kernel.shape[0] !== inner) {
    throw new RangeError(`regressor.kernel [${r.kernel.shape.join(', ')}] does not fit studentFeature [${studentFeature.shape.join(', ')}]: ` +
      `its first axis must be ${r.kind === 'linear' ? "the student's features per row" : "the student's channels"} (${inner})`);
  }
  return tf.tidy(() => {
    const n = studentFeature.shape[0]!;
    if (r.kind === 'linear') {
      const y = tf.add(tf.matMul(tf.reshape(studentFeature, [n, -1]), r.kernel!), r.bias!);
      return tf.reshape(y, [n, ...teacherShape]);
    }
    const cs = studentFeature.shape[studentFeature.rank - 1]!;
    const y = tf.add(tf.matMul(tf.reshape(studentFeature, [-1, cs]), r.kernel!), r.bias!);
    return tf.reshape(y, [...studentFeature.shape.slice(0, -1), r.kernel!.shape[1]!]);
  });
}

/** The hint term of one pair: mean over elements of (R(F_s) − F_t)². */
export function hintLoss(studentFeature: tf.Tensor, teacherFeature: tf.Tensor, regressor?: HintRegressor, pair = 'feature pair'): tf.Scalar {
  requireNumericTensor(studentFeature, 'studentFeature');
  requireNumericTensor(teacherFeature, 'teacherFeature');
  if (typeof pair !== 'string') pair = 'feature pair';
  return tf.tidy(() => {
    const mapped = regressor ? applyRegressor(regressor, studentFeature, teacherFeature.shape.slice(1)) : studentFeature;
    if (!tf.util.arraysEqual(mapped.shape, teacherFeature.shape)) {
      throw new RangeError(`${pair}: the student's features (after the regressor) must have the teacher's shape, got student [${mapped.shape.join(', ')}] and teacher [${teacherFeature.shape.join(', ')}]`);
    }
    return tf.mean(tf.squaredDifference(mapped, teacherFeature)) as tf.Scalar;
  });
}

function checkTensor(v: unknown, name: string, rank: number): tf.Tensor {
  if (!(v instanceof tf.Tensor)) throw new TypeError(`${name} must be a tf.Variable (or tf.Tensor), got ${describe(v)}`);
  if (v.isDisposed) throw new TypeError(`${name} must be a live tensor, got a disposed one (Distiller.dispose frees the regressors: save them before)`);
  if (v.rank !== rank) throw new RangeError(`${name} must have rank ${rank}, got shape [${v.shape.join(', ')}]`);
  return v;
}

/**
 * Checks one regressor (as Distiller.featureRegressors gives them, or as built by hand) and
 * returns it; `name` is how errors call it, e.g. 'regressors[0]'.
 */
export function checkHintRegressor(v: unknown, name: string): HintRegressor {
  const r = requireObject(v, name);
  for (const side of ['teacher', 'student'] as const) {
    if (typeof r[side] !== 'string') throw new TypeError(`${name}.${side} must be a layer name (string), got ${describe(r[side])}`);
  }
  if (r.kind === undefined) throw new TypeError(`${name}.kind must be one of ${FEATURE_REGRESSORS.map((k) => `'${k}'`).join(', ')}, got undefined`);
  const kind = checkChoice(r.kind, `${name}.kind`, FEATURE_REGRESSORS, 'linear');
  if (kind === 'none') {
    if (r.kernel !== undefined || r.bias !== undefined) throw new RangeError(`${name} is of kind 'none', which has no weights, got a kernel or bias`);
  } else {
    const kernel = checkTensor(r.kernel, `${name}.kernel`, 2), bias = checkTensor(r.bias, `${name}.bias`, 1);
    if (bias.shape[0] !== kernel.shape[1]) {
      throw new RangeError(`${name}.bias must have one value per output of the kernel [${kernel.shape.join(', ')}], got shape [${bias.shape.join(', ')}]`);
    }
  }
  return r as unknown as HintRegressor;
}

const known = (s: (number | null)[]): s is number[] => s.every((d) => d !== null);

/** Checks `initialRegressors`: absent, or one valid regressor per pair. */
function initialRegressors(v: unknown, pairs: number, name: string): HintRegressor[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) throw new TypeError(`${name} must be an array of feature regressors (loadFeatureRegressors' result), got ${describe(v)}`);
  if (v.length !== pairs) throw new RangeError(`${name} must hold one regressor per pair (${pairs}), got ${v.length}`);
  return v.map((r, i) => checkHintRegressor(r, `${name}[${i}]`));
}

/** Validates `featureDistillation` and creates the regressors; undefined when not configured. */
export function featurePlan(options: unknown, teacher: unknown, student: LayersModel): { weight: Schedule; pairs: FeaturePair[]; teacherOutputs: unknown[]; studentOutputs: unknown[] } | undefined {
  if (options === undefined) return undefined;
  const name = 'featureDistillation';
  const o = requireObject(options, name);
  checkKnownKeys(o, ['pairs', 'weight', 'regressor', 'initialRegressors'], name);
  const w = o.weight;
  if (typeof w !== 'function') {
    if (typeof w !== 'number') throw new TypeError(`${name}.weight must be a number or a function (epoch) => number, got ${describe(w)}`);
    if (!Number.isFinite(w) || w < 0) throw new RangeError(`${name}.weight must be finite and >= 0, got ${String(w)}`);
  }
  if (!Array.isArray(o.pairs)) throw new TypeError(`${name}.pairs must be an array of { teacher, student } layer names, got ${describe(o.pairs)}`);
  if (o.pairs.length === 0) throw new RangeError(`${name}.pairs must name at least one { teacher, student } layer pair, got an empty array`);
  if (!isLayersModel(teacher)) throw new TypeError(`${name} needs the teacher as a tf.LayersModel (to read its intermediate layers), got ${describe(teacher)}`);
  const requested = o.regressor === undefined ? undefined : optionalChoice(o, 'regressor', FEATURE_REGRESSORS, 'linear');
  const initial = initialRegressors(o.initialRegressors, o.pairs.length, `${name}.initialRegressors`);
  const teacherOutputs: unknown[] = [], studentOutputs: unknown[] = [], dims: Array<[number, number, number]> = [];
  const pairs = o.pairs.map((p: unknown, i: number): FeaturePair => {
    const pn = `${name}.pairs[${i}]`;
    const q = p as Record<string, unknown> | null;
    if (typeof q !== 'object' || q === null) throw new TypeError(`${pn} must be { teacher: string, student: string }, got ${describe(p)}`);
    if (typeof q.teacher !== 'string') throw new TypeError(`${pn}.teacher must be a layer name (string), got ${describe(q.teacher)}`);
    if (typeof q.student !== 'string') throw new TypeError(`${pn}.student must be a layer name (string), got ${describe(q.student)}`);
    const tl = findLayer(teacher, q.teacher, 'teacher', `${pn}.teacher`), sl = findLayer(student, q.student, 'student', `${pn}.student`);
    const label = `${pn} (teacher '${q.teacher}', student '${q.student}')`;
    const ts = (tl.outputShape as (number | null)[]).slice(1), ss = (sl.outputShape as (number | null)[]).slice(1);
    if (!Array.isArray(tl.outputShape) || !Array.isArray(sl.outputShape) || !known(ts) || !known(ss)) {
      throw new RangeError(`${label}: both layers must have one output of a known size, got teacher [${String(tl.outputShape)}] and student [${String(sl.outputShape)}]`);
    }
    const given = initial?.[i], gn = `${name}.initialRegressors[${i}]`;
    if (given && (given.teacher !== q.teacher || given.student !== q.student)) {
      throw new RangeError(`${gn} must be the regressor of ${label}, got teacher '${given.teacher}', student '${given.student}'`);
    }
    if (given && requested !== undefined && given.kind !== requested) {
      throw new RangeError(`${gn} is a '${given.kind}' regressor, but ${name}.regressor is '${requested}'`);
    }
    const kind: FeatureRegressor = requested ?? given?.kind ?? (ts.length >= 2 && ss.length >= 2 ? 'conv1x1' : 'linear');
    const regressor: HintRegressor = { teacher: q.teacher, student: q.student, kind };
    if (kind === 'none') {
      if (!tf.util.arraysEqual(ts, ss)) throw new RangeError(`${label}: with regressor 'none' the shapes must be equal, got teacher [${ts.join(', ')}] and student [${ss.join(', ')}]; use regressor 'conv1x1' or 'linear'`);
    } else {
      let fanIn: number, fanOut: number;
      if (kind === 'conv1x1') {
        if (ts.length < 2 || ss.length < 2 || !tf.util.arraysEqual(ts.slice(0, -1), ss.slice(0, -1))) {
          throw new RangeError(`${label}: regressor 'conv1x1' needs outputs [N, ...spatial, C] of the same spatial size, got teacher [${ts.join(', ')}] and student [${ss.join(', ')}]; use regressor 'linear'`);
        }
        fanIn = ss[ss.length - 1]!; fanOut = ts[ts.length - 1]!;
      } else {
        fanIn = ss.reduce((a, b) => a * b, 1); fanOut = ts.reduce((a, b) => a * b, 1);
      }
      if (given && !tf.util.arraysEqual(given.kernel!.shape, [fanIn, fanOut])) {
        throw new RangeError(`${gn}.kernel must have shape [${fanIn}, ${fanOut}] for ${label}, got [${given.kernel!.shape.join(', ')}]`);
      }
      dims.push([i, fanIn, fanOut]);
    }
    teacherOutputs.push(tl.output);
    studentOutputs.push(sl.output);
    return { label, teacherShape: ts, regressor };
  });
  // variables only once every pair is valid, so a refused pair leaks none
  for (const [i, fanIn, fanOut] of dims) {
    const limit = Math.sqrt(6 / (fanIn + fanOut));
    // tidy frees the initial values; the variables (never disposed by tidy) keep their data
    const given = initial?.[i];
    pairs[i]!.regressor.kernel = tf.tidy(() => tf.variable(given ? tf.clone(given.kernel!) : tf.randomUniform([fanIn, fanOut], -limit, limit, 'float32', i), true));
    pairs[i]!.regressor.bias = tf.tidy(() => tf.variable(given ? tf.clone(given.bias!) : tf.zeros([fanOut]), true));
  }
  return { weight: w as Schedule, pairs, teacherOutputs, studentOutputs };
}
