/**
 * The demo's view of the digits (kdfuse/datasets): splits as { x, y, n }, the shape the demo's
 * training and explanation steps were written against.
 */
import { loadDigits as loadDataset, splitDigits as splitDataset, type Digits } from '../datasets/digits.js';

export interface Split {
  /** [n, 64] pixels in [0, 1] */
  x: Float32Array;
  y: Int32Array;
  n: number;
}

const asSplit = (d: Digits): Split => ({ x: d.x, y: d.labels, n: d.rows });

export function loadDigits(): Digits {
  return loadDataset();
}

/** The seeded train / validation / test split of kdfuse/datasets' splitDigits. */
export function splitDigits(d: Digits, seed: number, fractions = { val: 0.1, test: 0.2 }): { train: Split; val: Split; test: Split } {
  const s = splitDataset(d, { seed, validation: fractions.val, test: fractions.test });
  return { train: asSplit(s.train), val: asSplit(s.validation), test: asSplit(s.test) };
}
