/**
 * The UCI "Optical Recognition of Handwritten Digits" data (Alpaydin and Kaynak, 1998), as the
 * 1797-image copy scikit-learn distributes: 8 × 8 images whose pixels count the ink in 4 × 4
 * blocks of a 32 × 32 bitmap (0..16), and the digit 0..9. Shipped gzipped in data/digits.csv.gz,
 * one image per line: 64 pixel values row by row, then the label. docs/datasets.md credits the source.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { packageRoot } from '../kernels/native.js';
import { checkKnownKeys, describe, optionalNumber, requireObject } from '../kernels/validate.js';
import { seededPermutation } from '../train/metrics.js';

/** The checksum of data/digits.csv.gz: a changed or damaged file is refused, not half-read. */
export const DIGITS_SHA256 = '46abec6b12486ad9e51943373abcf22bbea1b5a51a1619b361570d8893f1464a';

/** A labelled image set, row-major: row r's pixels are x[r * features, (r + 1) * features). */
export interface Digits {
  /** [rows × 64] pixels scaled from 0..16 to [0, 1]. */
  x: Float32Array;
  /** [rows] the digit each image shows, 0..9. */
  labels: Int32Array;
  rows: number;
  features: 64;
  classes: 10;
}

export interface LoadDigitsOptions {
  /** Another copy of the file (same format and checksum); default: the package's data/digits.csv.gz. */
  file?: string;
}

/** All 1797 digits, in the file's order. Throws if the file is missing, altered or malformed. */
export function loadDigits(options: LoadDigitsOptions = {}): Digits {
  const o = requireObject(options, 'options');
  checkKnownKeys(o, ['file'], 'loadDigits');
  if (o.file !== undefined && typeof o.file !== 'string') throw new TypeError(`file must be a string, got ${describe(o.file)}`);
  const file = (o.file as string | undefined) ?? join(packageRoot(), 'data', 'digits.csv.gz');
  const gz = readFileSync(file);
  const sha = createHash('sha256').update(gz).digest('hex');
  if (sha !== DIGITS_SHA256) throw new Error(`${file} has sha256 ${sha}, expected ${DIGITS_SHA256}`);
  const lines = gunzipSync(gz).toString('utf8').trim().split('\n');
  const rows = lines.length;
  const x = new Float32Array(rows * 64), labels = new Int32Array(rows);
  lines.forEach((line, i) => {
    const v = line.split(',').map(Number);
    if (v.length !== 65) throw new Error(`${file}: line ${i + 1} has ${v.length} values, expected 65`);
    for (let j = 0; j < 64; j++) x[i * 64 + j] = v[j]! / 16;
    labels[i] = v[64]!;
  });
  return { x, labels, rows, features: 64, classes: 10 };
}

/** Rows of a data set picked by index, in that order. */
export function takeRows(d: Digits, index: ArrayLike<number>): Digits {
  const f = d.features;
  const x = new Float32Array(index.length * f), labels = new Int32Array(index.length);
  for (let i = 0; i < index.length; i++) {
    const r = index[i]!;
    if (!Number.isInteger(r) || r < 0 || r >= d.rows) throw new RangeError(`index[${i}] must be an integer row in [0, ${d.rows}), got ${String(r)}`);
    x.set(d.x.subarray(r * f, (r + 1) * f), i * f);
    labels[i] = d.labels[r]!;
  }
  return { x, labels, rows: index.length, features: d.features, classes: d.classes };
}

export interface SplitOptions {
  /** Seed of the shuffle (default 1): the same seed gives the same split on every machine. */
  seed?: number;
  /** Share of the rows held out for validation (default 0.1). */
  validation?: number;
  /** Share of the rows held out for the test (default 0.2). */
  test?: number;
}

export interface DigitsSplit {
  train: Digits;
  validation: Digits;
  test: Digits;
}

/**
 * A seeded shuffle of the rows cut into test, validation and train parts (in that order of the
 * shuffle; the demo's split). Shares are rounded to whole rows.
 */
export function splitDigits(d: Digits, options: SplitOptions = {}): DigitsSplit {
  const o = requireObject(options, 'options');
  checkKnownKeys(o, ['seed', 'validation', 'test'], 'splitDigits');
  const seed = optionalNumber(o, 'seed', 1), val = optionalNumber(o, 'validation', 0.1), test = optionalNumber(o, 'test', 0.2);
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be an integer, got ${String(seed)}`);
  for (const [name, v] of [['validation', val], ['test', test]] as const) {
    if (!(v >= 0 && v < 1)) throw new RangeError(`${name} must be in [0, 1), got ${String(v)}`);
  }
  if (val + test >= 1) throw new RangeError(`validation + test must be < 1, got ${String(val + test)}`);
  const order = seededPermutation(d.rows, seed);
  const nTest = Math.round(d.rows * test), nVal = Math.round(d.rows * val);
  return {
    test: takeRows(d, order.subarray(0, nTest)),
    validation: takeRows(d, order.subarray(nTest, nTest + nVal)),
    train: takeRows(d, order.subarray(nTest + nVal)),
  };
}
