/**
 * The demo's whole job as a function (the CLI in main.ts parses options and calls it; the tests call
 * it with a few epochs): train teacher and students, time the loss, explain, write the report.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import cliProgress from 'cli-progress';
import * as tf from '@tensorflow/tfjs';
// registers the 'wasm' backend the demo trains on (a dev dependency, like tfjs itself)
import '@tensorflow/tfjs-backend-wasm';
import { backend } from '../kernels/backend.js';
import { Distiller } from '../train/distiller.js';
import { accuracy, agreement, argmaxRows, expectedCalibrationError, seededPermutation } from '../train/metrics.js';
import { cacheTeacherLogits } from '../train/teacher-cache.js';
import { fileSystemHandler } from '../train/io.js';
import { loadDigits, splitDigits, type Split } from './digits.js';
import { crossEntropyFromLogits, denseModel } from './models.js';
import { timeLoss } from './loss-timing.js';
import { DEMO_EXPLAINERS, EXPLAINER_NAMES, GRADCAM_REFUSAL, explainStudents, writeReport, type DemoExplainer } from './explanations.js';
import { checkChoice } from '../explain/model.js';
import { renderReport, type ReportModelRow, type ReportTrainingRun } from './report.js';
import { demoExtras } from './extras.js';


export interface DemoOptions {
  epochs: number; teacherEpochs: number; temperature: number; alpha: number; alignWeight: number;
  explainRows: number; explainSteps: number; pictures: number; seed: number; out: string; quiet?: boolean;
  /** Training rows whose labels the students see (stratified, the same number per class); the rest are the unlabelled transfer set. */
  labelled: number;
  /** Students trained per kind, with seeds seed, seed + 1, ...: initial weights, row order and which rows are labelled. */
  seeds: number;
  /** Epochs of the scratch student over its few labelled rows (it sees far fewer rows per epoch). */
  scratchEpochs: number;
  /** Of the seeds, how many also train an explanation-aligned student (its double backward pass costs three plain ones). */
  alignedSeeds: number;
  /**
   * The attribution method of the heatmaps, agreement and faithfulness tables: 'ig' (integrated
   * gradients, default), 'kernelshap' or 'lime' (both on 2×2-pixel superpixels). 'gradcam' is
   * refused (dense models): `npm run demo:conv` shows Grad-CAM.
   */
  explainer?: DemoExplainer;
  /** KernelSHAP coalitions or LIME samples per digit (default 512). */
  explainSamples?: number;
  /** KernelSHAP's background: this many training digits (default 8). */
  backgroundRows?: number;
}

/** Checks `explainer` before anything trains: a wrong name, or Grad-CAM on dense models, fails at once. */
export function checkDemoExplainer(v: unknown): DemoExplainer {
  if (v === 'gradcam') throw new RangeError(GRADCAM_REFUSAL);
  return checkChoice(v, 'explainer', DEMO_EXPLAINERS, 'ig');
}

export interface DemoResult {
  reportFile: string;
  resultsFile: string;
}

const AGREEMENT_NOTE = 'Student attributions against the teacher’s on the same inputs and targets, averaged over the examples: cosine similarity, ' +
  'Spearman rank correlation, and the share of the teacher’s top-k features (by |attribution|) that the student also ranks in its top k.';

const cap = (t: string): string => t.charAt(0).toUpperCase() + t.slice(1);

/** The heatmaps' explanation, naming the method: what its red and blue mean. */
function heatmapNote(method: DemoExplainer, description: string): string {
  const meaning = method === 'ig'
    ? 'Red pixels push towards that class, blue ones away from it'
    : method === 'kernelshap'
      ? 'Each 2×2 superpixel carries its Shapley value: red ones push the logit of that class up, blue ones down (relative to the background digits)'
      : 'Each 2×2 superpixel carries its coefficient in the local linear surrogate: red ones push the logit of that class up, blue ones down (relative to a blank digit)';
  return `${cap(description)} for the class the teacher predicts. ${meaning}; each map is scaled to its own clipped maximum, so compare where the colour is, not how strong it is across maps.`;
}

