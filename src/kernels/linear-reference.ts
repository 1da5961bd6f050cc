/**
 * The fused head written as plain loops: the oracle of the tests and the fallback without the
 * addon. It forms what the native kernel never does (the `[rows, cols]` logits and their
 * gradient), runs the reference loss on them, and takes the three products in float64.
 */
import { distillationLoss as denseReference } from './reference.js';
import { topkDistillationLoss as topkReference } from './topk-reference.js';
import { findBadValue } from './validate.js';
import type { LinearArgs } from './linear-validate.js';
import type { LinearDistillationLossResult } from './linear-types.js';

/** The core's words for a non-finite entry of the head's inputs (native/core/linear_distill.cpp). */
function nonFinite(name: string, x: Float32Array, cols: number): string | undefined {
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (!Number.isFinite(v)) {
      const what = Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity';
      return `${name} must be finite, got ${what} at index ${i} (row ${Math.floor(i / cols)}, column ${i % cols})`;
    }
  }
  return undefined;
}

/** logits[r, j] = bias[j] + Σ_k hidden[r, k] weight[k, j], summed in float64, stored as float32. */
export function headLogits(hidden: Float32Array, weight: Float32Array, bias: Float32Array | undefined, rows: number, dim: number, cols: number): Float32Array {
  const z = new Float32Array(rows * cols);
  const acc = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    if (bias) for (let j = 0; j < cols; j++) acc[j] = bias[j]!;
    else acc.fill(0);
    for (let k = 0; k < dim; k++) {
      const h = hidden[r * dim + k]!;
      const w0 = k * cols;
      for (let j = 0; j < cols; j++) acc[j]! += h * weight[w0 + j]!;
    }
    for (let j = 0; j < cols; j++) z[r * cols + j] = acc[j]!;
  }
  return z;
}

/**
 * Every check (inputs, teacher, labels, rows that overflow at the temperature) runs before any
 * output is written, so a failed call leaves `out` as it was (the native kernel, which finds a
 * row's overflow only when it forms that block's logits, fills `out` with NaN instead).
 */
export function linearDistillationLoss(a: LinearArgs): LinearDistillationLossResult {
  const { hidden, weight, bias, rows, dim, cols } = a;
  const bad = nonFinite('hidden', hidden, dim) ?? nonFinite('weight', weight, cols) ?? (bias ? nonFinite('bias', bias, cols) : undefined) ??
    (a.teacher ? findBadValue('teacher', a.teacher, cols) : undefined);
  if (bad) throw new RangeError(bad);
  const z = headLogits(hidden, weight, bias, rows, dim, cols);
  const needG = a.computeHiddenGrad || a.computeWeightGrad;
  const common = {
    student: z, rows, cols, labels: a.labels, temperature: a.temperature, alpha: a.alpha,
    scaleByTemperatureSquared: a.scaleByTemperatureSquared, labelSmoothing: a.labelSmoothing, ignoreIndex: a.ignoreIndex,
    reduction: a.reduction, divergence: a.divergence, beta: a.beta, gradOutput: a.gradOutput, gradOutputRows: a.gradOutputRows,
    computeStudentGrad: needG, out: a.out.losses ? { losses: a.out.losses } : {},
  };
  let res;
  try {
    res = a.topk
      ? topkReference({ ...common, k: a.topk.k, indices: a.topk.indices, values: a.topk.values, missingMass: a.topk.missingMass, teacherValues: a.topk.teacherValues })
      : denseReference({ ...common, teacher: a.teacher!, computeTeacherGrad: false });
  } catch (e) {
    // the loss speaks of the student: here that is the head's logits
    if (e instanceof Error) e.message = e.message.replaceAll('student', 'student logits (hidden · weight + bias)');
    throw e;
  }
  const result: LinearDistillationLossResult = { loss: res.loss };
  if (res.losses) result.losses = res.losses;
  const g = res.gradStudent;
  if (!g) return result;
  if (a.computeHiddenGrad) {
    const gh = a.out.gradHidden ?? new Float32Array(rows * dim);
    for (let r = 0; r < rows; r++) {
      for (let k = 0; k < dim; k++) {
        let s = 0;
        for (let j = 0; j < cols; j++) s += g[r * cols + j]! * weight[k * cols + j]!;
        gh[r * dim + k] = s;
      }
    }
    result.gradHidden = gh;
  }
  if (a.computeWeightGrad) {
    const gw = a.out.gradWeight ?? new Float32Array(dim * cols);
    const acc = new Float64Array(cols);
    for (let k = 0; k < dim; k++) {
      acc.fill(0);
      for (let r = 0; r < rows; r++) {
        const h = hidden[r * dim + k]!;
        for (let j = 0; j < cols; j++) acc[j]! += h * g[r * cols + j]!;
      }
      for (let j = 0; j < cols; j++) gw[k * cols + j] = acc[j]!;
    }
    result.gradWeight = gw;
    if (bias) {
      const gb = a.out.gradBias ?? new Float32Array(cols);
      acc.fill(0);
      for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) acc[j]! += g[r * cols + j]!;
      for (let j = 0; j < cols; j++) gb[j] = acc[j]!;
      result.gradBias = gb;
    }
  }
  return result;
}
