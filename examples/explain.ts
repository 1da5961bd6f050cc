// The README's kdfuse/explain example, runnable (test/readme.test.ts runs it and checks the README shows it).
import * as tf from '@tensorflow/tfjs';
import { integratedGradients, explainDistillation, attributionHeatmap } from 'kdfuse/explain';

export async function run(model: tf.LayersModel, teacher: tf.LayersModel, student: tf.LayersModel, x: tf.Tensor2D) {
  const { attributions, delta } = await integratedGradients(model, x, { target: 'predicted', baseline: 'zeros', steps: 64 });
  const report = await explainDistillation(teacher, student, x, { steps: 32, topK: 8 });
  // report.comparison.mean: { cosine, spearman, topKIntersection }; report.teacher.deletion.meanAuc, ...
  const png = attributionHeatmap(attributions.slice([0, 0], [1, 64]), { shape: [8, 8], scale: 16 });   // PNG bytes; file: to save
  return { attributions, delta, report, png };
}
