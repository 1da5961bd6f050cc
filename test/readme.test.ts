/**
 * The README's examples run as written: they live in examples/ and the README must show them. The
 * complete program under "Use it in your project" is the file examples/first-project.mjs verbatim;
 * scripts/pack-check.sh also runs it (and "Ten lines") against the packed tarball in an empty project.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { composedStep, fusedStep } from '../examples/one-line-swap.js';
import { run } from '../examples/distiller.js';
import { composedHeadStep, fusedHeadStep } from '../examples/fused-head.js';
import { run as runKernels } from '../examples/kernels.js';
import { run as runExplain } from '../examples/explain.js';
import { run as runServed } from '../examples/served-teacher.js';
import { convertVllmPromptLogprobs, loadTopKTeacher } from '../src/train/index.js';
import { randomLogits, rng } from './helpers.js';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const example = (f: string) => readFileSync(new URL(`../examples/${f}`, import.meta.url), 'utf8');
/** Every non-blank line of a README code block must appear in the example file. */
function shown(code: string, file: string): void {
  const src = example(file);
  for (const line of code.split('\n').map((l) => l.trim()).filter(Boolean)) {
    expect(src.includes(line), `README line not in examples/${file}: ${line}`).toBe(true);
  }
}
function block(after: string, lang = 'ts'): string {
  const i = readme.indexOf(after);
  expect(i, `README has "${after}"`).toBeGreaterThan(-1);
  const fence = '```' + lang + '\n';
  const start = readme.indexOf(fence, i) + fence.length;
  return readme.slice(start, readme.indexOf('```', start));
}

const dense = (inDim: number, units: number[], seed: number) => {
  const m = tf.sequential();
  units.forEach((u, i) => m.add(tf.layers.dense({ units: u, ...(i === 0 ? { inputShape: [inDim] } : {}), kernelInitializer: tf.initializers.glorotUniform({ seed: seed + i }) })));
  return m;
};

