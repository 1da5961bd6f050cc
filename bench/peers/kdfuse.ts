/**
 * kdfuse's own peers: the native addon with all threads (allocating its result, and writing into a
 * reused `out`), with one thread, through the async (Promise) API, and the plain-TypeScript
 * reference backend called directly (the same code KDFUSE_BACKEND=reference runs).
 */
import * as kd from '../../src/index.js';
import * as reference from '../../src/kernels/reference.js';
import { checkDistillArgs, checkSoftmaxArgs } from '../../src/kernels/validate.js';
import { topkDistillationLoss as topkReference } from '../../src/kernels/topk-reference.js';
import { checkTopkArgs } from '../../src/kernels/topk-validate.js';
import { topkData } from '../topk-data.js';
import type { Output, PreparedCall } from '../measure.js';
import { LOSS, type Data, type SuiteId } from '../workload.js';
import { inProcessPeer, type Peer } from './peer.js';

function lossOptions(d: Data, withGrad: boolean): kd.DistillationLossOptions {
  return {
    student: d.student, teacher: d.teacher, rows: d.rows, cols: d.cols, labels: d.labels,
    temperature: LOSS.temperature, alpha: LOSS.alpha, computeStudentGrad: withGrad,
  };
}

/** The top-k suite's call: the same loss (KL, T, alpha, labels) against the row's 64 teacher entries. */
function topkOptions(d: Data): kd.TopKDistillationLossOptions {
  const t = topkData(d);
  return {
    student: d.student, rows: d.rows, cols: d.cols, k: t.k, teacherIndices: t.indices, teacherLogprobs: t.logprobs,
    labels: d.labels, temperature: LOSS.temperature, alpha: LOSS.alpha,
  };
}

const softmaxOptions = (d: Data): kd.SoftmaxOptions => ({ logits: d.student, rows: d.rows, cols: d.cols, temperature: LOSS.temperature });

const fromLoss = (r: kd.DistillationLossResult): Output => (r.gradStudent ? { loss: r.loss, values: r.gradStudent } : { loss: r.loss });

/** The synchronous native call for a suite; `reuse` passes a caller-owned output array. */
function syncCall(suite: SuiteId, d: Data, reuse: boolean): () => Output {
  const out = reuse && suite !== 'forward' ? new Float32Array(d.rows * d.cols) : undefined;
  switch (suite) {
    case 'loss': {
      const o = { ...lossOptions(d, true), ...(out ? { out: { gradStudent: out } } : {}) };
      return () => fromLoss(kd.distillationLoss(o));
    }
    case 'forward': {
      const o = lossOptions(d, false);
      return () => fromLoss(kd.distillationLoss(o));
    }
    case 'softmax': {
      const o = { ...softmaxOptions(d), ...(out ? { out } : {}) };
      return () => ({ values: kd.softmaxWithTemperature(o) });
    }
    case 'topk': {
      const o = { ...topkOptions(d), ...(out ? { out: { gradStudent: out } } : {}) };
      return () => fromLoss(kd.topkDistillationLoss(o));
    }
  }
}

function needsNative(): string | undefined {
  const b = kd.backend();
  return b.name === 'reference' ? `skipped: native addon not in use (${b.reason})` : undefined;
}

/** kdfuse (all threads, allocating): the row every speed-up is measured against. */
export const kdfuseNative: Peer = inProcessPeer('kdfuse', 'kdfuse native', (suite, d) =>
  needsNative() ?? { run: syncCall(suite, d, false), async: false, before: () => kd.setThreads(0) });

export const kdfuseOut: Peer = inProcessPeer('kdfuse-out', 'kdfuse native, reused out', (suite, d) =>
  needsNative() ?? (suite === 'forward' ? 'n/a: forward-only writes no array' : { run: syncCall(suite, d, true), async: false }));

export const kdfuseOneThread: Peer = inProcessPeer('kdfuse-1t', 'kdfuse native, 1 thread', (suite, d) =>
  needsNative() ?? { run: syncCall(suite, d, false), async: false, before: () => kd.setThreads(1), after: () => kd.setThreads(0) });

/** The async entries, copying their inputs (the default) or borrowing them (AsyncCallOptions.borrowInputs). */
function asyncPeer(id: string, label: string, borrowInputs: boolean): Peer {
  return inProcessPeer(id, label, (suite, d) => {
    const why = needsNative();
    if (why) return why;
    const call = { borrowInputs };
    const run = (): Promise<Output> => {
      switch (suite) {
        case 'loss': return kd.distillationLossAsync(lossOptions(d, true), call).then(fromLoss);
        case 'forward': return kd.distillationLossAsync(lossOptions(d, false), call).then(fromLoss);
        case 'softmax': return kd.softmaxWithTemperatureAsync(softmaxOptions(d)).then((values) => ({ values }));
        case 'topk': return kd.topkDistillationLossAsync(topkOptions(d), call).then(fromLoss);
      }
    };
    return { run, async: true } satisfies PreparedCall;
  });
}

export const kdfuseAsync: Peer = asyncPeer('kdfuse-async', 'kdfuse async (Promise)', false);

/** Softmax has no borrowing entry: the row is left out there. */
export const kdfuseAsyncBorrow: Peer = { ...asyncPeer('kdfuse-async-borrow', 'kdfuse async, borrowInputs', true), only: ['loss', 'forward', 'topk'] };

export const kdfuseReference: Peer = inProcessPeer('kdfuse-reference', 'kdfuse reference (TS)', (suite, d) => {
  switch (suite) {
    case 'loss':
    case 'forward': {
      const o = lossOptions(d, suite === 'loss');
      return { run: () => fromLoss(reference.distillationLoss(checkDistillArgs(o))), async: false };
    }
    case 'softmax': {
      const o = softmaxOptions(d);
      return { run: () => ({ values: reference.softmaxForward(checkSoftmaxArgs(o, false), false) }), async: false };
    }
    case 'topk': {
      const o = topkOptions(d);
      return { run: () => fromLoss(topkReference(checkTopkArgs(o))), async: false };
    }
  }
});

/**
 * The top-k suite's yardstick: the dense loss (the dense teacher of the same shape, 12 bytes per
 * element) with a reused out, in the same run. Its values are another loss's, so they are not
 * checked against the top-k output.
 */
export const kdfuseDenseOut: Peer = {
  ...inProcessPeer('kdfuse-dense-out', 'kdfuse dense teacher, reused out', (suite, d) => {
    if (suite !== 'topk') return 'n/a: the top-k suite only';
    const why = needsNative();
    if (why) return why;
    const o = { ...lossOptions(d, true), out: { gradStudent: new Float32Array(d.rows * d.cols) } };
    return { run: () => { kd.distillationLoss(o); return {}; }, async: false };
  }),
  only: ['topk'],
};

/** kdfuse's output at a shape, against which every peer's first output is checked. */
export function expectedOutput(suite: SuiteId, d: Data): Output | undefined {
  return needsNative() ? undefined : syncCall(suite, d, false)();
}
