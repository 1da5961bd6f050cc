// kd.linearDistillationLoss (the fused head) against an oracle written here: logits
// hidden · weight + bias in float64, the library's float64 reference loss on them (itself tested
// against closed forms in accuracy.test.ts) for d loss / d logits, and the three products in
// float64. Tolerances are the issue's: loss 1e-5 relative, gradients 1e-5 · max|g|.
import { describe, expect, it } from 'vitest';
import {
  backend, distillationLoss, linearDistillationLoss, linearDistillationLossAsync, setThreads,
  type Divergence, type LinearDistillationLossOptions, type MissingMass, type Reduction,
} from '../src/index.js';
import * as reference from '../src/kernels/reference.js';
import { linearDistillationLoss as linearReference } from '../src/kernels/linear-reference.js';
import { checkLinearArgs } from '../src/kernels/linear-validate.js';
import { checkDistillArgs } from '../src/kernels/validate.js';
import { nativeAddon } from '../src/kernels/native.js';
import { expectArrayClose, expectClose, hasNaN, normal, randomLabels, randomLogits, rng } from './helpers.js';

interface Oracle { loss: number; losses?: Float64Array; gh: Float64Array; gw: Float64Array; gb: Float64Array }

/** The top k of each row's log-softmax (some rows padded), and the dense teacher it stands for. */
function topkOf(t: Float32Array, rows: number, cols: number, k: number, missing: MissingMass) {
  const indices = new Int32Array(rows * k).fill(-1), logprobs = new Float32Array(rows * k), dense = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const row = Array.from(t.subarray(r * cols, (r + 1) * cols));
    const m = Math.max(...row), lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
    const order = row.map((_, c) => c).sort((a, b) => row[b]! - row[a]!);
    const listed = Math.min(cols, r % 3 === 1 ? Math.max(1, k - 2) : k);
    let mass = 0;
    for (let j = 0; j < listed; j++) {
      indices[r * k + j] = order[j]!;
      logprobs[r * k + j] = row[order[j]!]! - lse;
      mass += Math.exp(logprobs[r * k + j]!);
    }
    const rest = missing === 'uniform' && listed < cols ? Math.log(Math.max(1 - mass, 0) / (cols - listed)) : -Infinity;
    dense.fill(rest, r * cols, (r + 1) * cols);
    for (let j = 0; j < listed; j++) dense[r * cols + indices[r * k + j]!] = logprobs[r * k + j]!;
  }
  return { indices, logprobs, dense };
}

function oracle(o: LinearDistillationLossOptions, denseTeacher: Float32Array): Oracle {
  const { rows, dim, cols, hidden, weight, bias } = o;
  const z = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < cols; j++) {
      let s = bias ? bias[j]! : 0;
      for (let k = 0; k < dim; k++) s += hidden[r * dim + k]! * weight[k * cols + j]!;
      z[r * cols + j] = s;
    }
  }
  const res = reference.distillationLoss(checkDistillArgs({
    student: z, teacher: denseTeacher, rows, cols, labels: o.labels, temperature: o.temperature, alpha: o.alpha,
    scaleByTemperatureSquared: o.scaleByTemperatureSquared, labelSmoothing: o.labelSmoothing, reduction: o.reduction,
    divergence: o.divergence, beta: o.beta, gradOutput: o.gradOutput,
  }));
  const g = res.gradStudent!;
  const gh = new Float64Array(rows * dim), gw = new Float64Array(dim * cols), gb = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < cols; j++) {
      const v = g[r * cols + j]!;
      gb[j]! += v;
      for (let k = 0; k < dim; k++) {
        gh[r * dim + k]! += v * weight[k * cols + j]!;
        gw[k * cols + j]! += v * hidden[r * dim + k]!;
      }
    }
  }
  return { loss: res.loss, ...(res.losses ? { losses: Float64Array.from(res.losses) } : {}), gh, gw, gb };
}

interface Shape { rows: number; dim: number; cols: number; div: Divergence; red: Reduction; labels: boolean; bias: boolean; T: number; eps: number; k: number; missing: MissingMass }

function makeCase(s: Shape, seed: number): { o: LinearDistillationLossOptions; dense: Float32Array } {
  const rand = rng(seed);
  const hidden = randomLogits(rand, s.rows * s.dim, 1);
  const weight = randomLogits(rand, s.dim * s.cols, 2 / Math.sqrt(s.dim));
  const t = randomLogits(rand, s.rows * s.cols, 2.5);
  const o: LinearDistillationLossOptions = {
    hidden, weight, rows: s.rows, dim: s.dim, cols: s.cols, temperature: s.T, divergence: s.div, reduction: s.red, beta: 0.3,
    ...(s.bias ? { bias: randomLogits(rand, s.cols, 0.5) } : {}),
    ...(s.labels ? { labels: randomLabels(rand, s.rows, s.cols, -100, 0.25), labelSmoothing: s.eps } : {}),
    ...(s.red === 'none' ? { gradOutput: Float32Array.from({ length: s.rows }, () => 0.5 + Math.abs(normal(rand))) } : { gradOutput: 0.75 }),
  };
  if (s.k === 0) return { o: { ...o, teacher: t }, dense: t };
  const tk = topkOf(t, s.rows, s.cols, s.k, s.missing);
  return { o: { ...o, k: s.k, teacherIndices: tk.indices, teacherLogprobs: tk.logprobs, missingMass: s.missing }, dense: tk.dense };
}

