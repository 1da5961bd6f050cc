/**
 * The demo's whole job as a function (the CLI in main.ts parses options and calls it; the tests call
 * it with a few epochs): train teacher and students, time the loss, explain, write the report.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import cliProgress from 'cli-progress';
import * as tf from '@tensorflow/tfjs';
import { backend } from '../kernels/backend.js';
import { Distiller } from '../train/distiller.js';
import { accuracy, agreement, argmaxRows, expectedCalibrationError, seededPermutation } from '../train/metrics.js';
import { cacheTeacherLogits } from '../train/teacher-cache.js';
import { fileSystemHandler } from '../train/io.js';
import { loadDigits, splitDigits, type Split } from './digits.js';
import { crossEntropyFromLogits, denseModel } from './models.js';
import { timeLoss } from './loss-timing.js';
import { explainStudents, writeReport } from './explanations.js';
import { renderReport, type ReportTrainingRun } from './report.js';
import { demoExtras } from './extras.js';


export interface DemoOptions {
  epochs: number; teacherEpochs: number; temperature: number; alpha: number; alignWeight: number;
  explainRows: number; explainSteps: number; pictures: number; seed: number; out: string; quiet?: boolean;
}

export interface DemoResult {
  reportFile: string;
  resultsFile: string;
}



const params = (m: tf.LayersModel): number => m.countParams();
const toX = (s: Split): tf.Tensor2D => tf.tensor2d(s.x, [s.n, 64]);

/** Trains with plain cross-entropy through model.fit, with a progress bar over epochs; returns the time and per-epoch logs. */
async function trainCE(model: tf.Sequential, train: Split, val: Split, epochs: number, label: string, seed: number, quiet: boolean): Promise<{ seconds: number; epochs: ReportTrainingRun['epochs'] }> {
  model.compile({ optimizer: tf.train.adam(1e-3), loss: crossEntropyFromLogits });
  const x = toX(train), y = tf.tidy(() => tf.oneHot(tf.tensor1d(train.y, 'int32'), 10));
  const bar = quiet ? undefined : new cliProgress.SingleBar({ format: `${label.padEnd(18)} [{bar}] {value}/{total} epochs`, stream: process.stderr }, cliProgress.Presets.shades_classic);
  bar?.start(epochs, 0);
  const logs: ReportTrainingRun['epochs'] = [];
  let seconds = 0;
  // tfjs's own shuffle uses Math.random; a seeded row order per epoch keeps runs reproducible
  for (let e = 0; e < epochs; e++) {
    const t0 = performance.now();
    const order = tf.tensor1d(seededPermutation(train.n, seed * 7919 + e), 'int32');
    const xs = tf.gather(x, order), ys = tf.gather(y, order);
    const h = await model.fit(xs, ys, { epochs: 1, batchSize: 64, shuffle: false, verbose: 0 });
    tf.dispose([order, xs, ys]);
    seconds += (performance.now() - t0) / 1000;  // validation below is not training time
    logs.push({ loss: Number(h.history.loss?.[0]), valAccuracy: accuracy(argmaxRows(logitsOf(model, val), val.n, 10), val.y) });
    bar?.increment();
  }
  bar?.stop();
  tf.dispose([x, y]);
  model.optimizer.dispose();  // made here: its Adam moments would outlive the demo
  return { seconds, epochs: logs };
}

function logitsOf(model: tf.LayersModel, s: Split): Float32Array {
  return tf.tidy(() => (model.predict(toX(s)) as tf.Tensor).dataSync() as Float32Array).slice();
}

/** Runs the demo; every tensor it makes (models, optimizers, data) is disposed when it returns or throws. */
export async function runDemo(opts: DemoOptions): Promise<DemoResult> {
  await tf.setBackend('cpu');
  const owned: { dispose(): void }[] = [];
  try {
    return await runDemoWith(opts, owned);
  } finally {
    for (const o of owned) o.dispose();
  }
}

