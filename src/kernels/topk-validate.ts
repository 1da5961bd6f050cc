/**
 * Argument checks of kd.topkDistillationLoss, and the per-entry checks of a top-k teacher, in the
 * same words as the addon's (native/core/topk_checks.cpp). Types and lengths are checked here; the
 * entries themselves (range, duplicates, NaN, signs, listed mass) by the backend that reads them,
 * as the dense call leaves NaN checks to its backend.
 */
import {
  checkAllApart, checkGradOutput, checkKnownKeys, checkLength, checkLossOptionRanges, describe, requireOutObject, isDetached,
  normalizeLabels, optionalBool, optionalChoice, optionalF32, readLossOptions, requireDim, requireF32, requireObject,
  type DistillArgs,
} from './validate.js';
import type { MissingMass, TeacherValues } from './topk-types.js';

export const MISSING_MASS = ['renormalize', 'uniform'] as const;
export const TEACHER_VALUES = ['logprobs', 'logits'] as const;
/** A row's listed probability mass may exceed 1 by this much (rounding in the serving engine). */
export const MASS_TOLERANCE = 1e-4;

export const TOPK_OPTION_NAMES = [
  'student', 'rows', 'cols', 'k', 'teacherIndices', 'teacherLogprobs', 'missingMass', 'teacherValues', 'labels',
  'temperature', 'alpha', 'divergence', 'beta', 'labelSmoothing', 'ignoreIndex', 'reduction', 'scaleByTemperatureSquared',
  'gradOutput', 'computeStudentGrad', 'out',
] as const;

/** Fully checked, defaulted top-k loss arguments. */
export interface TopkArgs extends Omit<DistillArgs, 'teacher' | 'computeTeacherGrad' | 'out'> {
  k: number;
  indices: Int32Array;
  values: Float32Array;
  missingMass: MissingMass;
  teacherValues: TeacherValues;
  out: { gradStudent?: Float32Array; losses?: Float32Array };
}

export const REVERSE_KL_RENORMALIZE =
  "divergence 'reverse-kl' with missingMass 'renormalize' is infinite: the renormalised teacher is 0 off its top k, " +
  "where the student is not; use missingMass 'uniform' or divergence 'kl' or 'jsd'";
export const LOGITS_UNIFORM =
  "teacherValues 'logits' is defined only with missingMass 'renormalize' (raw logits say nothing of the mass the top k leave out)";

export function requireI32(v: unknown, name: string): Int32Array {
  if (!(v instanceof Int32Array)) throw new TypeError(`${name} must be an Int32Array, got ${describe(v)}`);
  if (isDetached(v)) throw new TypeError(`${name} must be a usable Int32Array, got one whose buffer was detached (transferred)`);
  return v;
}

