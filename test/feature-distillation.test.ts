/**
 * Feature (hint) distillation and Grad-CAM alignment in the Distiller.
 * - hintLoss's gradient (w.r.t. the student's features, the regressor's kernel and bias) against
 *   central differences of an independent float64 implementation: within 1e-3 · max|fd| + 1e-6
 *   (float32 tfjs against float64; the loss is quadratic, so central differences are exact up to
 *   rounding).
 * - On a toy problem, training with the term lowers the feature distance ||R(F_s) − F_t||² to under
 *   half its starting value, and well below what plain KD leaves.
 * - Grad-CAM alignment trains (its term falls over epochs) on cpu for conv students without pooling,
 *   and a pooled student gets the SecondOrderGradientError naming MaxPoolGrad.
 * - gradCamAlignmentLoss on hand-made maps equals its closed form, and the term's second-order
 *   gradient (as fit computes it) matches central differences of the same loss (tolerance argued
 *   at the test).
 */
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { Distiller, SecondOrderGradientError, gradCamAlignmentLoss, hintLoss, type HintRegressor } from '../src/train/index.js';
import { alignmentPlan } from '../src/train/alignment.js';
import { gradCamMaps } from '../src/explain/grad-cam.js';
import { expectArrayClose, expectNoTensorLeaks, onTfBackend, normal, rng } from './helpers.js';

onTfBackend(tf, 'cpu');
expectNoTensorLeaks(() => tf.memory().numTensors);

/** mean over elements of (S·K + b − T)² with S [P, cin] rows, in float64. */
function hint64(S: Float64Array, K: Float64Array, b: Float64Array, T: Float64Array, cin: number, cout: number): number {
  const P = S.length / cin;
  let s = 0;
  for (let p = 0; p < P; p++) for (let o = 0; o < cout; o++) {
    let v = b[o]!;
    for (let i = 0; i < cin; i++) v += S[p * cin + i]! * K[i * cout + o]!;
    s += (v - T[p * cout + o]!) ** 2;
  }
  return s / (P * cout);
}

function centralDifferences(f: (v: Float64Array) => number, v: Float64Array, h = 1e-4): Float64Array {
  return Float64Array.from(v, (_, k) => {
    const up = Float64Array.from(v), down = Float64Array.from(v);
    up[k]! += h; down[k]! -= h;
    return (f(up) - f(down)) / (2 * h);
  });
}

describe('hintLoss', () => {
  for (const kind of ['conv1x1', 'linear'] as const) {
    it(`its gradient matches central differences (${kind} regressor)`, async () => {
      const rand = rng(kind === 'linear' ? 3 : 4);
      // conv1x1: [2, 3, 3, 2] -> [2, 3, 3, 4] per position; linear: [2, 5] -> [2, 3] per example
      const sShape = kind === 'conv1x1' ? [2, 3, 3, 2] : [2, 5], tShape = kind === 'conv1x1' ? [2, 3, 3, 4] : [2, 3];
      const cin = sShape[sShape.length - 1]!, cout = tShape[tShape.length - 1]!;
      const S = Float32Array.from({ length: sShape.reduce((a, b) => a * b) }, () => normal(rand));
      const T = Float32Array.from({ length: tShape.reduce((a, b) => a * b) }, () => normal(rand));
      const K = Float32Array.from({ length: cin * cout }, () => normal(rand)), B = Float32Array.from({ length: cout }, () => normal(rand));
      const kernel = tf.tidy(() => tf.variable(tf.tensor2d(K, [cin, cout]))), bias = tf.tidy(() => tf.variable(tf.tensor1d(B)));
      const reg: HintRegressor = { teacher: 't', student: 's', kind, kernel, bias };
      const s = tf.tensor(S, sShape), t = tf.tensor(T, tShape);
      const [gS, gK, gB] = tf.grads((a: tf.Tensor, k: tf.Tensor, b: tf.Tensor) => hintLoss(a, t, { ...reg, kernel: k as tf.Variable, bias: b as tf.Variable }))([s, kernel, bias]);
      const [S64, K64, B64, T64] = [S, K, B, T].map((a) => Float64Array.from(a)) as [Float64Array, Float64Array, Float64Array, Float64Array];
      const fdS = centralDifferences((v) => hint64(v, K64, B64, T64, cin, cout), S64);
      const fdK = centralDifferences((v) => hint64(S64, v, B64, T64, cin, cout), K64);
      const fdB = centralDifferences((v) => hint64(S64, K64, v, T64, cin, cout), B64);
      expectArrayClose(await gS!.data(), fdS, 1e-3, 'dL/dF_s', 1e-10, 1e-6);
      expectArrayClose(await gK!.data(), fdK, 1e-3, 'dL/dkernel', 1e-10, 1e-6);
      expectArrayClose(await gB!.data(), fdB, 1e-3, 'dL/dbias', 1e-10, 1e-6);
      const value = hintLoss(s, t, reg);
      expect(Math.abs((await value.data())[0]! - hint64(S64, K64, B64, T64, cin, cout))).toBeLessThan(1e-5);
      tf.dispose([kernel, bias, s, t, gS!, gK!, gB!, value]);
    });
  }
});

