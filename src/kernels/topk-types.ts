/**
 * The top-k sparse teacher (a teacher served elsewhere, e.g. vLLM's `prompt_logprobs=k`) and the
 * options of kd.topkDistillationLoss. See docs/served-teacher.md.
 */
import type { DistillationLossOptions, DistillationLossResult } from './types.js';

/** What is known about the teacher, kept in a file's key-value metadata under the same keys. */
export interface TopKTeacherMeta {
  /** the teacher's name */
  teacher?: string;
  /** the full vocabulary size (the student's column count) */
  vocab_size?: number;
  /** entries per row */
  k?: number;
  /** the temperature the log-probabilities were computed at (1 as engines return them) */
  temperature?: number;
  /** any other key of the file's metadata, as the string it holds */
  [key: string]: string | number | undefined;
}

/**
 * A teacher given by its k most likely classes per row, as serving engines return them. Shared by
 * the kernel, the tfjs op, the Distiller and the file loaders.
 */
export interface TopKTeacher {
  /** `[rows * k]` column ids, distinct within a row; `-1` pads a row with fewer than k entries. */
  indices: Int32Array;
  /** `[rows * k]` the teacher's log-probabilities (temperature 1, full vocabulary) at those columns. */
  logprobs: Float32Array;
  rows: number;
  k: number;
  /** The vocabulary size (columns of the dense teacher). */
  cols: number;
  /** Provenance (teacher name, vocabulary size, temperature, ...), as files keep it. */
  meta?: TopKTeacherMeta;
}

/**
 * What the columns a row does not list hold in the densified teacher: `'renormalize'` -Infinity
 * (the teacher restricted to its top k), `'uniform'` log(max(1 - Σ exp(logprob), 0) / (cols - k_r)).
 */
export type MissingMass = 'renormalize' | 'uniform';

/** `'logprobs'`: log-probabilities over the full vocabulary; `'logits'`: raw top-k logits (renormalize only). */
export type TeacherValues = 'logprobs' | 'logits';

export interface TopKDistillationLossOptions
  extends Omit<DistillationLossOptions, 'teacher' | 'computeTeacherGrad' | 'out'> {
  /** Entries per row. */
  k: number;
  /** `[rows * k]` Int32Array of column ids (-1 pads). */
  teacherIndices: Int32Array;
  /** `[rows * k]` Float32Array of log-probabilities (or logits with `teacherValues: 'logits'`). */
  teacherLogprobs: Float32Array;
  /** Default 'renormalize'. */
  missingMass?: MissingMass;
  /** Default 'logprobs'. */
  teacherValues?: TeacherValues;
  out?: { gradStudent?: Float32Array; losses?: Float32Array };
}

export type TopKDistillationLossResult = Omit<DistillationLossResult, 'gradTeacher'>;
