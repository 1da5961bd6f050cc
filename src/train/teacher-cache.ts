/**
 * Offline distillation: run the teacher once over the training inputs and keep its logits, in
 * memory or in a small binary file, so later epochs never run the teacher.
 * File format: "KDFLOGIT" (8 bytes), uint32 LE version (1), uint32 rows, uint32 cols, then
 * rows * cols float32 little-endian.
 */
import { readFile, writeFile } from 'node:fs/promises';
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { describe } from '../kernels/validate.js';

export interface TeacherLogits {
  rows: number;
  cols: number;
  /** [rows, cols] row-major */
  logits: Float32Array;
}

const MAGIC = 'KDFLOGIT';
const VERSION = 1;
const HEADER = 20;

export function cacheTeacherLogits(
  teacher: LayersModel | ((x: tf.Tensor) => tf.Tensor),
  x: tf.Tensor,
  options: { batchSize?: number } = {},
): TeacherLogits {
  if (!(x instanceof tf.Tensor)) throw new TypeError(`x must be a tf.Tensor, got ${describe(x)}`);
  const batchSize = options.batchSize ?? 256;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be an integer >= 1, got ${String(batchSize)}`);
  const rows = x.shape[0]!;
  let cols = 0;
  let logits = new Float32Array(0);
  for (let b = 0; b < rows; b += batchSize) {
    const part = tf.tidy(() => {
      const xb = tf.slice(x, b, Math.min(batchSize, rows - b));
      const out = typeof teacher === 'function' ? teacher(xb) : (teacher.predict(xb) as tf.Tensor);
      if (out.rank !== 2) throw new RangeError(`the teacher must output [rows, classes] logits, got shape [${out.shape.join(', ')}]`);
      return out.dataSync() as Float32Array;
    });
    if (b === 0) {
      cols = part.length / Math.min(batchSize, rows);
      logits = new Float32Array(rows * cols);
    }
    logits.set(part, b * cols);
  }
  return { rows, cols, logits };
}

export function teacherLogitsBatch(cache: TeacherLogits, indices: Int32Array | number[]): tf.Tensor2D {
  const out = new Float32Array(indices.length * cache.cols);
  for (let i = 0; i < indices.length; i++) {
    const r = indices[i]!;
    if (!(Number.isInteger(r) && r >= 0 && r < cache.rows)) throw new RangeError(`indices[${i}] must be a row in [0, ${cache.rows}), got ${r}`);
    out.set(cache.logits.subarray(r * cache.cols, (r + 1) * cache.cols), i * cache.cols);
  }
  return tf.tensor2d(out, [indices.length, cache.cols]);
}

export async function saveTeacherLogits(cache: TeacherLogits, file: string): Promise<void> {
  const header = Buffer.alloc(HEADER);
  header.write(MAGIC, 0, 'latin1');
  header.writeUInt32LE(VERSION, 8);
  header.writeUInt32LE(cache.rows, 12);
  header.writeUInt32LE(cache.cols, 16);
  // float32 little-endian: the layout of Float32Array on every platform Node supports
  await writeFile(file, Buffer.concat([header, Buffer.from(cache.logits.buffer, cache.logits.byteOffset, cache.logits.byteLength)]));
}

export async function loadTeacherLogits(file: string): Promise<TeacherLogits> {
  const buf = await readFile(file);
  if (buf.length < HEADER || buf.toString('latin1', 0, 8) !== MAGIC) {
    throw new RangeError(`${file} is not a kdfuse teacher-logits file (expected the magic "${MAGIC}")`);
  }
  const version = buf.readUInt32LE(8);
  if (version !== VERSION) throw new RangeError(`${file} has version ${version}, expected ${VERSION}`);
  const rows = buf.readUInt32LE(12), cols = buf.readUInt32LE(16);
  const want = HEADER + rows * cols * 4;
  if (buf.length !== want) throw new RangeError(`${file} must be ${want} bytes for ${rows} x ${cols} logits, got ${buf.length}`);
  const logits = new Float32Array(rows * cols);
  new Uint8Array(logits.buffer).set(buf.subarray(HEADER));
  return { rows, cols, logits };
}
