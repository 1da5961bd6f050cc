/**
 * `npm run demo:conv`, shortened (300 training digits, 2 epochs each): it trains the conv teacher and
 * both conv students (one with the Grad-CAM alignment term, second order through conv layers on
 * cpu), and writes the report with Grad-CAM maps that are not all zero (finite cosine agreement),
 * the evaluation table and the PNGs. No accuracy is asserted for so short a run.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { runConvDemo } from '../src/demo/conv-run.js';

describe('npm run demo:conv (shortened)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kdfuse-conv-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('trains, explains with Grad-CAM and writes the report without leaking tensors', async () => {
    const before = tf.memory().numTensors;
    const r = await runConvDemo({ epochs: 2, teacherEpochs: 2, temperature: 4, alpha: 0.7, gradCamWeight: 1, pictures: 2, explainRows: 20, seed: 1, out: dir, quiet: true, trainRows: 300 });
    expect(tf.memory().numTensors).toBe(before);
    const res = JSON.parse(readFileSync(r.resultsFile, 'utf8')) as {
      evaluation: { model: string; macroF1: number; compressionRatio: number; latency: { msPerRow: number } }[];
      gradCamAgreement: { student: string; cosine: number | null }[];
      history: { gradCamKd: { alignmentLoss: number }[] };
    };
    expect(res.evaluation).toHaveLength(3);
    expect(res.evaluation[1]!.compressionRatio).toBeGreaterThan(1);
    for (const a of res.gradCamAgreement) expect(Number.isFinite(a.cosine), a.student).toBe(true);
    for (const e of res.history.gradCamKd) expect(e.alignmentLoss).toBeGreaterThan(0);
    expect(res.history.gradCamKd[0]!.alignmentLoss).toBeLessThan(1);  // the maps are not all zero
    expect(readdirSync(join(dir, 'gradcam')).filter((f) => f.endsWith('.png'))).toHaveLength(2 * 3);
    const html = readFileSync(r.reportFile, 'utf8');
    expect(html).toMatch(/<table id="evaluation">/);
    expect(html).not.toMatch(/<script|https?:\/\//);
    expect(existsSync(r.reportFile)).toBe(true);
  }, 300_000);
});
