/**
 * The top-k loss on the reference backend, written as its contract reads: densify the teacher
 * (listed columns hold their value, the others the missing-mass value) and take the dense
 * reference loss. Rows are densified a block at a time, so the dense teacher never exists whole.
 */
import { distillationLoss as denseReference, logSumExp, noFinite, overflow, overflowsAtTemperature, rowScaled, scaledOverflow, HALF_RANGE } from './reference.js';
import { noFiniteTeacher, topkEntryError, type TopkArgs } from './topk-validate.js';
import { findBadValue, labelRangeError, type DistillArgs } from './validate.js';
import type { MissingMass, TopKDistillationLossResult, TopKTeacher } from './topk-types.js';

/**
 * The value every unlisted column of row r holds in the densified teacher, as a float32:
 * -Infinity for 'renormalize' (and when the row lists every column), else
 * log(max(1 - Σ exp(logprob), 0) / (cols - k_r)) with the sum in float64 in entry order.
 */
export function offListValue(indices: Int32Array, values: Float32Array, r: number, k: number, cols: number, missingMass: MissingMass): number {
  if (missingMass === 'renormalize') return -Infinity;
  let listed = 0, mass = 0;
  for (let j = 0; j < k; j++) {
    if (indices[r * k + j] === -1) continue;
    listed++;
    mass += Math.exp(values[r * k + j]!);
  }
  if (listed >= cols) return -Infinity;
  return Math.fround(Math.log(Math.max(1 - mass, 0) / (cols - listed)));
}

/** Writes rows [r0, r1) of the densified teacher into `dense` (`(r1 - r0) * cols` floats). */
function densifyRows(
  indices: Int32Array, values: Float32Array, k: number, cols: number, missingMass: MissingMass, r0: number, r1: number, dense: Float32Array,
): void {
  for (let r = r0; r < r1; r++) {
    const o = (r - r0) * cols;
    dense.fill(offListValue(indices, values, r, k, cols, missingMass), o, o + cols);
    for (let j = 0; j < k; j++) {
      const c = indices[r * k + j]!;
      if (c !== -1) dense[o + c] = values[r * k + j]!;
    }
  }
}

/**
 * The dense teacher logits a top-k teacher stands for (the contract of topkDistillationLoss):
 * `[rows * cols]`, listed columns their log-probability, the others -Infinity ('renormalize') or
 * the missing mass spread evenly ('uniform'). Checks the entries first (RangeError naming row and column).
 */
export function densifyTopKTeacher(teacher: TopKTeacher, missingMass: MissingMass = 'renormalize'): Float32Array {
  const { indices, logprobs, rows, k, cols } = teacher;
  const bad = topkEntryError(indices, logprobs, rows, k, cols, false);
  if (bad) throw new RangeError(bad);
  const dense = new Float32Array(rows * cols);
  densifyRows(indices, logprobs, k, cols, missingMass, 0, rows, dense);
  return dense;
}

/** The densified row's maximum, or -Infinity when it has no finite value. */
function denseRowMax(a: TopkArgs, r: number): number {
  let m = -Infinity;
  let listed = 0;
  for (let j = 0; j < a.k; j++) {
    if (a.indices[r * a.k + j] === -1) continue;
    listed++;
    m = Math.max(m, a.values[r * a.k + j]!);
  }
  if (listed < a.cols) m = Math.max(m, offListValue(a.indices, a.values, r, a.k, a.cols, a.missingMass));
  return m;
}

