/**
 * The fused-head suite of `npm run bench` (docs/fused-head.md): a tfjs training step of a
 * language-model-sized Dense head (hidden [64, 128] -> 32000 classes, teacher logits given, T = 2,
 * alpha = 0.5, labels) composed from tfjs ops against the same step through kdfuse/tfjs
 * linearDistillationLoss, on the wasm and cpu backends, and the weights both reach after 3 SGD
 * steps; the head's GEMM alone in GFLOP/s beside a plain triple loop on the same shapes; the kernel
 * call itself (default call, then with reused `out` arrays). `--head-large` runs the separate
 * 2048 x 1024 -> 128000 entry instead: peak RSS growth of one call beyond its inputs and outputs.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type * as TF from '@tensorflow/tfjs';
import * as kd from '../src/index.js';
import { nativeAddon } from '../src/kernels/native.js';
import { linearDistillationLoss as fusedOp } from '../src/tfjs/linear-ops.js';
import { formatDuration, median } from './measure.js';
import { uniformSource as rng } from '../src/explain/random.js';

type Tfjs = typeof TF;
export const HEAD = { rows: 64, dim: 128, cols: 32000, temperature: 2, alpha: 0.5, lr: 0.1 } as const;

interface HeadData { hidden: Float32Array; kernel: Float32Array; bias: Float32Array; teacher: Float32Array; labels: Int32Array }

function headData(rows: number, dim: number, cols: number, seed = 18): HeadData {
  const rand = rng(seed);
  const u = (n: number, scale: number) => Float32Array.from({ length: n }, () => (2 * rand() - 1) * scale);
  return {
    hidden: u(rows * dim, 1), kernel: u(dim * cols, Math.sqrt(3 / dim)), bias: u(cols, 0.1), teacher: u(rows * cols, 4),
    labels: Int32Array.from({ length: rows }, () => Math.floor(rand() * cols)),
  };
}

async function loadTfjs(backend: 'cpu' | 'wasm'): Promise<Tfjs> {
  const require = createRequire(import.meta.url);
  const tf = require('@tensorflow/tfjs') as Tfjs;
  if (backend === 'wasm') {
    const wasm = require('@tensorflow/tfjs-backend-wasm') as typeof import('@tensorflow/tfjs-backend-wasm');
    wasm.setWasmPaths(join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm')), '/'));
  }
  if (!(await tf.setBackend(backend))) throw new Error(`tfjs backend '${backend}' failed to initialise`);
  await tf.ready();
  return tf;
}

/** The head's loss as tfjs users write it today: matMul + bias, then the KD loss from tf ops. */
function composedLoss(tf: Tfjs, h: TF.Tensor2D, w: TF.Variable, b: TF.Variable, t: TF.Tensor2D, y: TF.Tensor1D): TF.Scalar {
  const T = HEAD.temperature, alpha = HEAD.alpha;
  const s = tf.add(tf.matMul(h, w), b) as TF.Tensor2D;
  const kl = tf.sum(tf.mul(tf.softmax(tf.div(t, T)), tf.sub(tf.logSoftmax(tf.div(t, T)), tf.logSoftmax(tf.div(s, T)))), 1);
  const ce = tf.neg(tf.sum(tf.mul(tf.oneHot(y, s.shape[1]), tf.logSoftmax(s)), 1));
  return tf.mean(tf.add(tf.mul(kl, alpha * T * T), tf.mul(ce, 1 - alpha)));
}

export interface StepResult {
  backend: string;
  /** Median time of one optimizer step (steps after the first). */
  composedMs: number;
  fusedMs: number;
  speedup: number;
  /** max |w_fused - w_composed| / max |w_composed| after 3 SGD steps (kernel and bias). */
  weightsRelDiff: number;
  composedSteps: number;
  fusedSteps: number;
  /** tfjs's SGD update (optimizer.applyGradients) inside the fused steps, median: every step pays it, so composedMs / updateMs bounds the speed-up. */
  updateMs: number;
}

/**
 * Steps of SGD on one Dense head: each step is what `optimizer.minimize(f)` does, written out
 * (tf.variableGrads, then optimizer.applyGradients, then disposing the gradients) so that the
 * update's share of each step is timed in the step itself. The weights after `compareAfter` steps.
 */
