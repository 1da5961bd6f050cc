/**
 * Distiller.fit's pieces on their own (src/train/fit-options.ts, batch-source.ts, early-stopping.ts):
 * what fit did inline before, each checked directly; the Distiller tests check them together.
 */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { datasetBatches, tensorBatches } from '../src/train/batch-source.js';
import { EarlyStopping } from '../src/train/early-stopping.js';
import { readFitOptions } from '../src/train/fit-options.js';
import { seededPermutation } from '../src/train/metrics.js';

describe('readFitOptions', () => {
  it('fills every default and checks every value', () => {
    const p = readFitOptions(undefined);
    expect(p).toMatchObject({ epochs: 10, batchSize: 32, shuffle: true, seed: 0, teacherLogits: undefined, validation: undefined });
    expect(p.earlyStopping).toMatchObject({ monitor: 'loss', patience: 5, minDelta: 0, enabled: false });
    expect(() => readFitOptions({ epochs: 0 })).toThrow(/epochs must be an integer >= 1, got 0/);
    expect(() => readFitOptions({ batchSize: 1.5 })).toThrow(RangeError);
    expect(() => readFitOptions({ epoch: 3 } as never)).toThrow(/unknown option 'epoch'/);
    expect(() => readFitOptions({ earlyStopping: { monitor: 'valLoss' } })).toThrow(/needs validationData/);
    expect(() => readFitOptions({ callbacks: { onEpoch: () => {} } } as never)).toThrow(TypeError);
  });

  it('reads validation labels and defaults the monitor to valLoss with them', () => {
    const x = tf.zeros([3, 2]);
    const p = readFitOptions({ validationData: [x, [0, 1, 1]], earlyStopping: { patience: 2 } });
    expect(Array.from(p.validation!.labels)).toEqual([0, 1, 1]);
    expect(p.earlyStopping).toMatchObject({ monitor: 'valLoss', patience: 2, enabled: true });
    expect(() => readFitOptions({ validationData: [x, [0, 1]] })).toThrow(/validationData labels must have one label per row of x \(3\), got 2/);
    x.dispose();
  });
});

describe('EarlyStopping', () => {
  it('stops after `patience` epochs without an improvement larger than minDelta', () => {
    const es = new EarlyStopping('loss', 2, 0.1, true);
    expect(es.update({ loss: 1 })).toBe(false);
    expect(es.update({ loss: 0.95 })).toBe(false);  // not better by more than 0.1: waited 1
    expect(es.update({ loss: 0.5 })).toBe(false);   // better: the wait starts again
    expect(es.update({ loss: 0.45 })).toBe(false);
    expect(es.update({ loss: 0.49 })).toBe(true);
  });

  it('maximises accuracy, and never stops when not enabled', () => {
    const acc = new EarlyStopping('valAccuracy', 1, 0, true);
    expect(acc.update({ loss: 9, valAccuracy: 0.5 })).toBe(false);
    expect(acc.update({ loss: 1, valAccuracy: 0.6 })).toBe(false);
    expect(acc.update({ loss: 1, valAccuracy: 0.6 })).toBe(true);
    const off = new EarlyStopping('loss', 1, 0, false);
    for (let i = 0; i < 5; i++) expect(off.update({ loss: 1 })).toBe(false);
  });
});

describe('batch sources', () => {
  it('tensor rows: a seeded order per epoch, batchSize rows at a time, the last batch short', async () => {
    const x = tf.tensor2d(Array.from({ length: 10 }, (_, i) => [i]), [10, 1]);
    const labels = Int32Array.from({ length: 10 }, (_, i) => 100 + i);
    const epochs = tensorBatches({ x, labels, batchSize: 4, shuffle: true, seed: 3 });
    for (const epoch of [0, 1]) {
      const src = epochs(epoch);
      expect(src.total).toBe(3);
      const order = seededPermutation(10, 3 * 7919 + epoch);
      const seen: number[] = [];
      for (let b; (b = await src.next()); ) {
        expect(Array.from(b.yb)).toEqual(Array.from(b.xb.dataSync(), (v) => 100 + v));
        seen.push(...Array.from(b.xb.dataSync()));
        tf.dispose(b.owned);
      }
      expect(seen).toEqual(Array.from(order));
    }
    const inOrder = tensorBatches({ x, labels, batchSize: 4, shuffle: false, seed: 0 })(0);
    const first = (await inOrder.next())!;
    expect(Array.from(first.xb.dataSync())).toEqual([0, 1, 2, 3]);
    tf.dispose(first.owned);
    x.dispose();
  });

  it('a dataset: its own order, one-hot ys to class indices, a new pass each epoch', async () => {
    const batches = [{ xs: tf.tensor2d([[1], [2]]), ys: tf.tensor2d([[0, 1], [1, 0]]) }, { xs: tf.tensor2d([[3]]), ys: tf.tensor1d([2], 'int32') }];
    const ds = {
      size: 2,
      iterator: async () => {
        let i = 0;
        return { next: async () => (i < batches.length ? { done: false as const, value: batches[i++]! } : { done: true as const, value: undefined }) };
      },
    };
    const epochs = datasetBatches(ds);
    for (let e = 0; e < 2; e++) {
      const src = epochs();
      expect(src.total).toBe(2);
      expect(Array.from((await src.next())!.yb)).toEqual([1, 0]);
      expect(Array.from((await src.next())!.yb)).toEqual([2]);
      expect(await src.next()).toBeNull();
    }
    tf.dispose(batches.flatMap((b) => [b.xs, b.ys]));
  });
});
