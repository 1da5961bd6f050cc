/** Moving data between tfjs tensors and the kernels' Float32Arrays, with argument checks. */
import * as tf from '@tensorflow/tfjs-core';
import { describe } from '../kernels/validate.js';

/** Checks `x` is a live (not disposed) tf.Tensor. */
export function requireTensor(x: unknown, name: string): tf.Tensor {
  if (!(x instanceof tf.Tensor)) throw new TypeError(`${name} must be a tf.Tensor, got ${describe(x)}`);
  if (x.isDisposed) throw new TypeError(`${name} must be a live tf.Tensor, got a disposed one`);
  return x;
}

/** Checks `x` is a live tensor of numbers (float32 or int32: not string, bool or complex64). */
export function requireNumericTensor(x: unknown, name: string): tf.Tensor {
  const t = requireTensor(x, name);
  if (t.dtype !== 'float32' && t.dtype !== 'int32') throw new TypeError(`${name} must be a float32 or int32 tensor, got a ${t.dtype} one`);
  return t;
}

/** Checks `x` is a rank-2 tensor and returns [rows, cols]. */
export function shape2d(x: unknown, name: string): [number, number] {
  const t = requireTensor(x, name);
  if (t.rank !== 2) throw new RangeError(`${name} must be a rank-2 tensor [rows, cols], got shape [${t.shape.join(', ')}]`);
  return [t.shape[0]!, t.shape[1]!];
}

/** The tensor's values as float32 (read synchronously, as the kernels run on the CPU). */
export function f32(x: tf.Tensor): Float32Array {
  if (x.dtype === 'float32') return x.dataSync() as Float32Array;
  return Float32Array.from(x.dataSync() as ArrayLike<number>);
}

interface HeapBackend {
  dataIdMap?: { has(id: object): boolean };
  typedArrayFromHeap?(info: { shape: number[]; dtype: 'float32'; dataId: object }): Float32Array;
}

/**
 * A float32 tensor's values for a synchronous kernel call that follows at once. On the wasm
 * backend: a view of the tensor's memory in the wasm heap, no copy (dataSync would copy the values
 * into fresh pages on every call, which for a 16 MB weight costs more than the fused head itself).
 * The view is valid until the backend next allocates (the heap may grow and move), so take it
 * right before the call. Elsewhere, as f32.
 */
export function f32Now(x: tf.Tensor): Float32Array {
  if (x.dtype === 'float32' && tf.getBackend() === 'wasm') {
    const b = tf.backend() as unknown as HeapBackend;
    if (typeof b.typedArrayFromHeap === 'function' && b.dataIdMap?.has(x.dataId)) {
      const v = b.typedArrayFromHeap({ shape: x.shape, dtype: 'float32', dataId: x.dataId });
      // a shared heap (wasm threads) could change under the kernel: copy instead
      if (v.length === x.size && !(typeof SharedArrayBuffer !== 'undefined' && v.buffer instanceof SharedArrayBuffer)) return v;
    }
  }
  return f32(x);
}

/** Labels from a tensor, Int32Array or number[] as an Int32Array (checked again by the kernels). */
export function labelsArray(labels: unknown): Int32Array | number[] | undefined {
  if (labels === undefined || labels === null) return undefined;
  if (labels instanceof tf.Tensor) {
    if (labels.isDisposed) throw new TypeError(`labels must be a live tf.Tensor, got a disposed one`);
    if (labels.rank !== 1) throw new RangeError(`labels must be a rank-1 tensor, got shape [${labels.shape.join(', ')}]`);
    return Array.from(labels.dataSync() as ArrayLike<number>);
  }
  if (labels instanceof Int32Array || Array.isArray(labels)) return labels as Int32Array | number[];
  throw new TypeError(`labels must be a tf.Tensor1D, Int32Array or number[], got ${describe(labels)}`);
}
