/**
 * Does the student look where its teacher looks? Integrated gradients for both on the same inputs,
 * baselines and targets (by default the teacher's predicted class, so both explain the same
 * decision), how far their attributions agree, and how faithful each is to its own model.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { checkKnownKeys, describe } from '../kernels/validate.js';
import { compareAttributions, type AttributionComparison } from './compare.js';
import { deletionCurve, insertionCurve, type FaithfulnessOptions, type FaithfulnessResult } from './faithfulness.js';
import { IG_OPTION_KEYS, integratedGradients, type IntegratedGradientsOptions } from './integrated-gradients.js';
import { checkModel, checkOptions, checkPositiveInt, type ExplainModel } from './model.js';

export interface ExplainDistillationOptions extends IntegratedGradientsOptions {
  /** Features in the top-k agreement (default: 10% of the features, at least 1). */
  topK?: number;
  /** Deletion / insertion options (target and batchSize come from above), or false to skip them. */
  faithfulness?: false | Omit<FaithfulnessOptions, 'target' | 'batchSize'>;
}

export interface ModelExplanation {
  /** The inputs' shape; the caller disposes it. */
  attributions: tf.Tensor;
  delta: Float32Array;
  predictions: Int32Array;
  /** Absent when faithfulness is false. */
  deletion?: FaithfulnessResult;
  insertion?: FaithfulnessResult;
}

export interface DistillationExplanation {
  /** The classes both models were explained for. */
  targets: Int32Array;
  teacher: ModelExplanation;
  student: ModelExplanation;
  /** Share of examples where the two predict the same class. */
  predictionAgreement: number;
  /** Student attributions against the teacher's. */
  comparison: AttributionComparison;
}

export async function explainDistillation(
  teacher: ExplainModel,
  student: ExplainModel,
  x: tf.Tensor,
  options: ExplainDistillationOptions = {},
): Promise<DistillationExplanation> {
  checkModel(teacher, 'teacher');
  checkModel(student, 'student');
  const o = checkOptions(options) as ExplainDistillationOptions;
  checkKnownKeys(o as Record<string, unknown>, [...IG_OPTION_KEYS, 'topK', 'faithfulness'], 'explainDistillation');
  const { topK, faithfulness, ...igOptions } = o;
  if (topK !== undefined) checkPositiveInt(topK, 'topK');
  const f = faithfulness as unknown;
  if (f !== undefined && f !== false && (typeof f !== 'object' || f === null || Array.isArray(f))) {
    throw new TypeError(`faithfulness must be an object or false, got ${describe(f)}`);
  }

  const t = await integratedGradients(teacher, x, { ...igOptions, target: igOptions.target ?? 'predicted' });
  const explanations: ModelExplanation[] = [];
  try {
    const s = await integratedGradients(student, x, { ...igOptions, target: t.targets });
    explanations.push(
      { attributions: t.attributions, delta: t.delta, predictions: t.predictions },
      { attributions: s.attributions, delta: s.delta, predictions: s.predictions },
    );
    const comparison = await compareAttributions(t.attributions, s.attributions, topK === undefined ? {} : { topK });
    if (faithfulness !== false) {
      const fo = { ...(faithfulness ?? {}), target: t.targets, batchSize: igOptions.batchSize };
      for (const [e, model] of [[explanations[0]!, teacher], [explanations[1]!, student]] as const) {
        e.deletion = await deletionCurve(model, x, e.attributions, fo);
        e.insertion = await insertionCurve(model, x, e.attributions, fo);
      }
    }
    let same = 0;
    t.predictions.forEach((p, i) => (same += p === s.predictions[i] ? 1 : 0));
    return {
      targets: t.targets,
      teacher: explanations[0]!,
      student: explanations[1]!,
      predictionAgreement: same / t.predictions.length,
      comparison,
    };
  } catch (e) {
    t.attributions.dispose();
    explanations[1]?.attributions.dispose();
    throw e;
  }
}
