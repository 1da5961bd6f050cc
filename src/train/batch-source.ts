/**
 * Where Distiller.fit's batches come from, one source per epoch: a tf.data.Dataset in its own order,
 * or the rows of a tensor `x` in a seeded order, with the teacher's logits (cached dense rows, a
 * top-k teacher's rows, or none: the teacher runs on the batch) and, for explanation alignment, the
 * teacher's input gradients of the batch's rows.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { TopKTeacher } from '../kernels/topk-types.js';
import type { TeacherInputGradients } from './alignment.js';
import { seededPermutation } from './metrics.js';

/** A batch's rows of a top-k teacher. */
export interface TopKBatch { indices: Int32Array; logprobs: Float32Array; k: number }

export interface Batch {
  xb: tf.Tensor;
  /** The batch's cached dense teacher logits; null when the teacher runs on xb (or tk is given). */
  tb: tf.Tensor2D | null;
  tk?: TopKBatch;
  yb: Int32Array;
  /** Tensors made for this batch, disposed by the trainer when the batch is done. */
  owned: tf.Tensor[];
  /** The batch's rows of the teacher's input gradients, when they were computed once for all rows. */
  gt?: TeacherInputGradients;
}

/** One epoch's batches: `next` gives null when the epoch is over; `total` is 0 when unknown. */
export interface EpochBatches {
  next: () => Promise<Batch | null>;
  total: number;
}

/**
 * A tf.data.Dataset of `{ xs, ys }` batches (the shape tfjs-data's `dataset.batch(n)` yields),
 * described by the two members fit uses, so the declarations need no import of @tensorflow/tfjs-data
 * (not a peer of kdfuse): any tf.data.Dataset of such batches fits.
 */
export interface BatchDataset {
  iterator(): Promise<{ next(): Promise<IteratorResult<{ xs: tf.Tensor; ys: tf.Tensor }>> }>;
  /** Batches per pass, when known (tfjs-data: null or Infinity when not). */
  readonly size: number | null;
}

export const isBatchDataset = (x: unknown): x is BatchDataset =>
  !(x instanceof tf.Tensor) && typeof (x as BatchDataset | undefined)?.iterator === 'function';

/** A dataset's batches, each epoch a new pass in the dataset's order; ys: class indices or one-hot rows. */
export function datasetBatches(ds: BatchDataset): () => EpochBatches {
  const total = ds.size !== null && Number.isFinite(ds.size) ? ds.size : 0;
  return () => {
    let it: Awaited<ReturnType<BatchDataset['iterator']>> | undefined;
    return {
      total,
      next: async () => {
        it ??= await ds.iterator();
        const r = await it.next();
        if (r.done) return null;
        const { xs, ys } = r.value;
        if (!(xs instanceof tf.Tensor) || !(ys instanceof tf.Tensor)) {
          throw new TypeError('dataset elements must be { xs: tf.Tensor, ys: tf.Tensor } batches');
        }
        let yb: Int32Array;
        if (ys.rank === 2) {
          const am = tf.argMax(ys, 1);  // one-hot rows to class indices
          yb = Int32Array.from(am.dataSync() as ArrayLike<number>);
          am.dispose();
        } else {
          yb = Int32Array.from(ys.dataSync() as ArrayLike<number>);
        }
        return { xb: xs, tb: null, yb, owned: [xs, ys] };
      },
    };
  };
}

export function topkBatch(t: TopKTeacher, idx: Int32Array): TopKBatch {
  const { k } = t;
  const indices = new Int32Array(idx.length * k), logprobs = new Float32Array(idx.length * k);
  for (let i = 0; i < idx.length; i++) {
    const r = idx[i]!;
    indices.set(t.indices.subarray(r * k, (r + 1) * k), i * k);
    logprobs.set(t.logprobs.subarray(r * k, (r + 1) * k), i * k);
  }
  return { indices, logprobs, k };
}

export interface TensorBatchesOptions {
  x: tf.Tensor;
  labels: Int32Array;
  batchSize: number;
  shuffle: boolean;
  seed: number;
  /** The cached dense teacher logits of these rows of x, or undefined (the teacher runs per batch). */
  denseRows?: (idx: Int32Array) => tf.Tensor2D;
  topk?: TopKTeacher;
  /**
   * The teacher's input gradients for all rows, or undefined; called (and may compute them) at the
   * first batch of an epoch that needs them, before any tensor of that batch exists.
   */
  teacherGradients?: (epoch: number) => TeacherInputGradients | undefined;
}

/** The rows of `x`, in a seeded order per epoch (or in order without shuffle), `batchSize` at a time. */
export function tensorBatches(o: TensorBatchesOptions): (epoch: number) => EpochBatches {
  const rows = o.x.shape[0]!;
  const total = Math.ceil(rows / o.batchSize);
  return (epoch) => {
    const order = o.shuffle ? seededPermutation(rows, o.seed * 7919 + epoch) : Int32Array.from({ length: rows }, (_, i) => i);
    let b = 0;
    return {
      total,
      next: async () => {
        if (b >= total) return null;
        const idx = order.subarray(b * o.batchSize, Math.min(rows, (b + 1) * o.batchSize));
        b++;
        // before any tensor of this batch exists, so a failure leaks none
        const all = o.teacherGradients?.(epoch);
        const xb = tf.tidy(() => tf.gather(o.x, tf.tensor1d(idx, 'int32')));
        const tb = o.denseRows ? o.denseRows(idx) : null;
        const tk = o.topk ? topkBatch(o.topk, idx) : undefined;
        const gt = all ? tf.tidy(() => {
          const rowsOf = tf.tensor1d(idx, 'int32');
          return { inputGrad: tf.gather(all.inputGrad, rowsOf), oneHot: tf.gather(all.oneHot, rowsOf) as tf.Tensor2D };
        }) : undefined;
        const owned = [xb, ...(tb ? [tb] : []), ...(gt ? [gt.inputGrad, gt.oneHot] : [])];
        return { xb, tb, ...(tk ? { tk } : {}), yb: Int32Array.from(idx, (i) => o.labels[i]!), owned, ...(gt ? { gt } : {}) };
      },
    };
  };
}