const dense = (units: number[], input: number, seed: number, names: string[]): tf.Sequential => tf.sequential({
  layers: units.map((u, i) => tf.layers.dense({
    ...(i === 0 ? { inputShape: [input] } : {}), units: u, name: names[i], activation: i < units.length - 1 ? 'relu' : 'linear',
    kernelInitializer: tf.initializers.glorotNormal({ seed: seed + i }),
  })),
});

describe('Distiller with featureDistillation', () => {
  it('lowers the feature distance on a toy problem, and trains the regressor with the student', async () => {
    const x = tf.randomNormal([64, 6], 0, 1, 'float32', 1);
    const teacher = dense([12, 3], 6, 10, ['t_hidden', 't_out']);
    const y = Array.from(tf.tidy(() => (teacher.predict(x) as tf.Tensor).argMax(1).dataSync()));
    const distance = (d: Distiller, student: tf.LayersModel): number => tf.tidy(() => {
      const ft = tf.model({ inputs: teacher.inputs, outputs: teacher.getLayer('t_hidden').output as tf.SymbolicTensor }).predict(x) as tf.Tensor;
      const fs = tf.model({ inputs: student.inputs, outputs: student.getLayer('s_hidden').output as tf.SymbolicTensor }).predict(x) as tf.Tensor;
      return hintLoss(fs, ft, d.featureRegressors[0]).dataSync()[0]!;
    });
    const run = async (weight: number) => {
      const student = dense([4, 3], 6, 20, ['s_hidden', 's_out']);
      const d = new Distiller({ teacher, student, learningRate: 0.02, featureDistillation: { pairs: [{ teacher: 't_hidden', student: 's_hidden' }], weight, regressor: 'linear' } });
      const k0 = Array.from(d.featureRegressors[0]!.kernel!.dataSync());
      const before = distance(d, student);
      const h = await d.fit(x, y, { epochs: 30, batchSize: 16, verbose: 'quiet' });
      const after = distance(d, student);
      const moved = Array.from(d.featureRegressors[0]!.kernel!.dataSync()).some((v, i) => v !== k0[i]);
      d.dispose();
      student.dispose();
      return { before, after, moved, h };
    };
    const hinted = await run(1), plain = await run(0);
    expect(hinted.after).toBeLessThan(0.5 * hinted.before);
    expect(hinted.after).toBeLessThan(0.5 * plain.after);
    expect(hinted.moved).toBe(true);
    expect(plain.moved).toBe(false);  // weight 0: no gradient reaches the regressor
    expect(hinted.h.epochs[29]!.alignmentLoss!).toBeLessThan(hinted.h.epochs[0]!.alignmentLoss!);
    x.dispose();
    teacher.dispose();
  });

  it('refuses mismatched pairs with a RangeError naming the pair, and bad options', () => {
    const teacher = tf.sequential({ layers: [tf.layers.conv2d({ inputShape: [6, 6, 1], filters: 4, kernelSize: 3, name: 'tconv' }), tf.layers.flatten({ name: 'tflat' }), tf.layers.dense({ units: 3, name: 'tfc' })] });
    const student = tf.sequential({ layers: [tf.layers.conv2d({ inputShape: [6, 6, 1], filters: 2, kernelSize: 5, name: 'sconv' }), tf.layers.flatten({ name: 'sflat' }), tf.layers.dense({ units: 3, name: 'sfc' })] });
    const make = (fd: unknown, t: unknown = teacher) => () => new Distiller({ teacher: t as tf.LayersModel, student, featureDistillation: fd as never });
    const pair = (t: string, s: string) => [{ teacher: t, student: s }];
    expect(make({ pairs: pair('tconv', 'sconv'), weight: 1, regressor: 'none' })).toThrow(/featureDistillation\.pairs\[0\] \(teacher 'tconv', student 'sconv'\): with regressor 'none' the shapes must be equal, got teacher \[4, 4, 4\] and student \[2, 2, 2\]/);
    expect(make({ pairs: pair('tconv', 'sconv'), weight: 1, regressor: 'conv1x1' })).toThrow(RangeError);
    expect(make({ pairs: pair('tconv', 'sconv'), weight: 1, regressor: 'conv1x1' })).toThrow(/pairs\[0\] \(teacher 'tconv', student 'sconv'\): regressor 'conv1x1' needs .* same spatial size/);
    expect(make({ pairs: pair('tconv', 'nope'), weight: 1 })).toThrow(/pairs\[0\]\.student: no layer named 'nope'/);
    expect(make({ pairs: pair('tconv', 'sconv'), weight: 1, regresor: 'linear' })).toThrow(/did you mean 'regressor'/);
    expect(make({ pairs: pair('tconv', 'sconv'), weight: -1 })).toThrow(/featureDistillation\.weight must be finite and >= 0/);
    expect(make({ pairs: pair('tconv', 'sconv'), weight: 1 }, (z: tf.Tensor) => z)).toThrow(TypeError);
    const before = tf.memory().numTensors;
    const ok = new Distiller({ teacher, student, featureDistillation: { pairs: pair('tflat', 'sflat'), weight: 1 } });  // 'linear' by default for flat features
    expect(ok.featureRegressors[0]!.kind).toBe('linear');
    expect(ok.featureRegressors[0]!.kernel!.shape).toEqual([8, 64]);
    ok.dispose();
    expect(tf.memory().numTensors).toBe(before);
    teacher.dispose();
    student.dispose();
  });
});

