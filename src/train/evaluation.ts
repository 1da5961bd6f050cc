/**
 * The numbers a distillation result is reported with: per-class precision, recall and F1, macro-F1,
 * the confusion matrix, model size (parameters and bytes of weights), the compression ratio against
 * a reference (the teacher), and inference latency per row.
 *
 * Conventions: confusion[true][predicted]; a class never predicted has precision 0, a class absent
 * from the labels has recall 0, and F1 is 0 when precision + recall is 0 (scikit-learn's
 * zero_division=0); macro-F1 is the unweighted mean of F1 over all `classes`. Latency: one untimed
 * warm-up batch, then every batch of the evaluation pass timed (forward and read-back, as a caller
 * pays it), and the median over batches of milliseconds per row, with the batch size and tfjs
 * backend it was measured with; the last batch is left out when it is partial and others exist.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { checkKnownKeys, describe, optionalBool, requireObject } from '../kernels/validate.js';
import { accuracy, argmaxRows } from './metrics.js';

/** A classifier: a tfjs LayersModel, or a function from inputs to logits. */
type Classifier = LayersModel | ((x: tf.Tensor) => tf.Tensor);

export interface ClassificationMetrics {
  accuracy: number;
  /** Per class, indexed by class. */
  precision: number[];
  recall: number[];
  f1: number[];
  /** Rows whose label is the class. */
  support: number[];
  /** Unweighted mean of f1 over the classes. */
  macroF1: number;
  /** confusion[t][p]: rows with label t predicted as p. */
  confusion: number[][];
}

export interface ModelSize {
  /** Elements of every weight (trainable or not). */
  parameters: number;
  /** Bytes of those weights at their dtypes (4 per float32 element). */
  bytes: number;
}

export interface Latency {
  /** Median over the timed batches of milliseconds per row. */
  msPerRow: number;
  /** Rows per timed batch. */
  batchSize: number;
  /** Batches timed. */
  batches: number;
  /** The tfjs backend it ran on ('cpu', 'wasm', 'tensorflow', ...). */
  backend: string;
}

export interface ClassifierReport extends ClassificationMetrics {
  rows: number;
  classes: number;
  /** Absent for a function model (its weights cannot be seen). */
  size?: ModelSize;
  /** reference bytes / model bytes, when both sizes are known (how many times smaller the model is). */
  compressionRatio?: number;
  /** Absent with latency: false. */
  latency?: Latency;
}

export interface EvaluateClassifierOptions {
  /** Rows per model call (default 256); also the latency batch size. */
  batchSize?: number;
  /** A reference model (usually the teacher) for compressionRatio. */
  reference?: Classifier;
  /** Measure latency (default true). */
  latency?: boolean;
  /** Number of classes (default: the model's output width). */
  classes?: number;
}

const isLayersModel = (m: unknown): m is LayersModel =>
  typeof m === 'object' && m !== null && typeof (m as LayersModel).predict === 'function' && Array.isArray((m as LayersModel).outputs);

const BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 1, complex64: 8, string: 0 };

/** Parameters and bytes of a LayersModel's weights; undefined for a function. */
export function modelSize(model: Classifier): ModelSize | undefined {
  if (!isLayersModel(model)) return undefined;
  let parameters = 0, bytes = 0;
  for (const w of model.weights) {
    const n = w.shape.reduce((a: number, b) => a * (b ?? 1), 1);
    parameters += n;
    bytes += n * (BYTES[w.dtype] ?? 4);
  }
  return { parameters, bytes };
}