function expectMatches(got: ReturnType<typeof linearDistillationLoss>, want: Oracle, what: string, bias: boolean): void {
  expectClose(got.loss, want.loss, 1e-5, `${what} loss`, 1e-9);
  if (want.losses) expectArrayClose(got.losses!, want.losses, 1e-5, `${what} losses`);
  expectArrayClose(got.gradHidden!, want.gh, 1e-5, `${what} gradHidden`);
  expectArrayClose(got.gradWeight!, want.gw, 1e-5, `${what} gradWeight`);
  if (bias) expectArrayClose(got.gradBias!, want.gb, 1e-5, `${what} gradBias`);
  else expect(got.gradBias).toBeUndefined();
}

const divs: Divergence[] = ['kl', 'reverse-kl', 'jsd'];
const reds: Reduction[] = ['mean', 'sum', 'none'];
const shapes: Shape[] = [];
for (let i = 0; i < 30; i++) {
  const k = i >= 18 ? (i % 2 ? 4 : 12) : 0;
  const missing: MissingMass = i % 4 < 2 ? 'renormalize' : 'uniform';
  const div = k && missing === 'renormalize' ? (i % 2 ? 'jsd' : 'kl') : divs[i % 3]!;
  shapes.push({
    rows: [1, 7, 20][i % 3]!, dim: [1, 5, 32][(i >> 1) % 3]!, cols: [3, 40, 700][(i >> 2) % 3]!, div, red: reds[(i >> 1) % 3]!,
    labels: i % 4 !== 0, bias: i % 2 === 0, T: [1, 2, 4][(i >> 2) % 3]!, eps: i % 3 === 2 ? 0.1 : 0, k, missing,
  });
}

describe('linearDistillationLoss: loss and gradients against the float64 oracle', () => {
  it.each(shapes.map((s, i) => [i, s] as const))('case %i', (i, s) => {
    const { o, dense } = makeCase(s, 1000 + i);
    const want = oracle(o, dense);
    const what = `case ${i} (${backend().name}, ${s.k ? `top-${s.k} ${s.missing}` : 'dense'}, ${s.div}, ${s.red})`;
    expectMatches(linearDistillationLoss(o), want, what, s.bias);
    // the plain-loop reference (the fallback without the addon) meets the same oracle
    expectMatches(linearReference(checkLinearArgs(o)), want, `${what} reference`, s.bias);
  });

  it('rows in several blocks: 20 rows × 300000 classes (the head forms ~16 MB of logits at a time)', () => {
    const s: Shape = { rows: 20, dim: 3, cols: 300000, div: 'kl', red: 'mean', labels: true, bias: true, T: 2, eps: 0, k: 0, missing: 'renormalize' };
    const { o, dense } = makeCase(s, 77);
    expectMatches(linearDistillationLoss(o), oracle(o, dense), 'blocks', true);
  });

  it('equals distillationLoss on the materialised logits, and the same bits with 1 and 2 threads', () => {
    const s: Shape = { rows: 50, dim: 16, cols: 301, div: 'jsd', red: 'mean', labels: true, bias: true, T: 2, eps: 0.05, k: 0, missing: 'renormalize' };
    const { o } = makeCase(s, 5);
    const z = new Float32Array(s.rows * s.cols);
    for (let r = 0; r < s.rows; r++) for (let j = 0; j < s.cols; j++) {
      let v = o.bias![j]!;
      for (let k = 0; k < s.dim; k++) v += o.hidden[r * s.dim + k]! * o.weight[k * s.cols + j]!;
      z[r * s.cols + j] = v;
    }
    const composed = distillationLoss({ student: z, teacher: o.teacher!, rows: s.rows, cols: s.cols, labels: o.labels, temperature: 2, divergence: 'jsd', beta: 0.3, labelSmoothing: 0.05, gradOutput: 0.75 });
    const fused = linearDistillationLoss(o);
    expectClose(fused.loss, composed.loss, 1e-5, 'loss');
    const before = backend().threads;
    try {
      setThreads(1);
      const one = linearDistillationLoss(o);
      setThreads(2);
      const two = linearDistillationLoss(o);
      expect(two.loss).toBe(one.loss);
      expect(Buffer.from(two.gradWeight!.buffer).equals(Buffer.from(one.gradWeight!.buffer))).toBe(true);
      expect(Buffer.from(two.gradHidden!.buffer).equals(Buffer.from(one.gradHidden!.buffer))).toBe(true);
    } finally {
      setThreads(before);
    }
  });

  it('finite differences of the loss agree with the gradients of hidden, weight and bias (float64 steps on the reference)', () => {
    const s: Shape = { rows: 3, dim: 4, cols: 6, div: 'kl', red: 'mean', labels: true, bias: true, T: 2, eps: 0, k: 0, missing: 'renormalize' };
    const { o } = makeCase(s, 9);
    const labels = Int32Array.from([1, 4, 0]);
    const base = { ...o, labels, reduction: 'sum' as const, gradOutput: 1 };
    const g = linearDistillationLoss(base);
    const h = 1e-2;
    const probe = (name: 'hidden' | 'weight' | 'bias', i: number): number => {
      const plus = Float32Array.from(base[name]!), minus = Float32Array.from(base[name]!);
      plus[i]! += h;
      minus[i]! -= h;
      return (linearDistillationLoss({ ...base, [name]: plus }).loss - linearDistillationLoss({ ...base, [name]: minus }).loss) / (2 * h);
    };
    for (let i = 0; i < s.rows * s.dim; i++) expect(Math.abs(probe('hidden', i) - g.gradHidden![i]!)).toBeLessThan(2e-3);
    for (let i = 0; i < s.dim * s.cols; i++) expect(Math.abs(probe('weight', i) - g.gradWeight![i]!)).toBeLessThan(2e-3);
    for (let i = 0; i < s.cols; i++) expect(Math.abs(probe('bias', i) - g.gradBias![i]!)).toBeLessThan(2e-3);
  });
});

