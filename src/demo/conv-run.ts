/**
 * `npm run demo:conv`'s whole job as a function (conv.ts is its command line; the test calls it
 * shortened): on the 8×8 digits, a small conv teacher and two conv students (plain KD, and KD with
 * the Grad-CAM alignment term, e²KD), their evaluation numbers, and the Grad-CAM maps of teacher and
 * students side by side on a few test digits, written to <out>/conv-report.html. Kept out of the
 * main demo (npm run demo) because second-order training through conv layers on the tfjs cpu
 * backend does not fit that demo's 60-second budget.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { attributionHeatmap } from '../explain/heatmap.js';
import { explainDistillation } from '../explain/distillation.js';
import { Distiller } from '../train/distiller.js';
import { evaluateClassifier } from '../train/evaluation.js';
import { seededPermutation } from '../train/metrics.js';
import { loadDigits, splitDigits, type Split } from './digits.js';
import { escapeHtml, renderReport, type HeatmapGroup, type ReportTrainingRun } from './report.js';

export interface ConvDemoOptions {
  epochs: number; teacherEpochs: number; temperature: number; alpha: number; gradCamWeight: number;
  pictures: number; explainRows: number; seed: number; out: string; quiet?: boolean;
  /** Use only the first this many training rows (for a quick run; default all). */
  trainRows?: number;
}

const toImages = (s: Split, n = s.n): tf.Tensor4D => tf.tensor4d(s.x.subarray(0, n * 64), [n, 8, 8, 1]);

/**
 * A conv net on 8×8×1 digits: 'same'-padded 3×3 conv layers (ReLU), global average pooling, dense
 * logits. The pooling head is what makes Grad-CAM meaningful (it is then CAM, with positive
 * channel weights for the evidence of a class); with a flatten head the channel weights are spatial
 * means of position-specific gradients and the ReLU'd maps of a trained net were all zero. Global
 * average pooling is a mean (not the AvgPool kernel), so its second-order gradient exists.
 */
export function convModel(filters: number[], seed: number, prefix: string): tf.Sequential {
  const m = tf.sequential();
  filters.forEach((f, i) => m.add(tf.layers.conv2d({
    name: `${prefix}conv${i + 1}`, ...(i === 0 ? { inputShape: [8, 8, 1] } : {}), filters: f, kernelSize: 3, padding: 'same', activation: 'relu',
    kernelInitializer: tf.initializers.heNormal({ seed: seed + i }),
  })));
  m.add(tf.layers.globalAveragePooling2d({ name: `${prefix}gap` }));
  m.add(tf.layers.dense({ units: 10, name: `${prefix}logits`, kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 50 }) }));
  return m;
}

async function trainTeacher(model: tf.Sequential, train: Split, epochs: number, seed: number): Promise<ReportTrainingRun['epochs']> {
  model.compile({ optimizer: tf.train.adam(2e-3), loss: (yt: tf.Tensor, yp: tf.Tensor) => tf.losses.softmaxCrossEntropy(yt, yp) });
  const x = toImages(train), y = tf.tidy(() => tf.oneHot(tf.tensor1d(train.y, 'int32'), 10));
  const logs: ReportTrainingRun['epochs'] = [];
  for (let e = 0; e < epochs; e++) {
    const order = tf.tensor1d(seededPermutation(train.n, seed * 7919 + e), 'int32');
    const xs = tf.gather(x, order), ys = tf.gather(y, order);
    const h = await model.fit(xs, ys, { epochs: 1, batchSize: 64, shuffle: false, verbose: 0 });
    tf.dispose([order, xs, ys]);
    logs.push({ loss: Number(h.history.loss?.[0]) });
  }
  tf.dispose([x, y]);
  model.optimizer.dispose();
  return logs;
}