/** Precision, recall, F1 per class, macro-F1 and the confusion matrix of predictions against labels. */
export function classificationMetrics(predictions: Int32Array, labels: ArrayLike<number>, classes: number): ClassificationMetrics {
  if (predictions.length !== labels.length) throw new RangeError(`labels must have one entry per prediction (${predictions.length}), got ${labels.length}`);
  const confusion = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  for (let i = 0; i < predictions.length; i++) {
    const t = labels[i]!, p = predictions[i]!;
    if (!Number.isInteger(t) || t < 0 || t >= classes) throw new RangeError(`labels[${i}] must be a class index in [0, ${classes}), got ${t}`);
    confusion[t]![p]!++;
  }
  const precision: number[] = [], recall: number[] = [], f1: number[] = [], support: number[] = [];
  for (let c = 0; c < classes; c++) {
    let predicted = 0, actual = 0;
    for (let k = 0; k < classes; k++) { predicted += confusion[k]![c]!; actual += confusion[c]![k]!; }
    const tp = confusion[c]![c]!;
    const p = predicted ? tp / predicted : 0, r = actual ? tp / actual : 0;
    precision.push(p); recall.push(r); support.push(actual);
    f1.push(p + r > 0 ? (2 * p * r) / (p + r) : 0);
  }
  return {
    accuracy: accuracy(predictions, labels),
    precision, recall, f1, support,
    macroF1: classes ? f1.reduce((a, b) => a + b, 0) / classes : 0,
    confusion,
  };
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b), m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The model's logits on x in batches, with the latency of each batch when asked for. */
export function logitsInBatches(model: Classifier, x: tf.Tensor, batchSize: number, timed: boolean): { logits: Float32Array; latency?: Latency } {
  const rows = x.shape[0]!;
  const call = (xb: tf.Tensor) => (isLayersModel(model) ? (model.predict(xb) as tf.Tensor) : model(xb));
  if (timed && rows > 0) tf.tidy(() => call(tf.slice(x, 0, Math.min(batchSize, rows))).dataSync());  // warm-up
  const parts: Float32Array[] = [], perRow: number[] = [];
  for (let b = 0; b < rows; b += batchSize) {
    const n = Math.min(batchSize, rows - b);
    const xb = tf.slice(x, b, n);
    const t0 = performance.now();
    const values = tf.tidy(() => call(xb).dataSync() as Float32Array).slice();
    const ms = performance.now() - t0;
    xb.dispose();
    parts.push(values);
    if (n === batchSize || b === 0) perRow.push(ms / n);
  }
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  if (!timed) return { logits: out };
  return { logits: out, latency: { msPerRow: median(perRow), batchSize: Math.min(batchSize, rows), batches: perRow.length, backend: tf.getBackend() } };
}

function labelsOf(y: unknown, rows: number): Int32Array {
  let out: Int32Array;
  if (y instanceof tf.Tensor) out = Int32Array.from(y.dataSync() as ArrayLike<number>);
  else if (y instanceof Int32Array) out = y;
  else if (Array.isArray(y)) out = Int32Array.from(y as number[]);
  else throw new TypeError(`y must be a tf.Tensor1D, Int32Array or number[], got ${describe(y)}`);
  if (out.length !== rows) throw new RangeError(`y must have one label per row of x (${rows}), got ${out.length}`);
  return out;
}

/**
 * Evaluates one classifier on (x, y): accuracy, per-class precision / recall / F1, macro-F1, the
 * confusion matrix, its size, the compression ratio against `reference`, and latency per row.
 */
export function evaluateClassifier(model: Classifier, x: tf.Tensor, y: tf.Tensor | Int32Array | number[], options: EvaluateClassifierOptions = {}): ClassifierReport {
  if (!isLayersModel(model) && typeof model !== 'function') throw new TypeError(`model must be a tf.LayersModel or a function (x) => logits, got ${describe(model)}`);
  if (!(x instanceof tf.Tensor)) throw new TypeError(`x must be a tf.Tensor, got ${describe(x)}`);
  const o = requireObject(options, 'options');
  checkKnownKeys(o, ['batchSize', 'reference', 'latency', 'classes'], 'evaluateClassifier');
  const batchSize = o.batchSize === undefined ? 256 : o.batchSize;
  if (typeof batchSize !== 'number' || !Number.isSafeInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be an integer >= 1, got ${describe(batchSize)}`);
  const timed = optionalBool(o, 'latency', true);
  const ref = o.reference as Classifier | undefined;
  if (ref !== undefined && !isLayersModel(ref) && typeof ref !== 'function') throw new TypeError(`reference must be a tf.LayersModel or a function, got ${describe(ref)}`);
  const rows = x.shape[0]!;
  const labels = labelsOf(y, rows);
  const { logits, latency } = logitsInBatches(model, x, batchSize, timed);
  const width = rows ? logits.length / rows : 0;
  const classes = o.classes === undefined ? width : o.classes;
  if (typeof classes !== 'number' || !Number.isSafeInteger(classes) || classes < width) {
    throw new RangeError(`classes must be an integer >= the model's output width (${width}), got ${describe(classes)}`);
  }
  const metrics = classificationMetrics(argmaxRows(logits, rows, width), labels, classes);
  const size = modelSize(model), refSize = ref === undefined ? undefined : modelSize(ref);
  const report: ClassifierReport = { rows, classes, ...metrics };
  if (size) report.size = size;
  if (size && refSize && size.bytes > 0) report.compressionRatio = refSize.bytes / size.bytes;
  if (latency) report.latency = latency;
  return report;
}