async function runDemoWith(opts: DemoOptions, owned: { dispose(): void }[]): Promise<DemoResult> {
  const data = splitDigits(loadDigits(), opts.seed);
  const { train, val, test } = data;
  console.log(`kdfuse demo — UCI digits: ${train.n} train / ${val.n} validation / ${test.n} test rows; backend ${backend().name}, tfjs ${tf.getBackend()}`);

  const teacher = denseModel([256, 256], opts.seed);
  const scratch = denseModel([16], opts.seed + 1000);
  const student = denseModel([16], opts.seed + 1000);  // same initial weights as the scratch student
  const aligned = denseModel([16], opts.seed + 1000);  // and again, for explanation-aligned KD
  owned.push(teacher, scratch, student, aligned);

  const teacherRun = await trainCE(teacher, train, val, opts.teacherEpochs, 'teacher', opts.seed, opts.quiet === true);
  const scratchRun = await trainCE(scratch, train, val, opts.epochs, 'student (scratch)', opts.seed + 1, opts.quiet === true);

  const xTrain = toX(train);
  const xVal = toX(val);
  owned.push(xTrain, xVal);
  const cache = cacheTeacherLogits(teacher, xTrain);
  const distil = async (model: tf.Sequential, alignWeight: number) => {
    const distiller = new Distiller({
      teacher, student: model, temperature: opts.temperature, alpha: opts.alpha, optimizer: 'adam', learningRate: 1e-3,
      ...(alignWeight > 0 ? { explanationAlignment: { inputGradient: { weight: alignWeight } } } : {}),
    });
    const history = await distiller.fit(xTrain, train.y, {
      epochs: opts.epochs, batchSize: 64, seed: opts.seed, teacherLogits: cache,
      validationData: [xVal, val.y], verbose: opts.quiet ? 'quiet' : 'progress',
    });
    distiller.dispose();
    return { history, seconds: history.epochs.reduce((s, e) => s + e.seconds, 0) };
  };
  const plain = await distil(student, 0);
  const alignedRun = await distil(aligned, opts.alignWeight);

  const tLog = logitsOf(teacher, test), sLog = logitsOf(scratch, test), dLog = logitsOf(student, test), aLog = logitsOf(aligned, test);
  const tPred = argmaxRows(tLog, test.n, 10);
  const row = (name: string, m: tf.LayersModel, logits: Float32Array, seconds: number) => {
    const pred = argmaxRows(logits, test.n, 10);
    return {
      model: name,
      parameters: params(m),
      testAccuracy: accuracy(pred, test.y),
      teacherAgreement: agreement(pred, tPred),
      ece: expectedCalibrationError(logits, test.n, 10, test.y),
      trainSeconds: seconds,
    };
  };
  const names = {
    teacher: 'teacher 64-256-256-10', scratch: 'student, scratch 64-16-10',
    plain: 'student, KD 64-16-10', aligned: 'student, explanation-aligned KD 64-16-10',
  };
  const rows = [
    row(names.teacher, teacher, tLog, teacherRun.seconds),
    row(names.scratch, scratch, sLog, scratchRun.seconds),
    row(names.plain, student, dLog, plain.seconds),
    row(names.aligned, aligned, aLog, alignedRun.seconds),
  ];
  const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
  console.log('\nTest set, ' + test.n + ' rows (held out, seed ' + opts.seed + `); distillation T=${opts.temperature}, alpha=${opts.alpha} (on the soft term); ` +
    `explanation-aligned term weight ${opts.alignWeight}`);
  console.table(rows.map((r) => ({
    model: r.model, params: r.parameters, 'test acc': pct(r.testAccuracy), 'agrees w/ teacher': pct(r.teacherAgreement),
    ECE: r.ece.toFixed(3), 'train s': r.trainSeconds.toFixed(1),
  })));

  const batchTiming = timeLoss(64, 10, opts.temperature, opts.alpha);
  const fullTiming = timeLoss(train.n, 10, opts.temperature, opts.alpha, 50);
  console.log('Loss forward+backward, median per call (same run, same tensors):');
  console.table([
    { shape: '64x10 (a training batch)', 'fused ms': batchTiming.fusedMs.toFixed(3), 'composed tfjs ms': batchTiming.composedMs.toFixed(3), speedup: `${(batchTiming.composedMs / batchTiming.fusedMs).toFixed(1)}x` },
    { shape: `${train.n}x10 (the training set)`, 'fused ms': fullTiming.fusedMs.toFixed(3), 'composed tfjs ms': fullTiming.composedMs.toFixed(3), speedup: `${(fullTiming.composedMs / fullTiming.fusedMs).toFixed(1)}x` },
  ]);
  const batches = Math.ceil(train.n / 64) * opts.epochs;
  console.log(`Over the distilled run's ${batches} batches that is about ${(batches * batchTiming.fusedMs / 1000).toFixed(2)} s in the fused loss vs ${(batches * batchTiming.composedMs / 1000).toFixed(2)} s composed.`);

  const out = resolve(opts.out);
  mkdirSync(out, { recursive: true });

  // Do the students look where the teacher looks? Integrated gradients on held-out digits.
  process.stderr.write(opts.quiet ? '' : `explaining ${Math.min(opts.explainRows, test.n)} test digits with integrated gradients...\n`);
  const explained = await explainStudents({ name: 'teacher', slug: 'teacher', model: teacher }, [
    { name: names.scratch, slug: 'scratch', model: scratch },
    { name: names.plain, slug: 'kd', model: student },
    { name: names.aligned, slug: 'aligned-kd', model: aligned },
  ], test, { rows: opts.explainRows, pictures: opts.pictures, steps: opts.explainSteps, outDir: join(out, 'heatmaps') });
  console.log(`Attributions against the teacher's (integrated gradients, ${opts.explainSteps} Gauss-Legendre steps, zero baseline, ` +
    `the teacher's predicted class; mean over ${Math.min(opts.explainRows, test.n)} test digits):`);
  console.table(explained.summary.map((r) => ({
    student: r.student, cosine: r.cosine.toFixed(3), spearman: r.spearman.toFixed(3), 'top-8 overlap': r.topKIntersection.toFixed(3),
    'same prediction': pct(r.predictionAgreement),
  })));

  const extras = await demoExtras({ name: names.teacher, slug: 'teacher', model: teacher }, [
    { name: names.scratch, slug: 'scratch', model: scratch }, { name: names.plain, slug: 'kd', model: student }, { name: names.aligned, slug: 'aligned-kd', model: aligned },
  ], train, test, { seed: opts.seed, outDir: join(out, 'kernelshap') });
  const html = renderReport({
    extraSections: extras.sections,
    title: 'kdfuse demo: distilling a digit classifier, and where teacher and students look',
    notes: [
      `UCI handwritten digits (8x8): ${train.n} train / ${val.n} validation / ${test.n} test rows, seed ${opts.seed}. ` +
        `Distillation at T = ${opts.temperature}, alpha = ${opts.alpha} on the soft term; the explanation-aligned student adds ` +
        `${opts.alignWeight} x the cosine distance between its input gradients and the teacher's (teacher's top class).`,
      `Loss forward+backward on a 64x10 batch: fused ${batchTiming.fusedMs.toFixed(3)} ms vs composed tfjs ops ${batchTiming.composedMs.toFixed(3)} ms.`,
    ],
    models: rows,
    heatmaps: { groups: explained.heatmaps },
    agreement: explained.agreement,
    faithfulness: explained.faithfulness,
    training: [
      { name: 'teacher (cross-entropy)', epochs: teacherRun.epochs },
      { name: 'student, scratch (cross-entropy)', epochs: scratchRun.epochs },
      { name: 'student, KD', epochs: plain.history.epochs },
      { name: 'student, explanation-aligned KD', epochs: alignedRun.history.epochs },
    ],
  });
  const reportFile = writeReport(out, html);

  await student.save(fileSystemHandler(join(out, 'student')));
  await aligned.save(fileSystemHandler(join(out, 'student-aligned')));
  writeFileSync(join(out, 'results.json'), JSON.stringify({
    options: opts, rows, explanations: explained.summary,
    faithfulness: explained.faithfulness.map((f) => ({ model: f.model, deletionAuc: f.deletion.meanAuc, insertionAuc: f.insertion.meanAuc,
      randomDeletionAuc: f.deletion.control?.meanAuc, randomInsertionAuc: f.insertion.control?.meanAuc })),
    history: { kd: plain.history.epochs, alignedKd: alignedRun.history.epochs, teacher: teacherRun.epochs, scratch: scratchRun.epochs },
    lossTiming: { batch: batchTiming, full: fullTiming },
    ...extras.results,
  }, null, 2));
  console.log(`\nWrote ${reportFile} (open it in a browser), the heatmaps in ${join(out, 'heatmaps')}, the students in ` +
    `${join(out, 'student')} and ${join(out, 'student-aligned')}, and the figures in ${join(out, 'results.json')}.`);
  return { reportFile, resultsFile: join(out, 'results.json') };
}

