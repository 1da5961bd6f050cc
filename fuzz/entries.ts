/**
 * How the fuzzer calls each export. The kernels, tfjs ops and the explain / train functions with
 * array or tensor arguments get arguments shaped like a real call and then mutated (so the calls
 * reach past the first check); every other export, and every export some of the time, gets junk.
 * `exportsOf` lists every runtime export of kdfuse, kdfuse/tfjs, kdfuse/train and kdfuse/explain,
 * so a new export is fuzzed (with junk) without being added here.
 */
import * as tf from '@tensorflow/tfjs';
import * as kd from '../src/index.js';
import * as explain from '../src/explain/index.js';
import * as kdtf from '../src/tfjs/index.js';
import * as train from '../src/train/index.js';
import type { Gen } from './values.js';

/** A prepared call: its arguments (for the report) and how to make it. */
export interface Prepared {
  args: unknown[];
  run: () => unknown;
}
export type Call = (g: Gen) => Prepared;

/** fn(...args), kept apart so a finding can print the arguments. */
function c(fn: (...a: never[]) => unknown, ...args: unknown[]): Prepared {
  return { args, run: () => (fn as (...a: unknown[]) => unknown)(...args) };
}

export interface Entry {
  name: string;
  call: Call;
}

/** Every function exported by the four entry points (and the cuda namespace), by its public name. */
export function exportsOf(): Map<string, (...args: unknown[]) => unknown> {
  const out = new Map<string, (...args: unknown[]) => unknown>();
  const add = (prefix: string, mod: Record<string, unknown>): void => {
    for (const [k, v] of Object.entries(mod)) {
      if (typeof v === 'function') out.set(prefix + k, v as (...args: unknown[]) => unknown);
      else if (k === 'cuda' && v && typeof v === 'object') add(`${prefix}cuda.`, v as Record<string, unknown>);
    }
  };
  add('kdfuse:', kd as unknown as Record<string, unknown>);
  add('kdfuse/tfjs:', kdtf as unknown as Record<string, unknown>);
  add('kdfuse/train:', train as unknown as Record<string, unknown>);
  add('kdfuse/explain:', explain as unknown as Record<string, unknown>);
  return out;
}

function shape(g: Gen): [number, number] {
  return [1 + g.int(g.chance(0.2) ? 40 : 6), 1 + g.int(g.chance(0.2) ? 1100 : 12)];
}

/**
 * Output arrays, some of them aliasing the inputs: the same buffer as the student, or an Int32Array
 * labels view inside the gradient's buffer (issue 13 item 1).
 */
function distillOptions(g: Gen, async: boolean): Record<string, unknown> {
  const [rows, cols] = shape(g);
  const student = g.f32(rows * cols), teacher = g.f32(rows * cols);
  const o: Record<string, unknown> = { student, teacher, rows: g.dim(rows), cols: g.dim(cols) };
  if (g.chance(0.6)) o.labels = g.labels(rows, cols);
  if (g.chance(0.8)) o.temperature = g.pick([1, 2, 4, 0.05, 100, 0.5, 1e4, 1e-3, 0, -1, NaN, 1e308, 2e-110]);
  if (g.chance(0.5)) o.alpha = g.pick([0, 0.5, 0.9, 1, 1.5, NaN]);
  if (g.chance(0.3)) o.labelSmoothing = g.pick([0, 0.1, 0.99, 1, -0.1]);
  if (g.chance(0.3)) o.ignoreIndex = g.pick([-100, 0, -1, 1.5]);
  if (g.chance(0.5)) o.reduction = g.pick(['mean', 'sum', 'none', 'avg']);
  if (g.chance(0.5)) o.divergence = g.pick(['kl', 'reverse-kl', 'jsd', 'KL']);
  if (g.chance(0.3)) o.beta = g.pick([0, 0.5, 1, 2]);
  if (g.chance(0.3)) o.gradOutput = g.chance(0.5) ? g.pick([1, 0, -2, NaN]) : g.f32(rows);
  if (g.chance(0.3)) o.computeStudentGrad = g.chance(0.7);
  if (g.chance(0.3)) o.computeTeacherGrad = g.chance(0.7);
  if (g.chance(0.3)) {
    const out: Record<string, unknown> = {};
    const r = g.rand();
    if (r < 0.3) out.gradStudent = g.f32(rows * cols);
    else if (r < 0.45) out.gradStudent = student;  // aliases an input
    else if (r < 0.6) {
      // one buffer: the gradient, and the labels inside it (issue 13 item 1)
      const buf = new ArrayBuffer(4 * (rows * cols + rows));
      out.gradStudent = new Float32Array(buf);
      o.labels = new Int32Array(buf, 4 * cols, rows);
    } else if (r < 0.75) out.gradTeacher = new Float32Array(student.buffer.byteLength >= 4 ? student.buffer : new ArrayBuffer(4));
    else out.losses = g.f32(rows);
    o.out = out;
  }
  if (async && g.chance(0.2)) o.signal = g.junk();
  return o;
}

