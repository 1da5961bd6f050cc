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

/**
 * Gradient arrays kept between an op's calls, so a training loop does not touch fresh pages every
 * step (on these machines that costs about as much as the fused kernels themselves). A set is lent
 * to one call from its kernel run until its gradient tensors exist; a call that finds its set still
 * lent (the op used twice on one tape) or still in use gets arrays of its own. "In use": the wasm
 * backend copies a tensor's values into its heap, so never once the tensors exist; the cpu backend
 * keeps the array itself as the tensor's storage, so until the backend no longer holds any of the
 * tensors made from it (its reference-counted data store no longer has their data ids). Other
 * backends (webgl, webgpu, tfjs-node) keep the array until they upload it: no lending there.
 */
export interface GradLease {
  arrays: Float32Array[];
  /** The gradient tensors now exist (made from `arrays`): the set may be lent again once they are gone. */
  done(tensors: tf.Tensor[]): void;
  /** The call failed: the set may be lent again at once. */
  cancel(): void;
}

interface GradSet { arrays: Float32Array[]; lent: boolean; held: object[] }
const gradSets = new Map<string, GradSet>();

/**
 * Whether tfjs is recording operations for a gradient (tf.grad, variableGrads, minimize). Ask it
 * before calling a tf.customGrad op: inside the op's forward function tfjs records nothing.
 */
export function isTapeOn(): boolean {
  const engine = tf.engine() as unknown as { isTapeOn?: () => boolean };
  return !engine.isTapeOn || engine.isTapeOn();
}

/** Whether the current backend's storage still holds `dataId`; undefined: arrays are not lent here. */
function heldBy(): ((dataId: object) => boolean) | undefined {
  const name = tf.getBackend();
  if (name === 'wasm') return () => false;
  if (name !== 'cpu') return undefined;
  const data = (tf.backend() as unknown as { data?: { has?(id: object): boolean } }).data;
  return typeof data?.has === 'function' ? (id) => data.has!(id) : undefined;
}

/** Arrays of the given sizes for one call's gradients, or undefined where the backend aliases them. */
export function lendGradArrays(op: string, sizes: number[]): GradLease | undefined {
  const held = heldBy();
  if (!held) return undefined;
  const key = `${tf.getBackend()}:${op}:${sizes.join('x')}`;
  const kept = gradSets.get(key);
  let set: GradSet;
  if (kept && !kept.lent && !kept.held.some(held)) {
    set = kept;
  } else {
    // the new set is the one kept from now on: a set still lent stays with its call (and is
    // dropped if that call's gradients are never asked for)
    set = { arrays: sizes.map((n) => new Float32Array(n)), lent: true, held: [] };
    gradSets.set(key, set);
  }
  set.lent = true;
  set.held = [];
  return {
    arrays: set.arrays,
    done: (tensors) => {
      set.held = tensors.map((t) => t.dataId);
      set.lent = false;
    },
    cancel: () => {
      set.lent = false;
    },
  };
}

/**
 * Multiplies a gradient by its upstream gradient in place: by dy[0] everywhere, or with `rowLength`
 * by dy[r] on row r (reduction 'none'). A factor of 1 (what optimizer.minimize passes) costs nothing.
 */
export function scaleByUpstream(g: Float32Array, dy: ArrayLike<number>, rowLength = g.length): Float32Array {
  for (let row = 0; row * rowLength < g.length; row++) {
    const k = dy[row]!;
    if (k === 1) continue;
    const to = Math.min(g.length, (row + 1) * rowLength);
    for (let i = row * rowLength; i < to; i++) g[i]! *= k;
  }
  return g;
}