/** One line per stage on stdout, so a log (CI, a pipe) shows where the run is and how long each part took. */
class Stages {
  private n = 0;
  private t0 = performance.now();
  constructor(private readonly total: number) {}
  start(what: string): void {
    this.n++;
    this.t0 = performance.now();
    console.log(`[${this.n}/${this.total}] ${what}`);
  }
  done(summary = ''): void {
    console.log(`      done in ${((performance.now() - this.t0) / 1000).toFixed(1)} s${summary ? `: ${summary}` : ''}`);
  }
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
/** Sample standard deviation (n - 1); 0 for a single value. */
const sd = (xs: number[]): number => {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1));
};

/** `labelled` rows of a split, the same number from each class, chosen by a seeded shuffle. */
function labelledRows(train: Split, labelled: number, seed: number): Int32Array {
  const perClass = Math.floor(labelled / 10);
  if (perClass < 1) throw new RangeError(`labelled must be at least 10 (one row per class), got ${labelled}`);
  const taken = new Array<number>(10).fill(0), out: number[] = [];
  for (const r of seededPermutation(train.n, seed * 104729 + 17)) {
    const c = train.y[r]!;
    if (taken[c]! < perClass) { taken[c]!++; out.push(r); }
  }
  return Int32Array.from(out.sort((a, b) => a - b));
}

function subset(s: Split, rows: Int32Array): Split {
  const x = new Float32Array(rows.length * 64), y = new Int32Array(rows.length);
  rows.forEach((r, i) => { x.set(s.x.subarray(r * 64, r * 64 + 64), i * 64); y[i] = s.y[r]!; });
  return { x, y, n: rows.length };
}

const params = (m: tf.LayersModel): number => m.countParams();
const toX = (s: Split): tf.Tensor2D => tf.tensor2d(s.x, [s.n, 64]);

