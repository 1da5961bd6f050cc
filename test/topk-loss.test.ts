// kd.topkDistillationLoss against its contract: the dense float64 reference loss with the
// densified teacher (written here afresh, from the contract's words, not from the library's code).
import { describe, expect, it } from 'vitest';
import {
  backend, setSimd, setThreads, topkDistillationLoss, topkDistillationLossAsync,
  type Divergence, type MissingMass, type Reduction, type TopKDistillationLossOptions,
} from '../src/index.js';
import * as reference from '../src/kernels/reference.js';
import { topkDistillationLoss as topkReference } from '../src/kernels/topk-reference.js';
import { checkTopkArgs } from '../src/kernels/topk-validate.js';
import { checkDistillArgs } from '../src/kernels/validate.js';
import { expectArrayClose, expectClose, normal, randomLabels, randomLogits, rng } from './helpers.js';

/** A teacher's top-k (or k random columns, in random order) of a random full distribution. */
function randomTopK(rand: () => number, rows: number, cols: number, k: number, padFraction: number, scale = 3) {
  const indices = new Int32Array(rows * k), logprobs = new Float32Array(rows * k);
  for (let r = 0; r < rows; r++) {
    const z = Array.from({ length: cols }, () => normal(rand) * scale);
    const m = Math.max(...z);
    const lse = m + Math.log(z.reduce((s, v) => s + Math.exp(v - m), 0));
    const order = z.map((_, c) => c);
    if (rand() < 0.7) order.sort((a, b) => z[b]! - z[a]!);  // the top k, as engines return them
    else for (let i = cols - 1; i > 0; i--) { const j = Math.floor(rand() * (i + 1)); [order[i], order[j]] = [order[j]!, order[i]!]; }
    const listed = rand() < padFraction ? 1 + Math.floor(rand() * (k - 1)) : k;  // padded rows list fewer (at least one)
    for (let j = 0; j < k; j++) {
      const i = r * k + j;
      if (j < listed && j < cols) {
        indices[i] = order[j]!;
        logprobs[i] = Math.min(0, z[order[j]!]! - lse);
      } else {
        indices[i] = -1;
        logprobs[i] = rand() < 0.5 ? NaN : 7;  // ignored: padding's value is never read
      }
    }
  }
  return { indices, logprobs };
}

/** The densified teacher of the contract, in float32 as a dense teacher would be passed. */
function densify(o: TopKDistillationLossOptions): Float32Array {
  const { rows, cols, k } = o;
  const t = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let listed = 0, mass = 0;
    for (let j = 0; j < k; j++) {
      if (o.teacherIndices[r * k + j]! < 0) continue;
      listed++;
      mass += Math.exp(o.teacherLogprobs[r * k + j]!);
    }
    const rest = o.missingMass === 'uniform' && listed < cols ? Math.log(Math.max(1 - mass, 0) / (cols - listed)) : -Infinity;
    t.fill(rest, r * cols, (r + 1) * cols);
    for (let j = 0; j < k; j++) {
      const c = o.teacherIndices[r * k + j]!;
      if (c >= 0) t[r * cols + c] = o.teacherLogprobs[r * k + j]!;
    }
  }
  return t;
}

function oracle(o: TopKDistillationLossOptions) {
  const { k: _k, teacherIndices: _i, teacherLogprobs: _l, missingMass: _m, teacherValues: _v, ...rest } = o;
  return reference.distillationLoss(checkDistillArgs({ ...rest, teacher: densify(o) }));
}

/** As the dense test's: float32 resolves JSD's log q - log m only to a few ulps of |s/T|. */
function gradFloor(o: TopKDistillationLossOptions): number {
  if (o.divergence !== 'jsd') return 0;
  let maxZ = 0;
  for (const x of [o.student, o.teacherLogprobs]) for (const v of x) if (Number.isFinite(v)) maxZ = Math.max(maxZ, Math.abs(v));
  const T = o.temperature ?? 1;
  const w = (o.labels ? o.alpha ?? 0.5 : 1) * ((o.scaleByTemperatureSquared ?? true) ? T * T : 1);
  let g = typeof o.gradOutput === 'number' ? Math.abs(o.gradOutput) : o.gradOutput ? Math.max(...Array.from(o.gradOutput, Math.abs)) : 1;
  if ((o.reduction ?? 'mean') === 'mean') g /= o.rows;
  return 2 ** -20 * (maxZ / T + 30) * (w / T) * g;
}

/**
 * The same limit on the JSD loss: each column's log q - log m is formed in float32, to a few ulps
 * of |s/T| + log(cols), however small the difference. A row's loss is therefore compared within
 * 2^-20 (max|s/T| + log cols + 1) times the soft term's weight, beside the relative bound.
 */
