/**
 * Agreement between two attributions of the same inputs, per example and averaged: cosine
 * similarity, Spearman rank correlation (average ranks for ties) and top-k intersection (the share
 * of the k features largest in |attribution| that both pick). A metric that is undefined for an
 * example (a zero vector for cosine, a constant one for Spearman) is NaN there and left out of the
 * mean.
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkKnownKeys, describe } from '../kernels/validate.js';
import { checkFinite, checkOptions, checkPositiveInt } from './model.js';

/** A tensor `[batch, ...features]`, or a Float32Array of `rows` examples laid end to end. */
export type AttributionInput = tf.Tensor | Float32Array;

export interface CompareOptions {
  /** Features in the top-k set (default: 10% of the features, at least 1). */
  topK?: number;
  /** Examples in a Float32Array input (default 1); a tensor's first axis is its batch. */
  rows?: number;
}

export interface AttributionMetrics {
  cosine: number;
  spearman: number;
  topKIntersection: number;
}

export interface AttributionComparison {
  topK: number;
  cosine: Float64Array;
  spearman: Float64Array;
  topKIntersection: Float64Array;
  /** Means over the examples where each metric is defined. */
  mean: AttributionMetrics;
}

async function asRows(v: unknown, name: string, rows: number | undefined): Promise<{ data: Float32Array; rows: number }> {
  if (v instanceof tf.Tensor) {
    if (v.isDisposed) throw new TypeError(`${name} must be a live tf.Tensor, got a disposed one`);
    if (v.rank < 1 || v.size === 0) throw new RangeError(`${name} must be a non-empty tensor [batch, ...features], got shape [${v.shape.join(', ')}]`);
    const data = Float32Array.from((await v.data()) as ArrayLike<number>);
    checkFinite(data, name);
    return { data, rows: v.shape[0]! };
  }
  if (v instanceof Float32Array) {
    const r = rows ?? 1;
    if (v.length === 0 || v.length % r !== 0) throw new RangeError(`${name} must hold rows (${r}) examples of equal size, got ${v.length} elements`);
    checkFinite(v, name);
    return { data: v, rows: r };
  }
  throw new TypeError(`${name} must be a tf.Tensor or Float32Array, got ${describe(v)}`);
}

/** Ranks 1..n, ties given the average of the ranks they span. */
export function averageRanks(v: ArrayLike<number>): Float64Array {
  const n = v.length;
  const idx = Array.from({ length: n }, (_, i) => i).sort((a, b) => v[a]! - v[b]!);
  const ranks = new Float64Array(n);
  for (let s = 0; s < n; ) {
    let e = s;
    while (e + 1 < n && v[idx[e + 1]!] === v[idx[s]!]) e++;
    const r = (s + e) / 2 + 1;
    for (let t = s; t <= e; t++) ranks[idx[t]!] = r;
    s = e + 1;
  }
  return ranks;
}

function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i]! * b[i]!;
    aa += a[i]! * a[i]!;
    bb += b[i]! * b[i]!;
  }
  return aa === 0 || bb === 0 ? NaN : ab / Math.sqrt(aa * bb);
}

function pearson(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  let ma = 0, mb = 0;
  for (let i = 0; i < n; i++) (ma += a[i]! / n), (mb += b[i]! / n);
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < n; i++) {
    const da = a[i]! - ma, db = b[i]! - mb;
    ab += da * db;
    aa += da * da;
    bb += db * db;
  }
  return aa === 0 || bb === 0 ? NaN : ab / Math.sqrt(aa * bb);
}

/** Indices of the k largest |v|, ties broken by the lower index. */
export function topIndices(v: ArrayLike<number>, k: number): Int32Array {
  const idx = Array.from({ length: v.length }, (_, i) => i).sort((a, b) => Math.abs(v[b]!) - Math.abs(v[a]!) || a - b);
  return Int32Array.from(idx.slice(0, k));
}

function topKIntersection(a: ArrayLike<number>, b: ArrayLike<number>, k: number): number {
  const inA = new Set(topIndices(a, k));
  let both = 0;
  for (const i of topIndices(b, k)) both += inA.has(i) ? 1 : 0;
  return both / k;
}

const nanMean = (v: Float64Array): number => {
  let s = 0, n = 0;
  for (const x of v) if (!Number.isNaN(x)) (s += x), n++;
  return n ? s / n : NaN;
};

export async function compareAttributions(a: AttributionInput, b: AttributionInput, options: CompareOptions = {}): Promise<AttributionComparison> {
  const o = checkOptions(options);
  checkKnownKeys(o, ['topK', 'rows'], 'compareAttributions');
  const rowsOpt = o.rows === undefined ? undefined : checkPositiveInt(o.rows, 'rows');
  const A = await asRows(a, 'a', rowsOpt), B = await asRows(b, 'b', rowsOpt);
  if (a instanceof tf.Tensor && b instanceof tf.Tensor && (a.shape.length !== b.shape.length || a.shape.some((v, i) => v !== b.shape[i]))) {
    throw new RangeError(`b must have a's shape [${a.shape.join(', ')}], got [${b.shape.join(', ')}]`);
  }
  if (A.rows !== B.rows || A.data.length !== B.data.length) {
    throw new RangeError(`b must have a's ${A.rows} examples of ${A.data.length / A.rows} features, got ${B.rows} of ${B.data.length / B.rows}`);
  }
  const rows = A.rows, F = A.data.length / rows;
  const topK = o.topK === undefined ? Math.max(1, Math.round(0.1 * F)) : checkPositiveInt(o.topK, 'topK');
  if (topK > F) throw new RangeError(`topK must be at most the number of features (${F}), got ${topK}`);
  const cos = new Float64Array(rows), sp = new Float64Array(rows), tk = new Float64Array(rows);
  for (let i = 0; i < rows; i++) {
    const ai = A.data.subarray(i * F, (i + 1) * F), bi = B.data.subarray(i * F, (i + 1) * F);
    cos[i] = cosine(ai, bi);
    sp[i] = pearson(averageRanks(ai), averageRanks(bi));
    tk[i] = topKIntersection(ai, bi, topK);
  }
  return { topK, cosine: cos, spearman: sp, topKIntersection: tk, mean: { cosine: nanMean(cos), spearman: nanMean(sp), topKIntersection: nanMean(tk) } };
}
