// The README's Distiller example, runnable (test/readme.test.ts runs it and checks the README shows it).
import * as tf from '@tensorflow/tfjs';
import { Distiller, cacheTeacherLogits, fileSystemHandler } from 'kdfuse/train';

export async function run(teacher: tf.LayersModel, student: tf.LayersModel, xTrain: tf.Tensor, yTrain: number[],
  xVal: tf.Tensor, yVal: number[], xTest: tf.Tensor, yTest: number[]) {
  const distiller = new Distiller({ teacher, student, temperature: 4, alpha: 0.9, optimizer: 'adam' });
  const history = await distiller.fit(xTrain, yTrain, { epochs: 20, batchSize: 64, validationData: [xVal, yVal],
    teacherLogits: cacheTeacherLogits(teacher, xTrain),              // offline: the teacher runs once
    earlyStopping: { monitor: 'valLoss', patience: 5 } });
  const report = distiller.evaluate(xTest, yTest);  // student & teacher accuracy, agreement, KD loss, ECE
  await student.save(fileSystemHandler('out/student'));  // model.json + weights.bin, no tfjs-node needed
  return { history, report };
}
