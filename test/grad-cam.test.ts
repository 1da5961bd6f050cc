/**
 * Grad-CAM against its closed form on conv → global average pooling → dense, where
 * ∂y_c/∂A_k(i, j) = w_kc / (h·w), so Grad-CAM = ReLU(CAM) / (h·w) with CAM = Σ_k w_kc A_k
 * (Zhou et al., 2016). Tolerance 1e-5 · max|expected| (float32 forward and backward passes).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { gradCam } from '../src/explain/index.js';
import { expectArrayClose, expectNoTensorLeaks, normal, rng } from './helpers.js';

const N = 3, H = 6, W = 6, K = 4, C = 3;
let seq: tf.Sequential, fun: tf.LayersModel, x: tf.Tensor4D, previousBackend: string;

beforeAll(async () => {
  await tf.ready();
  previousBackend = tf.getBackend();
  await tf.setBackend('cpu');
  seq = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [H, W, 1], filters: K, kernelSize: 3, activation: 'relu', name: 'conv', kernelInitializer: tf.initializers.glorotNormal({ seed: 1 }), biasInitializer: tf.initializers.constant({ value: 0.1 }) }),
      tf.layers.globalAveragePooling2d({ name: 'gap' }),
      tf.layers.dense({ units: C, name: 'fc', kernelInitializer: tf.initializers.glorotNormal({ seed: 2 }) }),
    ],
  });
  // the same shape of network, built functionally with a branch, to check the layer probe on graphs
  const input = tf.input({ shape: [H, W, 1] });
  const conv = tf.layers.conv2d({ filters: K, kernelSize: 3, activation: 'relu', name: 'fconv', kernelInitializer: tf.initializers.glorotNormal({ seed: 3 }) }).apply(input) as tf.SymbolicTensor;
  const gap = tf.layers.globalAveragePooling2d({}).apply(conv) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: C, name: 'ffc', kernelInitializer: tf.initializers.glorotNormal({ seed: 4 }) }).apply(gap) as tf.SymbolicTensor;
  fun = tf.model({ inputs: input, outputs: out });
  const rand = rng(5);
  x = tf.tensor4d(Float32Array.from({ length: N * H * W }, () => normal(rand)), [N, H, W, 1]);
});

afterAll(async () => {
  seq.dispose();
  fun.dispose();
  x.dispose();
  await tf.setBackend(previousBackend);
});

expectNoTensorLeaks(() => tf.memory().numTensors);

/** ReLU(Σ_k w_kc A_k) / (h·w) in float64, with A read from a sub-model. */
async function closedForm(model: tf.LayersModel, convName: string, denseName: string, targets: Int32Array, relu: boolean): Promise<Float64Array> {
  const sub = tf.model({ inputs: model.inputs, outputs: model.getLayer(convName).output as tf.SymbolicTensor });
  const A = sub.predict(x) as tf.Tensor4D;
  const a = await A.data(), w = await model.getLayer(denseName).getWeights()[0]!.data();
  const [h, ww] = [A.shape[1], A.shape[2]];
  A.dispose();
  const out = new Float64Array(N * h * ww);
  for (let n = 0; n < N; n++) for (let p = 0; p < h * ww; p++) {
    let s = 0;
    for (let k = 0; k < K; k++) s += w[k * C + targets[n]!]! * a[(n * h * ww + p) * K + k]!;
    out[n * h * ww + p] = (relu ? Math.max(0, s) : s) / (h * ww);
  }
  return out;
}

describe('gradCam', () => {
  it('equals ReLU(CAM)/(h·w) on conv → GAP → dense, for Sequential and functional models, with and without ReLU', async () => {
    for (const [model, conv, fc] of [[seq, 'conv', 'fc'], [fun, 'fconv', 'ffc']] as const) {
      for (const relu of [true, false]) {
        const r = await gradCam(model, x, { layer: conv, target: [0, 1, 2], relu, batchSize: 2 });
        expect(r.maps.shape).toEqual([N, H - 2, W - 2]);
        expect(r.upsampled.shape).toEqual([N, H, W]);
        expectArrayClose(await r.maps.data(), await closedForm(model, conv, fc, r.targets, relu), 1e-5, `${model.name} relu=${relu}`);
        tf.dispose([r.maps, r.upsampled]);
      }
    }
  });

  it('gives the same closed form on the wasm backend', async () => {
    await tf.setBackend('wasm');
    await tf.ready();
    try {
      expect(tf.getBackend()).toBe('wasm');
      const r = await gradCam(seq, x, { layer: 'conv', target: 1 });
      expectArrayClose(await r.maps.data(), await closedForm(seq, 'conv', 'fc', r.targets, true), 1e-5, 'wasm');
      tf.dispose([r.maps, r.upsampled]);
    } finally {
      await tf.setBackend('cpu');
    }
  });

  it("upsamples bilinearly (never above the map's maximum), and 'predicted' targets are the argmax", async () => {
    const r = await gradCam(seq, x, { layer: 'conv' });
    const logits = seq.predict(x) as tf.Tensor;
    const am = logits.argMax(1);
    expect(Array.from(r.targets)).toEqual(Array.from(await am.data()));
    tf.dispose([logits, am]);
    const m = await r.maps.data(), u = await r.upsampled.data();
    let mMax = 0, uMax = 0;
    for (const v of m) mMax = Math.max(mMax, v);
    for (const v of u) uMax = Math.max(uMax, v);
    expect(uMax).toBeLessThanOrEqual(mMax + 1e-6);  // bilinear interpolation never exceeds the samples
    tf.dispose([r.maps, r.upsampled]);
  });

  it('names the usable layers when the layer is unknown or not 4-D, and refuses non-LayersModels', async () => {
    await expect(gradCam(seq, x, { layer: 'fc' })).rejects.toThrow(/cannot be used here \(usable layers: conv\)/);
    await expect(gradCam(seq, x, { layer: 'nope' })).rejects.toThrow(/no layer named 'nope'.*usable layers: conv/);
    await expect(gradCam(seq, x, { layer: 'conv', relus: false } as never)).rejects.toThrow(/did you mean 'relu'/);
    await expect(gradCam(((t: tf.Tensor) => t) as never, x, { layer: 'conv' })).rejects.toThrow(TypeError);
  });
});