export async function runConvDemo(opts: ConvDemoOptions): Promise<{ reportFile: string; resultsFile: string }> {
  await tf.setBackend('cpu');
  const split = splitDigits(loadDigits(), opts.seed);
  const { val, test } = split;
  const trainRows = Math.min(opts.trainRows ?? split.train.n, split.train.n);
  const train: Split = { ...split.train, n: trainRows, x: split.train.x.subarray(0, trainRows * 64), y: split.train.y.subarray(0, trainRows) };
  const log = opts.quiet ? () => {} : (s: string) => console.log(s);
  const teacher = convModel([8, 16], opts.seed, 't'), kd = convModel([4, 8], opts.seed + 100, 's'), aligned = convModel([4, 8], opts.seed + 100, 's');
  const owned: { dispose(): void }[] = [teacher, kd, aligned];
  try {
    log(`kdfuse conv demo: ${train.n} train / ${test.n} test digits, tfjs ${tf.getBackend()}`);
    let t0 = performance.now();
    const teacherLogs = await trainTeacher(teacher, train, opts.teacherEpochs, opts.seed);
    const teacherSeconds = (performance.now() - t0) / 1000;
    const xTrain = toImages(train), xVal = toImages(val), xTest = toImages(test);
    owned.push(xTrain, xVal, xTest);
    const distil = async (student: tf.Sequential, weight: number) => {
      const d = new Distiller({
        teacher, student, temperature: opts.temperature, alpha: opts.alpha, learningRate: 2e-3,
        ...(weight > 0 ? { explanationAlignment: { gradCam: { weight, pairs: [{ teacher: 'tconv2', student: 'sconv2' }] } } } : {}),
      });
      t0 = performance.now();
      const h = await d.fit(xTrain, train.y, { epochs: opts.epochs, batchSize: 64, seed: opts.seed, validationData: [xVal, val.y], verbose: opts.quiet ? 'quiet' : 'progress' });
      d.dispose();
      return { history: h.epochs, seconds: (performance.now() - t0) / 1000 };
    };
    const kdRun = await distil(kd, 0);
    const alignedRun = await distil(aligned, opts.gradCamWeight);

    const models = [
      { name: 'teacher conv 8-16', slug: 'teacher', model: teacher, seconds: teacherSeconds },
      { name: 'student conv 4-8, KD', slug: 'kd', model: kd, seconds: kdRun.seconds },
      { name: 'student conv 4-8, KD + Grad-CAM alignment', slug: 'gradcam-kd', model: aligned, seconds: alignedRun.seconds },
    ];
    const evals = models.map((m) => evaluateClassifier(m.model, xTest, test.y, { reference: teacher, batchSize: 64 }));
    const tPred = tf.tidy(() => (teacher.predict(xTest) as tf.Tensor).argMax(1).dataSync() as Int32Array);
    const rows = models.map((m, k) => {
      const pred = tf.tidy(() => (m.model.predict(xTest) as tf.Tensor).argMax(1).dataSync() as Int32Array);
      let same = 0;
      pred.forEach((p, i) => (same += p === tPred[i] ? 1 : 0));
      return { model: m.name, parameters: evals[k]!.size!.parameters, testAccuracy: evals[k]!.accuracy, teacherAgreement: same / test.n, ece: NaN, trainSeconds: m.seconds };
    });
    if (!opts.quiet) console.table(rows.map((r, k) => ({ model: r.model, params: r.parameters, 'test acc': r.testAccuracy.toFixed(3), 'macro-F1': evals[k]!.macroF1.toFixed(3), 'train s': r.trainSeconds.toFixed(1) })));

    // Grad-CAM of teacher and students for the teacher's class, side by side
    const n = Math.min(opts.explainRows, test.n), pictures = Math.min(opts.pictures, n);
    const xs = toImages(test, n);
    owned.push(xs);
    const out = resolve(opts.out), pngDir = join(out, 'gradcam');
    mkdirSync(pngDir, { recursive: true });
    const agreement = [], maps: Float32Array[][] = [];
    let targets: Int32Array = new Int32Array(0);
    for (const s of models.slice(1)) {
      const r = await explainDistillation(teacher, s.model, xs, { explainer: 'gradcam', gradCam: { teacherLayer: 'tconv2', studentLayer: 'sconv2' }, topK: 8, faithfulness: false });
      agreement.push({ student: s.name, comparison: r.comparison, predictionAgreement: r.predictionAgreement });
      if (maps.length === 0) maps.push([(await r.teacher.attributions.data()) as Float32Array]);
      maps.push([(await r.student.attributions.data()) as Float32Array]);
      targets = r.targets;
      tf.dispose([r.teacher.attributions, r.student.attributions]);
    }
    const groups: HeatmapGroup[] = [];
    for (let i = 0; i < pictures; i++) {
      const ink = Float32Array.from(test.x.subarray(i * 64, (i + 1) * 64), (v) => 1 - v);
      const pngs = [{ label: `digit (label ${test.y[i]})`, png: attributionHeatmap(new Float32Array(64), { shape: [8, 8], scale: 16, overlay: ink, overlayAlpha: 1 }) }];
      models.forEach((m, k) => pngs.push({
        label: m.name,
        png: attributionHeatmap(maps[k]![0]!.subarray(i * 64, (i + 1) * 64), { shape: [8, 8], scale: 16, sign: 'positive', overlay: ink, overlayAlpha: 0.25, file: join(pngDir, `digit${i}-${m.slug}.png`) }),
      }));
      groups.push({ caption: `test digit ${i}: teacher predicts ${targets[i]}`, pngs });
    }
    const html = renderReport({
      title: 'kdfuse conv demo: Grad-CAM of a conv teacher and its students',
      notes: [
        `UCI handwritten digits as 8×8×1 images: ${train.n} train / ${val.n} validation / ${test.n} test, seed ${opts.seed}. Teacher: two 3×3 conv layers (8 and 16 filters), global average pooling and a dense layer; ` +
          `students: two 3×3 conv layers (4 and 8 filters), global average pooling and a dense layer, distilled at T = ${opts.temperature}, alpha = ${opts.alpha}; the second student adds ` +
          `${opts.gradCamWeight} × (1 − cosine) between its Grad-CAM map (layer sconv2) and the teacher's (layer tconv2) for the teacher's class (e²KD).`,
        `Teacher trained ${opts.teacherEpochs} epochs, students ${opts.epochs}. ECE is not computed here (n/a).`,
      ],
      models: rows,
      heatmaps: { groups, legend: 'sequential' },
      agreement,
      training: [{ name: 'teacher (cross-entropy)', epochs: teacherLogs }, { name: 'student, KD', epochs: kdRun.history }, { name: 'student, KD + Grad-CAM', epochs: alignedRun.history }],
      sectionNotes: {
        heatmaps: 'Grad-CAM maps (ReLU of the gradient-weighted sum of the named conv layer\'s channels, white to red) for the teacher\'s predicted class, over a faint copy of the digit.',
        agreement: `How far each student's Grad-CAM maps agree with the teacher's on ${n} test digits (cosine, Spearman rank correlation, overlap of the top-8 pixels).`,
      },
      extraSections: [
        '<h2 id="evaluation-heading">Evaluation</h2>',
        `<table id="evaluation"><thead><tr><th>model</th><th>macro-F1</th><th>weight bytes</th><th>compression vs teacher</th><th>latency ms/row</th></tr></thead><tbody>${
          evals.map((e, k) => `<tr><td>${escapeHtml(models[k]!.name)}</td><td>${e.macroF1.toFixed(3)}</td><td>${e.size!.bytes}</td><td>${e.compressionRatio!.toFixed(1)}×</td><td>${e.latency!.msPerRow.toFixed(4)} (batch ${e.latency!.batchSize}, ${e.latency!.backend})</td></tr>`).join('')}</tbody></table>`,
      ],
    });
    const reportFile = join(out, 'conv-report.html'), resultsFile = join(out, 'conv-results.json');
    writeFileSync(reportFile, html);
    writeFileSync(resultsFile, JSON.stringify({
      options: opts, rows,
      evaluation: evals.map((e, k) => ({ model: models[k]!.name, ...e })),
      gradCamAgreement: agreement.map((a) => ({ student: a.student, ...a.comparison.mean, predictionAgreement: a.predictionAgreement })),
      history: { teacher: teacherLogs, kd: kdRun.history, gradCamKd: alignedRun.history },
    }, null, 2));
    log(`Wrote ${reportFile} and ${resultsFile}.`);
    return { reportFile, resultsFile };
  } finally {
    for (const o of owned) o.dispose();
  }
}
