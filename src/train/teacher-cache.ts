/**
 * Offline distillation: run the teacher once over the training inputs and keep its logits, in
 * memory or in a small binary file, so later epochs never run the teacher.
 * File format: "KDFLOGIT" (8 bytes), uint32 LE version (1), uint32 LE rows, uint32 LE cols, then
 * rows * cols float32 little-endian, row-major.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { endianness } from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { checkKnownKeys, describe, requireObject } from '../kernels/validate.js';

export interface TeacherLogits {
  rows: number;
  cols: number;
  /** [rows, cols] row-major */
  logits: Float32Array;
}

const MAGIC = 'KDFLOGIT';
const VERSION = 1;
const HEADER = 20;
// Node also runs on big-endian hosts (s390x), where a Float32Array's bytes are not the file's.
const LITTLE = endianness() === 'LE';

/**
 * The teacher's `[rows, classes]` outputs for every row of `x`, computed batch by batch (each in
 * tf.tidy, so no tensor outlives its batch) and kept as one row-major Float32Array.
 */
export function cacheTeacherLogits(
  teacher: LayersModel | ((x: tf.Tensor) => tf.Tensor),
  x: tf.Tensor,
  options: { batchSize?: number } = {},
): TeacherLogits {
  const isFn = typeof teacher === 'function';
  if (!isFn && typeof (teacher as { predict?: unknown } | null)?.predict !== 'function') {
    throw new TypeError(`teacher must be a tf.LayersModel or a function of a tensor, got ${describe(teacher)}`);
  }
  if (!(x instanceof tf.Tensor)) throw new TypeError(`x must be a tf.Tensor, got ${describe(x)}`);
  checkKnownKeys(requireObject(options, 'options'), ['batchSize'], 'cacheTeacherLogits');
  if (x.rank < 1) throw new RangeError('x must have a batch axis, got a scalar');
  const batchSize = options.batchSize ?? 256;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be an integer >= 1, got ${String(batchSize)}`);
  const rows = x.shape[0]!;
  let cols = -1;
  let logits = new Float32Array(0);
  for (let b = 0; b < rows; b += batchSize) {
    const n = Math.min(batchSize, rows - b);
    const part = tf.tidy(() => {
      const xb = tf.slice(x, b, n);
      const out: unknown = isFn ? teacher(xb) : teacher.predict(xb);
      if (!(out instanceof tf.Tensor)) throw new TypeError(`the teacher must return one tf.Tensor, got ${describe(out)}`);
      if (out.rank !== 2 || out.shape[0] !== n || (cols >= 0 && out.shape[1] !== cols)) {
        const want = `[${n}, ${cols >= 0 ? cols : 'classes'}]`;
        throw new RangeError(`the teacher must output ${want} logits for rows ${b}..${b + n - 1}, got shape [${out.shape.join(', ')}]`);
      }
      if (cols < 0) {
        cols = out.shape[1]!;
        logits = new Float32Array(rows * cols);
      }
      return out.dataSync() as Float32Array;
    });
    logits.set(part, b * cols); // converts int outputs; a copy, so the disposed tensor's data is not kept
  }
  return { rows, cols: Math.max(cols, 0), logits };
}

/** Checks a TeacherLogits object (as cacheTeacherLogits / loadTeacherLogits return it) before it is indexed. */
function checkTeacherLogits(v: unknown, name: string): void {
  const c = requireObject(v, name);
  for (const k of ['rows', 'cols'] as const) {
    if (!(typeof c[k] === 'number' && Number.isInteger(c[k]) && (c[k] as number) >= 1)) {
      throw new TypeError(`${name}.${k} must be an integer >= 1, got ${describe(c[k])}`);
    }
  }
  if (!(c.logits instanceof Float32Array)) throw new TypeError(`${name}.logits must be a Float32Array, got ${describe(c.logits)}`);
  const want = (c.rows as number) * (c.cols as number);
  if (c.logits.length !== want) throw new RangeError(`${name}.logits must hold rows * cols = ${want} values, got ${c.logits.length}`);
}

/** The cached logits of the given rows, in order, as a `[indices.length, cols]` tensor. */
export function teacherLogitsBatch(cache: TeacherLogits, indices: Int32Array | number[]): tf.Tensor2D {
  checkTeacherLogits(cache, 'cache');
  if (!(indices instanceof Int32Array) && !Array.isArray(indices)) {
    throw new TypeError(`indices must be an Int32Array or number[], got ${describe(indices)}`);
  }
  const { rows, cols } = cache;
  const out = new Float32Array(indices.length * cols);
  for (let i = 0; i < indices.length; i++) {
    const r = indices[i]!;
    if (!(Number.isInteger(r) && r >= 0 && r < rows)) throw new RangeError(`indices[${i}] must be a row in [0, ${rows}), got ${r}`);
    out.set(cache.logits.subarray(r * cols, (r + 1) * cols), i * cols);
  }
  return tf.tensor2d(out, [indices.length, cols]);
}

function checkCache(cache: TeacherLogits): void {
  if (cache === null || typeof cache !== 'object') throw new TypeError(`cache must be TeacherLogits, got ${describe(cache)}`);
  const { rows, cols, logits } = cache;
  for (const [name, v] of [['rows', rows], ['cols', cols]] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`cache.${name} must be a uint32, got ${String(v)}`);
  }
  if (!(logits instanceof Float32Array)) throw new TypeError(`cache.logits must be a Float32Array, got ${describe(logits)}`);
  if (logits.length !== rows * cols) throw new RangeError(`cache.logits must hold rows * cols = ${rows * cols} values, got ${logits.length}`);
}

/** Writes the cache to `file` in the format above (replacing the file). */
export async function saveTeacherLogits(cache: TeacherLogits, file: string): Promise<void> {
  checkCache(cache);
  const { rows, cols, logits } = cache;
  const buf = Buffer.alloc(HEADER + logits.byteLength);
  buf.write(MAGIC, 0, 'latin1');
  buf.writeUInt32LE(VERSION, 8);
  buf.writeUInt32LE(rows, 12);
  buf.writeUInt32LE(cols, 16);
  if (LITTLE) buf.set(new Uint8Array(logits.buffer, logits.byteOffset, logits.byteLength), HEADER);
  else for (let i = 0; i < logits.length; i++) buf.writeFloatLE(logits[i]!, HEADER + 4 * i);
  await writeFile(file, buf);
}

/** Reads a file written by saveTeacherLogits, checking its magic, version and length. */
export async function loadTeacherLogits(file: string): Promise<TeacherLogits> {
  const buf = await readFile(file); // a missing file: Node's ENOENT error names it
  if (buf.length < 8 || buf.toString('latin1', 0, 8) !== MAGIC) {
    throw new RangeError(`${file} is not a kdfuse teacher-logits file (expected the magic "${MAGIC}")`);
  }
  if (buf.length < HEADER) throw new RangeError(`${file} is truncated: ${buf.length} bytes, shorter than the ${HEADER}-byte header`);
  const version = buf.readUInt32LE(8);
  if (version !== VERSION) throw new RangeError(`${file} has version ${version}, expected ${VERSION}`);
  const rows = buf.readUInt32LE(12), cols = buf.readUInt32LE(16);
  const want = HEADER + rows * cols * 4;
  if (buf.length !== want) throw new RangeError(`${file} must be ${want} bytes for ${rows} x ${cols} logits, got ${buf.length}`);
  const logits = new Float32Array(rows * cols);
  if (LITTLE) new Uint8Array(logits.buffer).set(buf.subarray(HEADER));
  else for (let i = 0; i < logits.length; i++) logits[i] = buf.readFloatLE(HEADER + 4 * i);
  return { rows, cols, logits };
}
