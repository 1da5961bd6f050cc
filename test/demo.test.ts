/**
 * The demo end to end, shortened (a few epochs, few digits explained): it trains the four models,
 * writes results.json, the heatmap PNGs and out/report.html, and that report renders in headless
 * Chromium with every image and chart. Without Chromium the browser part is skipped, unless CI is
 * set: then it fails (.ci/run installs Debian's chromium).
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium } from 'playwright-core';
import * as tf from '@tensorflow/tfjs';
import { checkDemoExplainer, runDemo, type DemoOptions, type DemoResult } from '../src/demo/run.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const inCI = !!process.env.CI && !/^(0|false)$/i.test(process.env.CI);
const browser = existsSync(CHROMIUM) || inCI;

interface Img { complete: boolean; naturalWidth: number; naturalHeight: number }
interface Line { getBBox(): { width: number; height: number } }

describe('npm run demo (shortened)', () => {
  let dir: string, result: DemoResult, tensorsBefore: number, tensorsAfter: number;
  const pictures = 3;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kdfuse-demo-'));
    const log = console.log, table = console.table;
    console.log = () => {};
    console.table = () => {};
    try {
      await tf.ready();  // importing the demo registers tfjs's wasm backend, which must initialise first
      tensorsBefore = tf.memory().numTensors;
      result = await runDemo({
        epochs: 8, teacherEpochs: 3, scratchEpochs: 40, labelled: 100, seeds: 2, alignedSeeds: 1, temperature: 4, alpha: 0.7,
        alignWeight: 1, explainRows: 16, explainSteps: 8, pictures, seed: 1, out: dir, quiet: true,
      });
      tensorsAfter = tf.memory().numTensors;
    } finally {
      console.log = log;
      console.table = table;
    }
  }, 120_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('writes the figures, the students, the heatmaps and the report', () => {
    const r = JSON.parse(readFileSync(result.resultsFile, 'utf8')) as {
      rows: { model: string; testAccuracy: number; testAccuracySd?: number; testAccuracies?: number[]; seeds: number; labelledRows: number }[];
      kdOverScratch: { meanDifference: number; standardError: number };
      explanations: { student: string; cosine: number }[];
      faithfulness: { model: string; deletionAuc: number; insertionAuc: number; randomDeletionAuc: number; randomInsertionAuc: number }[];
    };
    expect(r.rows.map((x) => x.model)).toEqual([
      'teacher 64-256-256-10', 'student, scratch 64-16-10', 'student, KD 64-16-10', 'student, explanation-aligned KD 64-16-10',
    ]);
    // Short training still learns (chance is 10%): the teacher gets 95% or so after 3 epochs and the
    // students, from 100 labelled rows, 80-90%; the bounds leave room for float differences between
    // tfjs backends, not for a broken loss or a model that did not train.
    const [teacherRow, ...studentRows] = r.rows;
    expect(teacherRow!.testAccuracy).toBeGreaterThan(0.85);
    expect(teacherRow!.labelledRows).toBeGreaterThan(1000);
    for (const row of studentRows) {
      expect(row.testAccuracy, row.model).toBeGreaterThan(0.5);
      expect(row.labelledRows, row.model).toBe(100);
    }
    // scratch and KD over both seeds: the row's mean and sample sd are those of its per-seed accuracies
    const [scratchRow, kdRow, alignedRow] = studentRows;
    for (const row of [scratchRow!, kdRow!]) {
      expect(row.seeds).toBe(2);
      const [a, b] = row.testAccuracies!;
      expect(row.testAccuracy).toBeCloseTo((a! + b!) / 2, 12);
      expect(row.testAccuracySd).toBeCloseTo(Math.abs(a! - b!) / Math.SQRT2, 12);
    }
    expect(alignedRow!.seeds).toBe(1);
    expect(alignedRow!.testAccuracySd).toBeUndefined();
    expect(r.kdOverScratch.meanDifference).toBeCloseTo(kdRow!.testAccuracy - scratchRow!.testAccuracy, 12);
    // students' attributions point the teacher's way (seed 1: cosine 0.48-0.65; unrelated maps give ~0)
    expect(r.explanations).toHaveLength(3);
    for (const e of r.explanations) expect(e.cosine, e.student).toBeGreaterThan(0.2);
    // and every model's attributions beat a random pixel order on both faithfulness curves
    expect(r.faithfulness.map((f) => f.model)[0]).toBe('teacher');
    for (const f of r.faithfulness) {
      expect(f.deletionAuc, f.model).toBeLessThan(f.randomDeletionAuc);
      expect(f.insertionAuc, f.model).toBeGreaterThan(f.randomInsertionAuc);
    }
    // the input and four models' maps per digit
    expect(readdirSync(join(dir, 'heatmaps')).filter((f) => f.endsWith('.png'))).toHaveLength(pictures * 5);
    expect(existsSync(join(dir, 'student', 'model.json'))).toBe(true);
    expect(existsSync(join(dir, 'student-aligned', 'model.json'))).toBe(true);
    const html = readFileSync(result.reportFile, 'utf8');
    expect(html).not.toMatch(/<script|https?:\/\//);  // self-contained
    // integrated gradients by default, named in the report and recorded in results.json
    expect((r as unknown as { explainer: { method: string; settings: { steps: number } } }).explainer).toMatchObject({ method: 'ig', settings: { steps: 8 } });
    expect(html).toContain('<h2 id="heatmaps-heading">Where the models look: integrated gradients</h2>');
    expect(html).toContain('Integrated gradients (8 Gauss-Legendre steps, zero baseline) for the class the teacher predicts.');
  });

  it('disposes every tensor it made (models, optimizers, data)', () => {
    expect(tensorsAfter).toBe(tensorsBefore);
  });

  it.skipIf(!browser)('out/report.html renders in headless Chromium with its images and curves', async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`CI is set and ${CHROMIUM} is missing (.ci/run installs the Debian chromium package)`);
    const context = await chromium.launchPersistentContext(join(dir, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      timeout: 60_000,
    });
    try {
      const page = context.pages()[0] ?? (await context.newPage());
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(String(e)));
      page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
      await page.goto(pathToFileURL(result.reportFile).href, { waitUntil: 'load' });
      const imgs = await page.$$eval('img', (els) => (els as unknown as Img[]).map((i) => ({ complete: i.complete, w: i.naturalWidth, h: i.naturalHeight })));
      // the heatmap grid (pictures x teacher and three students, plus the digit) and the KernelSHAP
      // section's map of one digit for the teacher and the three students
      expect(imgs).toHaveLength(pictures * 5 + 4);
      for (const i of imgs) expect(i).toEqual({ complete: true, w: 128, h: 128 });
      const lines = await page.$$eval('svg polyline', (els) => (els as unknown as Line[]).map((p) => p.getBBox()).map((b) => b.width));
      expect(lines.length).toBeGreaterThanOrEqual(4);  // four training runs' loss curves at least
      for (const w of lines) expect(w).toBeGreaterThan(0);
      const tableRows = await page.$$eval('table tbody tr', (rows) => rows.length);
      expect(tableRows).toBeGreaterThanOrEqual(4 + 3 + 4);  // accuracy, agreement, faithfulness
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }
  }, 90_000);
});

/**
 * `--explainer kernelshap`: the same report, its heatmaps and tables made with KernelSHAP on 2×2
 * superpixels. As short as the demo goes (one seed, one epoch each, four digits, 64 coalitions):
 * what is checked is that the method chosen is the one used, named and recorded, not accuracy.
 */
