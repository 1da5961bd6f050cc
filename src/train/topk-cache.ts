/**
 * A top-k teacher from a tfjs teacher: what a serving engine would return for it (log-softmax at
 * T = 1 over the full vocabulary, then the k largest per row), computed batch by batch so only
 * one batch of dense logits is ever alive. docs/served-teacher.md, "From a tfjs teacher".
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { checkKnownKeys, describe, requireDim, requireObject } from '../kernels/validate.js';
import type { TopKTeacher } from './topk-teacher.js';

export interface CacheTeacherTopKOptions {
  /** entries kept per row, 1..classes */
  k: number;
  /** rows per teacher call (default 256) */
  batchSize?: number;
  /** the teacher's name, kept in meta.teacher */
  teacherName?: string;
}

const KEYS = ['k', 'batchSize', 'teacherName'] as const;

export function cacheTeacherTopK(
  teacher: LayersModel | ((x: tf.Tensor) => tf.Tensor),
  x: tf.Tensor,
  options: CacheTeacherTopKOptions,
): TopKTeacher {
  const fn = 'cacheTeacherTopK';
  const isFn = typeof teacher === 'function';
  if (!isFn && typeof (teacher as { predict?: unknown } | null)?.predict !== 'function') {
    throw new TypeError(`${fn}: teacher must be a tf.LayersModel or a function of a tensor, got ${describe(teacher)}`);
  }
  if (!(x instanceof tf.Tensor)) throw new TypeError(`${fn}: x must be a tf.Tensor, got ${describe(x)}`);
  if (x.rank < 1) throw new RangeError(`${fn}: x must have a batch axis, got a scalar`);
  const o = requireObject(options, 'options');
  checkKnownKeys(o, KEYS, fn);
  const k = requireDim(o.k, 'k');
  const batchSize = o.batchSize === undefined ? 256 : requireDim(o.batchSize, 'batchSize');
  const name = o.teacherName;
  if (name !== undefined && typeof name !== 'string') throw new TypeError(`teacherName must be a string, got ${describe(name)}`);

  const rows = x.shape[0]!;
  let cols = -1;
  let indices = new Int32Array(0), logprobs = new Float32Array(0);
  for (let b = 0; b < rows; b += batchSize) {
    const n = Math.min(batchSize, rows - b);
    const [ids, lps] = tf.tidy(() => {
      const xb = tf.slice(x, b, n);
      const out: unknown = isFn ? teacher(xb) : teacher.predict(xb);
      if (!(out instanceof tf.Tensor)) throw new TypeError(`${fn}: the teacher must return one tf.Tensor, got ${describe(out)}`);
      if (out.rank !== 2 || out.shape[0] !== n || (cols >= 0 && out.shape[1] !== cols)) {
        const want = `[${n}, ${cols >= 0 ? cols : 'classes'}]`;
        throw new RangeError(`${fn}: the teacher must output ${want} logits for rows ${b}..${b + n - 1}, got shape [${out.shape.join(', ')}]`);
      }
      if (cols < 0) {
        cols = out.shape[1]!;
        if (k > cols) throw new RangeError(`k must be at most the teacher's ${cols} classes, got ${k}`);
        indices = new Int32Array(rows * k);
        logprobs = new Float32Array(rows * k);
      }
      // log-probabilities at T = 1 over every class, as an engine's logprobs are; then the k largest
      const top = tf.topk(tf.logSoftmax(tf.cast(out as tf.Tensor2D, 'float32')), k, true);
      return [top.indices.dataSync() as Int32Array, top.values.dataSync() as Float32Array];
    });
    indices.set(ids, b * k);
    logprobs.set(lps, b * k);
  }
  if (cols < 0) cols = k; // no rows: the teacher never ran, so the vocabulary is unknown; k is the least it can be
  const meta = { ...(name === undefined ? {} : { teacher: name }), vocab_size: cols, k, temperature: 1 };
  return { indices, logprobs, rows, k, cols, meta };
}
