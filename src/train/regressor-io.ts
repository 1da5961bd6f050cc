/**
 * Saving and loading the feature-distillation regressors (Distiller.featureRegressors), which the
 * student does not contain: a student saved alone cannot carry on hint training where it stopped,
 * and the regressor is part of what was learned (it maps the student's features onto the
 * teacher's). Kept in tfjs's own format, so any tf.io.IOHandler works (a folder through
 * fileSystemHandler, tf.io.withSaveHandler, browser handlers): the weights are encoded by
 * tf.io.encodeWeights into `weightSpecs` + `weightData`, and the pairs (layer names, regressor kind,
 * which weight is whose) travel in `modelTopology`, marked with `format` so that neither these
 * artifacts load as a model nor a model's as regressors.
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe } from '../kernels/validate.js';
import { FEATURE_REGRESSORS, checkHintRegressor, type HintRegressor } from './feature-distillation.js';
import { fileSystemHandler } from './io.js';

/** The `format` of saved regressors (model.json's "format" field with fileSystemHandler). */
export const FEATURE_REGRESSORS_FORMAT = 'kdfuse-feature-regressors';

/** What modelTopology holds: one entry per pair, in the Distiller's order, naming its weights in the manifest. */
interface RegressorTopology {
  kdfuse: 'featureRegressors';
  version: 1;
  pairs: Array<{ teacher: string; student: string; kind: HintRegressor['kind']; kernel?: string; bias?: string }>;
}

function resolveHandler(v: unknown, method: 'save' | 'load'): tf.io.IOHandler {
  if (typeof v === 'string') {
    if (v.length === 0) throw new TypeError('handlerOrDir must be a folder (a non-empty string) or a tf.io.IOHandler, got an empty string');
    return fileSystemHandler(v);
  }
  if (typeof v !== 'object' || v === null || typeof (v as Record<string, unknown>)[method] !== 'function') {
    throw new TypeError(`handlerOrDir must be a folder (string) or a tf.io.IOHandler with a ${method}() method, got ${describe(v)}`);
  }
  return v as tf.io.IOHandler;
}

/**
 * Saves feature-distillation regressors, usually `distiller.featureRegressors` after `fit` and
 * before `dispose()`. `handlerOrDir`: a folder (written through fileSystemHandler: model.json with
 * format 'kdfuse-feature-regressors', and weights.bin; use a folder of its own, e.g. next to the
 * student's) or any tf.io.IOHandler. Every pair is saved, 'none' ones too (they have no weights
 * but keep the list aligned with the Distiller's pairs). Resolves to the handler's SaveResult.
 * Throws TypeError / RangeError naming the argument for a bad list or destination.
 */
export async function saveFeatureRegressors(regressors: readonly HintRegressor[], handlerOrDir: string | tf.io.IOHandler): Promise<tf.io.SaveResult> {
  if (!Array.isArray(regressors)) throw new TypeError(`regressors must be an array of feature regressors (distiller.featureRegressors), got ${describe(regressors)}`);
  if (regressors.length === 0) throw new RangeError('regressors must hold at least one regressor, got an empty array (a Distiller without featureDistillation has none)');
  const checked = regressors.map((r, i) => checkHintRegressor(r, `regressors[${i}]`));
  const handler = resolveHandler(handlerOrDir, 'save');
  const named: Array<{ name: string; tensor: tf.Tensor }> = [];
  const topology: RegressorTopology = {
    kdfuse: 'featureRegressors',
    version: 1,
    pairs: checked.map((r, i) => {
      const entry: RegressorTopology['pairs'][number] = { teacher: r.teacher, student: r.student, kind: r.kind };
      if (r.kind !== 'none') {
        entry.kernel = `pair${i}/kernel`;
        entry.bias = `pair${i}/bias`;
        named.push({ name: entry.kernel, tensor: r.kernel! }, { name: entry.bias, tensor: r.bias! });
      }
      return entry;
    }),
  };
  const { data, specs } = await tf.io.encodeWeights(named);
  return handler.save!({
    modelTopology: topology,
    format: FEATURE_REGRESSORS_FORMAT,
    generatedBy: 'kdfuse saveFeatureRegressors',
    weightSpecs: specs,
    weightData: data,
  });
}

/** A malformed file is an Error saying what is wrong (not the caller's argument, so not a TypeError). */
const bad = (why: string): Error => new Error(`cannot load feature regressors: ${why}`);

/**
 * Loads regressors saved by saveFeatureRegressors from a folder or a tf.io.IOHandler. Each kernel
 * and bias is a new trainable tf.Variable that the caller owns (dispose them when done); pass the
 * list as `featureDistillation.initialRegressors` to start a Distiller from them, or apply them
 * with applyRegressor / hintLoss.
 */
export async function loadFeatureRegressors(handlerOrDir: string | tf.io.IOHandler): Promise<HintRegressor[]> {
  const handler = resolveHandler(handlerOrDir, 'load');
  const a = await handler.load!();
  const top = a.modelTopology as Partial<RegressorTopology> | undefined;
  if (a.format !== FEATURE_REGRESSORS_FORMAT || typeof top !== 'object' || top === null || top.kdfuse !== 'featureRegressors') {
    throw bad(`the artifacts are not feature regressors (format ${describe(a.format)}; saveFeatureRegressors writes '${FEATURE_REGRESSORS_FORMAT}')`);
  }
  if (top.version !== 1) throw bad(`unknown version ${describe(top.version)} (this kdfuse reads version 1)`);
  if (!Array.isArray(top.pairs) || top.pairs.length === 0) throw bad('modelTopology.pairs must be a non-empty array');
  const weights = tf.io.decodeWeights(a.weightData ?? new ArrayBuffer(0), a.weightSpecs ?? []);
  const out: HintRegressor[] = [];
  try {
    top.pairs.forEach((p, i) => {
      if (typeof p !== 'object' || p === null || typeof p.teacher !== 'string' || typeof p.student !== 'string' || !(FEATURE_REGRESSORS as readonly unknown[]).includes(p.kind)) {
        throw bad(`modelTopology.pairs[${i}] must be { teacher, student, kind }, got ${JSON.stringify(p)}`);
      }
      const r: HintRegressor = { teacher: p.teacher, student: p.student, kind: p.kind };
      if (p.kind !== 'none') {
        const kernel = weights[p.kernel ?? ''], bias = weights[p.bias ?? ''];
        if (!kernel || !bias) throw bad(`pairs[${i}]: weight '${kernel ? p.bias : p.kernel}' is missing from the weights manifest`);
        if (kernel.rank !== 2 || bias.rank !== 1 || bias.shape[0] !== kernel.shape[1] || kernel.dtype !== 'float32' || bias.dtype !== 'float32') {
          throw bad(`pairs[${i}]: the kernel must be float32 [in, out] and the bias float32 [out], got [${kernel.shape.join(', ')}] and [${bias.shape.join(', ')}]`);
        }
        r.kernel = tf.variable(kernel, true);
        r.bias = tf.variable(bias, true);
      }
      out.push(r);
    });
    return out;
  } catch (e) {
    for (const r of out) tf.dispose([r.kernel, r.bias].filter((v): v is tf.Variable => v !== undefined));
    throw e;
  } finally {
    // the variables share the decoded tensors' data (tfjs counts references), so these can go
    tf.dispose(Object.values(weights));
  }
}