describe('npm run demo --explainer kernelshap (shortest)', () => {
  const short: DemoOptions = {
    epochs: 1, teacherEpochs: 1, scratchEpochs: 2, labelled: 100, seeds: 1, alignedSeeds: 1, temperature: 4, alpha: 0.7,
    alignWeight: 1, explainRows: 4, explainSteps: 8, pictures: 2, seed: 1, out: '', quiet: true,
  };
  const quietly = async <T>(f: () => Promise<T>): Promise<T> => {
    const log = console.log, table = console.table;
    console.log = () => {};
    console.table = () => {};
    try {
      return await f();
    } finally {
      console.log = log;
      console.table = table;
    }
  };

  it('explains with KernelSHAP: the report names it and its settings, results.json records it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kdfuse-demo-shap-'));
    try {
      await tf.ready();
      const before = tf.memory().numTensors;
      const result = await quietly(() => runDemo({ ...short, out: dir, explainer: 'kernelshap', explainSamples: 64, backgroundRows: 4 }));
      expect(tf.memory().numTensors).toBe(before);
      const r = JSON.parse(readFileSync(result.resultsFile, 'utf8')) as {
        explainer: { method: string; name: string; settings: Record<string, number>; rows: number };
        explanations: { student: string; cosine: number }[];
        faithfulness: { model: string; deletionAuc: number }[];
      };
      expect(r.explainer).toMatchObject({
        method: 'kernelshap', name: 'KernelSHAP', rows: 4,
        settings: { superpixels: 16, superpixelSize: 2, coalitions: 64, backgroundRows: 4, seed: 1 },
      });
      expect(r.explanations).toHaveLength(3);
      for (const e of r.explanations) expect(Number.isFinite(e.cosine), e.student).toBe(true);
      expect(r.faithfulness).toHaveLength(4);
      const html = readFileSync(result.reportFile, 'utf8');
      const description = 'KernelSHAP (16 superpixels of 2x2 pixels, 64 paired coalitions, background: 4 training digits, seed 1)';
      expect(html).toContain('<h2 id="heatmaps-heading">Where the models look: KernelSHAP</h2>');
      expect(html).toContain('<h2 id="agreement-heading">Do students look where the teacher looks? (KernelSHAP)</h2>');
      expect(html).toContain('<h2 id="faithfulness-heading">Are the KernelSHAP attributions faithful?</h2>');
      expect(html).toContain(`${description} for the class the teacher predicts.`);
      expect(html).toContain('test digit 0: teacher predicts');
      expect(html).toMatch(/teacher predicts \d \(KernelSHAP\)/);
      expect(html).not.toMatch(/[Ii]ntegrated[- ]gradients/);  // the method not used is named nowhere
      // teacher and three students side by side, after the digit itself
      expect(readdirSync(join(dir, 'heatmaps')).filter((f) => f.endsWith('.png'))).toHaveLength(2 * 5);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it("refuses 'gradcam' at once, pointing at npm run demo:conv; and unknown methods", async () => {
    expect(() => checkDemoExplainer('gradcam')).toThrow(RangeError);
    expect(() => checkDemoExplainer('gradcam')).toThrow(/the main demo's are dense .*`npm run demo:conv`/);
    expect(() => checkDemoExplainer('shap')).toThrow(/explainer must be one of 'ig', 'kernelshap', 'lime', got 'shap'/);
    expect(checkDemoExplainer(undefined)).toBe('ig');
    const t0 = performance.now();
    await expect(quietly(() => runDemo({ ...short, out: join(tmpdir(), 'kdfuse-never-written'), explainer: 'gradcam' as never })))
      .rejects.toThrow(/npm run demo:conv/);
    expect(performance.now() - t0).toBeLessThan(5000);  // before any training
    expect(existsSync(join(tmpdir(), 'kdfuse-never-written'))).toBe(false);
  });
});