/** A teacher given by k entries per row: column ids (some repeated, out of range or -1) and log-probabilities. */
function topkEntries(g: Gen, rows: number, cols: number): { k: number; teacherIndices: Int32Array; teacherLogprobs: Float32Array } {
  const k = 1 + g.int(Math.min(cols, 6));
  const teacherIndices = new Int32Array(rows * k), teacherLogprobs = new Float32Array(rows * k);
  for (let i = 0; i < rows * k; i++) {
    teacherIndices[i] = g.chance(0.9) ? (i % k) % cols : g.pick([-1, cols, -5, 0]);
    teacherLogprobs[i] = g.chance(0.9) ? -1 - 3 * g.rand() : g.pick([0.5, NaN, -Infinity, Infinity, 0]);
  }
  return { k, teacherIndices, teacherLogprobs };
}

/** The fused head's options: hidden, weight, bias and a dense or top-k teacher, the loss options of distillOptions. */
function linearOptions(g: Gen, async: boolean): Record<string, unknown> {
  const o = distillOptions(g, async);
  const rows = typeof o.rows === 'number' && o.rows >= 1 && o.rows <= 64 ? o.rows : 3;
  const cols = typeof o.cols === 'number' && o.cols >= 1 && o.cols <= 2048 ? o.cols : 7;
  const dim = 1 + g.int(g.chance(0.2) ? 70 : 8);
  delete o.student, delete o.computeStudentGrad, delete o.computeTeacherGrad, delete o.out;
  o.hidden = g.f32(rows * dim);
  o.weight = g.f32(dim * cols);
  o.dim = g.dim(dim);
  if (g.chance(0.5)) o.bias = g.f32(cols);
  if (g.chance(0.4)) {
    delete o.teacher;
    Object.assign(o, topkEntries(g, rows, cols));
    if (g.chance(0.3)) o.missingMass = g.pick(['renormalize', 'uniform', 'spread']);
  }
  if (g.chance(0.3)) o.computeHiddenGrad = g.chance(0.7);
  if (g.chance(0.3)) o.computeWeightGrad = g.chance(0.7);
  if (g.chance(0.3)) {
    const r = g.rand();
    o.out = r < 0.3 ? { gradWeight: g.f32(dim * cols) } : r < 0.5 ? { gradWeight: o.weight } : r < 0.7 ? { gradHidden: o.hidden, losses: g.f32(rows) } : { gradBias: g.f32(cols) };
  }
  return o;
}

