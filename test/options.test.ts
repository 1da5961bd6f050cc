/**
 * Misspelt option keys are refused by every public function with a TypeError naming the function,
 * the unknown key and the closest known one; a representative set across the kernels, the tfjs ops,
 * the Distiller, the explainers and the data set. Each case also runs with the key spelt right, so a
 * check that refused everything would fail here.
 */
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import * as kd from '../src/index.js';
import * as kdTf from '../src/tfjs/index.js';
import { Distiller, cacheTeacherLogits } from '../src/train/index.js';
import { attributionHeatmap, compareAttributions, integratedGradients } from '../src/explain/index.js';
import { loadDigits, splitDigits } from '../src/datasets/index.js';

const s = new Float32Array([1, 2, 3, 4]), t = new Float32Array([4, 3, 2, 1]);
const dense = (units: number, activation?: 'softmax') =>
  tf.sequential({ layers: [tf.layers.dense({ units, inputShape: [3], ...(activation ? { activation } : {}), kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) })] });

/** `call(key)` with a misspelt key throws naming where, the key and the suggestion; with the right key it does not. */
async function refuses(where: string, wrong: string, right: string, call: (key: string) => unknown): Promise<void> {
  let err: unknown;
  try {
    await call(wrong);
  } catch (e) {
    err = e;
  }
  expect(err, `${where} accepted '${wrong}'`).toBeInstanceOf(TypeError);
  expect((err as Error).message).toContain(`${where}: unknown option '${wrong}'; did you mean '${right}'?`);
  await call(right);
}

