/**
 * Child process for one tfjs measurement (a backend, a suite, a shape), so that an abort or an
 * out-of-memory there is reported by the parent instead of ending the run. Prints one line:
 * `RESULT {"outcome": ..., "info": ...}`.
 */
import { compare, errorText, measure, type MeasureOptions, type Outcome } from '../measure.js';
import { makeData, type SuiteId } from '../workload.js';
import { expectedOutput } from './kdfuse.js';
import { loadTfjs, tfjsCall, type TfjsBackend } from './tfjs-ops.js';

export interface ChildSpec {
  backend: TfjsBackend;
  suite: SuiteId;
  rows: number;
  cols: number;
  estimateMs: number | undefined;
  options: MeasureOptions;
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '{}') as ChildSpec;
  let info: Record<string, unknown> = {};
  let outcome: Outcome;
  try {
    const loaded = await loadTfjs(spec.backend);
    info = loaded.info;
    // Warm up the ops (and the JIT) at a small shape, as the in-process peers are warm from the smaller shapes.
    const warm = tfjsCall(loaded.tf, spec.suite, makeData({ rows: 64, cols: 100 }, 7));
    for (let k = 0; k < 3; k++) warm();
    const data = makeData(spec);
    const expected = expectedOutput(spec.suite, data);
    outcome = await measure({ run: tfjsCall(loaded.tf, spec.suite, data), async: false }, spec.estimateMs, spec.options,
      spec.backend === 'wasm', expected ? (out) => compare(out, expected) : undefined);
  } catch (e) {
    outcome = { status: 'error', reason: `failed: ${errorText(e)}` };
  }
  // exit once the line is flushed (pipes are asynchronous on some platforms)
  process.stdout.write(`RESULT ${JSON.stringify({ outcome, info })}\n`, () => process.exit(0));
}

await main();
