/**
 * The in-memory form of a top-k (sparse) teacher: for each student row, the k columns the teacher
 * ranked highest and their log-probabilities at temperature 1 over the full vocabulary, as serving
 * engines return them. Files, the vLLM converter and cacheTeacherTopK all produce this form; see
 * docs/served-teacher.md.
 */
import { describe } from '../kernels/validate.js';

import type { TopKTeacher, TopKTeacherMeta } from '../kernels/topk-types.js';

export type { TopKTeacher, TopKTeacherMeta };

/** The metadata keys whose values are numbers; every other key stays a string. */
const NUMERIC_KEYS = { vocab_size: 'int', k: 'int', temperature: 'number' } as const;

/**
 * Metadata as stored in a file (string to string) read into a TopKTeacherMeta. `vocab_size` and
 * `k` must be integers >= 1 and `temperature` a number > 0, else a RangeError naming the key:
 * a file that says it has 0 classes is wrong, not something to guess around.
 */
export function parseTopKMeta(entries: Iterable<[string, string]>, where: string): TopKTeacherMeta {
  const meta: TopKTeacherMeta = {};
  for (const [key, value] of entries) {
    // pyarrow and pandas keep their own schema copies in the same map; they are not the teacher's
    if (key === 'ARROW:schema' || key === 'pandas') continue;
    const kind = (NUMERIC_KEYS as Record<string, 'int' | 'number' | undefined>)[key];
    if (kind === undefined) {
      meta[key] = value;
      continue;
    }
    const n = Number(value.trim());
    const ok = value.trim() !== '' && Number.isFinite(n) && (kind === 'int' ? Number.isSafeInteger(n) && n >= 1 : n > 0);
    if (!ok) throw new RangeError(`${where}: metadata '${key}' must be ${kind === 'int' ? 'an integer >= 1' : 'a number > 0'}, got '${value}'`);
    meta[key] = n;
  }
  return meta;
}

/** The metadata as file key-value pairs (strings), in a stable order. */
export function formatTopKMeta(meta: TopKTeacherMeta | undefined, k: number, cols: number): Map<string, string> {
  const out = new Map<string, string>();
  for (const [key, value] of Object.entries(meta ?? {})) {
    if (value === undefined) continue;
    if (typeof value !== 'string' && typeof value !== 'number') throw new TypeError(`meta.${key} must be a string or a number, got ${describe(value)}`);
    out.set(key, String(value));
  }
  // the file states its own shape, whatever meta said
  out.set('vocab_size', String(cols));
  out.set('k', String(k));
  return out;
}

/**
 * Checks a TopKTeacher completely (shapes, id range, duplicates, NaN) before it is written, so a
 * file kdfuse writes always loads. Errors name the field, the row and the entry.
 */
export function checkTopKTeacher(t: unknown, name = 'teacher'): TopKTeacher {
  if (typeof name !== 'string') name = 'teacher';  // how errors name it: a non-string must not make them throw
  if (t === null || typeof t !== 'object') throw new TypeError(`${name} must be a TopKTeacher object, got ${describe(t)}`);
  const { indices, logprobs, rows, k, cols, meta } = t as Partial<TopKTeacher>;
  for (const [key, v, min] of [['rows', rows, 0], ['k', k, 1], ['cols', cols, 1]] as const) {
    if (typeof v !== 'number') throw new TypeError(`${name}.${key} must be a number, got ${describe(v)}`);
    if (!Number.isSafeInteger(v) || v < min || v > 0x7fffffff) throw new RangeError(`${name}.${key} must be an integer in [${min}, 2^31), got ${String(v)}`);
  }
  if (!(indices instanceof Int32Array)) throw new TypeError(`${name}.indices must be an Int32Array, got ${describe(indices)}`);
  if (!(logprobs instanceof Float32Array)) throw new TypeError(`${name}.logprobs must be a Float32Array, got ${describe(logprobs)}`);
  const n = rows! * k!;
  if (indices.length !== n) throw new RangeError(`${name}.indices must hold rows * k = ${n} ids, got ${indices.length}`);
  if (logprobs.length !== n) throw new RangeError(`${name}.logprobs must hold rows * k = ${n} values, got ${logprobs.length}`);
  if (meta !== undefined && (meta === null || typeof meta !== 'object')) throw new TypeError(`${name}.meta must be an object, got ${describe(meta)}`);
  const seen = new Int32Array(cols!); // seen[id] = row + 1 when id was met in that row
  for (let r = 0; r < rows!; r++) {
    for (let j = 0; j < k!; j++) {
      const id = indices[r * k! + j]!, lp = logprobs[r * k! + j]!;
      const at = `row ${r}, entry ${j}`;
      if (id === -1) continue;
      if (id < 0 || id >= cols!) throw new RangeError(`${name}.indices ${at}: id ${id} is outside [0, cols = ${cols}) and is not the padding -1`);
      if (seen[id] === r + 1) throw new RangeError(`${name}.indices ${at}: id ${id} appears twice in the row`);
      seen[id] = r + 1;
      if (Number.isNaN(lp) || lp === Infinity) throw new RangeError(`${name}.logprobs ${at}: must be a log-probability, got ${lp}`);
    }
  }
  return t as TopKTeacher;
}
