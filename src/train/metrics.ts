import { argmax } from '../explain/model.js';
import { permutation, uniformSource } from '../explain/random.js';
import { checkLength, describe, requireDim, requireF32 } from '../kernels/validate.js';

/**
 * Evaluation metrics over logits held as plain arrays: accuracy, agreement and calibration.
 * Sizes are checked first: a rows/cols pair larger than the array read past it (NaN or garbage),
 * and a huge one ran for minutes (fuzzing finding F4, docs/reliability.md).
 */

/** The most confidence bins expectedCalibrationError takes (each is three float64 counters). */
export const MAX_CALIBRATION_BINS = 10_000;

function checkLogits(logits: unknown, rows: unknown, cols: unknown): { x: Float32Array; rows: number; cols: number } {
  const x = requireF32(logits, 'logits');
  const r = requireDim(rows, 'rows'), c = requireDim(cols, 'cols');
  checkLength('logits', x.length, r * c, false);
  return { x, rows: r, cols: c };
}

function requireArrayLike(v: unknown, name: string): ArrayLike<number> {
  const ok = ArrayBuffer.isView(v) && !(v instanceof DataView) || Array.isArray(v);
  if (!ok) throw new TypeError(`${name} must be an array or typed array of class indices, got ${describe(v)}`);
  return v as ArrayLike<number>;
}

/** Row-wise argmax of `[rows, cols]` logits, its arguments checked (the public form of explain's argmax). */
export function argmaxRows(logits: Float32Array, rows: number, cols: number): Int32Array {
  ({ rows, cols } = checkLogits(logits, rows, cols));
  return argmax(logits, rows, cols);
}

export function accuracy(pred: Int32Array, labels: ArrayLike<number>): number {
  requireArrayLike(pred, 'pred');
  requireArrayLike(labels, 'labels');
  if (labels.length !== pred.length) throw new RangeError(`labels must have pred.length = ${pred.length} elements, got ${labels.length}`);
  let hit = 0;
  for (let i = 0; i < pred.length; i++) hit += pred[i] === labels[i] ? 1 : 0;
  return pred.length ? hit / pred.length : 0;
}

/** Fraction of rows where two models pick the same class (top-1 agreement). */
export function agreement(a: Int32Array, b: Int32Array): number {
  requireArrayLike(a, 'a');
  requireArrayLike(b, 'b');
  if (b.length !== a.length) throw new RangeError(`b must have a.length = ${a.length} elements, got ${b.length}`);
  return accuracy(a, b);
}

/**
 * Expected calibration error with `bins` equal-width confidence bins (Guo et al., 2017):
 * sum over bins of (bin size / n) * |accuracy(bin) - mean confidence(bin)|, confidence = max softmax.
 */
export function expectedCalibrationError(logits: Float32Array, rows: number, cols: number, labels: ArrayLike<number>, bins = 15): number {
  ({ rows, cols } = checkLogits(logits, rows, cols));
  requireArrayLike(labels, 'labels');
  checkLength('labels', labels.length, rows, false, 'rows');
  if (requireDim(bins, 'bins') > MAX_CALIBRATION_BINS) throw new RangeError(`bins must be an integer in [1, ${MAX_CALIBRATION_BINS}], got ${bins}`);
  const count = new Float64Array(bins), conf = new Float64Array(bins), hits = new Float64Array(bins);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity, best = 0;
    for (let c = 0; c < cols; c++) if (logits[r * cols + c]! > m) { m = logits[r * cols + c]!; best = c; }
    let z = 0;
    for (let c = 0; c < cols; c++) z += Math.exp(logits[r * cols + c]! - m);
    const p = 1 / z;  // softmax of the top class
    const b = Math.min(bins - 1, Math.floor(p * bins));
    count[b]! += 1;
    conf[b]! += p;
    hits[b]! += best === labels[r] ? 1 : 0;
  }
  let ece = 0;
  for (let b = 0; b < bins; b++) if (count[b]! > 0) ece += Math.abs(hits[b]! - conf[b]!) / rows;
  return ece;
}

/** A seeded permutation of 0..n-1 (mulberry32 + Fisher-Yates), so shuffles are reproducible. */
export function seededPermutation(n: number, seed: number): Int32Array {
  if (typeof n !== 'number') throw new TypeError(`n must be a number, got ${describe(n)}`);
  if (!Number.isInteger(n) || n < 0 || n > 2 ** 31 - 1) throw new RangeError(`n must be an integer in [0, 2147483647] (an Int32Array of indices), got ${String(n)}`);
  if (typeof seed !== 'number' || !Number.isFinite(seed)) throw new TypeError(`seed must be a finite number, got ${describe(seed)}`);
  return permutation(n, uniformSource(seed));
}
