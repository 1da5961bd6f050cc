/**
 * The demo report's newer sections, kept apart from run.ts and report.ts: the evaluation numbers
 * people put in a table (macro-F1, per-class F1, size, compression against the teacher, latency
 * per row) for every model, the KD student's confusion matrix, and KernelSHAP attributions of one
 * test digit for teacher and students (2×2-pixel superpixels, a background of training digits).
 * Each section is an HTML fragment whose text is escaped here; renderReport appends them.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { attributionHeatmap } from '../explain/heatmap.js';
import { kernelShap } from '../explain/kernel-shap.js';
import { superpixelGroups } from '../explain/coalitions.js';
import { evaluateClassifier, type ClassifierReport } from '../train/evaluation.js';
import { escapeHtml } from './report.js';
import type { ExplainedModel } from './explanations.js';
import type { Split } from './digits.js';

export interface DemoExtras {
  /** HTML fragments for ReportData.extraSections. */
  sections: string[];
  /** For results.json. */
  results: {
    evaluation: Array<{ model: string } & Omit<ClassifierReport, 'confusion' | 'precision' | 'recall' | 'support'>>;
    kernelShap: { digit: number; label: number; target: number; models: Array<{ model: string; baseValue: number; score: number; sumAttributions: number }> };
  };
}

export interface ExtrasOptions {
  /** The test digit explained with KernelSHAP (default 0). */
  digit?: number;
  /** Training digits used as KernelSHAP's background (default 8). */
  backgroundRows?: number;
  /** Coalitions sampled per model (default 512). */
  shapSamples?: number;
  seed: number;
  /** Where the KernelSHAP PNGs go. */
  outDir: string;
}

const cell = (v: string) => `<td>${v}</td>`;
const f3 = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? 'n/a' : v.toFixed(3));
const dataUri = (png: Uint8Array) => `data:image/png;base64,${Buffer.from(png).toString('base64')}`;

function table(id: string, head: string[], rows: string[][]): string {
  return `<table id="${id}"><thead><tr>${head.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead>` +
    `<tbody>${rows.map((r) => `<tr>${r.map(cell).join('')}</tr>`).join('')}</tbody></table>`;
}

