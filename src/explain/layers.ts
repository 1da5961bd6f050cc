/**
 * Reaching inside a tfjs LayersModel without importing tfjs-layers (an optional peer dependency of
 * which only types are imported): finding layers, models that also output an intermediate layer,
 * and the gradient of an output with respect to an intermediate layer's output.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel, SymbolicTensor } from '@tensorflow/tfjs-layers';

type Layer = LayersModel['layers'][number];

export const isLayersModel = (m: unknown): m is LayersModel =>
  typeof m === 'object' && m !== null && typeof (m as LayersModel).predict === 'function' && Array.isArray((m as LayersModel).outputs);

/** The layer called `name`, or a RangeError listing the model's layers (or only the `usable` ones). */
export function findLayer(model: LayersModel, name: string, where: string, argName: string, usable?: (l: Layer) => boolean): Layer {
  const layer = model.layers.find((l) => l.name === name);
  if (!layer || (usable && !usable(layer))) {
    const names = model.layers.filter((l) => !usable || usable(l)).map((l) => l.name);
    const why = layer ? `layer '${name}' of the ${where} cannot be used here` : `no layer named '${name}' in the ${where}`;
    throw new RangeError(`${argName}: ${why} (usable layers: ${names.join(', ') || 'none'})`);
  }
  return layer;
}

/**
 * tf.model({ inputs, outputs }) built from the given model's own class (found on its prototype
 * chain: Sequential extends LayersModel, whose static className is 'Model'), so it is the user's
 * copy of tfjs-layers.
 */
export function subModel(model: LayersModel, outputs: SymbolicTensor[]): LayersModel {
  for (let proto = Object.getPrototypeOf(model); proto; proto = Object.getPrototypeOf(proto)) {
    const ctor = proto.constructor as { className?: string; new (args: { inputs: SymbolicTensor[]; outputs: SymbolicTensor[] }): LayersModel };
    if (ctor.className === 'Model') return new ctor({ inputs: model.inputs, outputs });
  }
  throw new TypeError('could not find the tf.LayersModel class of the model to build its intermediate-output model');
}

/**
 * d(Σ_i score_i)/dA for the output A of `layer`, where `score` maps the model's output to one scalar:
 * while `run` calls the model, the layer's output is replaced by A + P for a zero tensor P, and
 * the gradient is taken with respect to P (which equals the gradient with respect to A). This works
 * for any graph (Sequential or functional), and inside an outer gradient tape it is differentiable
 * again (second order), as the Grad-CAM alignment term needs. `shape` is A's shape.
 */
export function gradientAtLayer(layer: Layer, shape: number[], run: () => tf.Scalar): tf.Tensor {
  const probe = tf.zeros(shape);
  const own = Object.prototype.hasOwnProperty.call(layer, 'call');
  const original = layer.call;
  (layer as { call: Layer['call'] }).call = function (this: Layer, inputs, kwargs) {
    const out = original.call(this, inputs, kwargs);
    if (Array.isArray(out)) throw new RangeError(`layer '${layer.name}' has several outputs; pick a layer with one`);
    return tf.add(out, probe);
  };
  try {
    return tf.grad((_p: tf.Tensor) => run())(probe);
  } finally {
    if (own) (layer as { call: Layer['call'] }).call = original;
    else delete (layer as { call?: Layer['call'] }).call;
    probe.dispose();
  }
}
