/**
 * The fused distillation loss of the active backend against the reference (float64 math, written
 * literally from docs/design.md) on random shapes and every option.
 * Tolerances: loss within 1e-5 relative; each gradient element within 1e-5 * max|reference grad|.
 */
import { describe, it } from 'vitest';
import { distillationLoss, klDivergence } from '../src/index.js';
import * as reference from '../src/kernels/reference.js';
import { checkDistillArgs } from '../src/kernels/validate.js';
import type { DistillationLossOptions, Divergence, Reduction } from '../src/index.js';
import { expectArrayClose, expectClose, randomLabels, randomLogits, rng } from './helpers.js';

const COLS = [1, 2, 10, 1000, 1023, 1025, 32000, 50257, 131072];
const MAX_ELEMENTS = 1 << 21;  // keeps the float64 reference quick; long rows still reach 131072

/**
 * Known float32 limit (see README, Accuracy): the JSD gradients are q (e - K) with
 * e = log q - log m, while the gradient itself can be far smaller (near one-hot rows at small T).
 * float32 resolves e - K only to a few ulps of |s/T|, so for JSD the gradient bound is widened by
 * 2^-20 * max|s/T, t/T| * the gradient's coefficient.
 */
function gradFloor(a: ReturnType<typeof checkDistillArgs>): number {
  if (a.divergence !== 'jsd') return 0;
  let maxZ = 0;
  for (const x of [a.student, a.teacher]) for (const v of x) if (Number.isFinite(v)) maxZ = Math.max(maxZ, Math.abs(v));
  maxZ /= a.temperature;
  const alpha = a.labels ? a.alpha : 1;
  const w = alpha * (a.scaleByTemperatureSquared ? a.temperature ** 2 : 1);
  let g = Math.abs(a.gradOutput);
  if (a.gradOutputRows) g = Math.max(...Array.from(a.gradOutputRows, Math.abs));
  if (a.reduction === 'mean') g /= a.rows;
  return 2 ** -20 * maxZ * (w / a.temperature) * g;
}

function compare(opts: DistillationLossOptions, what: string): void {
  const got = distillationLoss(opts);
  const args = checkDistillArgs(opts);
  const want = reference.distillationLoss(args);
  const floor = gradFloor(args);
  expectClose(got.loss, want.loss, 1e-5, `${what} loss`, 1e-3);
  if (want.losses) expectArrayClose(got.losses!, want.losses, 1e-5, `${what} losses`);
  if (want.gradStudent) expectArrayClose(got.gradStudent!, want.gradStudent, 1e-5, `${what} gradStudent`, 1e-10, floor);
  if (want.gradTeacher) expectArrayClose(got.gradTeacher!, want.gradTeacher, 1e-5, `${what} gradTeacher`, 1e-10, floor);
}

describe('distillationLoss matches the reference', () => {
  const rand = rng(20261123);
  const cases: DistillationLossOptions[] = [];
  const reductions: Reduction[] = ['mean', 'sum', 'none'];
  const divergences: Divergence[] = ['kl', 'reverse-kl', 'jsd'];
  for (let i = 0; i < 36; i++) {
    const cols = COLS[i % COLS.length]!;
    const maxRows = Math.max(1, Math.min(4096, Math.floor(MAX_ELEMENTS / cols)));
    const rows = 1 + Math.floor(rand() * maxRows);
    const T = Math.exp(Math.log(0.05) + rand() * (Math.log(100) - Math.log(0.05)));
    const withLabels = rand() < 0.6;
    const opts: DistillationLossOptions = {
      student: randomLogits(rand, rows * cols),
      teacher: randomLogits(rand, rows * cols),
      rows, cols,
      temperature: T,
      alpha: rand(),
      reduction: reductions[i % 3]!,
      divergence: divergences[Math.floor(i / 3) % 3]!,
      beta: rand(),
      scaleByTemperatureSquared: rand() < 0.7,
      computeTeacherGrad: rand() < 0.5,
    };
    if (withLabels) {
      opts.labels = randomLabels(rand, rows, cols, -100, 0.2);
      opts.labelSmoothing = rand() < 0.5 ? 0 : 0.1;
    }
    if (rand() < 0.3) opts.gradOutput = opts.reduction === 'none' ? randomLogits(rand, rows, 1) : 0.5 + rand();
    cases.push(opts);
  }
  for (const [i, c] of cases.entries()) {
    const label = `#${i} ${c.rows}x${c.cols} T=${c.temperature!.toFixed(3)} ${c.divergence} ${c.reduction}` +
      `${c.labels ? ` labels eps=${c.labelSmoothing}` : ''}${c.computeTeacherGrad ? ' +teacher' : ''}`;
    it(label, () => compare(c, label));
  }

  it('with the portable loops as well (setSimd generic)', async () => {
    const { setSimd } = await import('../src/index.js');
    setSimd('generic');
    try {
      for (const c of cases.filter((x) => x.rows * x.cols <= 1 << 18).slice(0, 12)) compare(c, `generic ${c.rows}x${c.cols}`);
    } finally {
      setSimd('auto');
    }
  });
});

describe('klDivergence', () => {
  it('is the T^2-free divergence, per row and reduced', () => {
    const rand = rng(7);
    const rows = 33, cols = 500;
    const student = randomLogits(rand, rows * cols), teacher = randomLogits(rand, rows * cols);
    for (const divergence of ['kl', 'reverse-kl', 'jsd'] as const) {
      const got = klDivergence({ student, teacher, rows, cols, temperature: 2, divergence, reduction: 'none' });
      const want = reference.distillationLoss(checkDistillArgs({
        student, teacher, rows, cols, temperature: 2, divergence, reduction: 'none', scaleByTemperatureSquared: false,
        computeStudentGrad: false,
      }));
      expectArrayClose(got.losses!, want.losses!, 1e-5, `${divergence} losses`);
      const mean = klDivergence({ student, teacher, rows, cols, temperature: 2, divergence });
      expectClose(mean.loss, want.loss / rows, 1e-5, `${divergence} mean`);
    }
  });
});
