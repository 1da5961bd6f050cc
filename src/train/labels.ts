/** Class labels as the training API takes them (a tensor, an Int32Array or a number[]), as one Int32Array. */
import * as tf from '@tensorflow/tfjs-core';
import { describe } from '../kernels/validate.js';

export type Labels = tf.Tensor1D | Int32Array | number[];

/** `y` as an Int32Array of `rows` labels; `name` is the argument named in errors. */
export function labelsArray(y: Labels, rows: number, name: string): Int32Array {
  let out: Int32Array;
  if (y instanceof tf.Tensor) out = Int32Array.from(y.dataSync() as ArrayLike<number>);
  else if (y instanceof Int32Array) out = y;
  else if (Array.isArray(y)) out = Int32Array.from(y);
  else throw new TypeError(`${name} must be a tf.Tensor1D, Int32Array or number[], got ${describe(y)}`);
  if (out.length !== rows) throw new RangeError(`${name} must have one label per row of x (${rows}), got ${out.length}`);
  return out;
}