function trainSteps(tf: Tfjs, d: HeadData, fused: boolean, steps: number, compareAfter: number): { ms: number[]; updateMs: number[]; weights: Float32Array[] } {
  const { rows, dim, cols } = HEAD;
  const h = tf.tensor2d(d.hidden, [rows, dim]), t = tf.tensor2d(d.teacher, [rows, cols]), y = tf.tensor1d(d.labels, 'int32');
  const w0 = tf.tensor2d(d.kernel, [dim, cols]), b0 = tf.tensor1d(d.bias);
  const w = tf.variable(w0), b = tf.variable(b0);
  tf.dispose([w0, b0]);  // the variables keep the data (reference-counted): only these handles go
  const opt = tf.train.sgd(HEAD.lr);
  const ms: number[] = [], updateMs: number[] = [];
  let weights: Float32Array[] = [];
  const options = { temperature: HEAD.temperature, alpha: HEAD.alpha };
  const loss = () => (fused ? fusedOp(h, w, b, t, y, options) as TF.Scalar : composedLoss(tf, h, w, b, t, y));
  for (let i = 0; i < steps; i++) {
    // the step is done when applyGradients returns: the wasm and cpu backends run every kernel
    // synchronously (reading a value back here would cost more than the step: w.dataSync() copies
    // 16 MB out of the wasm heap, and a 1-element tf.slice of the variable took ~45 ms on wasm)
    const t0 = performance.now();
    const { value, grads } = tf.variableGrads(loss, [w, b]);
    const t1 = performance.now();
    opt.applyGradients(grads);
    const t2 = performance.now();
    tf.dispose([value, ...Object.values(grads)]);
    ms.push(performance.now() - t0);
    updateMs.push(t2 - t1);
    if (i + 1 === compareAfter) weights = [w.dataSync() as Float32Array, b.dataSync() as Float32Array].map((x) => Float32Array.from(x));
  }
  tf.dispose([h, t, y, w, b]);
  opt.dispose();
  return { ms, updateMs, weights };
}

function relDiff(a: Float32Array[], b: Float32Array[]): number {
  let diff = 0, size = 0;
  for (let k = 0; k < a.length; k++) {
    for (let i = 0; i < a[k]!.length; i++) {
      diff = Math.max(diff, Math.abs(a[k]![i]! - b[k]![i]!));
      size = Math.max(size, Math.abs(b[k]![i]!));
    }
  }
  return size > 0 ? diff / size : diff;
}

export async function stepOn(backend: 'cpu' | 'wasm', d: HeadData, log: (s: string) => void): Promise<StepResult> {
  const tf = await loadTfjs(backend);
  // the composed cpu step takes seconds: 3 steps (all 3 kept for the weights, the last 2 timed)
  const composedSteps = 3, fusedSteps = 12;
  log(`[head] ${backend}: composed step x${composedSteps}... `);
  const c = trainSteps(tf, d, false, composedSteps, 3);
  log(`${formatDuration(median(c.ms.slice(1)))}; fused step x${fusedSteps}... `);
  gc?.();
  const f = trainSteps(tf, d, true, fusedSteps, 3);
  const composedMs = median(c.ms.slice(1)), fusedMs = median(f.ms.slice(1));
  const updateMs = median(f.updateMs.slice(1));
  log(`${formatDuration(fusedMs)} (steps: ${f.ms.map((x) => x.toFixed(0)).join(' ')} ms; of which tfjs's update ${formatDuration(updateMs)})\n`);
  return { backend, composedMs, fusedMs, speedup: composedMs / fusedMs, weightsRelDiff: relDiff(f.weights, c.weights), composedSteps, fusedSteps, updateMs };
}

export interface GemmRow {
  name: string; m: number; n: number; k: number;
  /** The GEMM the head uses (kd.backend().gemm). */
  gflops: number;
  /** kdfuse's own GEMM when the head uses a BLAS (else the same as gflops). */
  builtinGflops: number;
  plainGflops: number;
}

