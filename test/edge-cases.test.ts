/** Masked (-Infinity) logits, huge logits, single-class rows and all-ignored batches. */
import { describe, expect, it } from 'vitest';
import { distillationLoss, logSoftmaxWithTemperature, softmaxWithTemperature } from '../src/index.js';
import * as reference from '../src/kernels/reference.js';
import { checkDistillArgs } from '../src/kernels/validate.js';
import { expectArrayClose, expectClose, hasNaN, randomLogits, rng } from './helpers.js';

const NEG = -Infinity;

describe('edge cases', () => {
  it('a masked teacher class contributes 0, like dropping the class', () => {
    const student = new Float32Array([1, 2, 3, 0.5]), teacher = new Float32Array([2, NEG, 1, 0]);
    const r = distillationLoss({ student, teacher, rows: 1, cols: 4, temperature: 2, computeTeacherGrad: true });
    const ref = reference.distillationLoss(checkDistillArgs({ student, teacher, rows: 1, cols: 4, temperature: 2, computeTeacherGrad: true }));
    expectClose(r.loss, ref.loss, 1e-5, 'loss');
    expectArrayClose(r.gradStudent!, ref.gradStudent!, 1e-5, 'gradStudent');
    expectArrayClose(r.gradTeacher!, ref.gradTeacher!, 1e-5, 'gradTeacher');
    expect(r.gradTeacher![1]).toBe(0);
  });

  it('a student probability of 0 where the teacher has mass gives Infinity, never NaN', () => {
    const student = new Float32Array([1, NEG, 3, 0.5]), teacher = new Float32Array([2, 1, 1, 0]);
    for (const divergence of ['kl', 'reverse-kl', 'jsd'] as const) {
      const r = distillationLoss({ student, teacher, rows: 1, cols: 4, divergence, computeTeacherGrad: true, reduction: 'none' });
      if (divergence === 'kl') expect(r.loss).toBe(Infinity);
      else expect(Number.isFinite(r.loss)).toBe(true);  // KL(q||p) and JSD stay finite here
      expect(hasNaN(r.gradStudent!) || hasNaN(r.gradTeacher!) || hasNaN(r.losses!)).toBe(false);
    }
  });

  it('masked classes in both at the same place are ignored', () => {
    const rand = rng(3);
    const cols = 3000, s = randomLogits(rand, cols), t = randomLogits(rand, cols);
    for (let c = 0; c < cols; c += 7) { s[c] = NEG; t[c] = NEG; }
    const o = { student: s, teacher: t, rows: 1, cols, temperature: 1.5, computeTeacherGrad: true, labels: [5], alpha: 0.5 };
    const r = distillationLoss(o), ref = reference.distillationLoss(checkDistillArgs(o));
    expectClose(r.loss, ref.loss, 1e-5, 'loss');
    expectArrayClose(r.gradStudent!, ref.gradStudent!, 1e-5, 'gradStudent');
    expectArrayClose(r.gradTeacher!, ref.gradTeacher!, 1e-5, 'gradTeacher');
  });

  it('logits of +-1e4 stay finite and match the reference', () => {
    const rand = rng(4);
    const rows = 4, cols = 100;
    const s = Float32Array.from({ length: rows * cols }, () => (rand() < 0.5 ? -1e4 : 1e4) * rand());
    const t = Float32Array.from({ length: rows * cols }, () => (rand() < 0.5 ? -1e4 : 1e4) * rand());
    for (const temperature of [1, 2, 4]) {
      const o = { student: s, teacher: t, rows, cols, temperature, labels: [1, 2, 3, 4], alpha: 0.5 };
      const r = distillationLoss(o), ref = reference.distillationLoss(checkDistillArgs(o));
      expect(Number.isFinite(r.loss)).toBe(true);
      expectClose(r.loss, ref.loss, 1e-5, `T=${temperature} loss`);
      expectArrayClose(r.gradStudent!, ref.gradStudent!, 1e-5, `T=${temperature} gradStudent`);
      const y = softmaxWithTemperature({ logits: s, rows, cols, temperature });
      expect(hasNaN(y)).toBe(false);
      expect(logSoftmaxWithTemperature({ logits: s, rows, cols, temperature }).every((v) => v <= 0)).toBe(true);
    }
  });

  it('single-class rows: zero divergence and zero gradient', () => {
    const s = new Float32Array([3, -2, 7]), t = new Float32Array([-1, 5, 0]);
    const r = distillationLoss({ student: s, teacher: t, rows: 3, cols: 1, temperature: 3, reduction: 'none', computeTeacherGrad: true });
    for (const v of r.losses!) expect(Math.abs(v)).toBeLessThan(1e-6);
    for (const v of r.gradStudent!) expect(Math.abs(v)).toBeLessThan(1e-6);
    expect(Array.from(softmaxWithTemperature({ logits: s, rows: 3, cols: 1 }))).toEqual([1, 1, 1]);
  });

  it('an all-ignored batch gives 0 and an all-zero gradient, for every reduction', () => {
    const rand = rng(5);
    const rows = 4, cols = 10, s = randomLogits(rand, rows * cols), t = randomLogits(rand, rows * cols);
    for (const reduction of ['mean', 'sum', 'none'] as const) {
      const r = distillationLoss({ student: s, teacher: t, rows, cols, labels: [-100, -100, -100, -100], reduction, computeTeacherGrad: true });
      expect(r.loss).toBe(0);
      expect(r.gradStudent!.every((v) => v === 0)).toBe(true);
      expect(r.gradTeacher!.every((v) => v === 0)).toBe(true);
      if (reduction === 'none') expect(r.losses!.every((v) => v === 0)).toBe(true);
    }
  });
});
