/**
 * Does the student look where its teacher looks? One attribution method for both on the same inputs
 * and targets (by default the teacher's predicted class, so both explain the same decision), how far
 * their attributions agree, and how faithful each is to its own model. The method is integrated
 * gradients unless `explainer` names another: 'gradcam' (conv LayersModels; each model's own layer),
 * 'kernelshap' or 'lime' (any model). Every method's attributions are brought to the inputs' shape
 * (src/explain/methods.ts), so the comparison and the faithfulness curves are the same for all.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { checkKnownKeys, describe } from '../kernels/validate.js';
import type { KernelShapOptions } from './kernel-shap.js';
import type { LimeOptions } from './lime.js';
import { attributeWith, EXPLAIN_METHODS, type ExplainMethod } from './methods.js';
import { compareAttributions, type AttributionComparison } from './compare.js';
import { deletionCurve, insertionCurve, type FaithfulnessOptions, type FaithfulnessResult } from './faithfulness.js';
import { IG_OPTION_KEYS, type IntegratedGradientsOptions } from './integrated-gradients.js';
import { checkChoice, checkModel, checkOptions, checkPositiveInt, type ExplainModel } from './model.js';

export interface ExplainDistillationOptions extends IntegratedGradientsOptions {
  /**
   * The attribution method: 'ig' (integrated gradients, default; its options are the ones above),
   * 'gradcam', 'kernelshap' or 'lime' (their options below). Named `explainer` because `method` is
   * integrated gradients' quadrature rule.
   */
  explainer?: ExplainMethod;
  /** For 'gradcam': the layer of each model (4-D outputs) and the ReLU (default true). */
  gradCam?: { teacherLayer: string; studentLayer: string; relu?: boolean };
  /** For 'kernelshap' (background required). */
  kernelShap?: Omit<KernelShapOptions, 'target'>;
  /** For 'lime'. */
  lime?: Omit<LimeOptions, 'target'>;
  /** Features in the top-k agreement (default: 10% of the features, at least 1). */
  topK?: number;
  /** Deletion / insertion options (target and batchSize come from above), or false to skip them. */
  faithfulness?: false | Omit<FaithfulnessOptions, 'target' | 'batchSize'>;
}

export interface ModelExplanation {
  /** The inputs' shape; the caller disposes it. */
  attributions: tf.Tensor;
  /** Integrated gradients' completeness gap per example (absent for the other explainers). */
  delta?: Float32Array;
  predictions: Int32Array;
  /** Absent when faithfulness is false. */
  deletion?: FaithfulnessResult;
  insertion?: FaithfulnessResult;
}

export interface DistillationExplanation {
  /** The method both models were explained with. */
  explainer: ExplainMethod;
  /** The classes both models were explained for. */
  targets: Int32Array;
  teacher: ModelExplanation;
  student: ModelExplanation;
  /** Share of examples where the two predict the same class. */
  predictionAgreement: number;
  /** Student attributions against the teacher's. */
  comparison: AttributionComparison;
}

const KNOWN = [...IG_OPTION_KEYS, 'topK', 'faithfulness', 'explainer', 'gradCam', 'kernelShap', 'lime'] as const;

export async function explainDistillation(
  teacher: ExplainModel,
  student: ExplainModel,
  x: tf.Tensor,
  options: ExplainDistillationOptions = {},
): Promise<DistillationExplanation> {
  checkModel(teacher, 'teacher');
  checkModel(student, 'student');
  const o = checkOptions(options) as ExplainDistillationOptions;
  checkKnownKeys(o as Record<string, unknown>, KNOWN, 'explainDistillation');
  const { topK, faithfulness, explainer: e0, gradCam, kernelShap, lime, ...igOptions } = o;
  const explainer = checkChoice(e0, 'explainer', EXPLAIN_METHODS, 'ig');
  if (topK !== undefined) checkPositiveInt(topK, 'topK');
  const f = faithfulness as unknown;
  if (f !== undefined && f !== false && (typeof f !== 'object' || f === null || Array.isArray(f))) {
    throw new TypeError(`faithfulness must be an object or false, got ${describe(f)}`);
  }
  const sideOptions = (side: 'teacher' | 'student'): Record<string, unknown> => {
    if (explainer === 'ig') { const { target: _t, ...rest } = igOptions; return rest; }
    if (explainer === 'gradcam') {
      if (typeof gradCam !== 'object' || gradCam === null) throw new TypeError(`explainer 'gradcam' needs gradCam: { teacherLayer, studentLayer }, got ${describe(gradCam)}`);
      checkKnownKeys(gradCam as Record<string, unknown>, ['teacherLayer', 'studentLayer', 'relu'], 'explainDistillation gradCam');
      return { layer: side === 'teacher' ? gradCam.teacherLayer : gradCam.studentLayer, ...(gradCam.relu === undefined ? {} : { relu: gradCam.relu }) };
    }
    const own = explainer === 'kernelshap' ? kernelShap : lime;
    if (own === undefined && explainer === 'kernelshap') throw new TypeError("explainer 'kernelshap' needs kernelShap: { background, ... }");
    return { ...(own ?? {}) } as Record<string, unknown>;
  };

  const t = await attributeWith(explainer, teacher, x, sideOptions('teacher'), igOptions.target ?? 'predicted');
  const explanations: ModelExplanation[] = [];
  try {
    const s = await attributeWith(explainer, student, x, sideOptions('student'), t.targets);
    const side = (r: typeof t): ModelExplanation => ({ attributions: r.attributions, predictions: r.predictions, ...(r.delta ? { delta: r.delta } : {}) });
    explanations.push(side(t), side(s));
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
      explainer,
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
