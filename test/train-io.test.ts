/** Saving/loading models to a folder without tfjs-node, and the teacher-logit cache and its file. */
import { mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { cacheTeacherLogits, fileSystemHandler, loadTeacherLogits, saveTeacherLogits, teacherLogitsBatch } from '../src/train/index.js';
import { randomLogits, rng } from './helpers.js';

const model = () => tf.sequential({ layers: [
  tf.layers.dense({ units: 7, inputShape: [5], activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
  tf.layers.dense({ units: 3, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
] });

const temps: string[] = [];
async function tempDir(prefix: string): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), prefix));
  temps.push(d);
  return d;
}
afterAll(async () => {
  await Promise.all(temps.map((d) => rm(d, { recursive: true, force: true })));
});

const predictions = (m: tf.LayersModel, x: tf.Tensor) => tf.tidy(() => Array.from((m.predict(x) as tf.Tensor).dataSync()));

describe('fileSystemHandler', () => {
  it('round-trips a LayersModel through model.json + weights.bin with identical predictions', async () => {
    const dir = join(await tempDir('kdfuse-io-'), 'nested', 'm'); // save creates the folders
    const m = model();
    m.setUserDefinedMetadata({ teacher: 'digits-mlp' });
    const x = tf.tensor2d(randomLogits(rng(1), 4 * 5, 1), [4, 5]);
    const result = await m.save(fileSystemHandler(dir));
    expect(result.modelArtifactsInfo.modelTopologyType).toBe('JSON');
    expect(result.modelArtifactsInfo.weightDataBytes).toBe((5 * 7 + 7 + 7 * 3 + 3) * 4);
    const json = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8'));
    expect(json.weightsManifest[0].paths).toEqual(['weights.bin']);
    expect(json.weightsManifest[0].weights).toHaveLength(4);
    expect(json.format).toBe('layers-model');
    expect(json.userDefinedMetadata).toEqual({ teacher: 'digits-mlp' });
    expect((await readFile(join(dir, 'weights.bin'))).length).toBe(result.modelArtifactsInfo.weightDataBytes);
    const m2 = await tf.loadLayersModel(fileSystemHandler(dir));
    expect(predictions(m2, x)).toEqual(predictions(m, x));
    expect(m2.getUserDefinedMetadata()).toEqual({ teacher: 'digits-mlp' });
    tf.dispose(x);
    m.dispose();
    m2.dispose();
  });

  it('saves weight data handed over as several ArrayBuffers', async () => {
    const dir = await tempDir('kdfuse-io-parts-');
    const m = model();
    const handler = fileSystemHandler(dir);
    // Capture what tfjs hands to save(), then give the same weights split in two.
    let artifacts: tf.io.ModelArtifacts | undefined;
    await m.save(tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(a) };
    }));
    const whole = new Uint8Array(tf.io.CompositeArrayBuffer.join(artifacts!.weightData!));
    const parts = [whole.slice(0, 40).buffer, whole.slice(40).buffer];
    await handler.save!({ ...artifacts!, weightData: parts });
    expect(new Uint8Array(await readFile(join(dir, 'weights.bin')))).toEqual(whole);
    const m2 = await tf.loadLayersModel(fileSystemHandler(dir));
    const x = tf.ones([2, 5]);
    expect(predictions(m2, x)).toEqual(predictions(m, x));
    tf.dispose(x);
    m.dispose();
    m2.dispose();
  });

  it('names the folder or file when there is nothing to load', async () => {
    await expect(tf.loadLayersModel(fileSystemHandler('/nonexistent/kdfuse-model'))).rejects.toThrow(/\/nonexistent\/kdfuse-model/);
    const dir = await tempDir('kdfuse-io-missing-');
    const m = model();
    await m.save(fileSystemHandler(dir));
    m.dispose();
    await unlink(join(dir, 'weights.bin'));
    await expect(tf.loadLayersModel(fileSystemHandler(dir))).rejects.toThrow(join(dir, 'weights.bin'));
    await writeFile(join(dir, 'model.json'), '{ not json');
    await expect(tf.loadLayersModel(fileSystemHandler(dir))).rejects.toThrow(join(dir, 'model.json'));
    expect(() => fileSystemHandler('')).toThrow(TypeError);
  });
});

