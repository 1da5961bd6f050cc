/**
 * Faithfulness of an attribution (Petsiuk et al., RISE, BMVC 2018): delete features in decreasing
 * attribution order (set them to `baselineValue`) and record how fast the target score falls, or
 * insert them into a baseline input and record how fast it rises. A faithful attribution gives a
 * small deletion area and a large insertion area; a random order, computed beside it, is the
 * control. Areas are trapezoid rule over the fraction of features changed, in [0, 1].
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkKnownKeys, describe } from '../kernels/validate.js';
import {
  argmax,
  checkChoice,
  checkFinite,
  checkModel,
  checkNumber,
  checkOptions,
  checkPositiveInt,
  forwardInBatches,
  readInputs,
  resolveTargets,
  type ExplainModel,
  type OutputKind,
  type Target,
} from './model.js';
import { permutation, uniformSource } from './random.js';

export interface FaithfulnessOptions {
  /** Class whose score is recorded (default 'predicted': the argmax at x). */
  target?: Target;
  /** The curve has steps + 1 points, at fractions 0, 1/steps, ..., 1 of the features (default 20). */
  steps?: number;
  /** Value a deleted (or not yet inserted) feature takes (default 0). */
  baselineValue?: number;
  /** Feature order: decreasing attribution (default) or a seeded random one. */
  order?: 'attribution' | 'random';
  /** Seed of the random orders (default 0). */
  seed?: number;
  /** Score recorded: the target's probability (default) or its logit. */
  output?: OutputKind;
  /** Inputs per model call (default 256). */
  batchSize?: number;
  /** With order 'attribution', also compute the random-order control (default true). */
  control?: boolean;
}

export interface FaithfulnessCurves {
  /** Per example, the score at each fraction. */
  curves: Float32Array[];
  /** Per example, the area under its curve. */
  auc: Float64Array;
  meanAuc: number;
}

export interface FaithfulnessResult extends FaithfulnessCurves {
  kind: 'deletion' | 'insertion';
  order: 'attribution' | 'random';
  fractions: Float64Array;
  targets: Int32Array;
  /** The same with a seeded random order, as a control (absent when order is 'random' or control is false). */
  control?: FaithfulnessCurves;
}

/** Feature indices by decreasing attribution, ties by index. */
function attributionOrder(a: Float32Array): Int32Array {
  return Int32Array.from(Array.from({ length: a.length }, (_, i) => i).sort((p, q) => a[q]! - a[p]! || p - q));
}

async function readAttributions(v: unknown, shape: number[]): Promise<Float32Array> {
  const size = shape.reduce((a, b) => a * b, 1);
  let data: Float32Array;
  if (v instanceof tf.Tensor) {
    if (v.isDisposed) throw new TypeError(`attributions must be a live tf.Tensor, got a disposed one`);
    if (v.shape.length !== shape.length || v.shape.some((d: number, i: number) => d !== shape[i])) {
      throw new RangeError(`attributions must have x's shape [${shape.join(', ')}], got [${v.shape.join(', ')}]`);
    }
    data = Float32Array.from((await v.data()) as ArrayLike<number>);
  } else if (v instanceof Float32Array) {
    if (v.length !== size) throw new RangeError(`attributions must have x's ${size} elements, got ${v.length}`);
    data = v;
  } else throw new TypeError(`attributions must be a tf.Tensor or Float32Array, got ${describe(v)}`);
  checkFinite(data, 'attributions');
  return data;
}

