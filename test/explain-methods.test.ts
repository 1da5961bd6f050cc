/**
 * explainDistillation with each explainer: a model explained against itself agrees perfectly
 * (cosine 1 within 1e-6, same predictions), KernelSHAP's side equals its closed form on a linear
 * teacher (w_t ⊙ (x − mean(background)) within 1e-4 · max|expected|), and Grad-CAM's side is the
 * upsampled map repeated over the input's channels (exactly).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { explainDistillation, gradCam } from '../src/explain/index.js';
import { expectArrayClose, expectNoTensorLeaks, normal, rng } from './helpers.js';

let previousBackend: string, convT: tf.Sequential, convS: tf.Sequential, x: tf.Tensor4D;
beforeAll(async () => {
  await tf.ready();
  previousBackend = tf.getBackend();
  await tf.setBackend('cpu');
  const conv = (filters: number, seed: number, name: string) => tf.sequential({
    layers: [
      tf.layers.conv2d({ name, inputShape: [6, 6, 2], filters, kernelSize: 3, activation: 'relu', kernelInitializer: tf.initializers.heNormal({ seed }) }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 3, kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }) }),
    ],
  });
  convT = conv(4, 1, 'tconv');
  convS = conv(2, 5, 'sconv');
  const rand = rng(8);
  x = tf.tensor4d(Float32Array.from({ length: 3 * 6 * 6 * 2 }, () => normal(rand)), [3, 6, 6, 2]);
});
afterAll(async () => {
  convT.dispose();
  convS.dispose();
  x.dispose();
  await tf.setBackend(previousBackend);
});
expectNoTensorLeaks(() => tf.memory().numTensors);

const free = (r: Awaited<ReturnType<typeof explainDistillation>>) => tf.dispose([r.teacher.attributions, r.student.attributions]);

describe('explainDistillation explainers', () => {
  it('a model against itself agrees perfectly with every explainer', async () => {
    const bg = tf.zeros([1, 6, 6, 2]);
    const cases = [
      { explainer: 'ig' as const, steps: 8 },
      { explainer: 'gradcam' as const, gradCam: { teacherLayer: 'tconv', studentLayer: 'tconv' } },
      { explainer: 'kernelshap' as const, kernelShap: { background: bg, nSamples: 64, featureGroups: Int32Array.from({ length: 72 }, (_, i) => Math.floor(i / 12)) } },
      { explainer: 'lime' as const, lime: { nSamples: 64, featureGroups: Int32Array.from({ length: 72 }, (_, i) => Math.floor(i / 12)) } },
    ];
    for (const c of cases) {
      const r = await explainDistillation(convT, convT, x, { ...c, faithfulness: false });
      expect(r.explainer).toBe(c.explainer);
      expect(r.predictionAgreement).toBe(1);
      expect(Math.abs(r.comparison.mean.cosine - 1), c.explainer).toBeLessThan(1e-6);
      expect(r.teacher.attributions.shape).toEqual(x.shape);
      expect(r.teacher.delta !== undefined).toBe(c.explainer === 'ig');
      free(r);
    }
    bg.dispose();
  });

  it("Grad-CAM's side is the upsampled map over the channels; KernelSHAP's side is its closed form on a linear teacher", async () => {
    const r = await explainDistillation(convT, convS, x, { explainer: 'gradcam', gradCam: { teacherLayer: 'tconv', studentLayer: 'sconv' }, faithfulness: { steps: 4 } });
    const g = await gradCam(convS, x, { layer: 'sconv', target: r.targets });
    const up = await g.upsampled.data(), a = await r.student.attributions.data();
    expect(Array.from(a).filter((_, i) => i % 2 === 0)).toEqual(Array.from(up));
    expect(Array.from(a).filter((_, i) => i % 2 === 1)).toEqual(Array.from(up));
    expect(r.teacher.deletion).toBeDefined();
    tf.dispose([g.maps, g.upsampled]);
    free(r);

    const F = 4, rand = rng(3);
    const w = Float32Array.from({ length: F * 2 }, () => normal(rand));
    const W = tf.tensor2d(w, [F, 2]);
    const lin = (z: tf.Tensor) => tf.matMul(z as tf.Tensor2D, W);
    const xs = tf.tensor2d(Float32Array.from({ length: 2 * F }, () => normal(rand)), [2, F]), bg = tf.tensor2d(Float32Array.from({ length: 3 * F }, () => normal(rand)), [3, F]);
    const s = await explainDistillation(lin, lin, xs, { explainer: 'kernelshap', kernelShap: { background: bg, nSamples: 'exact' }, faithfulness: false });
    const xv = await xs.data(), bv = await bg.data(), expected = new Float32Array(2 * F);
    for (let i = 0; i < 2; i++) for (let j = 0; j < F; j++) expected[i * F + j] = w[j * 2 + s.targets[i]!]! * (xv[i * F + j]! - (bv[j]! + bv[F + j]! + bv[2 * F + j]!) / 3);
    expectArrayClose(await s.teacher.attributions.data(), expected, 1e-4, 'kernelshap side');
    free(s);
    tf.dispose([W, xs, bg]);
  });

  it('refuses an unknown explainer, missing method options and unknown keys', async () => {
    await expect(explainDistillation(convT, convS, x, { explainer: 'shap' as never })).rejects.toThrow(/explainer must be one of 'ig', 'gradcam', 'kernelshap', 'lime'/);
    await expect(explainDistillation(convT, convS, x, { explainer: 'gradcam' })).rejects.toThrow(/needs gradCam/);
    await expect(explainDistillation(convT, convS, x, { explainer: 'kernelshap' })).rejects.toThrow(/needs kernelShap/);
    await expect(explainDistillation(convT, convS, x, { explaner: 'ig' } as never)).rejects.toThrow(/did you mean 'explainer'/);
  });
});
