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
  if (r.kind === 'none' || !r.kernel) return studentFeature;
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
  return tf.tidy(() => {
    const mapped = regressor ? applyRegressor(regressor, studentFeature, teacherFeature.shape.slice(1)) : studentFeature;
    if (!tf.util.arraysEqual(mapped.shape, teacherFeature.shape)) {
      throw new RangeError(`${pair}: the student's features (after the regressor) must have the teacher's shape, got student [${mapped.shape.join(', ')}] and teacher [${teacherFeature.shape.join(', ')}]`);
    }
    return tf.mean(tf.squaredDifference(mapped, teacherFeature)) as tf.Scalar;
  });
}

const known = (s: (number | null)[]): s is number[] => s.every((d) => d !== null);

/** Validates `featureDistillation` and creates the regressors; undefined when not configured. */
export function featurePlan(options: unknown, teacher: unknown, student: LayersModel): { weight: Schedule; pairs: FeaturePair[]; teacherOutputs: unknown[]; studentOutputs: unknown[] } | undefined {
  if (options === undefined) return undefined;
  const name = 'featureDistillation';
  const o = requireObject(options, name);
  checkKnownKeys(o, ['pairs', 'weight', 'regressor'], name);
  const w = o.weight;
  if (typeof w !== 'function') {
    if (typeof w !== 'number') throw new TypeError(`${name}.weight must be a number or a function (epoch) => number, got ${describe(w)}`);
    if (!Number.isFinite(w) || w < 0) throw new RangeError(`${name}.weight must be finite and >= 0, got ${String(w)}`);
  }
  if (!Array.isArray(o.pairs)) throw new TypeError(`${name}.pairs must be an array of { teacher, student } layer names, got ${describe(o.pairs)}`);
  if (o.pairs.length === 0) throw new RangeError(`${name}.pairs must name at least one { teacher, student } layer pair, got an empty array`);
  if (!isLayersModel(teacher)) throw new TypeError(`${name} needs the teacher as a tf.LayersModel (to read its intermediate layers), got ${describe(teacher)}`);
  const requested = o.regressor === undefined ? undefined : optionalChoice(o, 'regressor', FEATURE_REGRESSORS, 'linear');
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
    const kind: FeatureRegressor = requested ?? (ts.length >= 2 && ss.length >= 2 ? 'conv1x1' : 'linear');
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
    pairs[i]!.regressor.kernel = tf.tidy(() => tf.variable(tf.randomUniform([fanIn, fanOut], -limit, limit, 'float32', i), true));
    pairs[i]!.regressor.bias = tf.tidy(() => tf.variable(tf.zeros([fanOut]), true));
  }
  return { weight: w as Schedule, pairs, teacherOutputs, studentOutputs };
}