function jsdRowFloor(o: TopKDistillationLossOptions): number {
  if (o.divergence !== 'jsd') return 0;
  let maxZ = 0;
  for (const v of o.student) if (Number.isFinite(v)) maxZ = Math.max(maxZ, Math.abs(v));
  const T = o.temperature ?? 1;
  const w = (o.labels ? o.alpha ?? 0.5 : 1) * ((o.scaleByTemperatureSquared ?? true) ? T * T : 1);
  return 2 ** -20 * (maxZ / T + Math.log(o.cols) + 1) * w;
}

type Got = { loss: number; losses?: Float32Array; gradStudent?: Float32Array };
function expectContract(got: Got, o: TopKDistillationLossOptions, what: string): void {
  const want = oracle(o);
  const rowFloor = jsdRowFloor(o);
  const g = typeof o.gradOutput === 'number' ? Math.abs(o.gradOutput) : 1;
  const lossFloor = rowFloor * ((o.reduction ?? 'mean') === 'mean' ? 1 : o.rows) * g;
  expectClose(got.loss, want.loss, 1e-5, `${what} loss`, Math.max(1e-3, lossFloor / 1e-5));
  if (want.losses) expectArrayClose(got.losses!, want.losses, 1e-5, `${what} losses`, 1e-3, rowFloor);
  if (want.gradStudent) expectArrayClose(got.gradStudent!, want.gradStudent, 1e-5, `${what} gradStudent`, 1e-10, gradFloor(o));
}

const COLS = [1, 2, 7, 64, 1000, 1025, 5000, 32000];

function randomCases(seed: number, n: number): TopKDistillationLossOptions[] {
  const rand = rng(seed);
  const reductions: Reduction[] = ['mean', 'sum', 'none'];
  const divergences: Divergence[] = ['kl', 'reverse-kl', 'jsd'];
  const cases: TopKDistillationLossOptions[] = [];
  for (let i = 0; i < n; i++) {
    const cols = COLS[i % COLS.length]!;
    const rows = 1 + Math.floor(rand() * Math.max(1, Math.min(64, Math.floor(300000 / cols))));
    // k = 1, k = cols and k in between
    const k = i % 5 === 0 ? 1 : i % 5 === 1 ? cols : Math.min(cols, 1 + Math.floor(rand() * 80));
    const divergence = divergences[Math.floor(i / 3) % 3]!;
    const missingMass: MissingMass = divergence === 'reverse-kl' || rand() < 0.5 ? 'uniform' : 'renormalize';
    const { indices, logprobs } = randomTopK(rand, rows, cols, k, 0.25);
    const o: TopKDistillationLossOptions = {
      student: randomLogits(rand, rows * cols), rows, cols, k, teacherIndices: indices, teacherLogprobs: logprobs, missingMass,
      temperature: Math.exp(Math.log(0.3) + rand() * Math.log(30)), alpha: rand(), reduction: reductions[i % 3]!, divergence,
      beta: rand() < 0.2 ? (rand() < 0.5 ? 0 : 1) : rand(), scaleByTemperatureSquared: rand() < 0.7,
    };
    if (i % 4 === 0) o.temperature = [1, 2, 4][i % 3];
    if (rand() < 0.6) {
      o.labels = randomLabels(rand, rows, cols, -100, 0.25);
      o.labelSmoothing = rand() < 0.5 ? 0 : 0.1;
    }
    if (rand() < 0.3) o.gradOutput = o.reduction === 'none' ? randomLogits(rand, rows, 1) : 0.5 + rand();
    if (rand() < 0.15) o.computeStudentGrad = false;
    cases.push(o);
  }
  return cases;
}

const label = (c: TopKDistillationLossOptions, i: number): string =>
  `#${i} ${c.rows}x${c.cols} k=${c.k} ${c.missingMass} ${c.divergence} ${c.reduction} T=${c.temperature!.toFixed(2)}` +
  `${c.labels ? ` labels eps=${c.labelSmoothing}` : ''}`;

