/**
 * The top-k teacher of the `topk` suite: per row, the k = 64 largest teacher logits of the dense
 * workload as log-probabilities (as a serving engine returns them), made once per shape.
 */
import type { Data } from './workload.js';

export const TOPK_K = 64;

export interface TopKData {
  k: number;
  indices: Int32Array;
  logprobs: Float32Array;
}

const made = new WeakMap<Data, TopKData>();

/** The k largest of row r: a min-heap of k, so most columns cost one comparison. */
function topRow(t: Float32Array, o: number, cols: number, k: number, idx: Int32Array, io: number): void {
  const heap: number[] = [];
  const less = (a: number, b: number) => t[o + a]! < t[o + b]!;
  const down = (i: number) => {
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < heap.length && less(heap[l]!, heap[m]!)) m = l;
      if (r < heap.length && less(heap[r]!, heap[m]!)) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m]!, heap[i]!];
      i = m;
    }
  };
  for (let c = 0; c < cols; c++) {
    if (heap.length < k) {
      heap.push(c);
      for (let i = heap.length - 1; i > 0;) {
        const p = (i - 1) >> 1;
        if (!less(heap[i]!, heap[p]!)) break;
        [heap[i], heap[p]] = [heap[p]!, heap[i]!];
        i = p;
      }
    } else if (t[o + c]! > t[o + heap[0]!]!) {
      heap[0] = c;
      down(0);
    }
  }
  heap.sort((a, b) => t[o + b]! - t[o + a]!);
  for (let j = 0; j < k; j++) idx[io + j] = j < heap.length ? heap[j]! : -1;
}

export function topkData(d: Data): TopKData {
  const have = made.get(d);
  if (have) return have;
  const { rows, cols, teacher } = d;
  const k = Math.min(TOPK_K, cols);
  const indices = new Int32Array(rows * k), logprobs = new Float32Array(rows * k);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let m = -Infinity;
    for (let c = 0; c < cols; c++) m = Math.max(m, teacher[o + c]!);
    let s = 0;
    for (let c = 0; c < cols; c++) s += Math.exp(teacher[o + c]! - m);
    const lse = m + Math.log(s);
    topRow(teacher, o, cols, k, indices, r * k);
    for (let j = 0; j < k; j++) logprobs[r * k + j] = Math.min(0, teacher[o + indices[r * k + j]!]! - lse);
  }
  const t = { k, indices, logprobs };
  made.set(d, t);
  return t;
}
