/** The distillation loss from a top-k sparse teacher (see docs/served-teacher.md). */
import { native, runsInline } from './backend.js';
import { TOPK_ARG_NAMES, type NativeAddon } from './native.js';
import { topkDistillationLoss as reference } from './topk-reference.js';
import { checkTopkArgs, type TopkArgs } from './topk-validate.js';
import { checkAsyncCallOptions } from './validate.js';
import type { AsyncCallOptions } from './types.js';
import type { TopKDistillationLossOptions, TopKDistillationLossResult } from './topk-types.js';

const hasOut = (a: TopkArgs): boolean => !!(a.out.gradStudent || a.out.losses);

/** The checked arguments as the addon takes them, in TOPK_ARG_NAMES' order. */
function nativeValues(a: TopkArgs): Parameters<NativeAddon['topkDistillationLossArgs']> {
  return [
    a.student, a.rows, a.cols, a.k, a.indices, a.values, a.missingMass, a.teacherValues, a.labels, a.temperature, a.alpha,
    a.scaleByTemperatureSquared, a.labelSmoothing, a.ignoreIndex, a.reduction, a.divergence, a.beta,
    a.gradOutputRows ?? a.gradOutput, a.computeStudentGrad, hasOut(a) ? a.out : undefined,
  ];
}

function nativeArgs(a: TopkArgs): object {
  const v = nativeValues(a);
  return Object.fromEntries(TOPK_ARG_NAMES.map((name, i) => [name, v[i]]));
}

/** The addon when it has the top-k entries (an addon built before them falls back to the reference). */
function topkNative(): NativeAddon | null {
  const n = native();
  return n && typeof n.topkDistillationLossArgs === 'function' ? n : null;
}

/**
 * The fused distillation loss against a teacher given by its top k log-probabilities per row. The
 * result (loss, per-row losses, student gradient) equals distillationLoss with the densified
 * teacher: listed columns hold their log-probability, the others -Infinity (`missingMass:
 * 'renormalize'`, the default) or log(max(1 - Σ exp(logprob), 0) / (cols - k_r)) (`'uniform'`).
 * The dense teacher is never formed: the kernel reads the student and the k entries per row.
 */
export function topkDistillationLoss(options: TopKDistillationLossOptions): TopKDistillationLossResult {
  const a = checkTopkArgs(options);
  const n = topkNative();
  return n ? n.topkDistillationLossArgs(...nativeValues(a)) : reference(a);
}

/** As topkDistillationLoss, computed off the event loop (the same rules as distillationLossAsync). */
export async function topkDistillationLossAsync(options: TopKDistillationLossOptions, call?: AsyncCallOptions): Promise<TopKDistillationLossResult> {
  const a = checkTopkArgs(options, 'topkDistillationLossAsync');
  const { borrowInputs } = checkAsyncCallOptions(call, 'topkDistillationLossAsync');
  const n = topkNative();
  if (!n) return reference(a);
  return runsInline(a.rows, a.cols) && !hasOut(a)
    ? n.topkDistillationLossArgs(...nativeValues(a))
    : n.topkDistillationLossAsync(nativeArgs(a), borrowInputs);
}
