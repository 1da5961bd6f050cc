/**
 * The demo's explanation step: one attribution method (integrated gradients by default, or
 * KernelSHAP or LIME on 2×2-pixel superpixels, as `--explainer` chooses) for the teacher and each
 * student on held-out digits, how far each student's attributions agree with the teacher's, how
 * faithful each model's attributions are (deletion / insertion against a random order), and
 * heatmaps of a few digits.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { attributionHeatmap } from '../explain/heatmap.js';
import { superpixelGroups } from '../explain/coalitions.js';
import { explainDistillation, type DistillationExplanation, type ExplainDistillationOptions } from '../explain/distillation.js';
import type { HeatmapGroup, ReportAgreementRow, ReportFaithfulnessRow } from './report.js';
import type { Split } from './digits.js';

/**
 * The methods the main demo can explain its dense models with. Grad-CAM is not among them: it
 * reads a convolution's feature maps, and these models have none (`npm run demo:conv` uses it).
 */
export const DEMO_EXPLAINERS = ['ig', 'kernelshap', 'lime'] as const;
/** One of DEMO_EXPLAINERS: 'ig', 'kernelshap' or 'lime'. */
export type DemoExplainer = (typeof DEMO_EXPLAINERS)[number];

/** Each method's name as printed in the console, the report and results.json. */
export const EXPLAINER_NAMES: Record<DemoExplainer, string> = { ig: 'integrated gradients', kernelshap: 'KernelSHAP', lime: 'LIME' };

/** Why `--explainer gradcam` is refused here, and where Grad-CAM is shown instead. */
export const GRADCAM_REFUSAL =
  "explainer 'gradcam' needs convolutional models, and the main demo's are dense (no feature maps to weight); " +
  'run `npm run demo:conv`, which explains a conv teacher and students with Grad-CAM';

/** Superpixel side for KernelSHAP and LIME: 2×2 pixels, 16 players on the 8×8 digits (fast, and exact-ish with a few hundred coalitions). */
export const SUPERPIXEL = 2;

export interface ExplainedModel {
  name: string;
  /** Short name for file names and image labels. */
  slug: string;
  model: tf.LayersModel;
}

/** What the explanation step gives the report, results.json and the console. */
export interface ExplanationStep {
  /** The method the tables and heatmaps were made with. */
  explainer: ExplainerInfo;
  agreement: ReportAgreementRow[];
  faithfulness: ReportFaithfulnessRow[];
  heatmaps: HeatmapGroup[];
  /** Per student, the mean metrics (for results.json and the console). */
  summary: { student: string; cosine: number; spearman: number; topKIntersection: number; predictionAgreement: number }[];
}

/** How many digits to explain and draw, where to write the PNGs, and with which method. */
export interface ExplanationOptions {
  /** Test rows explained for the tables. */
  rows: number;
  /** Of those, how many get heatmaps. */
  pictures: number;
  /** Integrated gradients' Gauss–Legendre nodes (for 'ig'). */
  steps: number;
  /** Where the PNGs are written (also inlined in the report). */
  outDir: string;
  /** The attribution method (default 'ig'). */
  explainer?: DemoExplainer;
  /** KernelSHAP coalitions or LIME samples per digit (default 512). */
  samples?: number;
  /** KernelSHAP's background: the first this many training digits (default 8). LIME's "off" is a blank digit. */
  backgroundRows?: number;
  /** Seed of KernelSHAP's / LIME's sampling (default 1). */
  seed?: number;
}

/** The method used and its key settings, for the console, the report and results.json. */
export interface ExplainerInfo {
  method: DemoExplainer;
  /** Its name as printed: 'integrated gradients', 'KernelSHAP' or 'LIME'. */
  name: string;
  /** One phrase with its settings, e.g. "KernelSHAP (16 superpixels of 2×2 pixels, 512 paired coalitions, ...)". */
  description: string;
  /** The settings as numbers (for results.json). */
  settings: Record<string, number | string>;
}

/** Resolves the demo's explainer options to what explainDistillation takes, and says what was chosen. */
export function explainerSetup(train: Split, o: ExplanationOptions): { info: ExplainerInfo; options: ExplainDistillationOptions; background?: tf.Tensor2D } {
  const method = o.explainer ?? 'ig';
  // the teacher's class for both models, top-8 agreement, deletion / insertion towards a blank digit
  const common = { topK: 8, faithfulness: { steps: 16, baselineValue: 0, control: true, seed: 7 } };
  if (method === 'ig') {
    return {
      info: {
        method, name: EXPLAINER_NAMES.ig, settings: { steps: o.steps, quadrature: 'Gauss-Legendre', baseline: 'zeros' },
        description: `integrated gradients (${o.steps} Gauss-Legendre steps, zero baseline)`,
      },
      options: { steps: o.steps, baseline: 'zeros', ...common },
    };
  }
  const samples = o.samples ?? 512, seed = o.seed ?? 1, groups = (8 / SUPERPIXEL) ** 2;
  const featureGroups = superpixelGroups([8, 8], SUPERPIXEL);
  if (method === 'kernelshap') {
    const B = Math.min(o.backgroundRows ?? 8, train.n);
    const background = tf.tensor2d(train.x.subarray(0, B * 64), [B, 64]);
    return {
      info: {
        method, name: EXPLAINER_NAMES.kernelshap, settings: { superpixels: groups, superpixelSize: SUPERPIXEL, coalitions: samples, backgroundRows: B, seed },
        description: `KernelSHAP (${groups} superpixels of ${SUPERPIXEL}x${SUPERPIXEL} pixels, ${samples} paired coalitions, background: ${B} training digits, seed ${seed})`,
      },
      options: { explainer: 'kernelshap', kernelShap: { background, featureGroups, nSamples: samples, seed }, ...common },
      background,
    };
  }
  return {
    info: {
      method, name: EXPLAINER_NAMES.lime, settings: { superpixels: groups, superpixelSize: SUPERPIXEL, samples, baseline: 'zeros', seed },
      description: `LIME (${groups} superpixels of ${SUPERPIXEL}x${SUPERPIXEL} pixels, ${samples} samples, "off" = blank, seed ${seed})`,
    },
    options: { explainer: 'lime', lime: { baseline: 'zeros', featureGroups, nSamples: samples, seed }, ...common },
  };
}

const SCALE = 16;  // 8x8 digits drawn at 128x128

/** Rows [0, n) of a split as an [n, 64] tensor. */
function head(s: Split, n: number): tf.Tensor2D {
  return tf.tensor2d(s.x.subarray(0, n * 64), [n, 64]);
}

/**
 * Explains the teacher and each student on the first `o.rows` test digits with `o.explainer`
 * (the teacher's predicted class for both), and draws `o.pictures` of them side by side. `train`
 * supplies KernelSHAP's background rows.
 */
export async function explainStudents(teacher: ExplainedModel, students: ExplainedModel[], test: Split, train: Split,
  o: ExplanationOptions): Promise<ExplanationStep> {
  const rows = Math.min(o.rows, test.n), pictures = Math.min(o.pictures, rows);
  const { info, options, background } = explainerSetup(train, o);
  const x = head(test, rows);
  const step: ExplanationStep = { explainer: info, agreement: [], faithfulness: [], heatmaps: [], summary: [] };
  const reports: DistillationExplanation[] = [];
  try {
    for (const s of students) {
      const r = await explainDistillation(teacher.model, s.model, x, options);
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
      step.heatmaps.push({ caption: `test digit ${i}: teacher predicts ${first.targets[i]} (${info.name})`, pngs: images });
    }
    return step;
  } finally {
    x.dispose();
    background?.dispose();
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