describe('topkDistillationLoss equals the dense loss with the densified teacher', () => {
  const cases = randomCases(20261204, 48);
  for (const [i, c] of cases.entries()) it(label(c, i), () => expectContract(topkDistillationLoss(c), c, label(c, i)));

  it('the reference backend as well (the fallback)', () => {
    for (const [i, c] of cases.entries()) expectContract(topkReference(checkTopkArgs(c)), c, `reference ${label(c, i)}`);
  });

  it('with the portable loops as well (setSimd generic)', () => {
    setSimd('generic');
    try {
      for (const [i, c] of cases.entries()) expectContract(topkDistillationLoss(c), c, `generic ${label(c, i)}`);
    } finally {
      setSimd('auto');
    }
  });

  it('teacherValues logits: raw top-k logits, renormalised', () => {
    const rand = rng(5);
    const rows = 9, cols = 300, k = 20;
    const { indices } = randomTopK(rand, rows, cols, k, 0.3);
    const logits = randomLogits(rand, rows * k, 4);  // positive values are fine for logits
    const o: TopKDistillationLossOptions = {
      student: randomLogits(rand, rows * cols), rows, cols, k, teacherIndices: indices, teacherLogprobs: logits,
      teacherValues: 'logits', temperature: 2, labels: randomLabels(rand, rows, cols), divergence: 'jsd',
    };
    expectContract(topkDistillationLoss(o), o, 'logits');
  });

  it('a row listing nothing: uniform teacher with uniform, error with renormalize unless ignored', () => {
    const rand = rng(8);
    const rows = 3, cols = 50, k = 4;
    const { indices, logprobs } = randomTopK(rand, rows, cols, k, 0);
    indices.fill(-1, k, 2 * k);  // row 1 lists nothing
    const o: TopKDistillationLossOptions = {
      student: randomLogits(rand, rows * cols), rows, cols, k, teacherIndices: indices, teacherLogprobs: logprobs, missingMass: 'uniform',
      reduction: 'none',
    };
    expectContract(topkDistillationLoss(o), o, 'uniform, empty row');
    const ignored = { ...o, missingMass: 'renormalize' as const, labels: new Int32Array([3, -100, 7]) };
    expectContract(topkDistillationLoss(ignored), ignored, 'renormalize, empty row ignored');
    expect(() => topkDistillationLoss({ ...o, missingMass: 'renormalize' })).toThrow(/teacher row 1 lists no finite/);
  });

  it('async equals sync, and out arrays are filled', async () => {
    for (const c of randomCases(77, 9)) {
      const sync = topkDistillationLoss(c);
      const gs = new Float32Array(c.rows * c.cols), ls = new Float32Array(c.rows);
      const asyncOut = await topkDistillationLossAsync({ ...c, out: { gradStudent: gs, losses: ls } });
      expect(asyncOut.loss).toBe(sync.loss);
      if (sync.gradStudent) {
        expect(asyncOut.gradStudent).toBe(gs);
        expect(gs).toEqual(sync.gradStudent);
      }
      if (sync.losses) expect(ls).toEqual(sync.losses);
      const big = { ...c, out: undefined };
      expect((await topkDistillationLossAsync(big)).loss).toBe(sync.loss);
    }
  });
});

describe('topkDistillationLoss results do not depend on the thread count', () => {
  it('1, 2, 3 and 8 threads give identical bits', () => {
    const rand = rng(99);
    const rows = 37, cols = 5000, k = 64;
    const { indices, logprobs } = randomTopK(rand, rows, cols, k, 0.2);
    for (const divergence of ['kl', 'reverse-kl', 'jsd'] as const) {
      const o: TopKDistillationLossOptions = {
        student: randomLogits(rand, rows * cols), rows, cols, k, teacherIndices: indices, teacherLogprobs: logprobs,
        missingMass: 'uniform', divergence, temperature: 3, labels: randomLabels(rand, rows, cols, -100, 0.2), labelSmoothing: 0.1,
      };
      const runs = [1, 2, 3, 8].map((n) => {
        setThreads(n);
        try { return topkDistillationLoss(o); } finally { setThreads(0); }
      });
      for (const r of runs.slice(1)) {
        expect(r.loss).toBe(runs[0]!.loss);
        expect(r.gradStudent).toEqual(runs[0]!.gradStudent);
      }
    }
  });
});

