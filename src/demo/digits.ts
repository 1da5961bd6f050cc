/**
 * The UCI optical-recognition handwritten digits (8x8 images, 1797 samples, 10 classes), shipped in
 * data/digits.csv.gz (scikit-learn's copy; see README for credit and licence). Each line holds 64
 * pixel values 0..16 and the label.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { packageRoot } from '../kernels/native.js';
import { seededPermutation } from '../train/metrics.js';

export const DIGITS_SHA256 = '46abec6b12486ad9e51943373abcf22bbea1b5a51a1619b361570d8893f1464a';

export interface Digits {
  /** [n, 64] pixels scaled to [0, 1] */
  x: Float32Array;
  y: Int32Array;
  n: number;
}

export function loadDigits(file = join(packageRoot(), 'data', 'digits.csv.gz')): Digits {
  const gz = readFileSync(file);
  const sha = createHash('sha256').update(gz).digest('hex');
  if (sha !== DIGITS_SHA256) throw new Error(`${file} has sha256 ${sha}, expected ${DIGITS_SHA256}`);
  const lines = gunzipSync(gz).toString('utf8').trim().split('\n');
  const n = lines.length;
  const x = new Float32Array(n * 64), y = new Int32Array(n);
  lines.forEach((line, i) => {
    const v = line.split(',').map(Number);
    if (v.length !== 65) throw new Error(`${file}: line ${i + 1} has ${v.length} values, expected 65`);
    for (let j = 0; j < 64; j++) x[i * 64 + j] = v[j]! / 16;
    y[i] = v[64]!;
  });
  return { x, y, n };
}

export interface Split {
  x: Float32Array;
  y: Int32Array;
  n: number;
}

/** A seeded shuffle split into train / validation / test by the given fractions. */
export function splitDigits(d: Digits, seed: number, fractions = { val: 0.1, test: 0.2 }): { train: Split; val: Split; test: Split } {
  const order = seededPermutation(d.n, seed);
  const nTest = Math.round(d.n * fractions.test), nVal = Math.round(d.n * fractions.val);
  const take = (idx: Int32Array): Split => {
    const x = new Float32Array(idx.length * 64), y = new Int32Array(idx.length);
    idx.forEach((r, i) => {
      x.set(d.x.subarray(r * 64, r * 64 + 64), i * 64);
      y[i] = d.y[r]!;
    });
    return { x, y, n: idx.length };
  };
  return {
    test: take(order.subarray(0, nTest)),
    val: take(order.subarray(nTest, nTest + nVal)),
    train: take(order.subarray(nTest + nVal)),
  };
}
