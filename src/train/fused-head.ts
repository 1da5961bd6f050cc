/**
 * Distiller's `fusedHead`: a student split into its body (every layer before the last) and its
 * last layer, a Dense without activation, whose kernel and bias the fused loss takes directly
 * (kdfuse/tfjs linearDistillationLoss). The checks say why a student does not qualify.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel, SymbolicTensor } from '@tensorflow/tfjs-layers';
import { subModel } from '../explain/layers.js';

export interface FusedHeadPlan {
  /** The number of classes (the Dense layer's units). */
  cols: number;
  /** The hidden state `[rows, dim]` of a batch, in training mode (the body; x itself without one). */
  hidden(x: tf.Tensor): tf.Tensor2D;
  kernel(): tf.Variable;
  bias(): tf.Variable | null;
}

interface WeightLike { read(): tf.Tensor; originalName?: string; name: string }

export function fusedHeadPlan(student: LayersModel): FusedHeadPlan {
  if (student.inputs.length !== 1 || student.outputs.length !== 1) {
    throw new RangeError(`fusedHead needs a student with one input and one output, got ${student.inputs.length} and ${student.outputs.length}`);
  }
  const layer = student.outputs[0]!.sourceLayer;
  const config = layer.getConfig() as { activation?: unknown; useBias?: unknown };
  if (layer.getClassName() !== 'Dense') {
    throw new RangeError(`fusedHead needs a student whose last layer is Dense; '${layer.name}' is ${layer.getClassName()}`);
  }
  if (config.activation !== 'linear' && config.activation !== undefined) {
    throw new RangeError(`fusedHead needs a last Dense layer without activation (its output must be the logits); '${layer.name}' applies ${String(config.activation)}`);
  }
  const input = layer.input as SymbolicTensor | SymbolicTensor[];
  if (Array.isArray(input)) throw new RangeError(`fusedHead needs a last Dense layer with one input; '${layer.name}' has ${input.length}`);
  if (input.shape.length !== 2) {
    throw new RangeError(`fusedHead needs a last Dense layer on a [rows, dim] input; '${layer.name}' takes shape [${input.shape.map(String).join(', ')}] (flatten it first)`);
  }
  const weights = layer.trainableWeights as unknown as WeightLike[];
  const useBias = config.useBias !== false;
  if (weights.length !== (useBias ? 2 : 1)) {
    throw new RangeError(`fusedHead needs the last Dense layer's kernel${useBias ? ' and bias' : ''} to be trainable; '${layer.name}' has ${weights.length} trainable weights`);
  }
  const cols = (layer.getConfig() as { units: number }).units;
  // the layers before the head, as a model sharing the student's layers (it owns no weights of its
  // own, so there is nothing to dispose); no body when the head reads x itself
  const body = input === student.inputs[0] ? undefined : subModel(student, [input]);
  return {
    cols,
    hidden: (x) => (body ? body.apply(x, { training: true }) : x) as tf.Tensor2D,
    kernel: () => weights[0]!.read() as tf.Variable,
    bias: () => (useBias ? weights[1]!.read() as tf.Variable : null),
  };
}
