// Type-checked by scripts/pack-check.sh against the packed tarball under TypeScript 5 and 7 (ESM).
import * as tf from '@tensorflow/tfjs';
import * as kd from 'kdfuse';
import { distillationLoss, distillationLossFn } from 'kdfuse/tfjs';
import { Distiller, type BatchDataset } from 'kdfuse/train';
import { attributionHeatmap, integratedGradients } from 'kdfuse/explain';
import { loadDigits, splitDigits } from 'kdfuse/datasets';

const r: kd.DistillationLossResult = kd.distillationLoss({ student: new Float32Array(4), teacher: new Float32Array(4), rows: 1, cols: 4, temperature: 2 });
const loss: number = r.loss;
const png: Uint8Array = attributionHeatmap(new Float32Array(4), { shape: [2, 2] });
const digits = loadDigits();
const { train } = splitDigits(digits, { seed: 1 });
const x = tf.tensor2d(train.x, [train.rows, digits.features]);
const t: tf.Tensor = distillationLoss(x, x, undefined, { temperature: 2 });
const ds: BatchDataset = tf.data.array([{ xs: x, ys: x }]);
const student = tf.sequential({ layers: [tf.layers.dense({ units: 10, inputShape: [64] })] });
const d = new Distiller({ teacher: student, student, temperature: 4 });
void [loss, png, t, ds, d, distillationLossFn, integratedGradients];
