/**
 * The accuracy statement of docs/accuracy.md, checked where float32 is weakest: distributions that
 * nearly agree (large T, a student close to its teacher), near one-hot rows at small T, and the
 * large-T limit. For T in (0, 10000]: the loss within 1e-5 relative (1e-8 absolute below 1e-3),
 * the gradients within 1e-5 max|g| + 2^-20 (1 + max|z|) |c|, z = logits / T and c the soft term's
 * gradient coefficient. The oracle is the reference backend (float64, the divergences in a form
 * that keeps its precision when p ~ q) and, where named, values computed independently at 60
 * digits or in closed form.
 */
import { describe, expect, it } from 'vitest';
import { distillationLoss, type DistillationLossOptions, type Divergence } from '../src/index.js';
import * as reference from '../src/kernels/reference.js';
import { checkDistillArgs } from '../src/kernels/validate.js';
import { expectArrayClose, expectClose, randomLogits, rng } from './helpers.js';

/** 2^-20 (1 + max|z|) |c|: the absolute part of the gradient bound. */
function gradFloor(o: DistillationLossOptions): number {
  const a = checkDistillArgs(o);
  let maxZ = 0;
  for (const x of [a.student, a.teacher]) for (const v of x) if (Number.isFinite(v)) maxZ = Math.max(maxZ, Math.abs(v));
  maxZ /= a.temperature;
  const alpha = a.labels ? a.alpha : 1;
  const w = alpha * (a.scaleByTemperatureSquared ? a.temperature ** 2 : 1);
  let g = Math.abs(a.gradOutput);
  if (a.reduction === 'mean') g /= a.rows;
  return 2 ** -20 * (1 + maxZ) * (w / a.temperature) * g;
}

function compare(o: DistillationLossOptions, what: string): void {
  const got = distillationLoss(o);
  const want = reference.distillationLoss(checkDistillArgs(o));
  const floor = gradFloor(o);
  expectClose(got.loss, want.loss, 1e-5, `${what} loss`, 1e-3);
  expectArrayClose(got.gradStudent!, want.gradStudent!, 1e-5, `${what} gradStudent`, 1e-10, floor);
  expectArrayClose(got.gradTeacher!, want.gradTeacher!, 1e-5, `${what} gradTeacher`, 1e-10, floor);
}

const DIVERGENCES: Divergence[] = ['kl', 'reverse-kl', 'jsd'];

describe('distributions that nearly agree', () => {
  // Logits of small spread, or a large T, make p and q agree to a few parts in 1e4-1e6: the terms of
  // sum p (log p - log q) then cancelled to a small fraction of themselves (a 6.6% loss error at
  // T = 1e4 on a 4 x 10 case, 5e-3 at T = 100 for JSD).
  const rand = rng(77);
  for (const T of [1, 20, 100, 1e3, 1e4]) {
    for (const [rows, cols, scale] of [[4, 10, 1], [64, 10, 0.3], [8, 1000, 0.03], [2, 32000, 2]] as const) {
      it(`T=${T}, ${rows}x${cols}, logits of spread ${scale}`, () => {
        for (const divergence of DIVERGENCES) {
          for (const labels of [undefined, Int32Array.from({ length: rows }, (_, r) => (r * 7) % cols)]) {
            const o = {
              student: randomLogits(rand, rows * cols, scale), teacher: randomLogits(rand, rows * cols, scale),
              rows, cols, temperature: T, divergence, labels, alpha: 0.7, computeTeacherGrad: true,
            };
            compare(o, `${divergence} labels ${labels ? 'yes' : 'no'}`);
          }
        }
      });
    }
  }
  it('a student within 1e-3 of its teacher, T = 1 and 4', () => {
    const rows = 16, cols = 500;
    const t = randomLogits(rand, rows * cols, 3);
    const s = t.map((v) => v + 1e-3 * (rand() - 0.5));
    for (const T of [1, 4]) for (const divergence of DIVERGENCES) {
      compare({ student: s, teacher: t, rows, cols, temperature: T, divergence, computeTeacherGrad: true }, `T=${T} ${divergence}`);
    }
  });
});

