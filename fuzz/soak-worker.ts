/**
 * A worker thread of `npm run soak`: calls the kernels (sync and async, large enough to run on the
 * addon's thread pool) in a loop until the main thread terminates it, mid-call.
 */
import { parentPort } from 'node:worker_threads';
import * as kd from '../src/index.js';

const rows = 64, cols = 4096;
const student = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i));
const teacher = Float32Array.from({ length: rows * cols }, (_, i) => Math.cos(i));
const labels = Int32Array.from({ length: rows }, (_, i) => i % cols);

async function loop(): Promise<void> {
  parentPort?.postMessage('started');
  for (let i = 0; ; i++) {
    if (i % 2) kd.distillationLoss({ student, teacher, rows, cols, labels, temperature: 2 });
    else await Promise.all([0, 1, 2].map(() => kd.distillationLossAsync({ student, teacher, rows, cols, labels, temperature: 2 })));
  }
}
void loop();
