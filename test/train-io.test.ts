/** Saving/loading models to a folder without tfjs-node, and the teacher-logit cache and its file. */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { cacheTeacherLogits, fileSystemHandler, loadTeacherLogits, saveTeacherLogits, teacherLogitsBatch } from '../src/train/index.js';
import { randomLogits, rng } from './helpers.js';

const model = () => tf.sequential({ layers: [
  tf.layers.dense({ units: 7, inputShape: [5], activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
  tf.layers.dense({ units: 3, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
] });

describe('fileSystemHandler', () => {
  it('round-trips a LayersModel through model.json + weights.bin with identical predictions', async () => {
    const dir = join(await mkdtemp(join(tmpdir(), 'kdfuse-io-')), 'm');
    const m = model();
    const x = tf.tensor2d(randomLogits(rng(1), 4 * 5, 1), [4, 5]);
    await m.save(fileSystemHandler(dir));
    const json = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8'));
    expect(json.weightsManifest[0].paths).toEqual(['weights.bin']);
    const m2 = await tf.loadLayersModel(fileSystemHandler(dir));
    expect(Array.from((m2.predict(x) as tf.Tensor).dataSync())).toEqual(Array.from((m.predict(x) as tf.Tensor).dataSync()));
    tf.dispose(x);
    m.dispose();
    m2.dispose();
  });

  it('names the folder when there is nothing to load', async () => {
    await expect(tf.loadLayersModel(fileSystemHandler('/nonexistent/kdfuse-model'))).rejects.toThrow(/\/nonexistent\/kdfuse-model/);
  });
});

describe('teacher logits cache', () => {
  it('equals teacher.predict for batches that do not divide the rows, and leaks no tensors', () => {
    const m = model();
    const x = tf.tensor2d(randomLogits(rng(2), 23 * 5, 1), [23, 5]);
    const before = tf.memory().numTensors;
    const cache = cacheTeacherLogits(m, x, { batchSize: 5 });
    expect(tf.memory().numTensors).toBe(before);
    expect(cache.rows).toBe(23);
    expect(cache.cols).toBe(3);
    const direct = (m.predict(x) as tf.Tensor).dataSync();
    for (let i = 0; i < direct.length; i++) expect(Math.abs(cache.logits[i]! - direct[i]!)).toBeLessThan(1e-6);
    const b = teacherLogitsBatch(cache, [22, 0]);
    expect(Array.from(b.dataSync())).toEqual([...cache.logits.subarray(66, 69), ...cache.logits.subarray(0, 3)]);
    expect(() => teacherLogitsBatch(cache, [23])).toThrow(RangeError);
    tf.dispose([x, b]);
    m.dispose();
  });

  it('round-trips exactly through its file, and rejects corrupted files', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kdfuse-logits-'));
    const cache = { rows: 3, cols: 4, logits: randomLogits(rng(3), 12) };
    const file = join(dir, 'teacher.bin');
    await saveTeacherLogits(cache, file);
    const back = await loadTeacherLogits(file);
    expect(back.rows).toBe(3);
    expect(back.cols).toBe(4);
    expect(Array.from(back.logits)).toEqual(Array.from(cache.logits));
    const bytes = await readFile(file);
    await writeFile(join(dir, 'truncated.bin'), bytes.subarray(0, bytes.length - 4));
    await expect(loadTeacherLogits(join(dir, 'truncated.bin'))).rejects.toThrow(RangeError);
    await expect(loadTeacherLogits(join(dir, 'truncated.bin'))).rejects.toThrow(/truncated\.bin must be 68 bytes/);
    const bad = Buffer.from(bytes);
    bad.write('NOTMAGIC', 0, 'latin1');
    await writeFile(join(dir, 'bad.bin'), bad);
    await expect(loadTeacherLogits(join(dir, 'bad.bin'))).rejects.toThrow(/not a kdfuse teacher-logits file/);
  });
});
