/**
 * The reference's gradients against central finite differences of its own loss, in float64 on small
 * shapes, for every divergence and option (student and teacher). Inputs are multiples of 2^-8 and
 * h = 2^-10, so every perturbed float32 input is exact. Tolerance: 1e-6 + 1e-5 * max|grad| per element.
 */
import { describe, expect, it } from 'vitest';
import * as reference from '../src/kernels/reference.js';
import { checkDistillArgs, checkSoftmaxArgs } from '../src/kernels/validate.js';
import type { DistillationLossOptions } from '../src/index.js';
import { maxAbs, rng } from './helpers.js';

const H = 2 ** -10;

function gridLogits(rand: () => number, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => Math.round((rand() * 6 - 3) * 256) / 256);
}

function fdCheck(grad: Float32Array, f: (x: Float32Array) => number, x: Float32Array, what: string): void {
  const tol = 1e-6 + 1e-5 * maxAbs(grad);
  for (let i = 0; i < x.length; i++) {
    const keep = x[i]!;
    x[i] = keep + H; const up = f(x);
    x[i] = keep - H; const down = f(x);
    x[i] = keep;
    const fd = (up - down) / (2 * H);
    expect(Math.abs(fd - grad[i]!), `${what}[${i}] analytic ${grad[i]} vs finite difference ${fd}`).toBeLessThanOrEqual(tol + 1e-4 * Math.abs(fd));
  }
}

describe('reference gradients match finite differences', () => {
  const rand = rng(99);
  const rows = 3, cols = 5;
  const variants: Partial<DistillationLossOptions>[] = [];
  for (const divergence of ['kl', 'reverse-kl', 'jsd'] as const) {
    for (const labels of [undefined, new Int32Array([1, -100, 4])]) {
      for (const reduction of ['mean', 'sum', 'none'] as const) {
        variants.push({ divergence, labels, reduction, temperature: 2.5, alpha: 0.7, beta: 0.3, labelSmoothing: labels ? 0.1 : 0 });
      }
    }
  }
  variants.push({ divergence: 'kl', temperature: 0.5, scaleByTemperatureSquared: false });
  variants.push({ divergence: 'jsd', beta: 1, temperature: 1 });
  variants.push({ divergence: 'kl', reduction: 'none', gradOutput: new Float32Array([0.5, -2, 1.5]), temperature: 3 });
  for (const v of variants) {
    const name = JSON.stringify({ ...v, labels: v.labels ? Array.from(v.labels) : undefined, gradOutput: v.gradOutput instanceof Float32Array ? 'rows' : v.gradOutput });
    it(name, () => {
      const student = gridLogits(rand, rows * cols), teacher = gridLogits(rand, rows * cols);
      const base = { rows, cols, ...v };
      const total = (s: Float32Array, t: Float32Array): number => {
        const r = reference.distillationLoss(checkDistillArgs({ ...base, student: s, teacher: t, computeStudentGrad: false }));
        if (!r.losses) return r.loss;
        // per-row losses are float32; weight float64 single-row sums by the upstream gradient instead
        const g = v.gradOutput instanceof Float32Array ? v.gradOutput : new Float32Array(rows).fill(1);
        let acc = 0;
        for (let i = 0; i < rows; i++) {
          const one = reference.distillationLoss(checkDistillArgs({
            ...base, rows: 1, reduction: 'sum', gradOutput: 1, computeStudentGrad: false,
            labels: v.labels ? [v.labels[i]!] : undefined,
            student: s.subarray(i * cols, (i + 1) * cols), teacher: t.subarray(i * cols, (i + 1) * cols),
          }));
          acc += g[i]! * one.loss;
        }
        return acc;
      };
      const res = reference.distillationLoss(checkDistillArgs({ ...base, student, teacher, computeTeacherGrad: true }));
      // with reduction none the per-row losses are float32; use float64 sums for the difference instead
      if (v.reduction === 'none') {
        const f64 = (s: Float32Array, t: Float32Array): number => {
          const r = reference.distillationLoss(checkDistillArgs({ ...base, student: s, teacher: t, reduction: 'sum', computeStudentGrad: false,
            gradOutput: 1 }));
          return r.loss;
        };
        if (!(v.gradOutput instanceof Float32Array)) {
          fdCheck(res.gradStudent!, (s) => f64(s, teacher), student, 'gradStudent');
          fdCheck(res.gradTeacher!, (t) => f64(student, t), teacher, 'gradTeacher');
          return;
        }
      }
      fdCheck(res.gradStudent!, (s) => total(s, teacher), student, 'gradStudent');
      fdCheck(res.gradTeacher!, (t) => total(student, t), teacher, 'gradTeacher');
    });
  }

  for (const log of [false, true]) {
    it(`${log ? 'log-' : ''}softmax backward`, () => {
      const x = gridLogits(rand, rows * cols);
      const w = Float32Array.from({ length: rows * cols }, () => rand() - 0.5);  // L = sum(w * y)
      const T = 1.75;
      const y = reference.softmaxForward(checkSoftmaxArgs({ logits: x, rows, cols, temperature: T }, false), log);
      const dx = reference.softmaxBackward(checkSoftmaxArgs({ output: y, gradOutput: w, rows, cols, temperature: T }, true), log);
      const L = (xx: Float32Array): number => {
        // float64 forward, so the difference quotient is not limited by float32 outputs
        let acc = 0;
        for (let r = 0; r < rows; r++) {
          const z = Array.from(xx.subarray(r * cols, (r + 1) * cols), (v) => v / T);
          const m = Math.max(...z), lse = m + Math.log(z.reduce((a, v) => a + Math.exp(v - m), 0));
          z.forEach((v, c) => { acc += w[r * cols + c]! * (log ? v - lse : Math.exp(v - lse)); });
        }
        return acc;
      };
      fdCheck(dx, L, x, 'dx');
    });
  }
});