export async function demoExtras(teacher: ExplainedModel, students: ExplainedModel[], train: Split, test: Split, o: ExtrasOptions): Promise<DemoExtras> {
  const models = [teacher, ...students];
  const xTest = tf.tensor2d(test.x, [test.n, 64]);
  const reports: ClassifierReport[] = [];
  try {
    for (const m of models) reports.push(evaluateClassifier(m.model, xTest, test.y, { reference: teacher.model, batchSize: 64, classes: 10 }));
  } finally {
    xTest.dispose();
  }
  const lat = reports[0]!.latency!;
  const evaluation = table('evaluation', ['model', 'accuracy', 'macro-F1', 'lowest class F1', 'params', 'weight bytes', 'compression vs teacher', 'latency ms/row'],
    reports.map((r, k) => {
      const worst = r.f1.reduce((b, v, c) => (v < r.f1[b]! ? c : b), 0);
      return [escapeHtml(models[k]!.name), `${(100 * r.accuracy).toFixed(1)}%`, f3(r.macroF1), `${f3(r.f1[worst])} (digit ${worst})`,
        String(r.size?.parameters ?? 'n/a'), String(r.size?.bytes ?? 'n/a'), r.compressionRatio === undefined ? 'n/a' : `${r.compressionRatio.toFixed(1)}×`,
        r.latency ? r.latency.msPerRow.toFixed(4) : 'n/a'];
    }));
  const kdIndex = Math.min(2, models.length - 1);  // the KD student when present
  const conf = reports[kdIndex]!.confusion;
  const confusion = table('confusion', ['label \\ predicted', ...conf.map((_, c) => String(c))], conf.map((row, t) => [String(t), ...row.map(String)]));
  const sections = [
    '<h2 id="evaluation-heading">Evaluation: per-class scores, size and speed</h2>',
    `<p class="note">${escapeHtml(`All ${test.n} test digits. Macro-F1 is the unweighted mean of the ten per-class F1 scores; compression is the teacher's weight bytes over the model's; ` +
      `latency is the median over batches of ${lat.batchSize} rows of milliseconds per row (forward and read-back) on the tfjs '${lat.backend}' backend, measured in this run on whatever else the machine was doing.`)}</p>`,
    evaluation,
    `<p class="note">${escapeHtml(`Confusion matrix of ${models[kdIndex]!.name} (rows: true digit, columns: predicted).`)}</p>`,
    confusion,
  ];

  // KernelSHAP for one digit: which 2x2 patches push each model toward the teacher's class
  const digit = Math.min(o.digit ?? 0, test.n - 1), B = Math.min(o.backgroundRows ?? 8, train.n);
  const x = tf.tensor2d(test.x.subarray(digit * 64, (digit + 1) * 64), [1, 64]);
  const background = tf.tensor2d(train.x.subarray(0, B * 64), [B, 64]);
  const groups = superpixelGroups([8, 8], 2);
  const ink = Float32Array.from(test.x.subarray(digit * 64, (digit + 1) * 64), (v) => 1 - v);
  const figures: string[] = [];
  mkdirSync(o.outDir, { recursive: true });
  const shapRows: DemoExtras['results']['kernelShap']['models'] = [];
  let target = 0;
  try {
    for (const [k, m] of models.entries()) {
      const r = await kernelShap(m.model, x, { background, featureGroups: groups, nSamples: o.shapSamples ?? 512, seed: o.seed, ...(k === 0 ? {} : { target }) });
      if (k === 0) target = r.targets[0]!;
      const a = (await r.attributions.data()) as Float32Array;
      r.attributions.dispose();
      const png = attributionHeatmap(a, { shape: [8, 8], scale: 16, overlay: ink, overlayAlpha: 0.25, file: join(o.outDir, `shap-digit${digit}-${m.slug}.png`) });
      figures.push(`<figure><img src="${dataUri(png)}" width="128" height="128" alt="${escapeHtml(`KernelSHAP of ${m.name}`)}"><figcaption>${escapeHtml(m.name)}</figcaption></figure>`);
      let sum = 0;
      for (const v of r.groupAttributions) sum += v;
      shapRows.push({ model: m.name, baseValue: r.baseValue[0]!, score: r.scores[0]!, sumAttributions: sum });
    }
  } finally {
    tf.dispose([x, background]);
  }
  sections.push(
    '<h2 id="kernelshap-heading">KernelSHAP on one digit</h2>',
    `<p class="note">${escapeHtml(`Test digit ${digit} (label ${test.y[digit]}), explained for the teacher's class ${target}: Shapley values of 16 superpixels (2×2 pixels), ` +
      `a superpixel "absent" meaning it takes its values from ${B} training digits (interventional KernelSHAP, ${o.shapSamples ?? 512} paired coalitions, seed ${o.seed}). ` +
      'Red pushes the logit up, blue down; each map\'s values add up to the model\'s logit minus its mean logit over the background.')}</p>`,
    `<div class="heatmap-grid" id="kernelshap"><div class="heatmap-row">${figures.join('')}</div></div>`,
    table('kernelshap-sums', ['model', 'logit f(x)', 'background mean E f', 'Σ Shapley values'],
      shapRows.map((r) => [escapeHtml(r.model), f3(r.score), f3(r.baseValue), f3(r.sumAttributions)])),
  );
  return {
    sections,
    results: {
      evaluation: reports.map((r, k) => {
        const { confusion: _c, precision: _p, recall: _r, support: _s, ...rest } = r;
        return { model: models[k]!.name, ...rest };
      }),
      kernelShap: { digit, label: test.y[digit]!, target, models: shapRows },
    },
  };
}
