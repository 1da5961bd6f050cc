/**
 * Saving and loading feature-distillation regressors: a round trip (through a folder and through an
 * in-memory tf.io handler) restores every kernel and bias bit for bit and each pair's layer names
 * and kind; a Distiller started from loaded regressors holds copies of exactly those values; bad
 * arguments are TypeError / RangeError naming the argument, and files that are not regressors are
 * refused.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import {
  Distiller, FEATURE_REGRESSORS_FORMAT, fileSystemHandler, loadFeatureRegressors, saveFeatureRegressors, type HintRegressor,
} from '../src/train/index.js';
import { expectNoTensorLeaks } from './helpers.js';

let dir: string;
beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'kdfuse-regressors-')); });
afterAll(() => { rmSync(dir, { recursive: true, force: true }); });
expectNoTensorLeaks(() => tf.memory().numTensors);

/** A 'linear' [5, 3], a 'none' and a 'conv1x1' [2, 4] regressor with distinct, non-round values. */
function regressors(): HintRegressor[] {
  const v = (shape: number[], offset: number) => tf.tidy(() => tf.variable(tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b) }, (_, i) => Math.sin(i + offset) / 3), shape)));
  return [
    { teacher: 't_hidden', student: 's_hidden', kind: 'linear', kernel: v([5, 3], 0), bias: v([3], 20) },
    { teacher: 't_mid', student: 's_mid', kind: 'none' },
    { teacher: 'tconv', student: 'sconv', kind: 'conv1x1', kernel: v([2, 4], 40), bias: v([4], 60) },
  ];
}
const free = (rs: HintRegressor[]) => { for (const r of rs) tf.dispose([r.kernel, r.bias].filter((t): t is tf.Variable => t !== undefined)); };

async function expectSame(got: HintRegressor[], want: HintRegressor[]): Promise<void> {
  expect(got.map(({ teacher, student, kind }) => ({ teacher, student, kind }))).toEqual(want.map(({ teacher, student, kind }) => ({ teacher, student, kind })));
  for (const [i, r] of got.entries()) {
    const w = want[i]!;
    if (w.kind === 'none') {
      expect(r.kernel).toBeUndefined();
      expect(r.bias).toBeUndefined();
      continue;
    }
    expect(r.kernel).toBeInstanceOf(tf.Variable);
    expect(r.kernel!.trainable).toBe(true);
    expect(r.kernel).not.toBe(w.kernel);  // new variables, the caller's to dispose
    expect(r.kernel!.shape).toEqual(w.kernel!.shape);
    expect(r.bias!.shape).toEqual(w.bias!.shape);
    // bit for bit: the format stores float32 as is
    expect(Array.from(await r.kernel!.data())).toEqual(Array.from(await w.kernel!.data()));
    expect(Array.from(await r.bias!.data())).toEqual(Array.from(await w.bias!.data()));
  }
}

