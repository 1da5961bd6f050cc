/**
 * Grad-CAM (Selvaraju et al., ICCV 2017) for tfjs LayersModels with convolutional layers:
 *
 *     α_k = mean over (i, j) of ∂y_c/∂A_k(i, j)        (A: the layer's output [N, h, w, K], channels last)
 *     map = ReLU(Σ_k α_k A_k)                           (not normalised, as Captum's LayerGradCam)
 *
 * y_c is the model's output (logits) for the target class. `upsampled` resizes each map bilinearly
 * to the input's [H, W] (half-pixel centres, as PyTorch's align_corners=False). On conv → global
 * average pooling → dense, ∂y_c/∂A_k(i, j) = w_kc / (h·w), so Grad-CAM = ReLU(CAM) / (h·w).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { checkKnownKeys, describe, optionalBool } from '../kernels/validate.js';
import { findLayer, gradientAtLayer, isLayersModel, subModel } from './layers.js';
import { argmax, checkOptions, checkPositiveInt, readInputs, resolveTargets, type Target } from './model.js';

export interface GradCamOptions {
  /** Name of a layer with a 4-D output [N, h, w, K] (usually the last convolution). Required. */
  layer: string;
  /** Class explained: one for all examples, one per example, or 'predicted' (default). */
  target?: Target;
  /** Apply the ReLU to the weighted sum (default true). */
  relu?: boolean;
  /** Examples per model call (default 64). */
  batchSize?: number;
}

export interface GradCamResult {
  /** [N, h, w] at the layer's resolution. The caller disposes it. */
  maps: tf.Tensor3D;
  /** [N, H, W]: the maps resized bilinearly to the input's spatial size. The caller disposes it. */
  upsampled: tf.Tensor3D;
  predictions: Int32Array;
  targets: Int32Array;
}

const KNOWN = ['layer', 'target', 'relu', 'batchSize'] as const;

const is4d = (l: LayersModel['layers'][number]): boolean => {
  const s = l.outputShape as unknown;
  return Array.isArray(s) && s.length === 4 && !Array.isArray(s[0]);
};

/** Checks that `model` is a LayersModel and `name` one of its 4-D layers; returns the layer. */
export function gradCamLayer(model: unknown, name: unknown, argName = 'layer', modelName = 'model'): LayersModel['layers'][number] {
  if (typeof argName !== 'string') argName = 'layer';  // how errors name the arguments: never let them throw
  if (typeof modelName !== 'string') modelName = 'model';
  if (!isLayersModel(model)) throw new TypeError(`${modelName} must be a tf.LayersModel for Grad-CAM (it reads an intermediate layer), got ${describe(model)}`);
  if (typeof name !== 'string') {
    const names = model.layers.filter(is4d).map((l) => l.name);
    throw new TypeError(`${argName} must be the name of a layer with a 4-D output [N, h, w, channels] (usable layers: ${names.join(', ') || 'none'}), got ${describe(name)}`);
  }
  return findLayer(model, name, modelName, argName, is4d);
}

/**
 * The Grad-CAM maps [N, h, w] of `model` at `layer` for the classes marked by `oneHot` [N, classes],
 * as a differentiable function of the model's weights (inside a tape, the map's gradient is a
 * second-order one). `camModel` is subModel(model, [layer.output]): pass it when calling often.
 */
export function gradCamMaps(
  model: LayersModel, layer: LayersModel['layers'][number], x: tf.Tensor, oneHot: tf.Tensor2D,
  options: { relu?: boolean; training?: boolean; camModel?: LayersModel } = {},
): tf.Tensor3D {
  return tf.tidy(() => {
    const training = options.training ?? false;
    const cam = options.camModel ?? subModel(model, [layer.output as never]);
    const A = cam.apply(x, { training }) as tf.Tensor4D;
    const dA = gradientAtLayer(layer, A.shape, () => tf.sum(tf.mul(model.apply(x, { training }) as tf.Tensor, oneHot)) as tf.Scalar);
    const alpha = tf.mean(dA, [1, 2], true);  // [N, 1, 1, K]
    const map = tf.sum(tf.mul(alpha, A), 3) as tf.Tensor3D;
    return options.relu === false ? map : tf.relu(map);
  });
}

/** Grad-CAM maps of a LayersModel at a 4-D layer. Async; `batchSize` examples per model call. */
export async function gradCam(model: LayersModel, inputs: tf.Tensor, options: GradCamOptions): Promise<GradCamResult> {
  const o = checkOptions(options);
  checkKnownKeys(o, KNOWN, 'gradCam');
  const layer = gradCamLayer(model, o.layer);
  const relu = optionalBool(o, 'relu', true);
  const batchSize = o.batchSize === undefined ? 64 : checkPositiveInt(o.batchSize, 'batchSize');
  const x = await readInputs(inputs);
  if (inputs.rank !== 4) throw new RangeError(`inputs must be images [N, H, W, C] for Grad-CAM's upsampled maps, got shape [${inputs.shape.join(', ')}]`);
  const m = model as LayersModel;
  const cam = subModel(m, [layer.output as never]);
  const maps: tf.Tensor3D[] = [];
  const preds: Int32Array[] = [];
  let tg: Int32Array | undefined;
  try {
    const logits = tf.tidy(() => m.predict(inputs, { batchSize }) as tf.Tensor);
    const scores = (await logits.data()) as Float32Array;
    const cols = logits.shape[logits.rank - 1]!;
    logits.dispose();
    if (scores.length !== x.rows * cols) throw new RangeError(`model must output [batch, classes], got ${scores.length / x.rows} values per row`);
    preds.push(argmax(scores, x.rows, cols));
    tg = resolveTargets(o.target, x.rows, cols, preds[0]!);
    for (let start = 0; start < x.rows; start += batchSize) {
      const n = Math.min(batchSize, x.rows - start), t = tg.subarray(start, start + n);
      maps.push(tf.tidy(() => {
        const xb = tf.slice(inputs, start, n);
        const oneHot = tf.cast(tf.oneHot(tf.tensor1d(t, 'int32'), cols), 'float32') as tf.Tensor2D;
        return gradCamMaps(m, layer, xb, oneHot, { relu, camModel: cam });
      }));
    }
    const all = maps.length === 1 ? maps[0]! : tf.concat(maps, 0);
    const [H, W] = [inputs.shape[1]!, inputs.shape[2]!];
    const upsampled = tf.tidy(() => tf.squeeze(tf.image.resizeBilinear(tf.expandDims(all, 3) as tf.Tensor4D, [H, W], false, true), [3]) as tf.Tensor3D);
    if (maps.length > 1) tf.dispose(maps);
    return { maps: all, upsampled, predictions: preds[0]!, targets: tg };
  } catch (e) {
    tf.dispose(maps);
    throw e;
  }
}
