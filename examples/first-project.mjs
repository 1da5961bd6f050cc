import * as tf from '@tensorflow/tfjs';
import { loadDigits, splitDigits } from 'kdfuse/datasets';
import { Distiller, cacheTeacherLogits } from 'kdfuse/train';

const { train, test } = splitDigits(loadDigits(), { seed: 1 });   // 8x8 digits, x in [0, 1]
const x = (d) => tf.tensor2d(d.x, [d.rows, d.features]);
const mlp = (hidden) => tf.sequential({ layers: [
  tf.layers.dense({ units: hidden, activation: 'relu', inputShape: [64] }),
  tf.layers.dense({ units: 10 }) ] });                            // logits: no softmax at the end

const teacher = mlp(128);
teacher.compile({ optimizer: 'adam', loss: (y, logits) => tf.losses.softmaxCrossEntropy(y, logits) });
await teacher.fit(x(train), tf.oneHot(tf.tensor1d(train.labels, 'int32'), 10), { epochs: 10, verbose: 0 });

const student = mlp(16);
const distiller = new Distiller({ teacher, student, temperature: 4, alpha: 0.7, learningRate: 3e-3 });
await distiller.fit(x(train), train.labels, { epochs: 10, batchSize: 64,
  teacherLogits: cacheTeacherLogits(teacher, x(train)) });       // the teacher runs once
const { studentAccuracy, teacherAccuracy, agreement } = distiller.evaluate(x(test), test.labels);
console.log({ studentAccuracy, teacherAccuracy, agreement });