describe('README examples', () => {
  it('the ten-line kernel example runs as written', async () => {
    shown(block('## Ten lines').replace(/^const same = await/m, 'const same = await'), 'kernels.ts');
    const { loss, gradStudent, same } = await runKernels();
    expect(Number.isFinite(loss)).toBe(true);
    expect(same.loss).toBe(loss);
    expect(Array.from(same.gradStudent!)).toEqual(Array.from(gradStudent!));
  });

  it('the one-line swap: both loops are in examples/ and give the same step', () => {
    const composed = block('A KD loss as tfjs users write it today');
    const fused = block('and the same step with the fused loss');
    shown(composed.replace(/^import.*$/gm, ''), 'one-line-swap.ts');
    shown(fused, 'one-line-swap.ts');
    const rand = rng(1);
    const x = tf.tensor2d(randomLogits(rand, 32 * 8, 1), [32, 8]);
    const y = tf.tensor1d(Array.from({ length: 32 }, (_, i) => i % 10), 'int32');
    // two identical teachers: minimize() without a var list also trains the teacher in the composed
    // version (its weights get gradients); kdfuse's teacher is a constant
    const a = dense(8, [10], 5), b = dense(8, [10], 5);
    composedStep(tf.train.sgd(0.1), a, dense(8, [10], 1), x, y);
    fusedStep(tf.train.sgd(0.1), b, dense(8, [10], 1), x, y);
    const wa = a.getWeights()[0]!.dataSync(), wb = b.getWeights()[0]!.dataSync();
    for (let i = 0; i < wa.length; i++) expect(Math.abs(wa[i]! - wb[i]!)).toBeLessThan(1e-5 * Math.max(1, Math.abs(wa[i]!)));
    tf.dispose([x, y]);
  });

  it('the fused-head before and after run as written and train the head to the same weights', () => {
    const before = block('## A large vocabulary: the fused head');
    const after = block('and after:');
    shown(before, 'fused-head.ts');
    shown(after, 'fused-head.ts');
    expect(before.trim().split('\n').length).toBeLessThanOrEqual(5);
    expect(after.trim().split('\n').length).toBeLessThanOrEqual(5);
    const rand = rng(18);
    const rows = 16, dim = 8, vocab = 300;
    const hidden = tf.tensor2d(randomLogits(rand, rows * dim, 1), [rows, dim]);
    const teacher = tf.tensor2d(randomLogits(rand, rows * vocab, 3), [rows, vocab]);
    const y = tf.tensor1d(Array.from({ length: rows }, (_, i) => (i * 37) % vocab), 'int32');
    const w0 = randomLogits(rand, dim * vocab, 0.3), b0 = randomLogits(rand, vocab, 0.1);
    const run = (step: typeof fusedHeadStep) => {
      const kernel = tf.variable(tf.tensor2d(w0, [dim, vocab])), bias = tf.variable(tf.tensor1d(b0));
      const opt = tf.train.sgd(0.5);
      for (let i = 0; i < 3; i++) step(opt, hidden, kernel, bias, teacher, y);
      const out = [kernel.dataSync().slice(), bias.dataSync().slice()];
      tf.dispose([kernel, bias]);
      opt.dispose();
      return out;
    };
    const a = run(composedHeadStep), b = run(fusedHeadStep);
    for (let k = 0; k < 2; k++) {
      const scale = Math.max(...Array.from(a[k]!, Math.abs));
      for (let i = 0; i < a[k]!.length; i++) expect(Math.abs(a[k]![i]! - b[k]![i]!)).toBeLessThan(1e-4 * scale);
    }
    expect(Math.abs(a[0]![0]! - w0[0]!)).toBeGreaterThan(0);  // the steps moved the weights
    tf.dispose([hidden, teacher, y]);
  });

  it('the Distiller example runs as written', async () => {
    shown(block('## The Distiller'), 'distiller.ts');
    const rand = rng(2);
    const mk = (n: number) => tf.tensor2d(randomLogits(rand, n * 8, 1), [n, 8]);
    const labels = (n: number) => Array.from({ length: n }, () => Math.floor(rand() * 10));
    const teacher = dense(8, [32, 10], 1), student = dense(8, [10], 3);
    const { history, report } = await run(teacher, student, mk(128), labels(128), mk(32), labels(32), mk(32), labels(32));
    expect(history.epochs.length).toBeGreaterThan(0);
    expect(report.rows).toBe(32);
    expect(readFileSync(join('out', 'student', 'model.json'), 'utf8')).toContain('weightsManifest');
  });

  it('the served-teacher example trains a student from a converted vLLM dump', async () => {
    shown(block('## Distilling from a served teacher'), 'served-teacher.ts');
    expect(readme).toContain('npx kdfuse topk-convert dump.jsonl teacher.parquet');
    const dir = mkdtempSync(join(tmpdir(), 'kdfuse-served-'));
    const file = join(dir, 'teacher.parquet');
    try {
      // what `npx kdfuse topk-convert` runs; the fixture mimics vLLM's prompt_logprobs (first position null)
      await convertVllmPromptLogprobs(fileURLToPath(new URL('fixtures/topk/vllm-prompt-logprobs.jsonl', import.meta.url)), file, { vocabSize: 40 });
      const rand = rng(8);
      const probe = await loadTopKTeacher(file);
      // inputs for the student, one row per teacher row; the teacher's top class as the hard label,
      // and -100 (ignored) where vLLM gave no log-probabilities (each sequence's first position)
      const labels = Array.from({ length: probe.rows }, (_, r) => probe.indices[r * probe.k]! >= 0 ? probe.indices[r * probe.k]! : -100);
      const x = tf.tensor2d(randomLogits(rand, probe.rows * 8, 1), [probe.rows, 8]);
      const { history, student } = await runServed(file, x, labels);
      const losses = history.epochs.map((e) => e.loss);
      expect(losses.length).toBe(5);
      expect(losses.at(-1)!).toBeLessThan(losses[0]!);
      student.dispose();
      x.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the explain example runs as written', async () => {
    shown(block('## Explaining teacher and student'), 'explain.ts');
    const teacher = dense(64, [32, 10], 1), student = dense(64, [10], 3);
    const x = tf.tensor2d(randomLogits(rng(3), 4 * 64, 1), [4, 64]);
    const { attributions, delta, report, png } = await runExplain(teacher, teacher, student, x);
    expect(attributions.shape).toEqual([4, 64]);
    expect(delta).toHaveLength(4);
    expect(report.comparison.mean.cosine).toBeGreaterThanOrEqual(-1);
    expect(Array.from(png.subarray(1, 4), (c) => String.fromCharCode(c)).join('')).toBe('PNG');
    tf.dispose([x, attributions, report.teacher.attributions, report.student.attributions]);
  });

  it('"Use it in your project" is examples/first-project.mjs verbatim, and it distils a working student', async () => {
    const code = block('## Use it in your project', 'js');
    expect(code.trim()).toBe(example('first-project.mjs').trim());
    const printed: unknown[] = [];
    const log = console.log;
    console.log = (...a: unknown[]) => { printed.push(...a); };
    try {
      await import('../examples/first-project.mjs');
    } finally {
      console.log = log;
    }
    const r = printed.at(-1) as { studentAccuracy: number; teacherAccuracy: number; agreement: number };
    // 10 epochs each: the teacher reaches about 96% on the 359 test digits and the student about 92%;
    // chance is 10%, so these bounds catch a broken loss or data set, not tfjs's run-to-run noise
    expect(r.teacherAccuracy).toBeGreaterThan(0.9);
    expect(r.studentAccuracy).toBeGreaterThan(0.75);
    expect(r.agreement).toBeGreaterThan(0.75);
  });
});