describe('unknown option keys', () => {
  it('the kernels: distillationLoss(Async), klDivergence, softmax forward and backward', async () => {
    await refuses('distillationLoss', 'temprature', 'temperature', (k) => kd.distillationLoss({ student: s, teacher: t, rows: 1, cols: 4, [k]: 2 }));
    await refuses('distillationLossAsync', 'alhpa', 'alpha', (k) => kd.distillationLossAsync({ student: s, teacher: t, rows: 1, cols: 4, [k]: 0.5 }));
    await refuses('klDivergence', 'reductoin', 'reduction', (k) => kd.klDivergence({ student: s, teacher: t, rows: 1, cols: 4, [k]: 'sum' }));
    await refuses('softmaxWithTemperature', 'temperture', 'temperature', (k) => kd.softmaxWithTemperature({ logits: s, rows: 1, cols: 4, [k]: 2 }));
    await refuses('logSoftmaxWithTemperatureBackward', 'gradOuput', 'gradOutput',
      (k) => kd.logSoftmaxWithTemperatureBackward({ output: s, rows: 1, cols: 4, gradOutput: t, ...(k === 'gradOutput' ? {} : { [k]: t }) } as kd.SoftmaxBackwardOptions));
  });

  it('without a close match the message lists the known options and suggests nothing', () => {
    expect(() => kd.distillationLoss({ student: s, teacher: t, rows: 1, cols: 4, ...{ zzzzzzzz: 1 } }))
      .toThrow(/^distillationLoss: unknown option 'zzzzzzzz' \(known options: student, teacher, rows/);
  });

  it('the tfjs ops and the loss for model.compile', async () => {
    const a = tf.tensor2d([[1, 2, 3]]), b = tf.tensor2d([[3, 2, 1]]);
    await refuses('distillationLoss', 'temperatur', 'temperature', (k) => kdTf.distillationLoss(a, b, undefined, { [k]: 2 }).dispose());
    await refuses('klDivergence', 'divergense', 'divergence', (k) => kdTf.klDivergence(a, b, { [k]: 'jsd' }).dispose());
    await refuses('distillationLossFn', 'fromLogit', 'fromLogits', (k) => kdTf.distillationLossFn({ [k]: true }));
    await refuses('packTargets', 'ignoreIndx', 'ignoreIndex', (k) => kdTf.packTargets([0], b, { [k]: -1 }).dispose());
    tf.dispose([a, b]);
  });

  it('the Distiller: constructor, its loss options, fit and its nested options, evaluate, the teacher cache', async () => {
    const x = tf.tensor2d([[1, 0, 0], [0, 1, 0]]), y = [0, 1];
    const teacher = dense(2), student = dense(2);
    await refuses('Distiller', 'temprature', 'temperature', (k) => new Distiller({ teacher, student, [k]: 2 }).dispose());
    await refuses('Distiller loss', 'labelSmothing', 'labelSmoothing', (k) => new Distiller({ teacher, student, loss: { [k]: 0.1 } }).dispose());
    const d = new Distiller({ teacher, student });
    await refuses('Distiller.fit', 'epoch', 'epochs', (k) => d.fit(x, y, { [k]: 1, verbose: 'quiet' }));
    await refuses('Distiller.fit earlyStopping', 'patient', 'patience',
      (k) => d.fit(x, y, { epochs: 1, verbose: 'quiet', earlyStopping: { [k]: 1 } }));
    await refuses('Distiller.fit callbacks', 'onEpochEnded', 'onEpochEnd', (k) => d.fit(x, y, { epochs: 1, verbose: 'quiet', callbacks: { [k]: () => {} } }));
    await refuses('Distiller.evaluate', 'batchsize', 'batchSize', (k) => d.evaluate(x, y, { [k]: 4 }));
    await refuses('cacheTeacherLogits', 'batchSiz', 'batchSize', (k) => cacheTeacherLogits(teacher, x, { [k]: 4 }));
    await refuses('Distiller explanationAlignment', 'inputGradients', 'inputGradient',
      (k) => new Distiller({ teacher, student, explanationAlignment: { [k]: { weight: 1 } } }).dispose());
    d.dispose();
    x.dispose();
    teacher.dispose();
    student.dispose();
  });

  it('the explainers, the heatmap and the data set', async () => {
    const m = dense(2), x = tf.tensor2d([[1, 2, 3]]);
    await refuses('integratedGradients', 'step', 'steps', async (k) => (await integratedGradients(m, x, { [k]: 4 })).attributions.dispose());
    await refuses('compareAttributions', 'topk', 'topK', (k) => compareAttributions(new Float32Array([1, 2]), new Float32Array([2, 1]), { [k]: 1, rows: 1 }));
    await refuses('attributionHeatmap', 'shap', 'shape', (k) => attributionHeatmap(new Float32Array(4), { [k]: [2, 2] }));
    await refuses('splitDigits', 'sead', 'seed', (k) => splitDigits(loadDigits(), { [k]: 3 }));
    m.dispose();
    x.dispose();
  });
});

describe('the Distiller refuses softmax outputs as logits', () => {
  it('names the teacher or student layer that applies softmax, unless told the model outputs probabilities', () => {
    const soft = dense(2, 'softmax'), plain = dense(2);
    const softName = soft.layers[0]!.name;
    expect(() => new Distiller({ teacher: soft, student: plain })).toThrow(RangeError);
    expect(() => new Distiller({ teacher: soft, student: plain })).toThrow(new RegExp(`^teacher's last layer '${softName}' applies softmax`));
    expect(() => new Distiller({ teacher: plain, student: soft })).toThrow(new RegExp(`^student's last layer '${softName}' applies softmax.*studentOutput: 'probabilities'`));
    // a separate softmax layer at the end counts too
    const withLayer = tf.sequential({ layers: [tf.layers.dense({ units: 2, inputShape: [3] }), tf.layers.softmax()] });
    expect(() => new Distiller({ teacher: withLayer, student: plain })).toThrow(/teacher's last layer '.+' applies softmax/);
    new Distiller({ teacher: soft, student: plain, teacherOutput: 'probabilities' }).dispose();
    expect(() => new Distiller({ teacher: plain, student: plain, teacherOutput: 'probs' as 'logits' })).toThrow(/teacherOutput must be one of 'logits', 'probabilities'/);
    for (const m of [soft, plain, withLayer]) m.dispose();
  });

  it("with teacherOutput 'probabilities' the loss is the one of the teacher's log-probabilities as logits", () => {
    const soft = dense(2, 'softmax'), student = dense(2);
    // the same teacher without its softmax: its logits; log softmax(z) differs from z by a per-row constant,
    // which softmax ignores, so both Distillers must report the same distillation loss
    const logitsTeacher = tf.sequential({ layers: [tf.layers.dense({ units: 2, inputShape: [3], kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) })] });
    const x = tf.tensor2d([[1, 0.5, -1], [0.2, -0.3, 2], [-1, 1, 0]]), y = [0, 1, 1];
    const a = new Distiller({ teacher: soft, student, teacherOutput: 'probabilities', temperature: 2, alpha: 0.7 });
    const b = new Distiller({ teacher: logitsTeacher, student, temperature: 2, alpha: 0.7 });
    const ra = a.evaluate(x, y), rb = b.evaluate(x, y);
    expect(Math.abs(ra.kdLoss - rb.kdLoss)).toBeLessThan(1e-5 * Math.max(1, rb.kdLoss));
    expect(ra.teacherAccuracy).toBe(rb.teacherAccuracy);
    a.dispose();
    b.dispose();
    for (const m of [soft, student, logitsTeacher]) m.dispose();
    x.dispose();
  });

  it("explanationAlignment is refused with a model that outputs probabilities", () => {
    const soft = dense(2, 'softmax'), plain = dense(2);
    expect(() => new Distiller({ teacher: soft, student: plain, teacherOutput: 'probabilities', explanationAlignment: { inputGradient: { weight: 1 } } }))
      .toThrow(/explanationAlignment needs teacher and student that output logits/);
    soft.dispose();
    plain.dispose();
  });
});
