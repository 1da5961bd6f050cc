/**
 * Regression tests for the defects a reliability probe found (see docs/reliability.md): aliased
 * labels, results that cannot be allocated, SharedArrayBuffer-backed arrays, a teacher probability
 * that underflows float32, disposed tensors, and the small input edges of the tfjs helpers.
 * Each runs on whichever backend the suite runs on (`npm run test:reference` runs the reference).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import * as kd from '../src/index.js';
import * as kdtf from '../src/tfjs/index.js';
import { compareAttributions, heatmapColor } from '../src/explain/index.js';
import * as kdtrain from '../src/train/index.js';
import * as kdexplain from '../src/explain/index.js';
import { classInputGradient, rowCosine } from '../src/train/alignment.js';
import * as reference from '../src/kernels/reference.js';
import { checkDistillArgs } from '../src/kernels/validate.js';
import { expectArrayClose, randomLogits, rng } from './helpers.js';

const ROWS = 3, COLS = 5;
const rand = rng(13);
const S = randomLogits(rand, ROWS * COLS), T = randomLogits(rand, ROWS * COLS);
const native = kd.backend().name !== 'reference';

describe('outputs never share memory with labels or per-row gradOutput', () => {
  // The kernel re-reads labels after writing gradients: labels inside out.gradStudent crashed the
  // process (SEGV) on the native backend and gave NaN on the reference one.
  const labelsInside = (field: 'gradStudent' | 'gradTeacher') => {
    const buf = new ArrayBuffer(4 * ROWS * COLS);
    const out = new Float32Array(buf);
    const labels = new Int32Array(buf, 4 * COLS, ROWS);
    labels.set([1, 2, 3]);
    return { student: S, teacher: T, rows: ROWS, cols: COLS, labels, computeTeacherGrad: field === 'gradTeacher', out: { [field]: out } };
  };
  for (const field of ['gradStudent', 'gradTeacher'] as const) {
    it(`labels inside out.${field}: RangeError, sync and async`, async () => {
      const re = new RegExp(`^out\\.${field} must not share memory with labels`);
      expect(() => kd.distillationLoss(labelsInside(field))).toThrow(re);
      await expect(kd.distillationLossAsync(labelsInside(field))).rejects.toThrow(re);
    });
  }
  it('per-row gradOutput inside out.losses, labels inside out.losses: RangeError', () => {
    const buf = new Float32Array(ROWS + COLS * ROWS);
    expect(() => kd.distillationLoss({ student: S, teacher: T, rows: ROWS, cols: COLS, reduction: 'none', gradOutput: buf.subarray(0, ROWS), out: { losses: buf.subarray(0, ROWS) } }))
      .toThrow(/^out\.losses must not share memory with gradOutput/);
    const ab = new ArrayBuffer(4 * ROWS);
    const labels = new Int32Array(ab);
    expect(() => kd.distillationLoss({ student: S, teacher: T, rows: ROWS, cols: COLS, reduction: 'none', labels, out: { losses: new Float32Array(ab) } }))
      .toThrow(/^out\.losses must not share memory with labels/);
  });
  it('top-k loss: labels or teacherIndices inside out.gradStudent are a RangeError', () => {
    const k = 2;
    const indices = Int32Array.from([0, 1, 2, 3, 4, 0]), logprobs = Float32Array.from([-0.5, -1.5, -0.3, -2, -0.1, -3]);
    const buf = new ArrayBuffer(4 * ROWS * COLS);
    const gradStudent = new Float32Array(buf);
    const labels = new Int32Array(buf, 8, ROWS);
    labels.set([1, 2, 3]);
    const o = { student: S, rows: ROWS, cols: COLS, k, teacherIndices: indices, teacherLogprobs: logprobs };
    expect(() => kd.topkDistillationLoss({ ...o, labels, out: { gradStudent } })).toThrow(/^out\.gradStudent must not share memory with labels/);
    const ibuf = new ArrayBuffer(4 * ROWS * COLS);
    const inside = new Int32Array(ibuf, 4, ROWS * k);
    inside.set(indices);
    expect(() => kd.topkDistillationLoss({ ...o, teacherIndices: inside, out: { gradStudent: new Float32Array(ibuf) } }))
      .toThrow(/^out\.gradStudent must not share memory with teacherIndices/);
  });
  it('an output given but not computed may alias anything (it is not written)', () => {
    const buf = new ArrayBuffer(4 * ROWS * COLS);
    const labels = new Int32Array(buf, 0, ROWS);
    labels.set([0, 1, 2]);
    const r = kd.distillationLoss({ student: S, teacher: T, rows: ROWS, cols: COLS, labels, computeTeacherGrad: false, out: { gradTeacher: new Float32Array(buf) } });
    expect(Number.isFinite(r.loss)).toBe(true);
  });
});

describe('SharedArrayBuffer-backed arrays are ordinary memory on every backend', () => {
  const shared = (x: Float32Array): Float32Array => {
    const a = new Float32Array(new SharedArrayBuffer(x.byteLength));
    a.set(x);
    return a;
  };
  it('the loss, sync and async, with shared inputs and a shared out', async () => {
    const o = { student: S, teacher: T, rows: ROWS, cols: COLS, temperature: 2, labels: [0, 1, 2], computeTeacherGrad: true };
    const plain = kd.distillationLoss(o);
    const out = { gradStudent: shared(new Float32Array(ROWS * COLS)) };
    const sync = kd.distillationLoss({ ...o, student: shared(S), teacher: shared(T), out });
    expect(sync.loss).toBe(plain.loss);
    expect(Array.from(out.gradStudent)).toEqual(Array.from(plain.gradStudent!));
    const asy = await kd.distillationLossAsync({ ...o, student: shared(S), teacher: shared(T) });
    expect(asy.loss).toBe(plain.loss);
    expect(Array.from(asy.gradTeacher!)).toEqual(Array.from(plain.gradTeacher!));
    expect(kd.klDivergence({ student: shared(S), teacher: shared(T), rows: ROWS, cols: COLS }).loss)
      .toBe(kd.klDivergence({ student: S, teacher: T, rows: ROWS, cols: COLS }).loss);
  });
  it('softmax forward and backward', async () => {
    const y = kd.softmaxWithTemperature({ logits: S, rows: ROWS, cols: COLS, temperature: 3 });
    expect(Array.from(kd.softmaxWithTemperature({ logits: shared(S), rows: ROWS, cols: COLS, temperature: 3 }))).toEqual(Array.from(y));
    expect(Array.from(await kd.logSoftmaxWithTemperatureAsync({ logits: shared(S), rows: ROWS, cols: COLS, temperature: 3 })))
      .toEqual(Array.from(kd.logSoftmaxWithTemperature({ logits: S, rows: ROWS, cols: COLS, temperature: 3 })));
    const b = { output: y, gradOutput: T, rows: ROWS, cols: COLS, temperature: 3 };
    expect(Array.from(kd.softmaxWithTemperatureBackward({ ...b, output: shared(y), gradOutput: shared(T) })))
      .toEqual(Array.from(kd.softmaxWithTemperatureBackward(b)));
  });
});

describe('a teacher probability that underflows float32 is still > 0', () => {
  // log p = -120 is finite although exp(-120) is 0 in float32: the student's probability 0 there
  // makes KL(p || q) infinite (the documented rule), on every backend and every kernel.
  for (const cols of [2, 100, 3000]) {
    it(`KL is Infinity (cols ${cols}); reverse KL of the mirrored case too`, () => {
      const s = new Float32Array(cols).fill(-Infinity), t = new Float32Array(cols).fill(-Infinity);
      s[0] = 0; t[0] = 0; t[1] = -6;
      const r = kd.distillationLoss({ student: s, teacher: t, rows: 1, cols, temperature: 0.05 });
      expect(r.loss).toBe(Infinity);
      expect(r.gradStudent!.every(Number.isFinite)).toBe(true);
      expect(kd.distillationLoss({ student: t, teacher: s, rows: 1, cols, temperature: 0.05, divergence: 'reverse-kl' }).loss).toBe(Infinity);
      // the other way round nothing is infinite: the teacher puts no mass where the student has none
      expect(kd.distillationLoss({ student: t, teacher: s, rows: 1, cols, temperature: 0.05 }).loss).toBeGreaterThanOrEqual(0);
      expect(Number.isFinite(kd.distillationLoss({ student: t, teacher: s, rows: 1, cols, temperature: 0.05 }).loss)).toBe(true);
    });
  }
});

describe('disposed tensors and the small edges of the tfjs helpers', () => {
  it('kdfuse/tfjs ops and packTargets name a disposed argument', () => {
    const s = tf.tensor2d(S, [ROWS, COLS]), t = tf.tensor2d(T, [ROWS, COLS]);
    const y = tf.tensor1d([0, 1, 2], 'int32');
    t.dispose();
    expect(() => kdtf.distillationLoss(s, t)).toThrow(TypeError);
    expect(() => kdtf.distillationLoss(s, t)).toThrow(/disposed/);
    y.dispose();
    expect(() => kdtf.packTargets(y, s as tf.Tensor2D)).toThrow(/^labels must be a live tf\.Tensor, got a disposed one/);
    s.dispose();
    expect(() => kdtf.softmaxWithTemperature(s)).toThrow(TypeError);
  });
  it('compareAttributions names a disposed argument', async () => {
    const a = tf.ones([2, 4]), b = tf.ones([2, 4]);
    b.dispose();
    await expect(compareAttributions(a, b)).rejects.toThrow(/^b must be a live tf\.Tensor, got a disposed one/);
    a.dispose();
  });
  it('packTargets accepts a single-class teacher [rows, 1]', () => {
    const packed = kdtf.packTargets([0, 0, -100], tf.zeros([3, 1]) as tf.Tensor2D);
    expect(packed.shape).toEqual([3, 1]);
    // log p = 0 for the only class: the label column holds 1 - log p, an ignored row log p
    expect(Array.from(packed.dataSync())).toEqual([1, 1, 0]);
    packed.dispose();
  });
  it('heatmapColor(NaN) is a RangeError, not [NaN, NaN, NaN]', () => {
    expect(() => heatmapColor(Number.NaN)).toThrow(RangeError);
    expect(heatmapColor(2)).toEqual(heatmapColor(1));
  });
});

// A result the process cannot allocate is a RangeError naming its size; V8's own allocation ended
// the process (FATAL ERROR ... Allocation failed, exit 134). The child allocates its inputs, then
// its address space is capped (prlimit) below what the result needs.
const here = fileURLToPath(new URL('.', import.meta.url));
const dist = fileURLToPath(new URL('../dist/index.cjs', import.meta.url));
const prlimit = ['/usr/bin/prlimit', '/bin/prlimit'].find(existsSync);
describe.skipIf(!native || !prlimit || !existsSync(dist) || process.platform !== 'linux')('a result that cannot be allocated', () => {
  const child = (mode: 'sync' | 'async'): Promise<{ code: number | null; out: string }> => new Promise((resolve) => {
    const script = `
      const kd = require(${JSON.stringify(dist)});
      const n = 32 * 1024 * 1024;
      const s = new Float32Array(n), t = new Float32Array(n);
      const vm = require('fs').readFileSync('/proc/self/status', 'utf8').match(/VmSize:\\s+(\\d+)/)[1];
      process.stdout.write('ready ' + vm + '\\n');
      process.stdin.once('data', () => {
        const o = { student: s, teacher: t, rows: 32, cols: n / 32 };
        const report = (e) => console.log('error', e.constructor.name, e.message);
        try {
          if (${JSON.stringify(mode)} === 'async') kd.distillationLossAsync(o).then(() => console.log('ok'), report);
          else { kd.distillationLoss(o); console.log('ok'); }
        } catch (e) { report(e); }
      });`;
    const p = spawn(process.execPath, ['-e', script], { cwd: here, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /ready (\d+)/.exec(out);
      if (m && !out.includes('capped')) {
        out += 'capped\n';
        // room for what is mapped now plus 64 MiB: less than the 128 MiB result (and the async copies)
        const limit = (Number(m[1]) + 64 * 1024) * 1024;
        spawn(prlimit!, [`--pid=${p.pid}`, `--as=${limit}`]).on('exit', () => p.stdin.end('go\n'));
      }
    });
    p.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    p.on('exit', (code) => resolve({ code, out }));
  });
  for (const mode of ['sync', 'async'] as const) {
    it(`${mode}: RangeError naming the bytes, and the process lives on`, async () => {
      const { code, out } = await child(mode);
      expect(out).toMatch(/error RangeError out of memory.* \d+ bytes/);
      expect(code).toBe(0);
    }, 30_000);
  }
});

// A loop that never yields to the event loop cannot get its dropped results back (Node runs their
// finalizers between tasks), so what it may hold is bounded: half the cache's limit of unreleased
// results, then ordinary V8 buffers that the collector frees inside the loop. Before, results past
// the bound were malloc-ed external buffers (freed only between tasks too) and freed blocks stayed in
// glibc's heap: 600 calls with 4 MiB results left the process 2.4 GB larger, 2.2 GB after yielding.
describe.skipIf(!native || !existsSync(dist) || process.platform !== 'linux')('memory of a loop that never yields', () => {
  it('stays within half the cache limit after a full GC, and returns after one yield', async () => {
    const script = `
      const kd = require(${JSON.stringify(dist)});
      const MiB = 1024 * 1024, rss = () => process.memoryUsage().rss / MiB;
      kd.setBufferCacheLimit(256 * MiB);
      const rows = 1024, cols = 1024, s = new Float32Array(rows * cols).fill(0.5), t = new Float32Array(rows * cols).fill(0.25);
      kd.distillationLoss({ student: s, teacher: t, rows, cols });
      global.gc();
      const start = rss();
      for (let i = 0; i < 300; i++) kd.distillationLoss({ student: s, teacher: t, rows, cols });
      global.gc();
      const inLoop = rss() - start, pending = kd.bufferCacheInfo().pendingBytes / MiB;
      setImmediate(() => { global.gc(); setImmediate(() => {
        console.log(JSON.stringify({ inLoop, pending, afterYield: rss() - start, cached: kd.bufferCacheInfo().cachedBytes / MiB }));
      }); });`;
    const out = await new Promise<string>((resolve) => {
      const p = spawn(process.execPath, ['--expose-gc', '-e', script], { cwd: here });
      let text = '';
      p.stdout.on('data', (d: Buffer) => { text += d.toString(); });
      p.stderr.on('data', (d: Buffer) => { text += d.toString(); });
      p.on('exit', () => resolve(text));
    });
    const r = JSON.parse(out.trim().split('\n').pop()!) as { inLoop: number; pending: number; afterYield: number; cached: number };
    // 300 calls allocate 1200 MiB of results; the bound is 128 MiB of unreleased results (+ slack
    // for V8's heap and the allocator), and after a yield only the cache's blocks remain
    expect(r.pending).toBeLessThanOrEqual(128);
    expect(r.inLoop).toBeLessThan(128 + 96);
    expect(r.afterYield).toBeLessThan(r.cached + 64);
  }, 60_000);
});

// Findings of the fuzzers (docs/reliability.md), each on the backend the suite runs on. Before the
// fixes the native backend returned NaN (F3), a NaN or 0 gradient (F7, F8) and Infinity (F9), the
// reference backend NaN (F10), and the helpers read past their arrays or ran for minutes (F4).
describe('fuzzing findings', () => {
  const f32 = (...v: number[]) => new Float32Array(v);
  it('F3: a temperature whose float32 1/T is Infinity is a RangeError, not NaN', () => {
    expect(() => kd.softmaxWithTemperature({ logits: f32(0, -1, -2), rows: 1, cols: 3, temperature: 2e-110 }))
      .toThrow(/temperature must be at least 1\.1754943508222875e-38/);
    expect(() => kd.distillationLoss({ student: f32(0, 1), teacher: f32(0, 1), rows: 1, cols: 2, temperature: 1e-39 }))
      .toThrow(RangeError);
    // the smallest accepted temperature still computes (a one-hot softmax), for logits whose z = s * 2^126
    // stays below 2^127 in magnitude (the range rule, F12)
    expect(Array.from(kd.softmaxWithTemperature({ logits: f32(0, -1, -1.5), rows: 1, cols: 3, temperature: 2 ** -126 }))).toEqual([1, 0, 0]);
  });
  it('F13: a temperature whose float32 1/T is not normal is a RangeError (a -Infinity row passed as NaN)', () => {
    const logits = f32(1, -Infinity, 0, -Infinity);
    expect(() => kd.softmaxWithTemperature({ logits, rows: 2, cols: 2, temperature: 2e236 })).toThrow(/temperature must be at most 8\.507059173023462e\+37/);
    expect(() => kd.softmaxWithTemperatureBackward({ output: f32(0.5, 0.5), gradOutput: f32(1, 0), rows: 1, cols: 2, temperature: 1e39 })).toThrow(RangeError);
    // the largest accepted temperature computes: z is tiny, the softmax uniform over the finite logits
    expect(Array.from(kd.softmaxWithTemperature({ logits, rows: 2, cols: 2, temperature: 2 ** 126 }))).toEqual([1, 0, 1, 0]);
  });
  it('F7, F8: a gradOutput that is not a normal float32 is a RangeError', () => {
    const o = { student: f32(1, 2), teacher: f32(1, 2), rows: 1, cols: 2 };
    for (const g of [5e173, -2.6e-69, 1e-40]) expect(() => kd.distillationLoss({ ...o, gradOutput: g })).toThrow(/gradOutput must be 0 or of a magnitude/);
    expect(Array.from(kd.distillationLoss({ ...o, gradOutput: 0 }).gradStudent!, Math.abs)).toEqual([0, 0]);
    expect(kd.distillationLoss({ ...o, gradOutput: 3e38 }).loss).toBe(0);
  });
  // every path: small rows (cols <= 64), chunked rows, softmax, the top-k student, the top-k teacher
  it.each([3, 1000])('F9: a finite logit below the maximum that 1/T carries out of float32 is a RangeError (cols %i)', (cols) => {
    const student = new Float32Array(cols).fill(1), teacher = new Float32Array(cols);
    student[cols - 2] = -3.4e38;
    expect(() => kd.distillationLoss({ student, teacher, rows: 1, cols, temperature: 0.05 })).toThrow(/student logits \/ temperature stay below 2\^127 = 1\.7014118346046923e\+38 in magnitude \(half of float32's range\)/);
    expect(() => kd.distillationLoss({ student: teacher, teacher: student, rows: 1, cols, temperature: 0.05 })).toThrow(/teacher logits \/ temperature stay below 2\^127 = 1\.7014118346046923e\+38 in magnitude \(half of float32's range\)/);
    expect(() => kd.softmaxWithTemperature({ logits: student, rows: 1, cols, temperature: 0.05 })).toThrow(/logits \/ temperature stay below 2\^127 = 1\.7014118346046923e\+38 in magnitude \(half of float32's range\)/);
    const topk = { student, rows: 1, cols, k: 2, teacherIndices: new Int32Array([0, 1]), teacherLogprobs: f32(-0.1, -3) };
    expect(() => kd.topkDistillationLoss({ ...topk, temperature: 0.05 })).toThrow(/student logits \/ temperature stay below 2\^127 = 1\.7014118346046923e\+38 in magnitude \(half of float32's range\)/);
    expect(() => kd.topkDistillationLoss({ ...topk, student: teacher, teacherLogprobs: f32(-0.1, -3.4e38), temperature: 0.05 }))
      .toThrow(/teacher logits \/ temperature stay below 2\^127 = 1\.7014118346046923e\+38 in magnitude \(half of float32's range\)/);
    // the same logits at T = 2 (z = -1.7e38, inside the range rule), and -Infinity logits at T < 1, are fine
    expect(Number.isFinite(kd.distillationLoss({ student, teacher, rows: 1, cols, temperature: 2 }).loss)).toBe(true);
    student[cols - 2] = -Infinity;
    expect(Number.isFinite(kd.distillationLoss({ student, teacher: student, rows: 1, cols, temperature: 0.05 }).loss)).toBe(true);
  });
  it.each([3, 3000])('F12: logits whose z - max z would leave float32 are a RangeError; up to 2^127 they compute (cols %i)', (cols) => {
    // s / T of 3.1e38 and -5.5e37 are each inside float32, their difference is not: the loss was
    // Infinity where the exact one is finite (0.00275 for the fuzzer's 3-column row)
    const student = new Float32Array(cols), teacher = new Float32Array(cols);
    student[0] = 1.5572209e37;
    student[cols - 1] = -2.7289662e36;
    expect(() => kd.distillationLoss({ student, teacher, rows: 1, cols, temperature: 0.05 })).toThrow(/stay below 2\^127/);
    expect(() => kd.softmaxWithTemperature({ logits: student, rows: 1, cols, temperature: 0.05 })).toThrow(/stay below 2\^127/);
    // with a -Infinity logit hiding the finite minimum from the cheap check (the exact pass decides)
    student[1] = -Infinity;
    expect(() => kd.distillationLoss({ student, teacher: student, rows: 1, cols, temperature: 0.05 })).toThrow(/student logits/);
    // just inside the rule: z = +-1.7e38 (q one-hot at column 0, p uniform), checked against the
    // closed form KL = -log cols - (1/cols) sum_c log q_c with log q_c = z_c - z_0 (the log-sum is 0)
    student.fill(0);
    student[0] = 8.5e36;
    student[cols - 1] = -8.5e36;
    const got = kd.distillationLoss({ student, teacher, rows: 1, cols, temperature: 0.05, scaleByTemperatureSquared: false }).loss;
    const z0 = Math.fround(8.5e36 * Math.fround(1 / 0.05));
    // sum_c (z_c - z0) = 0 (column 0) + (cols - 2)(-z0) + (-2 z0) = -cols z0
    const want = -Math.log(cols) + z0;
    expect(Math.abs(got - want) / want).toBeLessThan(1e-5);
  });
  it('F10: alpha = 0 drops the soft term even where the divergence is infinite', () => {
    const r = kd.distillationLoss({ student: f32(0, -Infinity, 1), teacher: f32(0, 1, 2), labels: new Int32Array([2]), alpha: 0, rows: 1, cols: 3, temperature: 2 });
    // cross-entropy of softmax([0, -inf, 1]) at class 2: log(1 + e^-1)
    expect(Math.abs(r.loss - Math.log1p(Math.exp(-1)))).toBeLessThan(1e-6);
  });
  it('F4: the train metrics check their sizes', () => {
    expect(() => kdtrain.argmaxRows(new Float32Array(3), 2 ** 31, 2 ** 31)).toThrow(/logits must have rows \* cols/);
    expect(() => kdtrain.argmaxRows(new Float32Array(6), 2, 4)).toThrow(RangeError);
    expect(() => kdtrain.argmaxRows([1, 2] as unknown as Float32Array, 1, 2)).toThrow(TypeError);
    expect(() => kdtrain.expectedCalibrationError(new Float32Array(3), 1, 3, [0], 1e9)).toThrow(/bins must be an integer in \[1, 10000\]/);
    expect(() => kdtrain.expectedCalibrationError(new Float32Array(3), 1, 3, [], 10)).toThrow(/labels must have rows = 1/);
    expect(() => kdtrain.seededPermutation(2 ** 31, 1)).toThrow(RangeError);
    expect(() => kdtrain.accuracy(new Int32Array(2), [1])).toThrow(RangeError);
    expect(Array.from(kdtrain.argmaxRows(f32(0, 2, 1, 5, 4, 3), 2, 3))).toEqual([1, 0]);
  });
  it('F6: classInputGradient and rowCosine name their arguments', () => {
    const a = tf.ones([2, 3]), b = tf.ones([2, 4]);
    try {
      expect(() => rowCosine(a, b)).toThrow(/a and b must have the same shape/);
      expect(() => rowCosine(a, 'x' as unknown as tf.Tensor)).toThrow(/b must be a tf.Tensor/);
      expect(() => classInputGradient((x) => x, [1] as unknown as tf.Tensor, tf.ones([1, 1]) as tf.Tensor2D)).toThrow(/x must be a tf.Tensor/);
    } finally {
      a.dispose();
      b.dispose();
    }
  });
});

describe('JS fuzzer findings: the train and explain helpers name their arguments', () => {
  const bad = (f: () => unknown, cls: new (...a: never[]) => Error, re: RegExp): void => {
    let err: unknown;
    try {
      f();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(cls);
    expect((err as Error).message).toMatch(re);
  };
  it('hintLoss, attentionMap and attentionTransferLoss check their tensors and p (tfjs op errors before)', () => {
    const a = tf.ones([2, 3, 3, 4]), s = tf.tensor(['x', 'y']), gone = tf.ones([2]);
    gone.dispose();
    try {
      bad(() => kdtrain.hintLoss(new Map() as unknown as tf.Tensor, a), TypeError, /studentFeature must be a tf.Tensor/);
      bad(() => kdtrain.hintLoss(a, s), TypeError, /teacherFeature must be a float32 or int32 tensor, got a string one/);
      bad(() => kdtrain.attentionMap(gone), TypeError, /activation must be a live tf.Tensor/);
      bad(() => kdtrain.attentionMap(a, { p: 2 } as unknown as number), TypeError, /p must be a number/);
      bad(() => kdtrain.attentionMap(a, -1), RangeError, /p must be a finite number > 0/);
      bad(() => kdtrain.attentionMap(tf.zeros([0, 2, 2, 1])), RangeError, /non-empty activation/);
      bad(() => kdtrain.attentionTransferLoss(a, 'x' as unknown as tf.Tensor), TypeError, /teacherActivation must be a tf.Tensor/);
    } finally {
      a.dispose();
      s.dispose();
    }
  });
  it('applyRegressor refuses a kernel that does not fit the features (a tfjs matMul error before)', () => {
    const kernel = tf.ones([5, 2]), bias = tf.zeros([2]), x = tf.ones([3, 4]);
    try {
      const r = { teacher: 't', student: 's', kind: 'linear', kernel, bias } as unknown as Parameters<typeof kdtrain.applyRegressor>[0];
      bad(() => kdtrain.applyRegressor(r, x, [2]), RangeError, /regressor.kernel \[5, 2\] does not fit studentFeature \[3, 4\].*\(4\)/);
    } finally {
      kernel.dispose();
      bias.dispose();
      x.dispose();
    }
  });
  it('teacherLogitsBatch checks the cache it indexes', () => {
    bad(() => kdtrain.teacherLogitsBatch({ rows: 2 } as unknown as kdtrain.TeacherLogits, [0]), TypeError, /cache.cols must be an integer >= 1/);
    bad(() => kdtrain.teacherLogitsBatch({ rows: 2, cols: 3, logits: new Float32Array(5) }, [0]), RangeError, /cache.logits must hold rows \* cols = 6/);
  });
  it('explainers: inputs that do not fit the model are a RangeError naming the shape (tfjs ValueError before)', async () => {
    const model = tf.sequential({ layers: [tf.layers.dense({ units: 2, inputShape: [4] })] });
    const x = tf.ones([1, 2, 4]);
    try {
      const err = await kdexplain.integratedGradients(model, x).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RangeError);
      expect((err as Error).message).toMatch(/model does not take inputs of shape \[.*2, 4\]/);
    } finally {
      x.dispose();
      model.dispose();
    }
  });
  it('error classes and name arguments do not throw on a disposed tensor given as a value', () => {
    const t = tf.ones([1]);
    t.dispose();
    expect(new kdtrain.NonFiniteLossError(t as unknown as number, 1, NaN).message).toMatch(/at epoch object, batch 1/);
    expect(new kd.DeviceUnavailableError(t as unknown as string)).toBeInstanceOf(Error);
    // JS fuzz run of 2026-12-06 (seed 18, case 73657): String() of the disposed tensor threw
    expect(new kdtrain.SecondOrderGradientError('k', 'cpu', t as unknown as string).message).toBe('object');
    bad(() => kdtrain.checkTopKTeacher(null, t as unknown as string), TypeError, /teacher must be a TopKTeacher/);
  });
  it("setDevice('cuda') and kd.cuda without a device throw DeviceUnavailableError", () => {
    if (kd.cuda.available()) return;  // a machine with a device has nothing to refuse
    // a build without CUDA says so; one with CUDA on a machine without a device says that
    bad(() => kd.setDevice('cuda'), kd.DeviceUnavailableError, /no CUDA device|kdfuse was built without CUDA/);
    bad(() => kd.cuda.upload(new Float32Array(4)), kd.DeviceUnavailableError, /no CUDA device|kdfuse was built without CUDA/);
  });
});

describe('fuzzing findings: float32 overflow and rounding inside the loss', () => {
  const f32 = (...v: number[]) => new Float32Array(v);
  /** The result against the float64 reference backend, inside docs/accuracy.md's gradient bound. */
  const againstReference = (o: kd.DistillationLossOptions, what: string) => {
    const got = kd.distillationLoss(o);
    const want = reference.distillationLoss(checkDistillArgs(o));
    const a = checkDistillArgs(o);
    let maxZ = 0;
    for (const x of [a.student, a.teacher]) for (const v of x) if (Number.isFinite(v)) maxZ = Math.max(maxZ, Math.abs(v) / a.temperature);
    const w = (a.labels ? a.alpha : 1) * (a.scaleByTemperatureSquared ? a.temperature ** 2 : 1);
    const c = (w / a.temperature) * Math.abs(a.gradOutput) / (a.reduction === 'mean' ? a.rows : 1);
    const floor = 2 ** -18 * (1 + maxZ) * c;
    for (const g of [got.gradStudent, got.gradTeacher]) if (g) for (const v of g) expect(Number.isFinite(v), `${what}: every gradient entry finite`).toBe(true);
    expectArrayClose(got.gradStudent!, want.gradStudent!, 1e-5, `${what} gradStudent`, 1e-10, floor);
    if (got.gradTeacher) expectArrayClose(got.gradTeacher, want.gradTeacher!, 1e-5, `${what} gradTeacher`, 1e-10, floor);
    return got;
  };
  it('F14: a pass-3 constant beyond float32 (reverse KL, a teacher logit of 3.4e38) gives the finite gradient', () => {
    // KL(q || p) = 4.7e37 times (1 - q_0); times the coefficient 14.6 the constant overflows float32, while
    // every entry of the gradient is below 1.5e38: Infinity before
    againstReference({ student: f32(0, 1, 2, 3), teacher: f32(3.4e38, -3.4e38, 0, 1), rows: 1, cols: 4, temperature: 7.3,
      divergence: 'reverse-kl', gradOutput: -2, reduction: 'sum' }, 'F14');
  });
  it('coefficient times log-ratio overflowing before pass 3 subtracts (KL teacher gradient, T = 100) gives the finite gradient', () => {
    // the teacher gradient is 100 p (d - KL), d = 4.8e36 where p = 1: 100 p d overflowed, and NaN came out
    const got = againstReference({ student: f32(-2.83e38, 1.95e38, 0, 1e38), teacher: f32(2.25e38, -2.1e38, 1.6e38, 0), rows: 1, cols: 4,
      temperature: 100, reduction: 'sum', computeTeacherGrad: true }, 'KL at T = 100');
    expect(Number.isFinite(got.loss)).toBe(true);
  });
  it('an upstream gradient whose coefficient leaves float32 (1e36 at T = 1e4) gives 0 where p = q, not NaN', () => {
    const s = f32(0.5, 1, -2, 3, 0.25, 0.5, -1, 2);
    for (const divergence of ['kl', 'reverse-kl', 'jsd'] as const) {
      const r = kd.distillationLoss({ student: s, teacher: s.slice(), rows: 2, cols: 4, temperature: 1e4, gradOutput: 1e36,
        reduction: 'sum', divergence, computeTeacherGrad: true });
      expect(Array.from(r.gradStudent!, Math.abs), divergence).toEqual(new Array(8).fill(0));
      expect(Array.from(r.gradTeacher!, Math.abs), divergence).toEqual(new Array(8).fill(0));
    }
  });
  it('top-k: an upstream gradient whose coefficient leaves float32 gives the dense reference gradient, not NaN', () => {
    const rows = 2, cols = 6, k = 2;
    const student = Float32Array.from({ length: rows * cols }, (_, i) => 1e-3 * (i % 5));
    const teacherIndices = Int32Array.from([0, 3, 5, 1]), teacherLogprobs = f32(-0.5, -1.5, -0.2, -2.5);
    const dense = kd.densifyTopKTeacher({ indices: teacherIndices, logprobs: teacherLogprobs, rows, k, cols }, 'uniform');
    for (const divergence of ['jsd', 'reverse-kl'] as const) {
      const o = { rows, cols, temperature: 1e4, gradOutput: 1e36, reduction: 'sum' as const, divergence };
      const got = kd.topkDistillationLoss({ ...o, student, k, teacherIndices, teacherLogprobs, missingMass: 'uniform' });
      for (const v of got.gradStudent!) expect(Number.isNaN(v), divergence).toBe(false);
      const want = reference.distillationLoss(checkDistillArgs({ ...o, student, teacher: dense }));
      // |c| = T |g| = 1e40, max|z| ~ 3e-4: the statement's 2^-18 (1 + max|z|) |c|
      expectArrayClose(got.gradStudent!, want.gradStudent!, 1e-5, `top-k ${divergence}`, 1e-10, 2 ** -18 * 1e40);
    }
  });
  it('F19: a -Infinity logit (a column outside one support) does not skew the log-sum correction at T = 100', () => {
    // the correction of F15 read the teacher mass at a student -Infinity column as rounding: JSD at
    // T = 100 was 4e-4 off (fuzzer), reverse KL and KL the same way with the roles swapped
    const rand = rng(19);
    const cols = 4096;  // the column's mass, about 1/cols at T = 100, must be below the correction's 2^-10 gate
    for (const divergence of ['jsd', 'reverse-kl', 'kl'] as const) {
      const student = randomLogits(rand, cols, 1), teacher = randomLogits(rand, cols, 1);
      if (divergence === 'kl') teacher[9] = -Infinity;  // KL(p || q): a teacher zero is the mismatch that stays finite
      else student[9] = -Infinity;
      const o = { student, teacher, rows: 1, cols, temperature: 100, divergence };
      const got = kd.distillationLoss(o).loss, want = reference.distillationLoss(checkDistillArgs(o)).loss;
      expect(Math.abs(got - want), `${divergence}: ${got} vs ${want}`).toBeLessThanOrEqual(1e-5 * Math.abs(want));
    }
  });
  it('F15: near-equal rows at T = 1e4 keep the loss within 1e-8 of the float64 reference over 64 rows', () => {
    // the float32 exponentials of each log-sum shift every log-ratio by about 2^-25, which added
    // T^2 delta^2 / 2 per row: 2.6e-9 a row before, 1.7e-7 over these 64 rows
    const r = rng(2026);
    const normal = () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
    const rows = 64, cols = 10;
    const teacher = Float32Array.from({ length: rows * cols }, normal);
    const student = Float32Array.from(teacher, (v) => v + 1e-4 * normal());
    for (const divergence of ['kl', 'reverse-kl', 'jsd'] as const) {
      const o = { student, teacher, rows, cols, temperature: 1e4, divergence, reduction: 'sum' as const };
      const got = kd.distillationLoss(o).loss, want = reference.distillationLoss(checkDistillArgs(o)).loss;
      expect(want).toBeLessThan(1e-3);  // the statement's absolute regime
      expect(Math.abs(got - want), `${divergence}: |${got} - ${want}|`).toBeLessThanOrEqual(1e-8);
    }
  });
});