describe('saveFeatureRegressors / loadFeatureRegressors', () => {
  it('round trip through a folder: identical values, layer names and kinds, in tfjs\'s model.json format', async () => {
    const rs = regressors();
    const folder = join(dir, 'regressors');
    const result = await saveFeatureRegressors(rs, folder);
    expect(result.modelArtifactsInfo.weightDataBytes).toBe(4 * (15 + 3 + 8 + 4));
    const json = JSON.parse(readFileSync(join(folder, 'model.json'), 'utf8')) as { format: string; weightsManifest: { weights: { name: string; shape: number[]; dtype: string }[] }[] };
    expect(json.format).toBe(FEATURE_REGRESSORS_FORMAT);
    expect(json.weightsManifest[0]!.weights.map((w) => [w.name, w.shape, w.dtype])).toEqual([
      ['pair0/kernel', [5, 3], 'float32'], ['pair0/bias', [3], 'float32'], ['pair2/kernel', [2, 4], 'float32'], ['pair2/bias', [4], 'float32'],
    ]);
    const loaded = await loadFeatureRegressors(folder);
    await expectSame(loaded, rs);
    free(loaded);
    free(rs);
  });

  it('round trip through any tf.io handler (in memory)', async () => {
    const rs = regressors();
    let saved: tf.io.ModelArtifacts | undefined;
    await saveFeatureRegressors(rs, tf.io.withSaveHandler(async (a) => {
      saved = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }));
    const loaded = await loadFeatureRegressors(tf.io.fromMemory(saved!));
    await expectSame(loaded, rs);
    free(loaded);
    free(rs);
  });

  it('a Distiller starts from loaded regressors (copies: both sides dispose their own)', async () => {
    const dense = (units: number[], seed: number, names: string[]) => tf.sequential({
      layers: units.map((u, i) => tf.layers.dense({ ...(i === 0 ? { inputShape: [6] } : {}), units: u, name: names[i], activation: i === 0 ? 'relu' : 'linear', kernelInitializer: tf.initializers.glorotNormal({ seed: seed + i }) })),
    });
    const teacher = dense([12, 3], 1, ['t_hidden', 't_out']), student = dense([4, 3], 5, ['s_hidden', 's_out']);
    const x = tf.randomNormal([16, 6], 0, 1, 'float32', 2);
    const fd = { pairs: [{ teacher: 't_hidden', student: 's_hidden' }], weight: 1 };
    const first = new Distiller({ teacher, student, featureDistillation: fd });
    await first.fit(x, Array.from({ length: 16 }, (_, i) => i % 3), { epochs: 1, batchSize: 8, verbose: 'quiet' });
    const folder = join(dir, 'trained');
    await saveFeatureRegressors(first.featureRegressors, folder);
    const loaded = await loadFeatureRegressors(folder);
    await expectSame(loaded, [...first.featureRegressors]);
    first.dispose();

    const second = new Distiller({ teacher, student, featureDistillation: { ...fd, initialRegressors: loaded } });
    const want = [await loaded[0]!.kernel!.data(), await loaded[0]!.bias!.data()].map((a) => Array.from(a));
    free(loaded);  // the Distiller copied them
    expect(second.featureRegressors[0]!.kind).toBe('linear');
    expect(Array.from(await second.featureRegressors[0]!.kernel!.data())).toEqual(want[0]);
    expect(Array.from(await second.featureRegressors[0]!.bias!.data())).toEqual(want[1]);
    second.dispose();

    // initialRegressors that do not fit the pairs: RangeError naming the argument, and no variables leak
    const rs = regressors();
    const make = (init: unknown, extra: object = {}) => () => new Distiller({ teacher, student, featureDistillation: { ...fd, ...extra, initialRegressors: init as HintRegressor[] } });
    expect(make(rs)).toThrow(/featureDistillation\.initialRegressors must hold one regressor per pair \(1\), got 3/);
    expect(make([rs[2]])).toThrow(/featureDistillation\.initialRegressors\[0\] must be the regressor of featureDistillation\.pairs\[0\] \(teacher 't_hidden', student 's_hidden'\), got teacher 'tconv', student 'sconv'/);
    expect(make([rs[0]])).toThrow(/featureDistillation\.initialRegressors\[0\]\.kernel must have shape \[4, 12\] .* got \[5, 3\]/);
    expect(make([rs[0]], { regressor: 'none' })).toThrow(/initialRegressors\[0\] is a 'linear' regressor, but featureDistillation\.regressor is 'none'/);
    expect(make('nope')).toThrow(TypeError);
    free(rs);
    tf.dispose(x);
    teacher.dispose();
    student.dispose();
  });

  it('rejects bad arguments with TypeError / RangeError naming them', async () => {
    const rs = regressors();
    const folder = join(dir, 'bad');
    await expect(saveFeatureRegressors('x' as never, folder)).rejects.toThrow(TypeError);
    await expect(saveFeatureRegressors('x' as never, folder)).rejects.toThrow(/^regressors must be an array/);
    await expect(saveFeatureRegressors([], folder)).rejects.toThrow(RangeError);
    await expect(saveFeatureRegressors([], folder)).rejects.toThrow(/regressors must hold at least one regressor/);
    await expect(saveFeatureRegressors([rs[0]!, null as never], folder)).rejects.toThrow(/regressors\[1\] must be an object, got null/);
    await expect(saveFeatureRegressors([{ ...rs[0]!, kind: 'conv' as never }], folder)).rejects.toThrow(RangeError);
    await expect(saveFeatureRegressors([{ ...rs[0]!, kind: 'conv' as never }], folder)).rejects.toThrow(/regressors\[0\]\.kind must be one of 'linear', 'conv1x1', 'none', got 'conv'/);
    await expect(saveFeatureRegressors([{ ...rs[0]!, teacher: 3 as never }], folder)).rejects.toThrow(/regressors\[0\]\.teacher must be a layer name \(string\), got number 3/);
    await expect(saveFeatureRegressors([{ ...rs[0]!, kernel: undefined }], folder)).rejects.toThrow(/regressors\[0\]\.kernel must be a tf\.Variable \(or tf\.Tensor\), got undefined/);
    await expect(saveFeatureRegressors([{ ...rs[0]!, bias: rs[2]!.bias }], folder)).rejects.toThrow(/regressors\[0\]\.bias must have one value per output of the kernel \[5, 3\], got shape \[4\]/);
    await expect(saveFeatureRegressors([{ ...rs[1]!, kernel: rs[0]!.kernel }], folder)).rejects.toThrow(/regressors\[0\] is of kind 'none', which has no weights/);
    await expect(saveFeatureRegressors(rs, 42 as never)).rejects.toThrow(/^handlerOrDir must be a folder \(string\) or a tf\.io\.IOHandler with a save\(\) method, got number 42/);
    await expect(saveFeatureRegressors(rs, '')).rejects.toThrow(TypeError);
    await expect(loadFeatureRegressors({ save: async () => ({}) } as never)).rejects.toThrow(/handlerOrDir .* with a load\(\) method, got object/);
    const gone = tf.tidy(() => tf.variable(tf.zeros([5, 3])));
    gone.dispose();
    await expect(saveFeatureRegressors([{ ...rs[0]!, kernel: gone }], folder)).rejects.toThrow(/regressors\[0\]\.kernel must be a live tensor, got a disposed one/);
    // a model's folder is not regressors (and regressors do not load as a model)
    const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [2], units: 1 })] });
    await model.save(fileSystemHandler(join(dir, 'model')));
    await expect(loadFeatureRegressors(join(dir, 'model'))).rejects.toThrow(/cannot load feature regressors: the artifacts are not feature regressors/);
    await saveFeatureRegressors(rs, folder);
    await expect(tf.loadLayersModel(fileSystemHandler(folder))).rejects.toThrow();
    model.dispose();
    free(rs);
  });
});