const conv = (filters: number, seed: number, name: string, pool = false): tf.Sequential => {
  const m = tf.sequential();
  m.add(tf.layers.conv2d({ name, inputShape: [6, 6, 1], filters, kernelSize: 3, activation: 'relu', kernelInitializer: tf.initializers.heNormal({ seed }), biasInitializer: tf.initializers.constant({ value: 0.05 }) }));
  if (pool) m.add(tf.layers.maxPooling2d({ poolSize: 2 }));
  m.add(tf.layers.flatten());
  m.add(tf.layers.dense({ units: 3, kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }) }));
  return m;
};

describe('Distiller with explanationAlignment.gradCam', () => {
  it('trains the student toward the teacher\'s Grad-CAM maps (the term falls over epochs)', async () => {
    const x = tf.randomNormal([24, 6, 6, 1], 0, 1, 'float32', 5), y = Array.from({ length: 24 }, (_, i) => i % 3);
    const teacher = conv(4, 9, 'tconv'), student = conv(2, 1, 'sconv');
    const d = new Distiller({ teacher, student, learningRate: 0.01, alpha: 0.5, explanationAlignment: { gradCam: { weight: 1, pairs: [{ teacher: 'tconv', student: 'sconv' }] } } });
    const h = await d.fit(x, y, { epochs: 12, batchSize: 12, verbose: 'quiet' });
    const first = h.epochs[0]!.alignmentLoss!, last = h.epochs[11]!.alignmentLoss!;
    expect(Number.isFinite(first) && first > 0).toBe(true);
    expect(last).toBeLessThan(first);
    d.dispose();
    tf.dispose(x);
    teacher.dispose();
    student.dispose();
  });

  it('names MaxPoolGrad for a pooled student (no second-order gradient in tfjs), and checks the pairs', async () => {
    const x = tf.randomNormal([4, 6, 6, 1], 0, 1, 'float32', 5);
    const teacher = conv(4, 9, 'tconv'), student = conv(2, 1, 'sconv', true);
    const d = new Distiller({ teacher, student, explanationAlignment: { gradCam: { weight: 1, pairs: [{ teacher: 'tconv', student: 'sconv' }] } } });
    const err = await d.fit(x, [0, 1, 2, 0], { epochs: 1, verbose: 'quiet' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SecondOrderGradientError);
    expect((err as SecondOrderGradientError).kernel).toBe('MaxPoolGrad');
    d.dispose();
    const pooledTeacher = conv(4, 9, 'tconv2', true);
    expect(() => new Distiller({ teacher: pooledTeacher, student, explanationAlignment: { gradCam: { weight: 1, pairs: [{ teacher: pooledTeacher.layers[1]!.name, student: 'sconv' }] } } }))
      .toThrow(/gradCam\.pairs\[0\] \(teacher '.*', student 'sconv'\): the Grad-CAM maps' sizes must match, got teacher \[2, 2\] and student \[4, 4\]/);
    expect(() => new Distiller({ teacher, student, explanationAlignment: { gradCam: { weight: 1, pairs: [{ teacher: 'tconv', student: student.layers[2]!.name }] } } }))
      .toThrow(/usable layers: sconv/);
    tf.dispose(x);
    teacher.dispose();
    student.dispose();
    pooledTeacher.dispose();
  });
});

describe('gradCamAlignmentLoss', () => {
  it('is the mean over rows of 1 − cosine of the flattened maps (closed forms)', async () => {
    // row 0: the same map scaled (cos 1); row 1: disjoint supports (cos 0); row 2: [1, 1] against [1, 0] (cos 1/√2)
    const s = tf.tensor3d([[[2, 4], [0, 6]], [[1, 0], [0, 0]], [[1, 1], [0, 0]]]);
    const t = tf.tensor3d([[[1, 2], [0, 3]], [[0, 1], [0, 0]], [[1, 0], [0, 0]]]);
    const loss = gradCamAlignmentLoss(s, t);
    expect((await loss.data())[0]!).toBeCloseTo((0 + 1 + (1 - Math.SQRT1_2)) / 3, 6);
    const other = tf.zeros([3, 2, 3]);
    expect(() => gradCamAlignmentLoss(s, other, "pairs[0] (teacher 'tconv', student 'sconv')"))
      .toThrow(/pairs\[0\] \(teacher 'tconv', student 'sconv'\): student and teacher Grad-CAM maps must have the same shape, got student \[3, 2, 2\] and teacher \[3, 2, 3\]/);
    tf.dispose([s, t, loss, other]);
  });
});

/**
 * The e²KD Grad-CAM term's gradient w.r.t. the student's weights is second order (the map's
 * channel weights α are themselves a gradient). Here it is computed exactly as fit does, by the
 * alignment plan's studentPass (gradCamMaps, then gradCamAlignmentLoss) under tf.variableGrads, and
 * compared with central differences of the same float32 loss.
 *
 * Step and tolerance: the loss is O(1) and evaluated in float32 through a few hundred ops, so its
 * rounding error is about 1e-6; with a step h = 1e-2 that puts ~1e-6 / (2h) = 5e-5 into each
 * difference quotient, and the truncation error h²·f'''/6 is ~1e-5 for the O(1) third derivatives
 * of this smooth piece. Hence |g − fd| ≤ 1e-2 · max|fd| + 2e-4. The loss is smooth only between
 * ReLU kinks (the conv's activation and the map's ReLU), so a probed weight is compared only when
 * its ±h moves no ReLU input across zero (checked on every activation and map value): there the
 * loss is smooth on [w − h, w + h] and the central difference is a true derivative. (Kink-straddling
 * probes differ by up to ~10%, which is why they are left out rather than tolerated.) A gradient missing the second-order path (α held
 * constant) is zero for the dense kernel, whose central differences are asserted to be far above
 * the tolerance, so such a gradient fails; so does one with a flipped sign.
 */
describe('Grad-CAM alignment: second-order gradient against central differences (cpu)', () => {
  it('dL/dθ from tfjs matches central differences of the loss for conv and dense weights', async () => {
    const x = tf.randomNormal([4, 6, 6, 1], 0, 1, 'float32', 11);
    const teacher = conv(4, 9, 'tconv'), student = conv(2, 1, 'sconv');
    const plan = alignmentPlan({ gradCam: { weight: 1, pairs: [{ teacher: 'tconv', student: 'sconv' }] } }, teacher, student)!;
    const teacherLogits = tf.tidy(() => teacher.predict(x) as tf.Tensor2D);
    const targets = plan.teacherTargets(x, teacherLogits, 0);
    const sLayer = student.getLayer('sconv');
    const camModel = tf.model({ inputs: student.inputs, outputs: sLayer.output as tf.SymbolicTensor });
    const loss = (): number => tf.tidy(() => plan.studentPass(x, targets, 0).term!.dataSync()[0]!);
    // which side of zero every ReLU input is on: the conv's activation and the raw Grad-CAM map
    const pattern = (): string => tf.tidy(() => {
      const a = (camModel.predict(x) as tf.Tensor).dataSync(), m = gradCamMaps(student, sLayer, x, targets.oneHot!, { relu: false }).dataSync();
      return [...a, ...m].map((v) => (v > 0 ? '1' : '0')).join('');
    });

    const vars = student.trainableWeights.map((w) => w.read() as tf.Variable);  // conv kernel, conv bias, dense kernel, dense bias
    const grads = tf.tidy(() => {
      const { value, grads: g } = tf.variableGrads(() => plan.studentPass(x, targets, 0).term!, vars);
      value.dispose();
      // tfjs leaves out variables the loss does not reach (the dense bias: α does not depend on it)
      return vars.map((v) => g[v.name] ?? tf.zerosLike(v));
    });
    const g = await Promise.all(grads.map((t) => t.data()));
    // every conv weight, and dense-kernel entries of each class (the dense kernel is [32, 3]: index = 3 * input + class;
    // columns of classes the teacher predicts for none of the rows get a zero gradient, the dense bias too)
    const probes: Array<[number, number]> = [
      ...Array.from({ length: 18 }, (_, k): [number, number] => [0, k]), [1, 0], [1, 1],
      ...[0, 5, 11, 20, 27].flatMap((i) => [0, 1, 2].map((c): [number, number] => [2, 3 * i + c])), [3, 0], [3, 1], [3, 2],
    ];
    const h = 1e-2, base = pattern(), L0 = loss();
    expect(L0).toBeGreaterThan(0.01);  // not already aligned: the term has something to change
    const got: number[] = [], fd: number[] = [], denseFd: number[] = [], straddling: string[] = [];
    let convChecked = 0;
    for (const [v, k] of probes) {
      const variable = vars[v]!, values = variable.dataSync().slice() as Float32Array, w = values[k]!;
      const at = (value: number): { l: number; p: string } => {
        const copy = values.slice();
        copy[k] = value;
        tf.tidy(() => { variable.assign(tf.tensor(copy, variable.shape)); });
        return { l: loss(), p: pattern() };
      };
      // the steps actually taken in float32
      const up = Math.fround(w + h), down = Math.fround(w - h);
      const plus = at(up), minus = at(down);
      at(w);
      // a probe whose ±h moves a ReLU input across zero straddles a kink: no derivative to compare with
      if (plus.p !== base || minus.p !== base) { straddling.push(`${v}[${k}]`); continue; }
      const d = (plus.l - minus.l) / (up - down);
      got.push(g[v]![k]!);
      fd.push(d);
      if (v === 2) denseFd.push(d);
      else if (v < 2) convChecked++;
    }
    // most conv probes are smooth here (seeded data: 11 of 20 with h = 1e-2; the dense ones all are)
    expect(convChecked, `conv probes straddling a kink: ${straddling.join(', ')}`).toBeGreaterThanOrEqual(8);
    expect(denseFd.length).toBe(15);
    expect(loss()).toBe(L0);  // weights restored
    expectArrayClose(got, fd, 1e-2, 'Grad-CAM alignment dL/dθ vs central differences', 1e-10, 2e-4);
    // the dense kernel reaches the loss only through α (a gradient): large central differences
    // there mean a first-order-only gradient (zero) could not pass
    expect(Math.max(...denseFd.map(Math.abs))).toBeGreaterThan(10 * (1e-2 * Math.max(...fd.map(Math.abs)) + 2e-4));
    tf.dispose([x, teacherLogits, targets.oneHot!, ...(targets.camMaps ?? []), ...grads]);
    plan.dispose();
    teacher.dispose();
    student.dispose();
  });
});
