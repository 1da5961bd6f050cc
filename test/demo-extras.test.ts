/**
 * The demo report's evaluation and KernelSHAP sections (src/demo/extras.ts) on small dense models and
 * synthetic 8×8 "digits": the sections render, every model gets its evaluation row, and each
 * model's Shapley values add up to its logit minus its background mean (efficiency, within 1e-3).
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { demoExtras } from '../src/demo/extras.js';
import { denseModel } from '../src/demo/models.js';
import type { Split } from '../src/demo/digits.js';
import { rng } from './helpers.js';

let previousBackend: string, dir: string;
beforeAll(async () => {
  await tf.ready();
  previousBackend = tf.getBackend();
  await tf.setBackend('cpu');
  dir = mkdtempSync(join(tmpdir(), 'kdfuse-extras-'));
});
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await tf.setBackend(previousBackend);
});

const split = (n: number, seed: number): Split => {
  const rand = rng(seed);
  return { n, x: Float32Array.from({ length: n * 64 }, () => rand()), y: Int32Array.from({ length: n }, (_, i) => i % 10) } as Split;
};

describe('demoExtras', () => {
  it('renders the evaluation, confusion and KernelSHAP sections with efficient Shapley values', async () => {
    const teacher = denseModel([32], 1), s1 = denseModel([8], 2), s2 = denseModel([8], 3);
    const before = tf.memory().numTensors;
    const r = await demoExtras({ name: 'teacher <T>', slug: 't', model: teacher }, [{ name: 'a', slug: 'a', model: s1 }, { name: 'b', slug: 'b', model: s2 }],
      split(40, 1), split(30, 2), { seed: 1, outDir: dir, shapSamples: 64, backgroundRows: 4 });
    expect(tf.memory().numTensors).toBe(before);
    const html = r.sections.join('\n');
    expect(html).toContain('teacher &lt;T&gt;');
    expect(html).toMatch(/<table id="evaluation">/);
    expect(html).toMatch(/<table id="confusion">/);
    expect(r.results.evaluation.map((e) => e.model)).toEqual(['teacher <T>', 'a', 'b']);
    expect(r.results.evaluation[0]!.compressionRatio).toBe(1);
    expect(r.results.evaluation[1]!.compressionRatio).toBeGreaterThan(1);
    expect(r.results.evaluation[1]!.latency!.msPerRow).toBeGreaterThan(0);
    for (const m of r.results.kernelShap.models) expect(Math.abs(m.sumAttributions - (m.score - m.baseValue)), m.model).toBeLessThan(1e-3);
    expect(readdirSync(dir).filter((f) => f.endsWith('.png'))).toHaveLength(3);
    for (const m of [teacher, s1, s2]) m.dispose();
  });
});
