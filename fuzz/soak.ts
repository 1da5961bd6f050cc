/**
 * `npm run soak -- [--sync N] [--async N] [--tfjs N] [--workers N]`: opt-in, not part of CI.
 * Resident memory (RSS, after a full GC) at the start, middle and end of N sync calls, N async calls
 * and N tfjs-op calls, and a worker_threads test that terminates workers mid-call N times and checks
 * the process survives (and what RSS does meanwhile). Prints a table; exits 1 if a phase fails.
 * Defaults: 1,000,000 sync, 200,000 async, 200,000 tfjs, 100 worker terminations.
 * See docs/reliability.md for the figures.
 */
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import * as kd from '../src/index.js';
import * as kdtf from '../src/tfjs/index.js';

interface Row {
  phase: string;
  calls: number;
  seconds: number;
  rss: [number, number, number];  // MiB at start, middle, end
  note: string;
}

const gc = (globalThis as { gc?: () => void }).gc;
function rssMiB(): number {
  gc?.();
  return process.memoryUsage().rss / 2 ** 20;
}

const yieldNow = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Runs `call` n times; a macrotask turn every 10,000 calls, as a training loop between batches. */
async function phase(name: string, n: number, call: () => unknown | Promise<unknown>, note = ''): Promise<Row> {
  const rss: [number, number, number] = [rssMiB(), 0, 0];
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const r = call();
    if (r instanceof Promise) await r;
    if (i % 10_000 === 9_999) await yieldNow();
    if (i === Math.floor(n / 2)) rss[1] = rssMiB();
  }
  await yieldNow();
  rss[2] = rssMiB();
  return { phase: name, calls: n, seconds: (performance.now() - t0) / 1000, rss, note };
}

async function workers(rounds: number): Promise<Row> {
  const path = join(dirname(fileURLToPath(import.meta.url)), 'soak-worker.js');
  const rss: [number, number, number] = [rssMiB(), 0, 0];
  const t0 = performance.now();
  let started = 0;
  for (let i = 0; i < rounds; i++) {
    const w = new Worker(path);
    await new Promise<void>((resolve, reject) => {
      w.once('error', reject);
      w.once('message', () => {
        started++;
        resolve();
      });
    });
    await new Promise((r) => setTimeout(r, 1 + ((i * 7) % 40)));  // 1..40 ms into its calls
    await w.terminate();
    if (i === Math.floor(rounds / 2)) rss[1] = rssMiB();
  }
  await new Promise((r) => setTimeout(r, 100));
  rss[2] = rssMiB();
  // the process must still compute right after all that
  const check = kd.distillationLoss({ student: new Float32Array([1, 2]), teacher: new Float32Array([2, 1]), rows: 1, cols: 2 });
  const ok = Number.isFinite(check.loss) && started === rounds;
  return { phase: 'workers terminated mid-call', calls: rounds, seconds: (performance.now() - t0) / 1000, rss, note: ok ? 'process survived' : 'FAILED' };
}

function count(v: string | undefined, name: string, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!(Number.isInteger(n) && n >= 0)) throw new RangeError(`--${name} must be an integer >= 0, got ${v}`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { sync: { type: 'string' }, async: { type: 'string' }, tfjs: { type: 'string' }, workers: { type: 'string' } } });
  const nSync = count(values.sync, 'sync', 1_000_000), nAsync = count(values.async, 'async', 200_000);
  const nTf = count(values.tfjs, 'tfjs', 200_000), nWorkers = count(values.workers, 'workers', 100);
  if (!gc) console.warn('kdfuse soak: run with node --expose-gc (npm run soak does) for RSS after a full GC');
  console.log(`kdfuse soak: backend ${kd.backend().name}, node ${process.version}`);

  const small = { rows: 32, cols: 10 };
  const s1 = Float32Array.from({ length: 320 }, (_, i) => Math.sin(i)), t1 = Float32Array.from({ length: 320 }, (_, i) => Math.cos(i));
  const y1 = Int32Array.from({ length: 32 }, (_, i) => i % 10);
  // async: above the size that runs inline, so the calls go through the addon's worker pool
  const big = { rows: 64, cols: 512 };
  const s2 = Float32Array.from({ length: 64 * 512 }, (_, i) => Math.sin(i)), t2 = Float32Array.from({ length: 64 * 512 }, (_, i) => Math.cos(i));
  const ts = tf.tensor2d(s1, [32, 10]), tt = tf.tensor2d(t1, [32, 10]);
  const tensorsBefore = tf.memory().numTensors;

  const rows: Row[] = [];
  rows.push(await phase('sync distillationLoss 32x10', nSync, () => kd.distillationLoss({ student: s1, teacher: t1, labels: y1, ...small, temperature: 2 })));
  rows.push(await phase('async distillationLossAsync 64x512', nAsync, () => kd.distillationLossAsync({ student: s2, teacher: t2, ...big, temperature: 2 })));
  rows.push(
    await phase('tfjs distillationLoss op 32x10', nTf, () => tf.tidy(() => kdtf.distillationLoss(ts, tt, y1, { temperature: 2 })).dispose(),
      'with tf.tidy + dispose'),
  );
  const leaked = tf.memory().numTensors - tensorsBefore;
  rows[rows.length - 1]!.note += `; tensors leaked: ${leaked}`;
  if (nWorkers > 0) rows.push(await workers(nWorkers));

  const pad = (s: string, n: number): string => s.padEnd(n);
  console.log(`\n${pad('phase', 36)} ${'calls'.padStart(9)} ${'time'.padStart(8)}  RSS MiB start / middle / end   note`);
  for (const r of rows) {
    console.log(
      `${pad(r.phase, 36)} ${String(r.calls).padStart(9)} ${`${r.seconds.toFixed(1)} s`.padStart(8)}  ` +
        `${r.rss.map((v) => v.toFixed(0).padStart(6)).join(' /')}          ${r.note}`,
    );
  }
  process.exitCode = rows.some((r) => r.note.includes('FAILED')) || leaked !== 0 ? 1 : 0;
}

void main();