/** Trains with plain cross-entropy through model.fit, with a progress bar over epochs; returns the time and per-epoch logs. */
async function trainCE(model: tf.Sequential, train: Split, val: Split, epochs: number, label: string, seed: number, quiet: boolean, learningRate = 1e-3): Promise<{ seconds: number; epochs: ReportTrainingRun['epochs'] }> {
  model.compile({ optimizer: tf.train.adam(learningRate), loss: crossEntropyFromLogits });
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

/**
 * Runs the demo on tfjs's wasm backend (the cpu backend took 140 s for the teacher alone here; the
 * wasm one about a quarter of that, and it prints no "use tfjs-node" banner). The backend in use
 * before is restored afterwards. Every tensor it makes (models, optimizers, data) is disposed when
 * it returns or throws.
 */
export async function runDemo(opts: DemoOptions): Promise<DemoResult> {
  const before = tf.getBackend();
  await tf.setBackend('wasm');
  const owned: { dispose(): void }[] = [];
  try {
    return await runDemoWith(opts, owned);
  } finally {
    for (const o of owned) o.dispose();
    if (before && before !== 'wasm') await tf.setBackend(before);
  }
}

interface StudentRun { model: tf.Sequential; seconds: number; epochs: ReportTrainingRun['epochs'] }

async function runDemoWith(opts: DemoOptions, owned: { dispose(): void }[]): Promise<DemoResult> {
  const quiet = opts.quiet === true;
  const explainer = checkDemoExplainer(opts.explainer);
  const stages = new Stages(7);
  stages.start('loading the UCI digits and splitting them');
  const data = splitDigits(loadDigits(), opts.seed);
  const { train, val, test } = data;
  const seeds = Array.from({ length: opts.seeds }, (_, i) => opts.seed + i);
  stages.done(`${train.n} train / ${val.n} validation / ${test.n} test rows; kdfuse backend ${backend().name}, tfjs backend ${tf.getBackend()}`);

  stages.start(`training the teacher (64-256-256-10, ${opts.teacherEpochs} epochs, all ${train.n} labelled training rows)`);
  const teacher = denseModel([256, 256], opts.seed);
  owned.push(teacher);
  const teacherRun = await trainCE(teacher, train, val, opts.teacherEpochs, 'teacher', opts.seed, quiet);
  const tLog = logitsOf(teacher, test);
  const tPred = argmaxRows(tLog, test.n, 10);
  stages.done(`test accuracy ${(100 * accuracy(tPred, test.y)).toFixed(1)}%`);

  const xTrain = toX(train);
  const xVal = toX(val);
  owned.push(xTrain, xVal);
  // the teacher's logits for every training row, once: the unlabelled rows are its transfer set
  const cache = cacheTeacherLogits(teacher, xTrain);

  const distil = async (model: tf.Sequential, labels: Int32Array, seed: number, alignWeight: number): Promise<StudentRun> => {
    const distiller = new Distiller({
      teacher, student: model, temperature: opts.temperature, alpha: opts.alpha, optimizer: 'adam', learningRate: 3e-3,
      ...(alignWeight > 0 ? { explanationAlignment: { inputGradient: { weight: alignWeight } } } : {}),
    });
    try {
      const history = await distiller.fit(xTrain, labels, {
        epochs: opts.epochs, batchSize: 64, seed, teacherLogits: cache,
        validationData: [xVal, val.y], verbose: quiet ? 'quiet' : 'progress',
      });
      return { model, seconds: history.epochs.reduce((a, e) => a + e.seconds, 0), epochs: history.epochs };
    } finally {
      distiller.dispose();
    }
  };

  const kinds = ['scratch', 'plain', 'aligned'] as const;
  const runs: Record<(typeof kinds)[number], StudentRun[]> = { scratch: [], plain: [], aligned: [] };
  const alignedSeeds = seeds.slice(0, Math.min(opts.alignedSeeds, seeds.length));
  stages.start(`training ${2 * seeds.length + alignedSeeds.length} students (64-16-10; seeds ${seeds.join(', ')}): each sees the labels of ${opts.labelled} ` +
    `training rows; the distilled ones also see the teacher's scores on the other ${train.n - opts.labelled}`);
  for (const seed of seeds) {
    const rows = labelledRows(train, opts.labelled, seed);
    // the hard term skips rows labelled -100 (the loss's ignoreIndex): those rows teach through the teacher only
    const partial = new Int32Array(train.n).fill(-100);
    for (const r of rows) partial[r] = train.y[r]!;
    const init = seed + 1000;  // the three kinds start from the same weights for a seed
    const scratch = denseModel([16], init), plain = denseModel([16], init);
    owned.push(scratch, plain);
    const s = await trainCE(scratch, subset(train, rows), val, opts.scratchEpochs, `scratch, seed ${seed}`, seed, quiet, 3e-3);
    runs.scratch.push({ model: scratch, ...s });
    runs.plain.push(await distil(plain, partial, seed, 0));
    const acc = (m: tf.LayersModel) => `${(100 * accuracy(argmaxRows(logitsOf(m, test), test.n, 10), test.y)).toFixed(1)}%`;
    let line = `      seed ${seed}: scratch ${acc(scratch)}, KD ${acc(plain)}`;
    if (alignedSeeds.includes(seed)) {
      const aligned = denseModel([16], init);
      owned.push(aligned);
      runs.aligned.push(await distil(aligned, partial, seed, opts.alignWeight));
      line += `, explanation-aligned KD ${acc(aligned)}`;
    }
    console.log(line);
  }
  stages.done();

  const names = {
    teacher: 'teacher 64-256-256-10', scratch: 'student, scratch 64-16-10',
    plain: 'student, KD 64-16-10', aligned: 'student, explanation-aligned KD 64-16-10',
  };
  const measure = (m: tf.LayersModel) => {
    const logits = logitsOf(m, test), pred = argmaxRows(logits, test.n, 10);
    return { acc: accuracy(pred, test.y), agree: agreement(pred, tPred), ece: expectedCalibrationError(logits, test.n, 10, test.y) };
  };
  const teacherM = measure(teacher);
  const rows: ReportModelRow[] = [{
    model: names.teacher, parameters: params(teacher), testAccuracy: teacherM.acc, teacherAgreement: teacherM.agree, ece: teacherM.ece,
    trainSeconds: teacherRun.seconds, seeds: 1, labelledRows: train.n,
  }];
  for (const k of kinds) {
    const ms = runs[k].map((r) => measure(r.model));
    const accs = ms.map((m) => m.acc);
    rows.push({
      model: names[k], parameters: params(runs[k][0]!.model), testAccuracy: mean(accs), ...(accs.length > 1 ? { testAccuracySd: sd(accs) } : {}),
      testAccuracies: accs, teacherAgreement: mean(ms.map((m) => m.agree)), ece: mean(ms.map((m) => m.ece)),
      trainSeconds: mean(runs[k].map((r) => r.seconds)), seeds: runs[k].length, labelledRows: opts.labelled,
    });
  }
  const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
  const pm = (r: ReportModelRow) => (r.testAccuracySd === undefined ? pct(r.testAccuracy) : `${pct(r.testAccuracy)} ± ${(100 * r.testAccuracySd).toFixed(1)}`);
  console.log(`\nTest set: ${test.n} held-out rows (one row = ${(100 / test.n).toFixed(2)}%). Students: mean ± sd over ${seeds.length} seeds ` +
    `(the explanation-aligned one over ${alignedSeeds.length}); ` +
    `each saw ${opts.labelled} labelled rows, the distilled ones also the teacher's logits on ${train.n - opts.labelled} unlabelled rows ` +
    `(T=${opts.temperature}, alpha=${opts.alpha} on the soft term; aligned term weight ${opts.alignWeight}).`);
  console.table(rows.map((r) => ({
    model: r.model, params: r.parameters, labels: r.labelledRows, runs: r.seeds, 'test acc': pm(r), 'agrees w/ teacher': pct(r.teacherAgreement),
    ECE: r.ece.toFixed(3), 'train s': r.trainSeconds.toFixed(1),
  })));
  const gain = rows[2]!.testAccuracy - rows[1]!.testAccuracy;
  // the seeds pair the two kinds (same initial weights, labelled rows and order): the paired differences' spread
  const diffs = runs.plain.map((r, i) => accuracy(argmaxRows(logitsOf(r.model, test), test.n, 10), test.y) -
    accuracy(argmaxRows(logitsOf(runs.scratch[i]!.model, test), test.n, 10), test.y));
  const gainSe = sd(diffs) / Math.sqrt(diffs.length);
  const kdBuys = `KD over scratch: ${gain >= 0 ? '+' : ''}${(100 * gain).toFixed(1)} points` +
    (diffs.length > 1 ? ` (standard error of the paired difference over ${diffs.length} seeds: ${(100 * gainSe).toFixed(1)}).` : ' (one seed: no spread).');
  console.log(kdBuys);

  stages.start('timing the loss: fused vs composed from tfjs ops');
  const batchTiming = timeLoss(64, 10, opts.temperature, opts.alpha);
  const fullTiming = timeLoss(train.n, 10, opts.temperature, opts.alpha, 50);
  stages.done();
  console.log('Loss forward+backward, median per call (same run, same tensors):');
  console.table([
    { shape: '64x10 (a training batch)', 'fused ms': batchTiming.fusedMs.toFixed(3), 'composed tfjs ms': batchTiming.composedMs.toFixed(3), speedup: `${(batchTiming.composedMs / batchTiming.fusedMs).toFixed(1)}x` },
    { shape: `${train.n}x10 (the training set)`, 'fused ms': fullTiming.fusedMs.toFixed(3), 'composed tfjs ms': fullTiming.composedMs.toFixed(3), speedup: `${(fullTiming.composedMs / fullTiming.fusedMs).toFixed(1)}x` },
  ]);

  const out = resolve(opts.out);
  mkdirSync(out, { recursive: true });

  // Do the students look where the teacher looks? One attribution method for all, on held-out digits (first seed's students).
  const nExplain = Math.min(opts.explainRows, test.n);
  stages.start(`explaining ${nExplain} test digits with ${EXPLAINER_NAMES[explainer]} (teacher and seed ${seeds[0]}'s students)`);
  const explained = await explainStudents({ name: 'teacher', slug: 'teacher', model: teacher }, [
    { name: names.scratch, slug: 'scratch', model: runs.scratch[0]!.model },
    { name: names.plain, slug: 'kd', model: runs.plain[0]!.model },
    { name: names.aligned, slug: 'aligned-kd', model: runs.aligned[0]!.model },
  ], test, train, {
    rows: opts.explainRows, pictures: opts.pictures, steps: opts.explainSteps, outDir: join(out, 'heatmaps'), explainer, seed: opts.seed,
    ...(opts.explainSamples === undefined ? {} : { samples: opts.explainSamples }),
    ...(opts.backgroundRows === undefined ? {} : { backgroundRows: opts.backgroundRows }),
  });
  stages.done();
  const how = explained.explainer;
  console.log(`Attributions against the teacher's (${how.description}, the teacher's predicted class; mean over ${nExplain} test digits):`);
  console.table(explained.summary.map((r) => ({
    student: r.student, cosine: r.cosine.toFixed(3), spearman: r.spearman.toFixed(3), 'top-8 overlap': r.topKIntersection.toFixed(3),
    'same prediction': pct(r.predictionAgreement),
  })));

  stages.start('evaluating every model (per-class F1, size, latency) and KernelSHAP for one digit');
  const extras = await demoExtras({ name: names.teacher, slug: 'teacher', model: teacher }, [
    { name: names.scratch, slug: 'scratch', model: runs.scratch[0]!.model },
    { name: names.plain, slug: 'kd', model: runs.plain[0]!.model },
    { name: names.aligned, slug: 'aligned-kd', model: runs.aligned[0]!.model },
  ], train, test, { seed: opts.seed, outDir: join(out, 'kernelshap') });
  stages.done();

  stages.start('writing the report, the students and results.json');
  const html = renderReport({
    extraSections: extras.sections,
    title: 'kdfuse demo: distilling a digit classifier, and where teacher and students look',
    notes: [
      `UCI handwritten digits (8x8): ${train.n} train / ${val.n} validation / ${test.n} test rows (split seed ${opts.seed}). ` +
        `The teacher learned from all ${train.n} labelled training rows. Each student saw the labels of only ${opts.labelled} of them ` +
        `(${opts.labelled / 10} per class); the distilled students also saw the teacher's logits on the other ${train.n - opts.labelled} ` +
        `(an unlabelled transfer set). Students: mean ± standard deviation over ${seeds.length} seeds (initial weights, row order and ` +
        `which rows are labelled); the explanation-aligned student over the first ${alignedSeeds.length}. ${kdBuys}`,
      `Distillation at T = ${opts.temperature}, alpha = ${opts.alpha} on the soft term; the explanation-aligned student adds ` +
        `${opts.alignWeight} x the cosine distance between its input gradients and the teacher's (teacher's top class).`,
      `Teacher and students explained with ${how.description} on ${nExplain} test digits, for the teacher's predicted class.`,
      `Loss forward+backward on a 64x10 batch: fused ${batchTiming.fusedMs.toFixed(3)} ms vs composed tfjs ops ${batchTiming.composedMs.toFixed(3)} ms.`,
    ],
    models: rows,
    sectionTitles: {
      heatmaps: `Where the models look: ${how.name}`,
      agreement: `Do students look where the teacher looks? (${how.name})`,
      faithfulness: `Are the ${how.name} attributions faithful?`,
    },
    sectionNotes: { heatmaps: heatmapNote(how.method, how.description), agreement: `${cap(how.description)}. ${AGREEMENT_NOTE}` },
    heatmaps: { groups: explained.heatmaps },
    agreement: explained.agreement,
    faithfulness: explained.faithfulness,
    training: [
      { name: 'teacher (cross-entropy)', epochs: teacherRun.epochs },
      { name: `student, scratch (cross-entropy, seed ${seeds[0]})`, epochs: runs.scratch[0]!.epochs },
      { name: `student, KD (seed ${seeds[0]})`, epochs: runs.plain[0]!.epochs },
      { name: `student, explanation-aligned KD (seed ${seeds[0]})`, epochs: runs.aligned[0]!.epochs },
    ],
  });
  const reportFile = writeReport(out, html);

  await runs.plain[0]!.model.save(fileSystemHandler(join(out, 'student')));
  await runs.aligned[0]!.model.save(fileSystemHandler(join(out, 'student-aligned')));
  writeFileSync(join(out, 'results.json'), JSON.stringify({
    options: opts, seeds, rows, kdOverScratch: { meanDifference: gain, standardError: gainSe },
    explainer: { method: how.method, name: how.name, description: how.description, settings: how.settings, rows: nExplain },
    explanations: explained.summary,
    faithfulness: explained.faithfulness.map((f) => ({ model: f.model, deletionAuc: f.deletion.meanAuc, insertionAuc: f.insertion.meanAuc,
      randomDeletionAuc: f.deletion.control?.meanAuc, randomInsertionAuc: f.insertion.control?.meanAuc })),
    history: { kd: runs.plain[0]!.epochs, alignedKd: runs.aligned[0]!.epochs, teacher: teacherRun.epochs, scratch: runs.scratch[0]!.epochs },
    lossTiming: { batch: batchTiming, full: fullTiming },
    ...extras.results,
  }, null, 2));
  stages.done();
  console.log(`\nWrote ${reportFile} (open it in a browser), the heatmaps in ${join(out, 'heatmaps')}, seed ${seeds[0]}'s students in ` +
    `${join(out, 'student')} and ${join(out, 'student-aligned')}, and the figures in ${join(out, 'results.json')}.`);
  return { reportFile, resultsFile: join(out, 'results.json') };
}
