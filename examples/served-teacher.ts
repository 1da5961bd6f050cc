// The README's served-teacher example, runnable (test/readme.test.ts runs it on the vLLM fixture
// converted by `kdfuse topk-convert`, and checks the README shows it).
import * as tf from '@tensorflow/tfjs';
import { Distiller, loadTopKTeacher } from 'kdfuse/train';

export async function run(file: string, x: tf.Tensor2D, labels: number[]) {
  const topk = await loadTopKTeacher(file);  // { indices, logprobs, rows, k, cols }: Parquet or Arrow IPC
  const student = tf.sequential({ layers: [tf.layers.dense({ inputShape: [x.shape[1]!], units: topk.cols })] });
  const distiller = new Distiller({ student, temperature: 2, alpha: 0.9, optimizer: 'adam' });  // no teacher model
  const history = await distiller.fit(x, labels, { epochs: 5, teacherLogits: topk });
  return { history, student, distiller, topk };
}