function softmaxOptions(g: Gen, backward: boolean): Record<string, unknown> {
  const [rows, cols] = shape(g);
  const o: Record<string, unknown> = { rows: g.dim(rows), cols: g.dim(cols) };
  if (backward) {
    o.output = g.f32(rows * cols);
    o.gradOutput = g.chance(0.1) ? o.output : g.f32(rows * cols);
  } else o.logits = g.f32(rows * cols);
  if (g.chance(0.7)) o.temperature = g.pick([1, 2, 0.05, 100, 1e4, 0, NaN, 2e-110]);
  if (g.chance(0.2)) o.out = g.chance(0.5) ? g.f32(rows * cols) : (backward ? o.output : o.logits);
  return o;
}

function tensorPair(g: Gen): [tf.Tensor, tf.Tensor, number, number] {
  const [rows, cols] = [1 + g.int(5), 1 + g.int(8)];
  return [g.tensor(rows, cols), g.chance(0.9) ? g.tensor(rows, cols) : g.tensor(rows + 1, cols), rows, cols];
}

/** A tiny dense model for the explain and train functions that take one. */
let model: tf.LayersModel | undefined;
function tinyModel(): tf.LayersModel {
  if (!model) {
    model = tf.sequential({ layers: [tf.layers.dense({ units: 3, inputShape: [4], activation: 'softmax' })] });
  }
  return model;
}

/**
 * Sizes that only make a call run for minutes (seededPermutation(2^31), quadrature('gauss-legendre',
 * 1e6), expectedCalibrationError with 1e9 bins, integratedGradients with 1e9 steps: findings of
 * the first runs, docs/reliability.md) are left out of the tables below so that a bounded run spends
 * its time on other calls; junk dims (2^31, 2^32 + 1) still reach every function through dim().
 */
