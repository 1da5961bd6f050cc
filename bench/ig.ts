/**
 * `npm run bench:ig`: what the two host loops of integratedGradients (building the interpolated
 * batch, accumulating gradient x (x - x') in float64) cost, with the JS loops and with the addon's
 * kernels, and integratedGradients end to end with each, for three models on the tfjs cpu backend.
 * Modes are interleaved repetition by repetition (the machine is shared), medians reported.
 * Usage: node dist-bench/ig.js [--reps N]
 */
import * as tf from '@tensorflow/tfjs';
import { integratedGradients } from '../src/explain/integrated-gradients.js';
import { quadrature } from '../src/explain/quadrature.js';
import { igBatchPoints, jsIgKernels, nativeIgKernels, setIgKernelMode, igKernelsFor, type IgKernels } from '../src/kernels/ig.js';

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const REPS = arg('--reps', 15);
const STEPS = 64, BATCH = 256;

function dense(hidden: number[], seed: number): tf.Sequential {
  const m = tf.sequential();
  hidden.forEach((units, i) => m.add(tf.layers.dense({
    units, activation: 'relu', ...(i === 0 ? { inputShape: [64] } : {}), kernelInitializer: tf.initializers.heNormal({ seed: seed + i }),
  })));
  m.add(tf.layers.dense({ units: 10, kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 100 }) }));
  return m;
}

function conv(): tf.Sequential {
  const m = tf.sequential();
  m.add(tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 16, kernelSize: 3, activation: 'relu', kernelInitializer: tf.initializers.heNormal({ seed: 5 }) }));
  m.add(tf.layers.maxPooling2d({ poolSize: 2 }));
  m.add(tf.layers.conv2d({ filters: 32, kernelSize: 3, activation: 'relu', kernelInitializer: tf.initializers.heNormal({ seed: 6 }) }));
  m.add(tf.layers.flatten());
  m.add(tf.layers.dense({ units: 10, kernelInitializer: tf.initializers.glorotUniform({ seed: 7 }) }));
  return m;
}

const median = (a: number[]) => {
  const s = [...a].sort((u, v) => u - v), h = s.length >> 1;
  return s.length % 2 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
};

/** One IG call's worth of the two loops (same points, sizes and batches as integratedGradients). */
function loops(k: IgKernels, x: Float32Array, base: Float32Array, rows: number, J: number, F: number, g: Float32Array): void {
  const { alphas, weights } = quadrature('gauss-legendre', STEPS);
  const acc = new Float64Array(rows * F), total = rows * J * STEPS;
  for (let start = 0; start < total; start += BATCH) {
    const n = Math.min(BATCH, total - start);
    const pts = igBatchPoints(start, n, rows, J, alphas, weights);
    const buf = new Float32Array(n * F);
    k.interpolate(x, base, F, pts, pts.alpha, buf);
    k.accumulate(g.subarray(0, n * F), x, base, F, pts, pts.weight, acc);
  }
}

interface Row { model: string; rows: number; F: number; points: number; loops: Record<string, number>; ig: Record<string, number> }

async function measure(name: string, model: tf.LayersModel, shape: number[], rows: number): Promise<Row> {
  const F = shape.reduce((a, b) => a * b, 1), J = 1;
  const xt = tf.randomUniform([rows, ...shape], 0, 1, 'float32', 1);
  const x = (await xt.data()) as Float32Array, base = new Float32Array(rows * F);
  const g = Float32Array.from({ length: BATCH * F }, (_, i) => Math.sin(i));
  const kernels: IgKernels[] = nativeIgKernels ? [jsIgKernels, nativeIgKernels] : [jsIgKernels];
  const modes = nativeIgKernels ? (['js', 'native', 'auto'] as const) : (['js'] as const);
  // loops alone: warm the JIT, then many interleaved repetitions
  const lt: Record<string, number[]> = {};
  for (let r = -20; r < 10 * REPS; r++) {
    for (const k of kernels) {
      const t0 = performance.now();
      loops(k, x, base, rows, J, F, g);
      if (r >= 0) (lt[k.name] ??= []).push(performance.now() - t0);
    }
  }
  // end to end, one call per mode per repetition
  const it: Record<string, number[]> = {};
  for (let r = -2; r < REPS; r++) {
    for (const m of modes) {
      setIgKernelMode(m);
      const t0 = performance.now();
      const res = await integratedGradients(model, xt, { steps: STEPS, batchSize: BATCH });
      const ms = performance.now() - t0;
      res.attributions.dispose();
      if (r >= 0) (it[m] ??= []).push(ms);
    }
  }
  setIgKernelMode('auto');
  xt.dispose();
  const med = (o: Record<string, number[]>) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, median(v)]));
  const row = { model: name, rows, F, points: rows * J * STEPS, loops: med(lt), ig: med(it) };
  process.stderr.write(`${name}: ${JSON.stringify({ loops: row.loops, ig: row.ig })} (auto uses ${igKernelsFor(BATCH, F).name})\n`);
  return row;
}

await tf.setBackend('cpu');
await tf.ready();
process.stderr.write(`tfjs ${tf.version.tfjs} backend ${tf.getBackend()}; native IG kernels: ${nativeIgKernels ? 'yes' : 'no'}; ${REPS} reps, median\n`);
const results = [
  await measure('teacher 64-256-256-10', dense([256, 256], 1), [64], 12),
  await measure('student 64-16-10', dense([16], 2), [64], 12),
  await measure('conv 28x28x1 (16c3-pool-32c3-dense)', conv(), [28, 28, 1], 4),
];
const f = (v: number | undefined) => (v === undefined ? '-' : v < 1 ? v.toFixed(3) : v.toFixed(2));
console.log(`\nintegratedGradients, gauss-legendre, ${STEPS} steps, batchSize ${BATCH}, zeros baseline; median ms of ${REPS} interleaved calls\n`);
console.log('| model | points x F | loops JS | loops native | IG (JS loops) | IG (native loops) | IG (auto) | loops share (JS) |');
console.log('|---|---|---|---|---|---|---|---|');
for (const r of results) {
  console.log(`| ${r.model} | ${r.points} x ${r.F} | ${f(r.loops.js)} | ${f(r.loops.native)} | ${f(r.ig.js)} | ${f(r.ig.native)} | ${f(r.ig.auto)} | ${((100 * r.loops.js!) / r.ig.js!).toFixed(1)}% |`);
}
