import { permutation, uniformSource } from '../explain/random.js';

/** Evaluation metrics over logits held as plain arrays: accuracy, agreement and calibration. */

export function argmaxRows(logits: Float32Array, rows: number, cols: number): Int32Array {
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < cols; c++) if (logits[r * cols + c]! > logits[r * cols + best]!) best = c;
    out[r] = best;
  }
  return out;
}

export function accuracy(pred: Int32Array, labels: ArrayLike<number>): number {
  let hit = 0;
  for (let i = 0; i < pred.length; i++) hit += pred[i] === labels[i] ? 1 : 0;
  return pred.length ? hit / pred.length : 0;
}

/** Fraction of rows where two models pick the same class (top-1 agreement). */
export function agreement(a: Int32Array, b: Int32Array): number {
  return accuracy(a, b);
}

/**
 * Expected calibration error with `bins` equal-width confidence bins (Guo et al., 2017):
 * sum over bins of (bin size / n) * |accuracy(bin) - mean confidence(bin)|, confidence = max softmax.
 */
export function expectedCalibrationError(logits: Float32Array, rows: number, cols: number, labels: ArrayLike<number>, bins = 15): number {
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
  return permutation(n, uniformSource(seed));
}
