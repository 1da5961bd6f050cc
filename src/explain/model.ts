/**
 * What the explainers share: calling a model of any of the three kinds, reading inputs, resolving
 * targets, and running many inputs through a model in batches of a bounded size.
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe } from '../kernels/validate.js';

type ModelOutput = tf.Tensor | tf.Tensor[] | tf.NamedTensorMap;
/**
 * A tfjs LayersModel or GraphModel (anything with `predict`, or `execute` only), or a function
 * from inputs to outputs. The output is `[batch, classes]` (or `[batch]`, read as one class);
 * a model with several outputs is explained through its first.
 */
export type ExplainModel =
  | { predict(x: tf.Tensor, config?: { batchSize?: number }): ModelOutput }
  | { execute(x: tf.Tensor): ModelOutput }
  | ((x: tf.Tensor) => tf.Tensor);

/** The class explained per example: one for all, one per example, or each example's argmax. */
export type Target = number | number[] | Int32Array | 'predicted';
export type OutputKind = 'logits' | 'probabilities';

export function checkModel(model: unknown, name = 'model'): ExplainModel {
  const ok = typeof model === 'function' ||
    (typeof model === 'object' && model !== null &&
      (typeof (model as { predict?: unknown }).predict === 'function' || typeof (model as { execute?: unknown }).execute === 'function'));
  if (!ok) throw new TypeError(`${name} must be a tfjs LayersModel, GraphModel or a function (x: tf.Tensor) => tf.Tensor, got ${describe(model)}`);
  return model as ExplainModel;
}

function firstOutput(out: ModelOutput, name: string): tf.Tensor {
  if (out instanceof tf.Tensor) return out;
  if (Array.isArray(out) && out[0] instanceof tf.Tensor) return out[0];
  if (typeof out === 'object' && out !== null && !Array.isArray(out)) {
    const values = Object.values(out);
    if (values.length === 1 && values[0] instanceof tf.Tensor) return values[0];
  }
  throw new TypeError(`${name} must return a tf.Tensor (or tensors, the first explained), got ${describe(out)}; wrap it in a function returning one tensor`);
}

/** The model's output on `x` as `[rows, classes]`, after softmax when probabilities are asked for. */
export function modelScores(model: ExplainModel, x: tf.Tensor, output: OutputKind, name = 'model'): tf.Tensor2D {
  const rows = x.shape[0]!;
  let y: tf.Tensor;
  try {
    if (typeof model === 'function') y = firstOutput(model(x), name);
    else if ('predict' in model && typeof model.predict === 'function') y = firstOutput(model.predict(x, { batchSize: rows }), name);
    else y = firstOutput((model as { execute(x: tf.Tensor): ModelOutput }).execute(x), name);
  } catch (e) {
    // tfjs-layers checks the input against the model's input shape and throws its own ValueError:
    // that is a wrong argument (the inputs do not fit the model), so it becomes a RangeError naming both
    if (e instanceof Error && (e.name === 'ValueError' || e.constructor?.name === 'ValueError')) {  // its name property stays 'Error'
      throw new RangeError(`${name} does not take inputs of shape [${x.shape.join(', ')}]: ${e.message}`, { cause: e });
    }
    throw e;
  }
  if (y.rank === 1) y = tf.reshape(y, [y.shape[0]!, 1]);
  if (y.rank !== 2 || y.shape[0] !== rows) {
    throw new RangeError(`${name} must output [batch, classes] with one row per input (${rows}), got shape [${y.shape.join(', ')}]`);
  }
  if (y.dtype !== 'float32') y = tf.cast(y, 'float32');
  return (output === 'probabilities' ? tf.softmax(y) : y) as tf.Tensor2D;
}

export interface InputData {
  rows: number;
  /** Shape of one example. */
  featureShape: number[];
  /** Elements of one example. */
  features: number;
  data: Float32Array;
}

/** Checks `x` is a finite tensor `[batch, ...features]` and reads it. */
export async function readInputs(x: unknown, name = 'inputs'): Promise<InputData> {
  if (!(x instanceof tf.Tensor)) throw new TypeError(`${name} must be a tf.Tensor, got ${describe(x)}`);
  if (x.isDisposed) throw new TypeError(`${name} must be a live tf.Tensor, got a disposed one`);
  if (x.rank < 2 || x.size === 0) {
    throw new RangeError(`${name} must have a batch axis and at least one feature axis, [batch, ...features], non-empty, got shape [${x.shape.join(', ')}]`);
  }
  const raw = await x.data();
  const data = raw instanceof Float32Array ? raw : Float32Array.from(raw as ArrayLike<number>);
  checkFinite(data, name);
  const featureShape = x.shape.slice(1);
  return { rows: x.shape[0]!, featureShape, features: data.length / x.shape[0]!, data };
}

