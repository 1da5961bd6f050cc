/**
 * Distiller.fit's options, checked and defaulted in one place: what fit and its pieces
 * (batch-source.ts, early-stopping.ts) then use without checking again.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { TopKTeacher } from '../kernels/topk-types.js';
import { checkKnownKeys, requireObject } from '../kernels/validate.js';
import type { FitOptions } from './distiller.js';
import { EarlyStopping, type Monitor } from './early-stopping.js';
import { labelsArray } from './labels.js';
import type { TeacherLogits } from './teacher-cache.js';

const FIT_OPTION_KEYS = ['epochs', 'batchSize', 'shuffle', 'seed', 'validationData', 'teacherLogits', 'callbacks', 'earlyStopping', 'verbose'] as const;

export interface FitPlan {
  epochs: number;
  batchSize: number;
  shuffle: boolean;
  seed: number;
  callbacks: NonNullable<FitOptions['callbacks']>;
  teacherLogits: TeacherLogits | TopKTeacher | undefined;
  validation: { x: tf.Tensor; labels: Int32Array } | undefined;
  earlyStopping: EarlyStopping;
  /** No progress bar. */
  quiet: boolean;
}

/** `options` (undefined: all defaults) checked, with every default filled in. */
export function readFitOptions(options: FitOptions | undefined): FitPlan {
  const o = options ?? {};
  const fo = requireObject(o, 'options');
  checkKnownKeys(fo, FIT_OPTION_KEYS, 'Distiller.fit');
  if (fo.callbacks !== undefined) checkKnownKeys(requireObject(fo.callbacks, 'callbacks'), ['onEpochEnd', 'onBatchEnd'], 'Distiller.fit callbacks');
  if (fo.earlyStopping !== undefined) {
    checkKnownKeys(requireObject(fo.earlyStopping, 'earlyStopping'), ['monitor', 'patience', 'minDelta'], 'Distiller.fit earlyStopping');
  }
  const { epochs = 10, batchSize = 32, shuffle = true, seed = 0, callbacks = {}, teacherLogits } = o;
  if (!Number.isInteger(epochs) || epochs < 1) throw new RangeError(`epochs must be an integer >= 1, got ${String(epochs)}`);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be an integer >= 1, got ${String(batchSize)}`);

  const val = o.validationData;
  const validation = val ? { x: val[0], labels: labelsArray(val[1], val[0].shape[0]!, 'validationData labels') } : undefined;
  const monitor: Monitor = o.earlyStopping?.monitor ?? (val ? 'valLoss' : 'loss');
  if (o.earlyStopping && monitor !== 'loss' && !val) {
    throw new RangeError(`earlyStopping.monitor '${monitor}' needs validationData`);
  }
  const earlyStopping = new EarlyStopping(monitor, o.earlyStopping?.patience ?? 5, o.earlyStopping?.minDelta ?? 0, !!o.earlyStopping);
  const quiet = (o.verbose ?? (process.stderr.isTTY ? 'progress' : 'quiet')) === 'quiet';
  return { epochs, batchSize, shuffle, seed, callbacks, teacherLogits, validation, earlyStopping, quiet };
}
