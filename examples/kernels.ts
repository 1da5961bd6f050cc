// The README's "Ten lines", runnable (test/readme.test.ts runs it and checks the README shows it).
import * as kd from 'kdfuse';

export async function run() {
  const rows = 2, cols = 3;
  const student = new Float32Array([1, 2, 3, 0.5, 0.1, -1]);   // student logits, row-major [rows, cols]
  const teacher = new Float32Array([0.5, 2.5, 3, 2, 0, -2]);   // teacher logits
  const labels = new Int32Array([2, 0]);
  const { loss, gradStudent } = kd.distillationLoss({ student, teacher, rows, cols, labels, temperature: 4, alpha: 0.9 });
  const same = await kd.distillationLossAsync({ student, teacher, rows, cols, labels, temperature: 4, alpha: 0.9 });
  console.log(loss, gradStudent, kd.backend());   // backend: { name: 'native-avx2', threads: 2, reason, cuda }
  return { loss, gradStudent, same };
}
