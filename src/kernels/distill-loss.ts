/** The fused distillation loss and the plain divergence between tempered distributions. */
import { native, runsInline } from './backend.js';
import { DISTILL_ARG_NAMES, type NativeAddon } from './native.js';
import * as reference from './reference.js';
import { checkAsyncCallOptions, checkDistillArgs, checkKnownKeys, requireObject, type DistillArgs } from './validate.js';
import type { AsyncCallOptions, DistillationLossOptions, DistillationLossResult, KlDivergenceOptions, KlDivergenceResult } from './types.js';

/** Whether the caller gave any output array (the inline async path must then not be used). */
const hasOut = (a: DistillArgs): boolean => !!(a.out.gradStudent || a.out.gradTeacher || a.out.losses);

/** The checked arguments as the addon takes them, in DISTILL_ARG_NAMES' order. */
function nativeValues(a: DistillArgs): Parameters<NativeAddon['distillationLossArgs']> {
  return [
    a.student, a.teacher, a.rows, a.cols, a.labels, a.temperature, a.alpha, a.scaleByTemperatureSquared, a.labelSmoothing,
    a.ignoreIndex, a.reduction, a.divergence, a.beta, a.gradOutputRows ?? a.gradOutput, a.computeStudentGrad,
    a.computeTeacherGrad,
    hasOut(a) ? a.out : undefined,  // the addon reads no out fields when there is none
  ];
}

/** The same as an options object, for the addon's entries that take one (the async ones). */
function nativeArgs(a: DistillArgs): object {
  const v = nativeValues(a);
  return Object.fromEntries(DISTILL_ARG_NAMES.map((name, i) => [name, v[i]]));
}

/**
 * Loss and gradients of `L = alpha * T^2 * D(softmax(t/T), softmax(s/T)) + (1 - alpha) * CE(y, softmax(s))`
 * in one fused pass per row (see DistillationLossOptions for every option).
 */
export function distillationLoss(options: DistillationLossOptions): DistillationLossResult {
  const a = checkDistillArgs(options);
  const n = native();
  return n ? nativeSync(n, a) : reference.distillationLoss(a);
}

/** The synchronous native call, its arguments positional (reading an options object's properties was a fifth of a small call). */
function nativeSync(n: NativeAddon, a: DistillArgs): DistillationLossResult {
  return n.distillationLossArgs(...nativeValues(a));
}

/**
 * As distillationLoss, computed off the event loop. Inputs are copied when called, so they may be
 * reused at once (unless `call.borrowInputs`: see AsyncCallOptions); results arrive in new arrays
 * (or are copied into `out` when it settles). Calls of at most INLINE_ASYNC_MAX_ELEMENTS elements
 * compute at once on the calling thread (cheaper than the hop to a worker) and return a settled Promise.
 */
export async function distillationLossAsync(options: DistillationLossOptions, call?: AsyncCallOptions): Promise<DistillationLossResult> {
  const a = checkDistillArgs(options, 'distillationLossAsync');
  const { borrowInputs } = checkAsyncCallOptions(call, 'distillationLossAsync');
  const n = native();
  if (!n) return reference.distillationLoss(a);
  // inline only without `out`: a failed sync call may have written part of it; async fills `out` only on success
  return runsInline(a.rows, a.cols) && !hasOut(a) ? nativeSync(n, a) : n.distillationLossAsync(nativeArgs(a), borrowInputs);
}

const KL_KEYS = ['teacher', 'student', 'rows', 'cols', 'temperature', 'reduction', 'scaleByTemperatureSquared', 'divergence', 'beta', 'out'] as const;

function klArgs(options: KlDivergenceOptions): DistillArgs {
  const o = requireObject(options, 'options');
  checkKnownKeys(o, KL_KEYS, 'klDivergence');
  return checkDistillArgs({
    teacher: o.teacher, student: o.student, rows: o.rows, cols: o.cols,
    temperature: o.temperature, reduction: o.reduction, divergence: o.divergence, beta: o.beta,
    scaleByTemperatureSquared: o.scaleByTemperatureSquared === undefined ? false : o.scaleByTemperatureSquared,
    computeStudentGrad: false, out: o.out,
  });
}

function klResult(r: DistillationLossResult): KlDivergenceResult {
  return r.losses ? { loss: r.loss, losses: r.losses } : { loss: r.loss };
}

/** `D(softmax(t/T), softmax(s/T))` per row, reduced (KL(p || q) by default; no gradient). */
export function klDivergence(options: KlDivergenceOptions): KlDivergenceResult {
  const a = klArgs(options);
  const n = native();
  return klResult(n ? nativeSync(n, a) : reference.distillationLoss(a));
}

export async function klDivergenceAsync(options: KlDivergenceOptions, call?: AsyncCallOptions): Promise<KlDivergenceResult> {
  const a = klArgs(options);
  const { borrowInputs } = checkAsyncCallOptions(call, 'klDivergenceAsync');
  const n = native();
  if (!n) return klResult(reference.distillationLoss(a));
  return klResult(runsInline(a.rows, a.cols) && !hasOut(a) ? nativeSync(n, a) : await n.distillationLossAsync(nativeArgs(a), borrowInputs));
}