describe('topkDistillationLoss errors', () => {
  const base = (): TopKDistillationLossOptions => ({
    student: new Float32Array([1, 2, 3, 4, 5, 6, 7, 8]), rows: 2, cols: 4, k: 2,
    teacherIndices: new Int32Array([0, 2, 1, -1]), teacherLogprobs: new Float32Array([-0.5, -1.5, -0.1, 0]),
  });
  const throwsOn = (o: object, kind: typeof RangeError | typeof TypeError, re: RegExp): void => {
    expect(() => topkDistillationLoss(o as TopKDistillationLossOptions)).toThrow(kind);
    expect(() => topkDistillationLoss(o as TopKDistillationLossOptions)).toThrow(re);
    // the reference backend says the same
    expect(() => topkReference(checkTopkArgs(o))).toThrow(re);
  };
  const bad = (patch: (o: TopKDistillationLossOptions) => void): TopKDistillationLossOptions => { const o = base(); patch(o); return o; };

  it('accepts the base case', () => expect(Number.isFinite(topkDistillationLoss(base()).loss)).toBe(true));
  it('out-of-range index', () => throwsOn(bad((o) => { o.teacherIndices[1] = 4; }), RangeError, /teacherIndices\[1\] \(row 0, entry 1\) must be a column in \[0, 4\) or -1 \(padding\), got 4/));
  it('negative index other than -1', () => throwsOn(bad((o) => { o.teacherIndices[3] = -2; }), RangeError, /row 1, entry 1.*got -2/));
  it('duplicate index', () => throwsOn(bad((o) => { o.teacherIndices[3] = 1; }), RangeError, /teacherIndices\[3\] \(row 1, entry 1\) repeats column 1, listed at entry 0/));
  it('positive log-probability', () => throwsOn(bad((o) => { o.teacherLogprobs[2] = 0.25; }), RangeError, /teacherLogprobs\[2\] \(row 1, column 1\) must be a log-probability <= 0, got 0.25/));
  it('NaN log-probability', () => throwsOn(bad((o) => { o.teacherLogprobs[0] = NaN; }), RangeError, /teacherLogprobs\[0\] \(row 0, column 0\) must not be NaN/));
  it('listed mass above 1 + 1e-4', () => throwsOn(bad((o) => { o.teacherLogprobs[0] = -0.01; o.teacherLogprobs[1] = -0.02; }), RangeError, /teacherLogprobs row 0 lists a probability mass of 1\.97\d* .*more than 1 \+ 1e-4/));
  it('NaN in the student', () => throwsOn(bad((o) => { o.student[6] = NaN; }), RangeError, /student must not contain NaN, got NaN at index 6 \(row 1, column 2\)/));
  it('+Infinity in the student', () => throwsOn(bad((o) => { o.student[1] = Infinity; }), RangeError, /student must not contain \+Infinity.*row 0, column 1/));
  it('+Infinity among logits', () => throwsOn(bad((o) => { o.teacherValues = 'logits'; o.teacherLogprobs[0] = Infinity; }), RangeError, /teacherLogprobs\[0\] \(row 0, column 0\) must not be \+Infinity/));
  it('a renormalised row with nothing listed', () => throwsOn(bad((o) => { o.teacherIndices[2] = -1; }), RangeError, /teacher row 1 lists no finite log-probability/));
  it('reverse KL with renormalize is infinite', () => throwsOn(bad((o) => { o.divergence = 'reverse-kl'; }), RangeError, /reverse-kl' with missingMass 'renormalize' is infinite/));
  it('logits with uniform', () => throwsOn(bad((o) => { o.teacherValues = 'logits'; o.missingMass = 'uniform'; }), RangeError, /teacherValues 'logits' is defined only with missingMass 'renormalize'/));
  it('label out of range', () => throwsOn(bad((o) => { o.labels = new Int32Array([0, 9]); }), RangeError, /labels\[1\] must be an integer in \[0, 4\)/));
  it('a temperature that overflows the teacher logits', () => throwsOn(bad((o) => { o.teacherValues = 'logits'; o.teacherLogprobs[0] = 3e38; o.temperature = 0.01; }), RangeError, /temperature must be large enough that teacher logits/));
  it('wrong types and lengths', () => {
    expect(() => topkDistillationLoss(bad((o) => { (o as { teacherIndices: unknown }).teacherIndices = new Float32Array(4); }))).toThrow(/teacherIndices must be an Int32Array, got Float32Array/);
    expect(() => topkDistillationLoss(bad((o) => { o.teacherLogprobs = new Float32Array(3); }))).toThrow(/teacherLogprobs must have rows \* k = 4 elements, got 3/);
    expect(() => topkDistillationLoss(bad((o) => { o.k = 0; }))).toThrow(/k must be an integer >= 1/);
    expect(() => topkDistillationLoss({ ...base(), temprature: 2 } as TopKDistillationLossOptions)).toThrow(/unknown option 'temprature'; did you mean 'temperature'/);
    expect(() => topkDistillationLoss(bad((o) => { o.missingMass = 'spread' as MissingMass; }))).toThrow(/missingMass must be one of 'renormalize', 'uniform'/);
  });
  it('the addon makes the same checks when called directly', async () => {
    const { nativeAddon } = await import('../src/kernels/native.js');
    if (!nativeAddon) return;  // reference backend: nothing more to check
    const o = bad((x) => { x.teacherIndices[3] = 1; });
    expect(() => nativeAddon.topkDistillationLoss(o)).toThrow(/repeats column 1/);
    expect(() => nativeAddon.topkDistillationLoss({ ...base(), divergence: 'reverse-kl' })).toThrow(/is infinite/);
    await expect(nativeAddon.topkDistillationLossAsync(o)).rejects.toThrow(/repeats column 1/);
    expect(() => nativeAddon.topkDistillationLoss({ ...base(), k: 3 })).toThrow(/teacherIndices must have rows \* k = 6 elements, got 4/);
  });
  it('runs on the native kernel when the addon is loaded', async () => {
    const { nativeAddon } = await import('../src/kernels/native.js');
    expect(backend().name === 'reference' || typeof nativeAddon?.topkDistillationLossArgs === 'function').toBe(true);
  });
});
