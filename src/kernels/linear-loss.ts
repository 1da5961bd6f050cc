/** The fused distillation head: a linear projection and the distillation loss in one native pass (docs/fused-head.md). */
import { native, runsInline } from './backend.js';
import { LINEAR_ARG_NAMES, type NativeAddon } from './native.js';
import { linearDistillationLoss as reference } from './linear-reference.js';
import { checkLinearArgs, type LinearArgs } from './linear-validate.js';
import { checkAsyncCallOptions } from './validate.js';
import type { AsyncCallOptions } from './types.js';
import type { LinearDistillationLossOptions, LinearDistillationLossResult } from './linear-types.js';

type LinearAddon = Required<Pick<NativeAddon, 'linearDistillationLossArgs' | 'linearDistillationLossAsync'>>;

const hasOut = (a: LinearArgs): boolean => !!(a.out.gradHidden || a.out.gradWeight || a.out.gradBias || a.out.losses);

/** The checked arguments as the addon takes them, in LINEAR_ARG_NAMES' order. */
function nativeValues(a: LinearArgs): Parameters<LinearAddon['linearDistillationLossArgs']> {
  const t = a.topk;
  return [
    a.hidden, a.weight, a.bias, a.rows, a.dim, a.cols, a.teacher, t?.k, t?.indices, t?.values, t?.missingMass,
    t?.teacherValues, a.labels, a.temperature, a.alpha, a.scaleByTemperatureSquared, a.labelSmoothing, a.ignoreIndex,
    a.reduction, a.divergence, a.beta, a.gradOutputRows ?? a.gradOutput, a.computeHiddenGrad, a.computeWeightGrad,
    hasOut(a) ? a.out : undefined,
  ];
}

function nativeArgs(a: LinearArgs): object {
  const v = nativeValues(a);
  return Object.fromEntries(LINEAR_ARG_NAMES.map((name, i) => [name, v[i]]));
}

/** The addon when it has the fused head (an addon built before it falls back to the reference). */
function linearNative(): LinearAddon | null {
  const n = native();
  return n && typeof n.linearDistillationLossArgs === 'function' ? (n as LinearAddon) : null;
}

/**
 * Loss and gradients of a linear head followed by the distillation loss: the student's logits are
 * `hidden · weight + bias` (`weight` in the tfjs Dense kernel layout `[dim, cols]`), the loss is
 * distillationLoss's with every one of its options, and the teacher is dense logits or its top k
 * entries per row. The `[rows, cols]` logits are never formed whole: rows are taken in blocks of
 * about 16 MB of logits, each a matrix product, the fused loss pass and two more products, so the
 * memory beyond inputs and outputs stays at a few tens of MB whatever the vocabulary size.
 * Runs on the CUDA device when setDevice('cuda') (or 'auto' with a GPU) is in force, else on the CPU.
 */
export function linearDistillationLoss(options: LinearDistillationLossOptions): LinearDistillationLossResult {
  const a = checkLinearArgs(options);
  const n = linearNative();
  return n ? n.linearDistillationLossArgs(...nativeValues(a)) : reference(a);
}

/** As linearDistillationLoss, computed off the event loop (the same rules as distillationLossAsync). */
export async function linearDistillationLossAsync(options: LinearDistillationLossOptions, call?: AsyncCallOptions): Promise<LinearDistillationLossResult> {
  const a = checkLinearArgs(options, 'linearDistillationLossAsync');
  const { borrowInputs } = checkAsyncCallOptions(call, 'linearDistillationLossAsync');
  const n = linearNative();
  if (!n) return reference(a);
  return runsInline(a.rows, a.cols * a.dim) && !hasOut(a)
    ? n.linearDistillationLossArgs(...nativeValues(a))
    : n.linearDistillationLossAsync(nativeArgs(a), borrowInputs);
}
