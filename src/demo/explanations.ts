/**
 * The demo's explanation step: integrated gradients for the teacher and each student on held-out
 * digits, how far each student's attributions agree with the teacher's, how faithful each model's
 * attributions are (deletion / insertion against a random order), and heatmaps of a few digits.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { attributionHeatmap } from '../explain/heatmap.js';
import { explainDistillation, type DistillationExplanation } from '../explain/distillation.js';
import type { HeatmapGroup, ReportAgreementRow, ReportFaithfulnessRow } from './report.js';
import type { Split } from './digits.js';

export interface ExplainedModel {
  name: string;
  /** Short name for file names and image labels. */
  slug: string;
  model: tf.LayersModel;
}

export interface ExplanationStep {
  agreement: ReportAgreementRow[];
  faithfulness: ReportFaithfulnessRow[];
  heatmaps: HeatmapGroup[];
  /** Per student, the mean metrics (for results.json and the console). */
  summary: { student: string; cosine: number; spearman: number; topKIntersection: number; predictionAgreement: number }[];
}

export interface ExplanationOptions {
  /** Test rows explained for the tables. */
  rows: number;
  /** Of those, how many get heatmaps. */
  pictures: number;
  steps: number;
  /** Where the PNGs are written (also inlined in the report). */
  outDir: string;
}

const SCALE = 16;  // 8x8 digits drawn at 128x128

/** Rows [0, n) of a split as an [n, 64] tensor. */
function head(s: Split, n: number): tf.Tensor2D {
  return tf.tensor2d(s.x.subarray(0, n * 64), [n, 64]);
}

export async function explainStudents(teacher: ExplainedModel, students: ExplainedModel[], test: Split,
  o: ExplanationOptions): Promise<ExplanationStep> {
  const rows = Math.min(o.rows, test.n), pictures = Math.min(o.pictures, rows);
  const x = head(test, rows);
  const step: ExplanationStep = { agreement: [], faithfulness: [], heatmaps: [], summary: [] };
  const reports: DistillationExplanation[] = [];
  try {
    for (const s of students) {
      // the teacher's predicted class for both models, zero baseline (a blank digit), Gauss-Legendre
      const r = await explainDistillation(teacher.model, s.model, x, {
        steps: o.steps, baseline: 'zeros', topK: 8, faithfulness: { steps: 16, baselineValue: 0, control: true, seed: 7 },
      });
      reports.push(r);
      step.agreement.push({ student: s.name, comparison: r.comparison, predictionAgreement: r.predictionAgreement });
      step.summary.push({ student: s.name, ...r.comparison.mean, predictionAgreement: r.predictionAgreement });
      step.faithfulness.push({ model: s.name, deletion: r.student.deletion!, insertion: r.student.insertion! });
    }
    const first = reports[0]!;
    step.faithfulness.unshift({ model: teacher.name, deletion: first.teacher.deletion!, insertion: first.teacher.insertion! });

    mkdirSync(o.outDir, { recursive: true });
    const attr = async (t: tf.Tensor, i: number) => (await t.data()).slice(i * 64, (i + 1) * 64) as Float32Array;
    for (let i = 0; i < pictures; i++) {
      const pixels = test.x.subarray(i * 64, (i + 1) * 64);
      // the digit itself, dark ink on white, and each model's attributions over a faint copy of it
      const ink = Float32Array.from(pixels, (v) => 1 - v);
      const png = (name: string, a: Float32Array, overlayAlpha: number) => {
        const file = join(o.outDir, `digit${i}-${name}.png`);
        const bytes = attributionHeatmap(a, { shape: [8, 8], scale: SCALE, overlay: ink, overlayAlpha, file });
        return bytes;
      };
      const images = [{ label: `digit (label ${test.y[i]})`, png: png('input', new Float32Array(64), 1) }];
      images.push({ label: teacher.name, png: png(teacher.slug, await attr(first.teacher.attributions, i), 0.25) });
      for (const [k, s] of students.entries()) {
        images.push({ label: s.name, png: png(s.slug, await attr(reports[k]!.student.attributions, i), 0.25) });
      }
      step.heatmaps.push({ caption: `test digit ${i}: teacher predicts ${first.targets[i]}`, pngs: images });
    }
    return step;
  } finally {
    x.dispose();
    for (const r of reports) {
      r.teacher.attributions.dispose();
      r.student.attributions.dispose();
    }
  }
}

/** Writes the report next to the PNGs. */
export function writeReport(outDir: string, html: string): string {
  const file = join(outDir, 'report.html');
  writeFileSync(file, html);
  return file;
}