describe('near one-hot rows at small T', () => {
  // The case of the reliability probe: q - p of two floats near 1 lost most of its bits (0.8% of the
  // largest gradient at T = 0.05).
  const s = Float32Array.from([3, 2.2, -1, 0.4]), t = Float32Array.from([3.1, 2.5, 0.2, -0.3]);
  for (const T of [0.05, 0.02]) {
    it(`T=${T}: every divergence against the reference`, () => {
      for (const divergence of DIVERGENCES) compare({ student: s, teacher: t, rows: 1, cols: 4, temperature: T, divergence, computeTeacherGrad: true }, divergence);
    });
  }
  it('T=0.02 against values computed at 60 digits', () => {
    // Python decimal at 60 digits, from these float32 logits and float32(1/T) as the kernels take it
    // (the T^2 factor and the gradients' T with T = 0.02 exactly).
    const kl = distillationLoss({ student: s, teacher: t, rows: 1, cols: 4, temperature: 0.02 });
    expectClose(kl.loss, 3.368778218119128e-16, 1e-5, 'KL');
    expectArrayClose(kl.gradStudent!.subarray(0, 2), [1.8714485506261413e-15, -1.8714485506261413e-15], 1e-5, 'KL grad', 1e-10,
      gradFloor({ student: s, teacher: t, rows: 1, cols: 4, temperature: 0.02 }));
    const rkl = distillationLoss({ student: s, teacher: t, rows: 1, cols: 4, temperature: 0.02, divergence: 'reverse-kl' });
    expectClose(rkl.loss, 3.741197755093634e-17, 1e-5, 'reverse KL');
  });
});

describe('JSD with a mixture weight below float32 epsilon', () => {
  // beta = 1e-13: 1 - beta is 1 in float32, and the log-ratio to the mixture over a much larger
  // probability, -log(beta + (1 - beta) e^-d), became -log(0): an infinite loss (fuzzer finding F11)
  it('beta = 1e-13 and 1 - 1e-7 at T = 0.05 against the reference', () => {
    const s = Float32Array.from([1, -2, 0.5, 3]), t = Float32Array.from([0.2, 1, -1, 2.5]);
    for (const beta of [1e-13, 1e-7, 1 - 1e-7]) {
      compare({ student: s, teacher: t, rows: 1, cols: 4, temperature: 0.05, divergence: 'jsd', beta, computeTeacherGrad: true }, `beta ${beta}`);
    }
  });
});

describe('large temperatures', () => {
  it('T = 1e4 is within 1e-3 of the T -> infinity limit: half the variance of t - s per row', () => {
    // p = softmax(t/T) = (1 + (t - mean t)/T + ...) / C, so T^2 KL(p || q) -> Var(t - s) / 2 over
    // the classes (uniform weights); the next term is O(max|t - s| / T).
    const rand = rng(5);
    const rows = 4, cols = 10;
    const s = randomLogits(rand, rows * cols, 1), t = randomLogits(rand, rows * cols, 1);
    let limit = 0;
    for (let r = 0; r < rows; r++) {
      const d = Array.from({ length: cols }, (_, c) => t[r * cols + c]! - s[r * cols + c]!);
      const mean = d.reduce((a, b) => a + b, 0) / cols;
      limit += d.reduce((a, b) => a + (b - mean) ** 2, 0) / cols / 2;
    }
    limit /= rows;
    for (const divergence of ['kl', 'reverse-kl'] as const) {
      const got = distillationLoss({ student: s, teacher: t, rows, cols, temperature: 1e4, divergence }).loss;
      expect(Math.abs(got - limit) / limit).toBeLessThan(1e-3);
    }
  });
  it('temperatures above 10000 are refused, naming the range', () => {
    const o = { student: new Float32Array(4), teacher: new Float32Array(4), rows: 1, cols: 4 };
    expect(() => distillationLoss({ ...o, temperature: 1e4 })).not.toThrow();
    for (const T of [10001, 1e6, 2 ** 32, 1e308]) {
      expect(() => distillationLoss({ ...o, temperature: T })).toThrow(/^temperature must be at most 10000 for the distillation loss/);
      expect(() => distillationLoss({ ...o, temperature: T })).toThrow(RangeError);
    }
  });
});
