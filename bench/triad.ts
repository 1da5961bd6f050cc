/**
 * The machine's memory bandwidth, measured in the same run: a STREAM-style triad a = b + k c over
 * arrays far larger than the caches, by the addon's `streamTriad` (built with the kernels, same
 * thread pool). It moves 12 bytes per element (read b and c, write a), as STREAM counts it. Both
 * the median rate and STREAM's best (fastest-sample) rate are kept.
 */
import { nativeAddon } from '../src/kernels/native.js';
import { errorText, viaBenchmark, type MeasureOptions } from './measure.js';

export interface TriadRate {
  /** From the fastest sample, as STREAM reports it. */
  gbps: number;
  /** From the median sample: what the % triad column is relative to (all threads). */
  medianGbps: number;
  rmePct: number;
}

export interface TriadResult extends TriadRate {
  elements: number;
  oneThread?: TriadRate;
}

/** All threads, and with `oneThread` also one thread. */
export async function measureTriad(o: MeasureOptions, oneThread: boolean, elements = 1 << 25): Promise<TriadResult | { error: string }> {
  const addon = nativeAddon;
  if (!addon) return { error: 'the native addon is not in use, so the triad (a native routine) cannot run' };
  try {
    const a = new Float32Array(elements), b = new Float32Array(elements).fill(1), c = new Float32Array(elements).fill(2);
    const rate = (ms: number) => (12 * elements) / (ms * 1e6);
    const time = async (threads: number): Promise<TriadRate> => {
      addon.setThreads(threads);
      try {
        addon.streamTriad({ a, b, c, scalar: 3 });  // touch every page once before timing
        const r = await viaBenchmark({ run: () => { addon.streamTriad({ a, b, c, scalar: 3 }); return {}; }, async: false },
          { ...o, maxTimeS: Math.max(1.5, o.maxTimeS) });
        return { gbps: rate(r.bestMs), medianGbps: rate(r.medianMs), rmePct: r.rmePct };
      } finally {
        addon.setThreads(0);
      }
    };
    const all = await time(0);
    return { elements, ...all, ...(oneThread ? { oneThread: await time(1) } : {}) };
  } catch (e) {
    return { error: errorText(e) };
  }
}
