/**
 * Options and result of kd.linearDistillationLoss, the fused distillation head: the student's
 * logits are `hidden · weight + bias`, never formed whole (docs/fused-head.md).
 */
import type { DistillationLossOptions, DistillationLossResult } from './types.js';
import type { MissingMass, TeacherValues } from './topk-types.js';

export interface LinearDistillationLossOptions
  extends Omit<DistillationLossOptions, 'student' | 'teacher' | 'computeStudentGrad' | 'computeTeacherGrad' | 'out'> {
  /** The head's input `[rows, dim]` (the last hidden state). */
  hidden: Float32Array;
  /** The head's kernel `[dim, cols]`, the layout of a tfjs Dense layer's kernel. */
  weight: Float32Array;
  /** The head's bias `[cols]` (absent: no bias). */
  bias?: Float32Array;
  rows: number;
  dim: number;
  /** The classes (vocabulary size). */
  cols: number;
  /** The teacher's logits `[rows, cols]`; or give its top k entries instead (the next four options). */
  teacher?: Float32Array;
  /** Entries per row of a top-k teacher (see topkDistillationLoss). */
  k?: number;
  /** `[rows * k]` column ids of a top-k teacher (-1 pads). */
  teacherIndices?: Int32Array;
  /** `[rows * k]` the top-k teacher's log-probabilities (or logits with `teacherValues: 'logits'`). */
  teacherLogprobs?: Float32Array;
  /** Top-k teacher only; default 'renormalize'. */
  missingMass?: MissingMass;
  /** Top-k teacher only; default 'logprobs'. */
  teacherValues?: TeacherValues;
  /** Compute dL/dhidden (default true). */
  computeHiddenGrad?: boolean;
  /** Compute dL/dweight, and dL/dbias when there is a bias (default true). */
  computeWeightGrad?: boolean;
  /** Caller-owned output arrays (as distillationLoss's `out`). */
  out?: { gradHidden?: Float32Array; gradWeight?: Float32Array; gradBias?: Float32Array; losses?: Float32Array };
}

export interface LinearDistillationLossResult extends Pick<DistillationLossResult, 'loss' | 'losses'> {
  /** dL/dhidden `[rows, dim]`, unless `computeHiddenGrad: false`. */
  gradHidden?: Float32Array;
  /** dL/dweight `[dim, cols]`, unless `computeWeightGrad: false`. */
  gradWeight?: Float32Array;
  /** dL/dbias `[cols]`, when there is a bias and `computeWeightGrad` is not false. */
  gradBias?: Float32Array;
}
