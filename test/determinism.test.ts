/** Results are bit-identical whatever the thread count, for both schedules (rows and split rows). */
import { describe, expect, it } from 'vitest';
import { backend, distillationLoss, setThreads, softmaxWithTemperature } from '../src/index.js';
import { randomLabels, randomLogits, rng } from './helpers.js';

const bytes = (x: Float32Array): Buffer => Buffer.from(x.buffer, x.byteOffset, x.byteLength);

describe('determinism across thread counts', () => {
  for (const [rows, cols] of [[64, 5000], [1, 131072], [3, 70000], [257, 33]] as const) {
    it(`${rows}x${cols}`, () => {
      const rand = rng(rows * 31 + cols);
      const student = randomLogits(rand, rows * cols), teacher = randomLogits(rand, rows * cols);
      const labels = randomLabels(rand, rows, cols, -100, 0.1);
      const runs: { loss: number; gs: Buffer; gt: Buffer; sm: Buffer }[] = [];
      const counts = [1, 2, Math.max(3, backend().threads * 2)];
      try {
        for (const n of counts) {
          setThreads(n);
          for (const divergence of ['kl', 'jsd'] as const) {
            const r = distillationLoss({ student, teacher, rows, cols, labels, temperature: 3, alpha: 0.8, divergence, computeTeacherGrad: true });
            const sm = softmaxWithTemperature({ logits: student, rows, cols, temperature: 3 });
            runs.push({ loss: r.loss, gs: bytes(r.gradStudent!), gt: bytes(r.gradTeacher!), sm: bytes(sm) });
          }
        }
      } finally {
        setThreads(0);
      }
      for (let i = 2; i < runs.length; i++) {
        const a = runs[i]!, b = runs[i % 2]!;
        expect(a.loss).toBe(b.loss);
        expect(a.gs.equals(b.gs)).toBe(true);
        expect(a.gt.equals(b.gt)).toBe(true);
        expect(a.sm.equals(b.sm)).toBe(true);
      }
    });
  }
});