describe('linearDistillationLoss: forms and outputs', () => {
  const s: Shape = { rows: 9, dim: 8, cols: 50, div: 'kl', red: 'none', labels: true, bias: true, T: 2, eps: 0, k: 0, missing: 'renormalize' };

  it('fills caller-owned out arrays and returns them', () => {
    const { o } = makeCase(s, 11);
    const out = { gradHidden: new Float32Array(9 * 8), gradWeight: new Float32Array(8 * 50), gradBias: new Float32Array(50), losses: new Float32Array(9) };
    const r = linearDistillationLoss({ ...o, out });
    expect(r.gradHidden).toBe(out.gradHidden);
    expect(r.gradWeight).toBe(out.gradWeight);
    expect(r.gradBias).toBe(out.gradBias);
    expect(r.losses).toBe(out.losses);
    const fresh = linearDistillationLoss(o);
    expect(Array.from(out.gradWeight)).toEqual(Array.from(fresh.gradWeight!));
  });

  it('skips the gradients it is told to skip', () => {
    const { o } = makeCase(s, 12);
    const r = linearDistillationLoss({ ...o, computeHiddenGrad: false, computeWeightGrad: false });
    expect(r.gradHidden).toBeUndefined();
    expect(r.gradWeight).toBeUndefined();
    expect(r.gradBias).toBeUndefined();
    expect(r.loss).toBe(linearDistillationLoss(o).loss);
  });

  it('async: the same result, computed on copies of the inputs (they may change at once)', async () => {
    const big: Shape = { ...s, rows: 64, dim: 64, cols: 2000, red: 'mean' };
    const { o } = makeCase(big, 13);
    const want = linearDistillationLoss(o);
    const hidden = Float32Array.from(o.hidden);
    const p = linearDistillationLossAsync({ ...o, hidden });
    hidden.fill(0);
    const got = await p;
    expect(got.loss).toBe(want.loss);
    expect(Array.from(got.gradWeight!)).toEqual(Array.from(want.gradWeight!));
  });
});