/** The head's three products alone, by its GEMM (all threads) and by a plain triple loop. */
export function gemmRates(log: (s: string) => void): GemmRow[] | string {
  const n = nativeAddon;
  if (!n?.benchSgemm) return 'the native addon (with benchSgemm) is not loaded';
  const { rows, dim, cols } = HEAD;
  const shapes = [
    { name: 'logits = H W (NN)', ta: false, tb: false, m: rows, n: cols, k: dim },
    { name: 'grad W = H^T G (TN)', ta: true, tb: false, m: dim, n: cols, k: rows },
    { name: 'grad H = G W^T (NT)', ta: false, tb: true, m: rows, n: dim, k: cols },
  ];
  const rand = rng(5);
  const out: GemmRow[] = [];
  for (const s of shapes) {
    const a = Float32Array.from({ length: s.m * s.k }, () => 2 * rand() - 1);
    const b = Float32Array.from({ length: s.k * s.n }, () => 2 * rand() - 1);
    const c = new Float32Array(s.m * s.n);
    const time = (plain: boolean, runs: number, builtin = false) => {
      const call = () => n.benchSgemm!({ transA: s.ta, transB: s.tb, m: s.m, n: s.n, k: s.k, a, b, c, plain, builtin });
      call();
      const ms: number[] = [];
      for (let i = 0; i < runs; i++) {
        const t0 = performance.now();
        call();
        ms.push(performance.now() - t0);
      }
      return (2 * s.m * s.n * s.k) / (median(ms) * 1e6);
    };
    const blas = !kd.backend().gemm.startsWith('kdfuse');
    const gflops = time(false, 15), builtinGflops = blas ? time(false, 15, true) : gflops, plainGflops = time(true, 3);
    log(`[head] gemm ${s.name}: ${gflops.toFixed(1)} GFLOP/s${blas ? ` (kdfuse's own ${builtinGflops.toFixed(1)})` : ''} (plain loop ${plainGflops.toFixed(1)})\n`);
    out.push({ name: s.name, m: s.m, n: s.n, k: s.k, gflops, builtinGflops, plainGflops });
  }
  return out;
}

export interface KernelRow { form: string; ms: number; gflops: number; triadPct: number | undefined }

/** The kernel call at the step's shape: default (allocating) and with reused `out` arrays. */
export function kernelRates(d: HeadData, triadGbps: number | undefined): KernelRow[] {
  const { rows, dim, cols } = HEAD;
  const base = {
    hidden: d.hidden, weight: d.kernel, bias: d.bias, teacher: d.teacher, labels: d.labels, rows, dim, cols,
    temperature: HEAD.temperature, alpha: HEAD.alpha,
  };
  const out = { gradHidden: new Float32Array(rows * dim), gradWeight: new Float32Array(dim * cols), gradBias: new Float32Array(cols) };
  // the least traffic one call needs: read hidden, weight, bias, teacher; write the three gradients
  const bytes = 4 * (2 * rows * dim + 2 * dim * cols + 2 * cols + rows * cols);
  const flops = 3 * 2 * rows * dim * cols;
  const rows_: KernelRow[] = [];
  for (const [form, call] of [['default call', () => kd.linearDistillationLoss(base)], ['out arrays reused', () => kd.linearDistillationLoss({ ...base, out })]] as const) {
    call();
    const ms: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now();
      call();
      ms.push(performance.now() - t0);
    }
    const m = median(ms);
    rows_.push({ form, ms: m, gflops: flops / (m * 1e6), triadPct: triadGbps ? (100 * bytes / (triadGbps * 1e6)) / m : undefined });
  }
  return rows_;
}

export interface HeadResult { steps: (StepResult | { backend: string; error: string })[]; gemm: GemmRow[] | string; kernel: KernelRow[] }

const gc = (globalThis as { gc?: () => void }).gc;

export async function runHead(triadGbps: number | undefined, log: (s: string) => void): Promise<HeadResult> {
  const d = headData(HEAD.rows, HEAD.dim, HEAD.cols);
  // the tfjs steps first, each after a collection: the kernel timings below leave hundreds of MB of
  // dropped results whose collection would otherwise land in the middle of the steps
  const steps: HeadResult['steps'] = [];
  for (const backend of ['wasm', 'cpu'] as const) {
    gc?.();
    try {
      steps.push(await stepOn(backend, d, log));
    } catch (e) {
      steps.push({ backend, error: e instanceof Error ? e.message : String(e) });
    }
  }
  gc?.();
  const gemm = gemmRates(log);
  const kernel = kernelRates(d, triadGbps);
  return { steps, gemm, kernel };
}

export function renderHead(r: HeadResult): string {
  const { rows, dim, cols } = HEAD;
  const lines = [
    `### Fused head: tfjs training step, hidden [${rows}, ${dim}] -> Dense ${cols}, teacher logits, T = ${HEAD.temperature}, alpha = ${HEAD.alpha}, labels`,
    '',
    '| backend | composed step (matMul + tf ops loss) | step with kdfuse/tfjs linearDistillationLoss | speed-up | weights after 3 SGD steps (max rel. diff) | of which tfjs\'s SGD update | speed-up bound (composed / update) |',
    '|---|---|---|---|---|---|---|',
    ...r.steps.map((s) => ('error' in s
      ? `| ${s.backend} | error: ${s.error} | | | | | |`
      : `| ${s.backend} | ${formatDuration(s.composedMs)} | ${formatDuration(s.fusedMs)} | **${s.speedup.toFixed(1)}x** | ${s.weightsRelDiff.toExponential(1)} | ${formatDuration(s.updateMs)} | ${(s.composedMs / s.updateMs).toFixed(0)}x |`)),
    '',
    'Each step is what `optimizer.minimize(() => loss)` does with tf.train.sgd on a tf.variable kernel and bias (tf.variableGrads, then optimizer.applyGradients); the median of the steps after the first. ' +
      'The update column is the applyGradients part of the fused steps: tfjs\'s own work, which no loss can remove.',
    '',
    `Kernel call alone (kd.linearDistillationLoss, 3 products of 2·${rows}·${dim}·${cols} flops each plus the loss pass):`,
    '',
    '| form | median | GFLOP/s (products) | % of triad floor |',
    '|---|---|---|---|',
    ...r.kernel.map((k) => `| ${k.form} | ${formatDuration(k.ms)} | ${k.gflops.toFixed(1)} | ${k.triadPct === undefined ? 'n/a' : `${k.triadPct.toFixed(0)}%`} |`),
    '',
  ];
  if (typeof r.gemm === 'string') lines.push(`GEMM: not measured (${r.gemm})`, '');
  else {
    const used = kd.backend().gemm;
    lines.push(`The head's GEMM alone (the one it uses: ${used}; all threads) beside kdfuse's own and a plain i-k-j triple loop compiled with it:`, '',
      `| product | m x n x k | ${used} GFLOP/s | kdfuse's own GEMM | plain loop GFLOP/s |`, '|---|---|---|---|---|',
      ...r.gemm.map((g) => `| ${g.name} | ${g.m} x ${g.n} x ${g.k} | **${g.gflops.toFixed(1)}** | ${used.startsWith('kdfuse') ? '(the same)' : g.builtinGflops.toFixed(1)} | ${g.plainGflops.toFixed(1)} |`), '');
  }
  return lines.join('\n');
}

/**
 * The separate large entry: 2048 x 1024 -> 128000 classes (the logits alone would be 1 GB), dense
 * teacher. Inputs and outputs are allocated and touched first; the peak RSS (getrusage maxrss)
 * before and after one call gives what the call itself needed beyond them.
 */
export function runHeadLarge(log: (s: string) => void): string {
  const rows = 2048, dim = 1024, cols = 128000;
  log('[head-large] allocating inputs and outputs... ');
  const rand = rng(7);
  const fill = (a: Float32Array, scale: number) => {
    for (let i = 0; i < a.length; i++) a[i] = (2 * rand() - 1) * scale;
    return a;
  };
  const hidden = fill(new Float32Array(rows * dim), 1), weight = fill(new Float32Array(dim * cols), Math.sqrt(3 / dim));
  const bias = fill(new Float32Array(cols), 0.1), teacher = fill(new Float32Array(rows * cols), 4);
  const labels = Int32Array.from({ length: rows }, () => Math.floor(rand() * cols));
  const out = { gradHidden: new Float32Array(rows * dim).fill(0), gradWeight: new Float32Array(dim * cols).fill(0), gradBias: new Float32Array(cols).fill(0) };
  const mib = (kb: number) => kb / 1024;
  const before = process.resourceUsage().maxRSS;
  log(`peak RSS ${mib(before).toFixed(0)} MiB; one call... `);
  const t0 = performance.now();
  const r = kd.linearDistillationLoss({ hidden, weight, bias, teacher, labels, rows, dim, cols, temperature: 2, alpha: 0.5, out });
  const s = (performance.now() - t0) / 1000;
  const after = process.resourceUsage().maxRSS;
  const growth = mib(after - before);
  log(`${s.toFixed(1)} s, loss ${r.loss.toFixed(4)}, peak RSS ${mib(after).toFixed(0)} MiB\n`);
  const ioMiB = (4 * (rows * dim * 2 + dim * cols * 2 + cols * 2 + rows * cols) + 4 * rows) / 2 ** 20;
  return [
    `### Fused head, large: ${rows} x ${dim} -> ${cols} classes (logits would be ${(4 * rows * cols / 2 ** 30).toFixed(2)} GiB)`,
    '',
    `- one call: ${s.toFixed(1)} s (${(3 * 2 * rows * dim * cols / (s * 1e9)).toFixed(1)} GFLOP/s over the three products), loss ${r.loss.toFixed(6)}`,
    `- inputs and outputs: ${ioMiB.toFixed(0)} MiB, allocated and touched before the call; peak RSS ${mib(before).toFixed(0)} MiB before, ${mib(after).toFixed(0)} MiB after`,
    `- **peak RSS growth of the call: ${growth.toFixed(0)} MiB** (target < 300 MiB)`,
    '',
  ].join('\n');
}