async function curve(
  kind: 'deletion' | 'insertion',
  model: ExplainModel,
  x: Awaited<ReturnType<typeof readInputs>>,
  orders: Int32Array[],
  targets: Int32Array,
  counts: Int32Array,
  fractions: Float64Array,
  baselineValue: number,
  output: OutputKind,
  batchSize: number,
): Promise<FaithfulnessCurves> {
  const { rows, features: F, featureShape, data } = x;
  const S = counts.length;
  // input p = i * S + s: example i with counts[s] features deleted / inserted
  const fill = (p: number, buf: Float32Array, off: number) => {
    const s = p % S, i = (p - s) / S, order = orders[i]!, xi = data.subarray(i * F, (i + 1) * F);
    if (kind === 'deletion') buf.set(xi, off);
    else buf.fill(baselineValue, off, off + F);
    for (let t = 0; t < counts[s]!; t++) buf[off + order[t]!] = kind === 'deletion' ? baselineValue : xi[order[t]!]!;
  };
  const { scores, cols } = await forwardInBatches(model, rows * S, featureShape, batchSize, output, fill);
  const curves: Float32Array[] = [], auc = new Float64Array(rows);
  for (let i = 0; i < rows; i++) {
    const c = Float32Array.from({ length: S }, (_, s) => scores[(i * S + s) * cols + targets[i]!]!);
    for (let s = 0; s + 1 < S; s++) auc[i]! += ((fractions[s + 1]! - fractions[s]!) * (c[s]! + c[s + 1]!)) / 2;
    curves.push(c);
  }
  return { curves, auc, meanAuc: auc.reduce((a, b) => a + b, 0) / rows };
}

async function faithfulness(kind: 'deletion' | 'insertion', model: unknown, xIn: unknown, attributions: unknown, options: unknown): Promise<FaithfulnessResult> {
  const m = checkModel(model);
  const o = checkOptions(options);
  checkKnownKeys(o, ['target', 'steps', 'baselineValue', 'order', 'seed', 'output', 'batchSize', 'control'], `${kind}Curve`);
  const x = await readInputs(xIn, 'x');
  const attr = await readAttributions(attributions, [x.rows, ...x.featureShape]);
  const steps = o.steps === undefined ? 20 : checkPositiveInt(o.steps, 'steps');
  const baselineValue = checkNumber(o.baselineValue, 'baselineValue', 0);
  const order = checkChoice(o.order, 'order', ['attribution', 'random'] as const, 'attribution');
  const seed = checkNumber(o.seed, 'seed', 0);
  const output = checkChoice(o.output, 'output', ['logits', 'probabilities'] as const, 'probabilities');
  const batchSize = o.batchSize === undefined ? 256 : checkPositiveInt(o.batchSize, 'batchSize');
  if (o.control !== undefined && typeof o.control !== 'boolean') throw new TypeError(`control must be a boolean, got ${describe(o.control)}`);
  const { rows, features: F, data } = x;

  const atX = await forwardInBatches(m, rows, x.featureShape, batchSize, output, (p, buf, off) => buf.set(data.subarray(p * F, (p + 1) * F), off));
  const targets = resolveTargets(o.target, rows, atX.cols, argmax(atX.scores, rows, atX.cols));
  const fractions = Float64Array.from({ length: steps + 1 }, (_, s) => s / steps);
  const counts = Int32Array.from(fractions, (f) => Math.round(f * F));
  const rand = uniformSource(seed);
  const randomOrders = Array.from({ length: rows }, () => permutation(F, rand));
  const attrOrders = Array.from({ length: rows }, (_, i) => attributionOrder(attr.subarray(i * F, (i + 1) * F)));
  const run = (orders: Int32Array[]) => curve(kind, m, x, orders, targets, counts, fractions, baselineValue, output, batchSize);

  const main = await run(order === 'random' ? randomOrders : attrOrders);
  const result: FaithfulnessResult = { kind, order, fractions, targets, ...main };
  if (order === 'attribution' && o.control !== false) result.control = await run(randomOrders);
  return result;
}

/** Deletion curve: the target score as features are set to baselineValue, most important first. */
export function deletionCurve(model: ExplainModel, x: tf.Tensor, attributions: tf.Tensor | Float32Array, options: FaithfulnessOptions = {}): Promise<FaithfulnessResult> {
  return faithfulness('deletion', model, x, attributions, options);
}

/** Insertion curve: the target score as features of x enter a baselineValue input, most important first. */
export function insertionCurve(model: ExplainModel, x: tf.Tensor, attributions: tf.Tensor | Float32Array, options: FaithfulnessOptions = {}): Promise<FaithfulnessResult> {
  return faithfulness('insertion', model, x, attributions, options);
}