export function checkFinite(data: ArrayLike<number>, name: string): void {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) throw new RangeError(`${name} must be finite, got ${String(data[i])} at flat index ${i}`);
  }
}

export function checkPositiveInt(v: unknown, name: string): number {
  if (typeof v !== 'number') throw new TypeError(`${name} must be a number, got ${describe(v)}`);
  if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${name} must be an integer >= 1, got ${String(v)}`);
  return v;
}

export function checkOptions(o: unknown, name = 'options'): Record<string, unknown> {
  if (o === undefined) return {};
  if (typeof o !== 'object' || o === null || Array.isArray(o) || o instanceof tf.Tensor) {
    throw new TypeError(`${name} must be an object, got ${describe(o)}`);
  }
  return o as Record<string, unknown>;
}

export function checkChoice<T extends string>(v: unknown, name: string, choices: readonly T[], fallback: T): T {
  if (v === undefined) return fallback;
  const list = choices.map((c) => `'${c}'`).join(', ');
  if (typeof v !== 'string') throw new TypeError(`${name} must be one of ${list}, got ${describe(v)}`);
  if (!(choices as readonly string[]).includes(v)) throw new RangeError(`${name} must be one of ${list}, got '${v}'`);
  return v as T;
}

export function checkNumber(v: unknown, name: string, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number') throw new TypeError(`${name} must be a number, got ${describe(v)}`);
  if (!Number.isFinite(v)) throw new RangeError(`${name} must be finite, got ${String(v)}`);
  return v;
}

/** Row-wise argmax of `[rows, cols]` scores. */
export function argmax(scores: Float32Array, rows: number, cols: number): Int32Array {
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < cols; c++) if (scores[r * cols + c]! > scores[r * cols + best]!) best = c;
    out[r] = best;
  }
  return out;
}

/** One class per example from `target`, each checked against the model's `cols` classes. */
export function resolveTargets(target: unknown, rows: number, cols: number, predictions: Int32Array, name = 'target'): Int32Array {
  if (target === undefined || target === 'predicted') return Int32Array.from(predictions);
  let t: Int32Array | number[];
  if (typeof target === 'number') t = new Array<number>(rows).fill(target);
  else if (Array.isArray(target) || target instanceof Int32Array) t = target as number[] | Int32Array;
  else if (typeof target === 'string') throw new RangeError(`${name} must be a class index, one per example, or 'predicted', got '${target}'`);
  else throw new TypeError(`${name} must be a number, number[], Int32Array or 'predicted', got ${describe(target)}`);
  if (t.length !== rows) throw new RangeError(`${name} must have one class per example (${rows}), got ${t.length}`);
  const out = new Int32Array(rows);
  for (let i = 0; i < rows; i++) {
    const v = t[i];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= cols) {
      const at = typeof target === 'number' ? '' : `[${i}]`;
      throw new RangeError(`${name}${at} must be an integer class index in [0, ${cols}), got ${String(v)}`);
    }
    out[i] = v;
  }
  return out;
}

/**
 * Runs `total` inputs of shape `featureShape` through the model, `batchSize` at a time; `fill(p,
 * buf, off)` writes input `p` into `buf` at `off`. Returns the scores `[total, cols]`.
 */
export async function forwardInBatches(
  model: ExplainModel,
  total: number,
  featureShape: number[],
  batchSize: number,
  output: OutputKind,
  fill: (p: number, buf: Float32Array, off: number) => void,
  name = 'model',
): Promise<{ scores: Float32Array; cols: number }> {
  const features = featureShape.reduce((a, b) => a * b, 1);
  let scores: Float32Array | undefined;
  let cols = 0;
  for (let start = 0; start < total; start += batchSize) {
    const m = Math.min(batchSize, total - start);
    const buf = new Float32Array(m * features);
    for (let q = 0; q < m; q++) fill(start + q, buf, q * features);
    const y = tf.tidy(() => modelScores(model, tf.tensor(buf, [m, ...featureShape]), output, name));
    const values = await y.data();
    y.dispose();
    if (!scores) {
      cols = y.shape[1]!;
      scores = new Float32Array(total * cols);
    } else if (y.shape[1] !== cols) {
      throw new RangeError(`${name} must output the same number of classes for every batch (${cols}), got ${y.shape[1]}`);
    }
    scores.set(values as Float32Array, start * cols);
  }
  return { scores: scores!, cols };
}

/** `scores[i, targets[i]]` for each row. */
export function pick(scores: Float32Array, cols: number, targets: Int32Array): Float32Array {
  return Float32Array.from(targets, (t, i) => scores[i * cols + t]!);
}

/** A seed for the seeded sources in random.ts: an integer >= 0. */
export function checkSeed(v: unknown, name = 'seed'): number {
  if (typeof v !== 'number') throw new TypeError(`${name} must be a number, got ${describe(v)}`);
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${name} must be an integer >= 0, got ${String(v)}`);
  return v;
}