describe('linearDistillationLoss: bad input', () => {
  const s: Shape = { rows: 4, dim: 3, cols: 10, div: 'kl', red: 'mean', labels: true, bias: true, T: 2, eps: 0, k: 0, missing: 'renormalize' };
  const { o } = makeCase(s, 21);

  it('names the argument in TypeError / RangeError', () => {
    expect(() => linearDistillationLoss({ ...o, hidden: [1, 2] as unknown as Float32Array })).toThrow(new TypeError('hidden must be a Float32Array, got Array'));
    expect(() => linearDistillationLoss({ ...o, weight: new Float32Array(29) })).toThrow(new RangeError('weight must have dim * cols = 30 elements, got 29'));
    expect(() => linearDistillationLoss({ ...o, bias: new Float32Array(3) })).toThrow(new RangeError('bias must have cols = 10 elements, got 3'));
    expect(() => linearDistillationLoss({ ...o, dim: 0 })).toThrow(new RangeError('dim must be an integer >= 1, got 0'));
    expect(() => linearDistillationLoss({ ...o, teacher: undefined })).toThrow(new TypeError('teacher must be a Float32Array, got undefined'));
    expect(() => linearDistillationLoss({ ...o, k: 2, teacherIndices: new Int32Array(8), teacherLogprobs: new Float32Array(8) })).toThrow(TypeError);
    expect(() => linearDistillationLoss({ ...o, temperature: -1 })).toThrow(RangeError);
    expect(() => linearDistillationLoss({ ...o, student: o.hidden } as unknown as LinearDistillationLossOptions)).toThrow(/unknown option 'student'|student/);
    expect(() => linearDistillationLoss({ ...o, out: { gradWeight: o.weight } })).toThrow(new RangeError('out.gradWeight must not share memory with weight'));
  });

  it('refuses NaN or Infinity in hidden, weight, bias and teacher, writing nothing', () => {
    for (const [name, len] of [['hidden', 12], ['weight', 30], ['bias', 10], ['teacher', 40]] as const) {
      const bad = Float32Array.from(o[name]!);
      bad[len - 1] = NaN;
      const out = { gradWeight: new Float32Array(30).fill(7) };
      expect(() => linearDistillationLoss({ ...o, [name]: bad, out }), name).toThrow(RangeError);
      expect(out.gradWeight[0], name).toBe(7);
      expect(() => linearDistillationLoss({ ...o, [name]: bad }), name).toThrow(name === 'teacher' ? /teacher must not contain NaN/ : new RegExp(`${name} must be finite, got NaN at index ${len - 1}`));
    }
  });

  it('logits that overflow at the temperature: the error speaks of the head\'s logits; out is all NaN', () => {
    const hidden = new Float32Array(12).fill(1e30), weight = new Float32Array(30).fill(1e9);
    const out = { gradWeight: new Float32Array(30), gradHidden: new Float32Array(12) };
    expect(() => linearDistillationLoss({ ...o, hidden, weight, out })).toThrow(/student logits \(hidden · weight \+ bias\)/);
    if (backend().name !== 'reference') expect(hasNaN(out.gradWeight) && hasNaN(out.gradHidden)).toBe(true);
  });

  it('rejects in the async form', async () => {
    await expect(linearDistillationLossAsync({ ...o, dim: 2 })).rejects.toThrow(RangeError);
  });
});

describe('the addon entry alone (memory safety: it is callable without the TypeScript checks)', () => {
  const n = nativeAddon;
  const s: Shape = { rows: 4, dim: 3, cols: 10, div: 'kl', red: 'mean', labels: true, bias: true, T: 2, eps: 0, k: 0, missing: 'renormalize' };
  const { o } = makeCase(s, 31);
  it.skipIf(!n?.linearDistillationLoss)('refuses wrong types, short or overlapping arrays and detached buffers with typed errors', async () => {
    const call = (x: object) => () => n!.linearDistillationLoss!({ ...o, ...x });
    expect(call({ hidden: new Float64Array(12) })).toThrow(new TypeError('hidden must be a Float32Array, got Float64Array'));
    expect(call({ weight: new Float32Array(29) })).toThrow(new RangeError('weight must have dim * cols = 30 elements, got 29'));
    expect(call({ teacher: new Float32Array(39) })).toThrow(RangeError);
    expect(call({ rows: 2 ** 40 })).toThrow(RangeError);
    expect(call({ k: 2, teacherIndices: new Int32Array(8), teacherLogprobs: new Float32Array(7), teacher: undefined })).toThrow(/teacherLogprobs must have rows \* k = 8/);
    expect(call({ k: 2, teacherIndices: new Int32Array(8), teacherLogprobs: new Float32Array(8) })).toThrow(/not both/);
    const shared = new Float32Array(60);
    expect(call({ weight: shared.subarray(0, 30), out: { gradWeight: shared.subarray(20, 50) } })).toThrow(/must not share memory with weight/);
    expect(call({ out: { gradHidden: new Float32Array(4) } })).toThrow(/out.gradHidden must have at least rows \* dim = 12/);
    const gone = Float32Array.from(o.hidden);
    structuredClone(gone.buffer, { transfer: [gone.buffer] });
    expect(call({ hidden: gone })).toThrow(TypeError);
    expect(() => n!.linearDistillationLossArgs!(...([1, 2] as unknown as Parameters<NonNullable<NonNullable<typeof n>["linearDistillationLossArgs"]>>))).toThrow(/takes 25 arguments/);
    await expect(n!.linearDistillationLossAsync!({ ...o, bias: 'no' })).rejects.toThrow(TypeError);
    expect(() => n!.benchSgemm!({ m: 4, n: 4, k: 4, a: new Float32Array(15), b: new Float32Array(16), c: new Float32Array(16) })).toThrow(/a must have at least m \* k = 16/);
  });
});
