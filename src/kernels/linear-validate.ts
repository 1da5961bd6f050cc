/**
 * Argument checks of kd.linearDistillationLoss, in the same words as the addon's
 * (native/addon/linear_binding.cpp) and the core's (native/core/linear_distill.cpp). Types,
 * lengths and option values here; NaN/Infinity in the data by the backend that reads it.
 */
import {
  checkAllApart, checkGradOutput, checkKnownKeys, checkLength, checkLossOptionRanges, normalizeLabels, optionalBool,
  optionalChoice, optionalF32, readLossOptions, requireDim, requireF32, requireObject, requireOutObject, type DistillArgs,
} from './validate.js';
import { LOGITS_UNIFORM, MISSING_MASS, REVERSE_KL_RENORMALIZE, TEACHER_VALUES, requireI32 } from './topk-validate.js';
import type { MissingMass, TeacherValues } from './topk-types.js';
import { LINEAR_ARG_NAMES } from './native.js';

/** The top-k form of the teacher, checked. */
export interface LinearTopk {
  k: number;
  indices: Int32Array;
  values: Float32Array;
  missingMass: MissingMass;
  teacherValues: TeacherValues;
}

/** Fully checked, defaulted arguments of the fused head. */
export interface LinearArgs extends Omit<DistillArgs, 'student' | 'teacher' | 'computeStudentGrad' | 'computeTeacherGrad' | 'out'> {
  hidden: Float32Array;
  weight: Float32Array;
  bias: Float32Array | undefined;
  dim: number;
  /** The dense teacher, or undefined when `topk` is given. */
  teacher: Float32Array | undefined;
  topk: LinearTopk | undefined;
  computeHiddenGrad: boolean;
  computeWeightGrad: boolean;
  out: { gradHidden?: Float32Array; gradWeight?: Float32Array; gradBias?: Float32Array; losses?: Float32Array };
}

export const BOTH_TEACHERS =
  'give the teacher as dense logits (teacher) or as its top k entries (teacherIndices, teacherLogprobs), not both';

function checkTopk(o: Record<string, unknown>, rows: number): LinearTopk {
  const k = requireDim(o.k, 'k');
  const indices = requireI32(o.teacherIndices, 'teacherIndices');
  const values = requireF32(o.teacherLogprobs, 'teacherLogprobs');
  checkLength('teacherIndices', indices.length, rows * k, false, 'rows * k');
  checkLength('teacherLogprobs', values.length, rows * k, false, 'rows * k');
  const missingMass = optionalChoice(o, 'missingMass', MISSING_MASS, 'renormalize');
  const teacherValues = optionalChoice(o, 'teacherValues', TEACHER_VALUES, 'logprobs');
  return { k, indices, values, missingMass, teacherValues };
}

export function checkLinearArgs(options: unknown, where = 'linearDistillationLoss'): LinearArgs {
  const o = requireObject(options, 'options');
  checkKnownKeys(o, LINEAR_ARG_NAMES, where);
  const rows = requireDim(o.rows, 'rows');
  const dim = requireDim(o.dim, 'dim');
  const cols = requireDim(o.cols, 'cols');
  const hidden = requireF32(o.hidden, 'hidden');
  checkLength('hidden', hidden.length, rows * dim, false, 'rows * dim');
  const weight = requireF32(o.weight, 'weight');
  checkLength('weight', weight.length, dim * cols, false, 'dim * cols');
  const bias = optionalF32(o.bias, 'bias');
  if (bias) checkLength('bias', bias.length, cols, false, 'cols');
  const sparse = o.teacherIndices !== undefined && o.teacherIndices !== null;
  if (sparse && o.teacher !== undefined && o.teacher !== null) throw new TypeError(BOTH_TEACHERS);
  const topk = sparse ? checkTopk(o, rows) : undefined;
  const teacher = sparse ? undefined : requireF32(o.teacher, 'teacher');
  if (teacher) checkLength('teacher', teacher.length, rows * cols, false);
  const loss = readLossOptions(o);
  const { reduction, divergence } = loss;
  const computeHiddenGrad = optionalBool(o, 'computeHiddenGrad', true);
  const computeWeightGrad = optionalBool(o, 'computeWeightGrad', true);
  checkLossOptionRanges(loss);
  if (topk && divergence === 'reverse-kl' && topk.missingMass === 'renormalize') throw new RangeError(REVERSE_KL_RENORMALIZE);
  if (topk && topk.teacherValues === 'logits' && topk.missingMass !== 'renormalize') throw new RangeError(LOGITS_UNIFORM);
  const labels = normalizeLabels(o.labels, rows);
  const { gradOutput, gradOutputRows } = checkGradOutput(o.gradOutput, reduction, rows);

  const out: LinearArgs['out'] = {};
  if (o.out !== undefined) {
    const ob = requireOutObject(o.out);
    checkKnownKeys(ob, ['gradHidden', 'gradWeight', 'gradBias', 'losses'], `${where} out`);
    const gh = optionalF32(ob.gradHidden, 'out.gradHidden');
    const gw = optionalF32(ob.gradWeight, 'out.gradWeight');
    const gb = optionalF32(ob.gradBias, 'out.gradBias');
    const ls = optionalF32(ob.losses, 'out.losses');
    if (gh) checkLength('out.gradHidden', gh.length, rows * dim, true, 'rows * dim');
    if (gw) checkLength('out.gradWeight', gw.length, dim * cols, true, 'dim * cols');
    if (gb) checkLength('out.gradBias', gb.length, cols, true, 'cols');
    if (ls) checkLength('out.losses', ls.length, rows, true, 'rows');
    checkAllApart(
      [['out.gradHidden', computeHiddenGrad ? gh : undefined], ['out.gradWeight', computeWeightGrad ? gw : undefined],
        ['out.gradBias', computeWeightGrad && bias ? gb : undefined], ['out.losses', reduction === 'none' ? ls : undefined]],
      [['hidden', hidden], ['weight', weight], ['bias', bias], ['teacher', teacher], ['teacherIndices', topk?.indices],
        ['teacherLogprobs', topk?.values], ['labels', labels], ['gradOutput', gradOutputRows]]);
    if (gh) out.gradHidden = gh;
    if (gw) out.gradWeight = gw;
    if (gb) out.gradBias = gb;
    if (ls) out.losses = ls;
  }
  return {
    hidden, weight, bias, rows, dim, cols, teacher, topk, labels, ...loss, gradOutput, gradOutputRows, computeHiddenGrad,
    computeWeightGrad, out,
  };
}