describe('teacher logits cache', () => {
  it('equals teacher.predict for batches that do not divide the rows, and leaks no tensors', () => {
    const m = model();
    const x = tf.tensor2d(randomLogits(rng(2), 23 * 5, 1), [23, 5]);
    const direct = predictions(m, x); // first so that any lazy setup of the model is not counted
    const before = tf.memory().numTensors;
    const cache = cacheTeacherLogits(m, x, { batchSize: 5 });
    expect(tf.memory().numTensors).toBe(before);
    expect(cache.rows).toBe(23);
    expect(cache.cols).toBe(3);
    expect(cache.logits).toHaveLength(69);
    for (let i = 0; i < direct.length; i++) expect(Math.abs(cache.logits[i]! - direct[i]!)).toBeLessThan(1e-6);
    // the default batch size (larger than the rows) and a function teacher give the same
    expect(Array.from(cacheTeacherLogits(m, x).logits)).toEqual(Array.from(cache.logits));
    const fn = cacheTeacherLogits((xb) => m.predict(xb) as tf.Tensor, x, { batchSize: 7 });
    expect(tf.memory().numTensors).toBe(before);
    expect(Array.from(fn.logits)).toEqual(Array.from(cache.logits));
    tf.dispose(x);
    m.dispose();
  });

  it('gathers the right rows for a batch', () => {
    const cache = { rows: 4, cols: 3, logits: Float32Array.from({ length: 12 }, (_, i) => i) };
    const b = teacherLogitsBatch(cache, Int32Array.from([3, 0, 3]));
    expect(b.shape).toEqual([3, 3]);
    expect(Array.from(b.dataSync())).toEqual([9, 10, 11, 0, 1, 2, 9, 10, 11]);
    expect(() => teacherLogitsBatch(cache, [4])).toThrow(RangeError);
    expect(() => teacherLogitsBatch(cache, [-1])).toThrow(/indices\[0\]/);
    expect(() => teacherLogitsBatch(cache, [1.5])).toThrow(RangeError);
    b.dispose();
  });

  it('rejects bad teachers, inputs and batch sizes', () => {
    const x = tf.ones([6, 5]);
    const before = tf.memory().numTensors;
    expect(() => cacheTeacherLogits((xb) => tf.sum(xb), x)).toThrow(/must output \[6, classes\]/);
    expect(() => cacheTeacherLogits((xb) => tf.ones([xb.shape[0]! + 1, 3]), x)).toThrow(RangeError);
    let calls = 0; // the width changes between batches
    expect(() => cacheTeacherLogits((xb) => tf.ones([xb.shape[0]!, ++calls === 1 ? 3 : 4]), x, { batchSize: 4 })).toThrow(/\[2, 3\]/);
    expect(tf.memory().numTensors).toBe(before); // tf.tidy disposes even when the teacher's output is rejected
    expect(() => cacheTeacherLogits({} as tf.LayersModel, x)).toThrow(TypeError);
    expect(() => cacheTeacherLogits((xb) => xb, [1, 2] as unknown as tf.Tensor)).toThrow(/x must be a tf.Tensor/);
    expect(() => cacheTeacherLogits((xb) => xb, x, { batchSize: 0 })).toThrow(/batchSize/);
    x.dispose();
  });

  it('round-trips exactly through its file, and rejects corrupted files', async () => {
    const dir = await tempDir('kdfuse-logits-');
    const cache = { rows: 3, cols: 4, logits: randomLogits(rng(3), 12) };
    const file = join(dir, 'teacher.bin');
    await saveTeacherLogits(cache, file);
    const bytes = await readFile(file);
    expect(bytes.length).toBe(20 + 12 * 4);
    expect(bytes.toString('latin1', 0, 8)).toBe('KDFLOGIT');
    expect([bytes.readUInt32LE(8), bytes.readUInt32LE(12), bytes.readUInt32LE(16)]).toEqual([1, 3, 4]);
    expect(bytes.readFloatLE(20 + 4 * 5)).toBe(cache.logits[5]);
    const back = await loadTeacherLogits(file);
    expect(back.rows).toBe(3);
    expect(back.cols).toBe(4);
    expect(Array.from(back.logits)).toEqual(Array.from(cache.logits));

    const corrupt = async (name: string, data: Uint8Array, message: RegExp) => {
      const f = join(dir, name);
      await writeFile(f, data);
      const err = await loadTeacherLogits(f).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RangeError);
      expect((err as Error).message).toContain(f);
      expect((err as Error).message).toMatch(message);
    };
    await corrupt('truncated.bin', bytes.subarray(0, bytes.length - 4), /must be 68 bytes .* got 64/);
    await corrupt('long.bin', Buffer.concat([bytes, Buffer.alloc(4)]), /must be 68 bytes/);
    await corrupt('header.bin', bytes.subarray(0, 12), /truncated/);
    await corrupt('empty.bin', new Uint8Array(0), /not a kdfuse teacher-logits file/);
    const bad = Buffer.from(bytes);
    bad.write('NOTMAGIC', 0, 'latin1');
    await corrupt('bad.bin', bad, /not a kdfuse teacher-logits file/);
    const v2 = Buffer.from(bytes);
    v2.writeUInt32LE(2, 8);
    await corrupt('v2.bin', v2, /version 2, expected 1/);
    await expect(loadTeacherLogits(join(dir, 'absent.bin'))).rejects.toThrow(/absent\.bin/);
  });

  it('refuses to save a cache whose shape does not match its data', async () => {
    const file = join(await tempDir('kdfuse-logits-bad-'), 'x.bin');
    await expect(saveTeacherLogits({ rows: 3, cols: 4, logits: new Float32Array(11) }, file)).rejects.toThrow(/rows \* cols = 12/);
    await expect(saveTeacherLogits({ rows: -1, cols: 4, logits: new Float32Array(0) }, file)).rejects.toThrow(RangeError);
    await expect(saveTeacherLogits({ rows: 1, cols: 2, logits: [1, 2] as unknown as Float32Array }, file)).rejects.toThrow(TypeError);
  });
});