export function checkTopkArgs(options: unknown, where = 'topkDistillationLoss'): TopkArgs {
  const o = requireObject(options, 'options');
  checkKnownKeys(o, TOPK_OPTION_NAMES, where);
  const rows = requireDim(o.rows, 'rows');
  const cols = requireDim(o.cols, 'cols');
  const k = requireDim(o.k, 'k');
  const student = requireF32(o.student, 'student');
  checkLength('student', student.length, rows * cols, false);
  const indices = requireI32(o.teacherIndices, 'teacherIndices');
  const values = requireF32(o.teacherLogprobs, 'teacherLogprobs');
  checkLength('teacherIndices', indices.length, rows * k, false, 'rows * k');
  checkLength('teacherLogprobs', values.length, rows * k, false, 'rows * k');
  const loss = readLossOptions(o);
  const { reduction, divergence } = loss;
  const computeStudentGrad = optionalBool(o, 'computeStudentGrad', true);
  const missingMass = optionalChoice(o, 'missingMass', MISSING_MASS, 'renormalize');
  const teacherValues = optionalChoice(o, 'teacherValues', TEACHER_VALUES, 'logprobs');
  checkLossOptionRanges(loss);
  if (divergence === 'reverse-kl' && missingMass === 'renormalize') throw new RangeError(REVERSE_KL_RENORMALIZE);
  if (teacherValues === 'logits' && missingMass !== 'renormalize') throw new RangeError(LOGITS_UNIFORM);
  const labels = normalizeLabels(o.labels, rows);
  const { gradOutput, gradOutputRows } = checkGradOutput(o.gradOutput, reduction, rows);

  const out: TopkArgs['out'] = {};
  if (o.out !== undefined) {
    const ob = requireOutObject(o.out);
    checkKnownKeys(ob, ['gradStudent', 'losses'], `${where} out`);
    const gs = optionalF32(ob.gradStudent, 'out.gradStudent');
    const ls = optionalF32(ob.losses, 'out.losses');
    if (gs) {
      checkLength('out.gradStudent', gs.length, rows * cols, true);
      out.gradStudent = gs;
    }
    if (ls) {
      checkLength('out.losses', ls.length, rows, true, 'rows');
      out.losses = ls;
    }
    // indices and labels are read after the gradient is written
    checkAllApart(
      [['out.gradStudent', computeStudentGrad ? gs : undefined], ['out.losses', reduction === 'none' ? ls : undefined]],
      [['student', student], ['teacherIndices', indices], ['teacherLogprobs', values], ['labels', labels], ['gradOutput', gradOutputRows]]);
  }
  return {
    student, rows, cols, k, indices, values, missingMass, teacherValues, labels, ...loss, gradOutput, gradOutputRows,
    computeStudentGrad, out,
  };
}

/** JavaScript's String of x rounded to 6 significant digits (as the addon prints a listed mass). */
const sixDigits = (x: number): string => String(Number(x.toPrecision(6)));

/**
 * The first malformed entry of a top-k teacher, described as the addon does; undefined if none.
 * Checked row by row, entry by entry: the column id (in [0, cols) or -1), a repeated column, the
 * value (NaN; > 0 for log-probabilities, +Infinity for logits), then the row's listed mass.
 */
export function topkEntryError(
  indices: Int32Array, values: Float32Array, rows: number, k: number, cols: number, logits: boolean,
): string | undefined {
  const seen = new Map<number, number>();
  for (let r = 0; r < rows; r++) {
    seen.clear();
    let mass = 0;
    for (let j = 0; j < k; j++) {
      const i = r * k + j;
      const c = indices[i]!;
      if (c === -1) continue;
      if (c < 0 || c >= cols) {
        return `teacherIndices[${i}] (row ${r}, entry ${j}) must be a column in [0, ${cols}) or -1 (padding), got ${c}`;
      }
      const before = seen.get(c);
      if (before !== undefined) return `teacherIndices[${i}] (row ${r}, entry ${j}) repeats column ${c}, listed at entry ${before}`;
      seen.set(c, j);
      const v = values[i]!;
      if (Number.isNaN(v)) return `teacherLogprobs[${i}] (row ${r}, column ${c}) must not be NaN`;
      if (logits && v === Infinity) return `teacherLogprobs[${i}] (row ${r}, column ${c}) must not be +Infinity`;
      if (!logits && v > 0) return `teacherLogprobs[${i}] (row ${r}, column ${c}) must be a log-probability <= 0, got ${String(v)}`;
      if (!logits) mass += Math.exp(v);
    }
    if (!logits && mass > 1 + MASS_TOLERANCE) {
      return `teacherLogprobs row ${r} lists a probability mass of ${sixDigits(mass)} (the sum of exp over its entries), ` +
        'more than 1 + 1e-4: they must be log-probabilities over the whole vocabulary';
    }
  }
  return undefined;
}

export function noFiniteTeacher(r: number, missingMass: MissingMass): string {
  return `teacher row ${r} lists no finite log-probability and leaves no mass to spread, ` +
    `so its distribution is empty (missingMass '${missingMass}')`;
}