/** Every data check, in the order the addon makes them; throws the first. */
function checkData(a: TopkArgs): void {
  const { rows, cols, labels, temperature: T } = a;
  const badLabel = labels ? labelRangeError(labels, rows, cols, a.ignoreIndex) : undefined;
  if (badLabel) throw new RangeError(badLabel);
  const badEntry = topkEntryError(a.indices, a.values, rows, a.k, cols, a.teacherValues === 'logits');
  if (badEntry) throw new RangeError(badEntry);
  const ignored = (r: number): boolean => labels !== undefined && labels[r] === a.ignoreIndex;
  for (let r = 0; r < rows; r++) {
    if (ignored(r)) continue;
    const m = denseRowMax(a, r);
    if (m === -Infinity) throw new RangeError(noFiniteTeacher(r, a.missingMass));
    let listedOverflow = false;  // any listed value, not only the maximum (finding F9)
    for (let j = r * a.k; j < (r + 1) * a.k; j++) listedOverflow ||= a.indices[j] !== -1 && scaledOverflow(a.values, j, j + 1, T);
    if (!(Math.abs(Math.fround(m * Math.fround(1 / T))) < HALF_RANGE) || listedOverflow) throw overflow('teacher', r, T);
  }
  const badS = findBadValue('student', a.student, cols);
  const rowS = badS ? Number(/row (\d+)/.exec(badS)![1]) : rows;
  for (let r = 0; r < rows; r++) {
    if (r === rowS) throw new RangeError(badS!);
    if (ignored(r)) continue;
    if (overflowsAtTemperature(a.student, r, cols, T)) throw overflow('student', r, T);
    if (logSumExp(rowScaled(a.student, r, cols, 1)) === -Infinity) throw noFinite('student', r);
  }
}

/** Rows densified per block: about a million floats of dense teacher at a time. */
const BLOCK_ELEMENTS = 1 << 20;

export function topkDistillationLoss(a: TopkArgs): TopKDistillationLossResult {
  checkData(a);
  const { rows, cols, labels } = a;
  const valid = labels ? labels.reduce((n, y) => n + (y === a.ignoreIndex ? 0 : 1), 0) : rows;
  const perRow = a.reduction === 'none';
  const scale = a.reduction === 'mean' ? (valid > 0 ? a.gradOutput / valid : 0) : a.gradOutput;
  const gradS = a.computeStudentGrad ? a.out.gradStudent ?? new Float32Array(rows * cols) : undefined;
  const losses = perRow ? a.out.losses ?? new Float32Array(rows) : undefined;
  const block = Math.max(1, Math.floor(BLOCK_ELEMENTS / cols));
  const dense = new Float32Array(Math.min(block, rows) * cols);
  let total = 0;
  for (let r0 = 0; r0 < rows; r0 += block) {
    const r1 = Math.min(rows, r0 + block);
    const n = (r1 - r0) * cols;
    densifyRows(a.indices, a.values, a.k, cols, a.missingMass, r0, r1, dense);
    // per-row reduction 'none' keeps the caller's upstream gradients; mean and sum become a sum
    // over the block with the whole call's factor (1/valid for mean)
    const args: DistillArgs = {
      student: a.student.subarray(r0 * cols, r1 * cols), teacher: dense.subarray(0, n), rows: r1 - r0, cols,
      labels: labels?.subarray(r0, r1), temperature: a.temperature, alpha: a.alpha,
      scaleByTemperatureSquared: a.scaleByTemperatureSquared, labelSmoothing: a.labelSmoothing, ignoreIndex: a.ignoreIndex,
      reduction: perRow ? 'none' : 'sum', divergence: a.divergence, beta: a.beta, gradOutput: perRow ? 1 : scale,
      gradOutputRows: a.gradOutputRows?.subarray(r0, r1), computeStudentGrad: a.computeStudentGrad, computeTeacherGrad: false,
      out: {
        ...(gradS ? { gradStudent: gradS.subarray(r0 * cols, r1 * cols) } : {}),
        ...(losses ? { losses: losses.subarray(r0, r1) } : {}),
      },
    };
    const res = denseReference(args);
    // the block's loss: with 'sum' it was formed with the scale folded into the gradient only
    total += res.loss;
  }
  const result: TopKDistillationLossResult = { loss: a.reduction === 'mean' ? (valid > 0 ? total / valid : 0) : total };
  if (losses) result.losses = losses;
  if (gradS) result.gradStudent = gradS;
  return result;
}
