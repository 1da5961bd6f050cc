/**
 * Times one peer at one shape. Fast calls go through the `benchmark` package (many calls, its
 * median and relative margin of error); slow ones are timed a few times by hand, and multi-second
 * ones once, so that the default run stays within minutes. A peer whose estimated time per call
 * exceeds the cap is skipped and reported as such.
 */
import Benchmark from 'benchmark';

/** What a peer's call returns, for the agreement check: the loss, and the gradient or the probabilities. */
export interface Output {
  loss?: number;
  values?: Float32Array;
}

export interface PreparedCall {
  run: () => Output | Promise<Output>;
  async: boolean;
  /** Around the timing (e.g. setThreads(1) and back). */
  before?: () => void;
  after?: () => void;
}

/** How far a peer's first output is from kdfuse's: relative loss error and max|v - e| / max|e|. */
export interface Check {
  lossRelErr?: number;
  valuesRelErr?: number;
}

export interface Timed {
  status: 'ok';
  medianMs: number;
  /** ± relative margin of error (95%), in percent; null for a single call. */
  rmePct: number | null;
  calls: number;
  method: 'benchmark' | 'timed calls' | 'one call';
  firstCallMs: number;
  check?: Check;
}

export type Outcome = Timed | { status: 'skipped' | 'error'; reason: string; check?: Check };

export interface MeasureOptions {
  /** benchmark's maxTime per measurement, in seconds. */
  maxTimeS: number;
  /** Skip a peer at a shape where its estimated time per call exceeds this many seconds. */
  maxCallS: number;
}

/** Calls at least this long are timed once (after no warm-up at that shape, unless the peer needs one). */
const ONE_CALL_MS = 1500;
/** Calls at least this long are timed a few times by hand instead of through the benchmark package. */
const BY_HAND_MS = 100;

/** Student's t at 95% for df = 1..10 (as the benchmark package uses); 1.96 beyond. */
const T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228];

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function rmePct(xs: readonly number[]): number | null {
  if (xs.length < 2) return null;
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const variance = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1);
  const sem = Math.sqrt(variance / xs.length);
  return ((T95[xs.length - 2] ?? 1.96) * sem / mean) * 100;
}

export const errorText = (e: unknown): string => (e instanceof Error ? `${e.name}: ${e.message}` : String(e)).split('\n')[0]!;

export function formatDuration(ms: number): string {
  if (ms < 1) return `${(ms * 1000).toPrecision(3)} µs`;
  if (ms < 1000) return `${ms.toPrecision(3)} ms`;
  return `${(ms / 1000).toPrecision(3)} s`;
}

/** Times a call with the benchmark package: the median of its samples and its relative margin of error. */
export function viaBenchmark(call: PreparedCall, o: MeasureOptions): Promise<{ medianMs: number; rmePct: number; calls: number; bestMs: number }> {
  return new Promise((resolve, reject) => {
    let calls = 0;
    let failure: unknown;
    const fn = call.async
      ? (d: { resolve(): void }) => {
          calls++;
          (call.run() as Promise<Output>).then(() => d.resolve(), (e: unknown) => { failure ??= e; d.resolve(); });
        }
      : () => { calls++; call.run(); };
    const bench = new Benchmark('peer', fn as () => void, {
      defer: call.async,
      maxTime: o.maxTimeS,
      minSamples: 5,
      onComplete() {
        const err = failure ?? (bench as unknown as { error?: unknown }).error;
        if (err) return reject(err);
        const sample = bench.stats.sample;
        resolve({ medianMs: median(sample) * 1000, rmePct: bench.stats.rme, calls, bestMs: Math.min(...sample) * 1000 });
      },
    });
    bench.run({ async: true });
  });
}

/** The outcome for a peer whose estimated time per call is over the cap; undefined if it is to run. */
export function skipByEstimate(estimateMs: number | undefined, o: MeasureOptions): Outcome | undefined {
  if (estimateMs === undefined || estimateMs <= o.maxCallS * 1000) return undefined;
  return { status: 'skipped', reason: `skipped: ~${formatDuration(estimateMs)}/call estimated, over the ${o.maxCallS} s cap` };
}

/**
 * `estimateMs`: the expected time per call (from a smaller shape), or undefined at the first.
 * `warmupAtShape`: time only after one untimed call at this very shape (tfjs wasm grows its
 * memory there); other peers are warm from the smaller shapes and a multi-second call is timed once.
 */
export async function measure(call: PreparedCall, estimateMs: number | undefined, o: MeasureOptions,
  warmupAtShape: boolean, checkFirst?: (out: Output) => Check | undefined): Promise<Outcome> {
  const skip = skipByEstimate(estimateMs, o);
  if (skip) return skip;
  call.before?.();
  let check: Check | undefined;
  try {
    let t0 = performance.now();
    const out = await call.run();
    const firstCallMs = performance.now() - t0;
    check = checkFirst?.(out);
    const base = { status: 'ok' as const, firstCallMs, ...(check ? { check } : {}) };
    if (!warmupAtShape && firstCallMs >= ONE_CALL_MS) return { ...base, medianMs: firstCallMs, rmePct: null, calls: 1, method: 'one call' };
    if (firstCallMs >= ONE_CALL_MS) {
      if (firstCallMs > 2 * o.maxCallS * 1000) return { status: 'skipped', reason: `skipped: warm-up call took ${formatDuration(firstCallMs)}`, ...(check ? { check } : {}) };
      t0 = performance.now();
      await call.run();
      return { ...base, medianMs: performance.now() - t0, rmePct: null, calls: 1, method: 'one call' };
    }
    if (firstCallMs >= BY_HAND_MS) {
      const times: number[] = [];
      // seven calls below a second: the first few may still meet fresh memory (the result cache fills
      // as the collector returns dropped results), and the median is to be the steady state
      for (let k = firstCallMs < 1000 ? 7 : 3; k > 0; k--) {
        // Yield to the event loop between calls, untimed, as a training loop does: Node releases
        // dropped results' memory (and kdfuse reuses it) only after the current task.
        await new Promise<void>((r) => setImmediate(r));
        t0 = performance.now();
        await call.run();
        times.push(performance.now() - t0);
      }
      return { ...base, medianMs: median(times), rmePct: rmePct(times), calls: times.length, method: 'timed calls' };
    }
    const { medianMs, rmePct: rme, calls } = await viaBenchmark(call, o);
    return { ...base, medianMs, rmePct: rme, calls, method: 'benchmark' };
  } catch (e) {
    return { status: 'error', reason: `failed: ${errorText(e)}`, ...(check ? { check } : {}) };
  } finally {
    call.after?.();
  }
}

/** Compares a peer's output with kdfuse's (expected). */
export function compare(out: Output, expected: Output): Check {
  const c: Check = {};
  if (out.loss !== undefined && expected.loss !== undefined) {
    c.lossRelErr = Math.abs(out.loss - expected.loss) / Math.max(Math.abs(expected.loss), 1e-12);
  }
  if (out.values && expected.values) {
    let diff = 0, scale = 0;
    const n = Math.min(out.values.length, expected.values.length);
    for (let i = 0; i < n; i++) {
      diff = Math.max(diff, Math.abs(out.values[i]! - expected.values[i]!));
      scale = Math.max(scale, Math.abs(expected.values[i]!));
    }
    c.valuesRelErr = out.values.length === expected.values.length ? diff / Math.max(scale, 1e-30) : Infinity;
  }
  return c;
}
