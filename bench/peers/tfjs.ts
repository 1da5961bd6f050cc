/**
 * The tfjs peers (cpu and wasm backends). Each measurement runs in its own child process
 * (dist-bench/tfjs-child.js): tfjs wasm aborts on shapes past its 4 GiB memory, and a child that
 * dies, or runs past its time, is reported with the reason while the run goes on.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { skipByEstimate, type Outcome } from '../measure.js';
import type { ChildSpec } from './tfjs-child.js';
import type { TfjsBackend } from './tfjs-ops.js';
import type { MeasureContext, Peer } from './peer.js';

/** Next to main.js in dist-bench/ once bundled. */
const CHILD = fileURLToPath(new URL('./tfjs-child.js', import.meta.url));

function lastError(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter(Boolean);
  const hit = lines.find((l) => /Aborted|out of memory|RangeError|Error:/i.test(l));
  return (hit ?? lines[lines.length - 1] ?? '').slice(0, 160);
}

function runChild(spec: ChildSpec, timeoutMs: number): Promise<{ outcome: Outcome; info: Record<string, unknown> }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CHILD, JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '', timedOut = false;
    child.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
    child.stderr.on('data', (b: Buffer) => { stderr = (stderr + b.toString()).slice(-20000); });
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
      if (line) return resolve(JSON.parse(line.slice(7)) as { outcome: Outcome; info: Record<string, unknown> });
      const why = timedOut ? `killed after ${Math.round(timeoutMs / 1000)} s`
        : `${signal ? `killed by ${signal}` : `exit code ${String(code)}`}${lastError(stderr) ? `: ${lastError(stderr)}` : ''}`;
      resolve({ outcome: { status: 'error', reason: `failed (${why})` }, info: {} });
    });
  });
}

export interface TfjsPeer extends Peer {
  /** What the child reported about tfjs (version, wasm SIMD and threads). */
  info: Record<string, unknown>;
}

export function tfjsPeer(backend: TfjsBackend): TfjsPeer {
  const peer: TfjsPeer = {
    id: `tfjs-${backend}`,
    label: backend === 'wasm' ? 'tfjs wasm' : 'tfjs cpu',
    info: {},
    async measureAt(ctx: MeasureContext) {
      const { suite, data, estimateMs, options } = ctx;
      if (suite === 'topk') return { status: 'skipped', reason: 'n/a: no top-k teacher loss' };
      const skip = skipByEstimate(estimateMs, options);
      if (skip) return skip;
      const spec: ChildSpec = { backend, suite, rows: data.rows, cols: data.cols, estimateMs, options };
      // Warm-up and a few calls at the cap, plus making the data: past this the child is stuck.
      const timeoutMs = 60_000 + 4 * options.maxCallS * 1000;
      const r = await runChild(spec, timeoutMs);
      if (Object.keys(r.info).length) {
        peer.info = r.info;
        if (backend === 'wasm') peer.label = r.info.simd ? 'tfjs wasm (SIMD)' : 'tfjs wasm (no SIMD)';
      }
      return r.outcome;
    },
  };
  return peer;
}