export function templates(): Map<string, Call> {
  const m = new Map<string, Call>();
  for (const async of [false, true]) {
    const sfx = async ? 'Async' : '';
    m.set(`kdfuse:distillationLoss${sfx}`, (g) => c(async ? kd.distillationLossAsync : kd.distillationLoss, g.mutate(distillOptions(g, async))));
    m.set(`kdfuse:linearDistillationLoss${sfx}`, (g) =>
      c(async ? kd.linearDistillationLossAsync : kd.linearDistillationLoss, g.mutate(linearOptions(g, async))));
    m.set(`kdfuse:topkDistillationLoss${sfx}`, (g) => {
      const o = distillOptions(g, async);
      const rows = typeof o.rows === 'number' && o.rows >= 1 && o.rows <= 64 ? o.rows : 3;
      const cols = typeof o.cols === 'number' && o.cols >= 1 && o.cols <= 2048 ? o.cols : 7;
      delete o.teacher, delete o.computeTeacherGrad;
      if (o.out && (o.out as Record<string, unknown>).gradTeacher) o.out = {};
      Object.assign(o, topkEntries(g, rows, cols));
      return c(async ? kd.topkDistillationLossAsync : kd.topkDistillationLoss, g.mutate(o));
    });
    m.set(`kdfuse:klDivergence${sfx}`, (g) => {
      const o = distillOptions(g, async);
      delete o.labels, delete o.alpha, delete o.labelSmoothing, delete o.ignoreIndex, delete o.gradOutput;
      delete o.computeStudentGrad, delete o.computeTeacherGrad;
      if (o.out && g.chance(0.5)) o.out = { losses: g.f32(4) };
      return c(async ? kd.klDivergenceAsync : kd.klDivergence, g.mutate(o));
    });
    for (const fn of ['softmaxWithTemperature', 'logSoftmaxWithTemperature'] as const) {
      m.set(`kdfuse:${fn}${sfx}`, (g) => c(kd[`${fn}${sfx}` as const], g.mutate(softmaxOptions(g, false))));
      m.set(`kdfuse:${fn}Backward${sfx}`, (g) => c(kd[`${fn}Backward${sfx}` as const], g.mutate(softmaxOptions(g, true))));
    }
  }
  m.set('kdfuse:setThreads', (g) => c(kd.setThreads, g.chance(0.7) ? g.pick([1, 2, 0, -1, 1e9, 1.5]) : g.junk()));
  m.set('kdfuse:setSimd', (g) => c(kd.setSimd, g.chance(0.7) ? g.pick(['auto', 'generic', 'avx512']) : (g.junk() as never)));
  m.set('kdfuse:setBufferCacheLimit', (g) => c(kd.setBufferCacheLimit, g.pick([0, 1 << 20, -1, NaN, 2 ** 53]) as never));
  m.set('kdfuse:setDevice', (g) => c(kd.setDevice, g.pick(['cpu', 'auto', 'cuda', 'gpu', 0]) as never));
  m.set('kdfuse:cuda.upload', (g) => c(kd.cuda.upload, g.chance(0.7) ? g.f32(1 + g.int(50)) : (g.junk() as never)));
  m.set('kdfuse:cuda.distillationLoss', (g) => c(kd.cuda.distillationLoss, g.mutate(distillOptions(g, false)) as never));

  m.set('kdfuse/tfjs:distillationLoss', (g) => {
    const [s, t, rows, cols] = tensorPair(g);
    const labels = g.chance(0.5) ? (g.chance(0.5) ? g.labels(rows, cols) : tf.tensor1d(g.labels(rows, cols) as never, 'int32')) : undefined;
    if (labels instanceof tf.Tensor) g.tensors.push(labels);
    return c(kdtf.distillationLoss, s as never, t as never, labels as never, g.mutate({ temperature: g.pick([1, 2, 1e4]), reduction: 'mean' }) as never);
  });
  m.set('kdfuse/tfjs:linearDistillationLoss', (g) => {
    const rows = 1 + g.int(5), dim = 1 + g.int(6), cols = 1 + g.int(30);
    const h = g.tensor(rows, dim), w = g.tensor(dim, g.chance(0.9) ? cols : cols + 1), b = g.chance(0.5) ? tf.tensor1d(g.f32(cols)) : null;
    if (b) g.tensors.push(b);
    const teacher = g.chance(0.7) ? g.tensor(rows, cols) : { ...topkEntries(g, rows, cols), rows, cols };
    const t = 'teacherIndices' in teacher ? { indices: teacher.teacherIndices, logprobs: teacher.teacherLogprobs, k: teacher.k, rows, cols } : teacher;
    return c(kdtf.linearDistillationLoss, h as never, w as never, b as never, t as never, (g.chance(0.5) ? g.labels(rows, cols) : null) as never,
      g.mutate({ temperature: g.pick([1, 2, 1e4]), reduction: g.pick(['mean', 'none', 'sum']) }) as never);
  });
  m.set('kdfuse/tfjs:klDivergence', (g) => {
    const [s, t] = tensorPair(g);
    return c(kdtf.klDivergence, t as never, s as never, g.mutate({ temperature: 2 }) as never);
  });
  m.set('kdfuse/tfjs:softmaxWithTemperature', (g) => c(kdtf.softmaxWithTemperature, g.tensor(1 + g.int(4), 1 + g.int(6)) as never, g.pick([1, 2, 0, NaN]) as never));
  m.set('kdfuse/tfjs:logSoftmaxWithTemperature', (g) =>
    c(kdtf.logSoftmaxWithTemperature, g.tensor(1 + g.int(4), 1 + g.int(6)) as never, g.pick([1, 2, 0, NaN]) as never),
  );
  m.set('kdfuse/tfjs:packTargets', (g) => {
    const rows = 1 + g.int(4), cols = 1 + g.int(5);
    return c(kdtf.packTargets, g.labels(rows, cols) as never, g.tensor(rows, cols) as never, g.mutate({ fromLogits: g.chance(0.5) }) as never);
  });
  m.set('kdfuse/tfjs:unpackTargets', (g) => c(kdtf.unpackTargets, g.tensor(1 + g.int(4), 1 + g.int(5)) as never, g.pick([-100, 0, NaN]) as never));
  m.set('kdfuse/tfjs:distillationLossFn', (g) => {
    const o = g.mutate({ temperature: 2, alpha: 0.5 });
    const [a, b] = tensorPair(g);
    return { args: [o, a, b], run: () => kdtf.distillationLossFn(o as never)(a, b) };
  });

  m.set('kdfuse/explain:heatmapColor', (g) => c(explain.heatmapColor, g.chance(0.7) ? g.float() : (g.junk() as never)));
  m.set('kdfuse/explain:attributionHeatmap', (g) => {
    const h = 1 + g.int(6), w = 1 + g.int(6);
    const a = g.chance(0.5) ? g.tensor(h, w) : g.f32(h * w);
    return c(explain.attributionHeatmap, a as never, g.mutate({ shape: [g.dim(h), g.dim(w)], sign: g.pick(['all', 'positive', 'absolute', 'x']) }) as never);
  });
  m.set('kdfuse/explain:compareAttributions', (g) => {
    const n = 1 + g.int(20);
    const one = (): unknown => (g.chance(0.5) ? g.tensor(1, n) : g.f32(n));
    return c(explain.compareAttributions, one() as never, one() as never, g.mutate({ topK: g.pick([1, 3, 0, -1, 1e9]) }) as never);
  });
  m.set('kdfuse/explain:quadrature', (g) => c(explain.quadrature, g.pick([...explain.QUADRATURE_METHODS, 'simpson']) as never, g.pick([1, 4, 0, -1, 512, 2.5, NaN]) as never));
  m.set('kdfuse/explain:integratedGradients', (g) =>
    c(explain.integratedGradients, tinyModel() as never, g.tensor(1 + g.int(3), 4) as never, g.mutate({ steps: g.pick([2, 8, 0, -1, 2.5]), target: 0 }) as never),
  );
  for (const fn of ['deletionCurve', 'insertionCurve'] as const) {
    m.set(`kdfuse/explain:${fn}`, (g) => {
      const rows = 1 + g.int(3);
      return c(explain[fn], tinyModel(), g.tensor(rows, 4) as never, (g.chance(0.5) ? g.tensor(rows, 4) : g.f32(rows * 4)) as never, g.mutate({ steps: g.pick([2, 4, 0]) }) as never);
    });
  }

  m.set('kdfuse/train:argmaxRows', (g) => {
    const [rows, cols] = shape(g);
    return c(train.argmaxRows, g.f32(rows * cols), g.dim(rows) as never, g.dim(cols) as never);
  });
  m.set('kdfuse/train:expectedCalibrationError', (g) => {
    const [rows, cols] = shape(g);
    return c(train.expectedCalibrationError, g.f32(rows * cols), g.dim(rows) as never, g.dim(cols) as never, g.labels(rows, cols), g.pick([15, 0, -1, 1e5, NaN]) as never);
  });
  m.set('kdfuse/train:accuracy', (g) => c(train.accuracy, Int32Array.from(g.labels(5, 3)), g.chance(0.8) ? g.labels(5, 3) : g.labels(4, 3)));
  m.set('kdfuse/train:agreement', (g) => c(train.agreement, Int32Array.from(g.labels(5, 3)), Int32Array.from(g.labels(g.chance(0.8) ? 5 : 4, 3))));
  m.set('kdfuse/train:seededPermutation', (g) => c(train.seededPermutation, g.pick([0, 5, -1, 1.5, 2 ** 20, NaN]) as never, g.pick([1, 0, NaN]) as never));
  m.set('kdfuse/train:rowCosine', (g) => {
    const [a, b] = tensorPair(g);
    return c(train.rowCosine, a, b);
  });
  m.set('kdfuse/train:attentionMap', (g) => c(train.attentionMap, g.tensor(1 + g.int(3), 1 + g.int(5)), g.pick([2, 1, 0, -1, NaN]) as never));
  return m;
}
