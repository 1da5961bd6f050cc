/**
 * One entry for every attribution method, so the global summaries, the stability score and the
 * teacher–student report can take a method by name. Every method's result is brought to the
 * inputs' shape: Grad-CAM's upsampled map is repeated over the input's channels.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { gradCam, type GradCamOptions } from './grad-cam.js';
import { integratedGradients, type IntegratedGradientsOptions } from './integrated-gradients.js';
import { kernelShap, type KernelShapOptions } from './kernel-shap.js';
import { lime, type LimeOptions } from './lime.js';
import type { ExplainModel, Target } from './model.js';

/** The attribution methods by name: integrated gradients, Grad-CAM (conv LayersModels), KernelSHAP, LIME. */
export const EXPLAIN_METHODS = ['ig', 'gradcam', 'kernelshap', 'lime'] as const;
export type ExplainMethod = (typeof EXPLAIN_METHODS)[number];

/** The options of a method (without `target`, which the callers set). */
export type MethodOptions<M extends ExplainMethod> =
  M extends 'ig' ? Omit<IntegratedGradientsOptions, 'target'>
  : M extends 'gradcam' ? Omit<GradCamOptions, 'target'>
  : M extends 'kernelshap' ? Omit<KernelShapOptions, 'target'>
  : Omit<LimeOptions, 'target'>;

export interface MethodAttributions {
  /** The inputs' shape; the caller disposes it. */
  attributions: tf.Tensor;
  predictions: Int32Array;
  targets: Int32Array;
  /** Integrated gradients' completeness gap per example (absent for the other methods). */
  delta?: Float32Array;
}

/** Runs `method` on `x` for `target` and returns input-shaped attributions. */
export async function attributeWith(
  method: ExplainMethod, model: ExplainModel, x: tf.Tensor, options: Record<string, unknown>, target: Target | undefined,
): Promise<MethodAttributions> {
  const withTarget = target === undefined ? { ...options } : { ...options, target };
  switch (method) {
    case 'ig': {
      const r = await integratedGradients(model, x, withTarget as IntegratedGradientsOptions);
      return { attributions: r.attributions, predictions: r.predictions, targets: r.targets, delta: r.delta };
    }
    case 'kernelshap': {
      const r = await kernelShap(model, x, withTarget as unknown as KernelShapOptions);
      return { attributions: r.attributions, predictions: r.predictions, targets: r.targets };
    }
    case 'lime': {
      const r = await lime(model, x, withTarget as LimeOptions);
      return { attributions: r.attributions, predictions: r.predictions, targets: r.targets };
    }
    case 'gradcam': {
      const r = await gradCam(model as LayersModel, x, withTarget as unknown as GradCamOptions);
      r.maps.dispose();
      const attributions = tf.tidy(() => tf.broadcastTo(tf.reshape(r.upsampled, [...r.upsampled.shape, ...x.shape.slice(3).map(() => 1)]), x.shape));
      r.upsampled.dispose();
      return { attributions, predictions: r.predictions, targets: r.targets };
    }
    default:
      throw new RangeError(`method must be one of ${EXPLAIN_METHODS.map((m) => `'${m}'`).join(', ')}, got ${typeof method === 'string' ? `'${method as string}'` : String(method)}`);
  }
}
