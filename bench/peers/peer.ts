/** A peer: one way of computing a suite's kernel, measured at each shape. */
import { compare, measure, type MeasureOptions, type Outcome, type Output, type PreparedCall } from '../measure.js';
import type { Data, SuiteId } from '../workload.js';

export interface MeasureContext {
  suite: SuiteId;
  data: Data;
  /** Expected time per call from this peer's previous shape; undefined at its first. */
  estimateMs: number | undefined;
  options: MeasureOptions;
  /** kdfuse's output at this shape, for the agreement check. */
  expected: Output | undefined;
}

export interface Peer {
  id: string;
  label: string;
  /** The only suites this peer runs (all when absent); it gets no row in the others' tables. */
  only?: readonly SuiteId[];
  measureAt(ctx: MeasureContext): Promise<Outcome>;
}

/**
 * A peer that runs in this process. `prepare` returns the call for a suite, or a string saying
 * why the peer has no such kernel; it may throw (reported as the peer's failure at that shape).
 */
export function inProcessPeer(id: string, label: string, prepare: (suite: SuiteId, d: Data) => PreparedCall | string,
  warmupAtShape = false): Peer {
  return {
    id,
    label,
    async measureAt(ctx) {
      let call: PreparedCall | string;
      try {
        call = prepare(ctx.suite, ctx.data);
      } catch (e) {
        return { status: 'error', reason: `failed: ${e instanceof Error ? e.message : String(e)}` };
      }
      if (typeof call === 'string') return { status: 'skipped', reason: call };
      const expected = ctx.expected;
      return measure(call, ctx.estimateMs, ctx.options, warmupAtShape, expected ? (out) => compare(out, expected) : undefined);
    },
  };
}
