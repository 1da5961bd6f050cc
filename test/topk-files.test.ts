/**
 * Top-k teacher files. The fixtures under test/fixtures/topk/ were written by pyarrow 25.0.1
 * (scripts/make-topk-fixtures.py), not by kdfuse, so these tests check that files from Python
 * pipelines load exactly; expected.json, written by the same script, holds the values it wrote.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadTopKTeacher, saveTopKTeacher, type TopKTeacher } from '../src/train/index.js';

const FIX = join(__dirname, 'fixtures', 'topk');
type Lists = (number[] | null)[];
interface Expected {
  vocab_size: number;
  k: number;
  meta: Record<string, string>;
  rows: { ids: Lists; logprobs_f32: (( number | null)[] | null)[]; logprobs_f16: ((number | null)[] | null)[] };
  sequences: { ids: Lists[]; logprobs_f32: ((number | null)[] | null)[][]; logprobs_f16: ((number | null)[] | null)[][] };
}
const EXP = JSON.parse(readFileSync(join(FIX, 'expected.json'), 'utf8')) as Expected;
const tmp = mkdtempSync(join(tmpdir(), 'kdfuse-topk-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The `[rows, k]` arrays the lists should load as: padded with -1 / -Infinity (JSON null = -Infinity). */
function dense(ids: Lists, lps: ((number | null)[] | null)[], k: number): { indices: Int32Array; logprobs: Float32Array } {
  const indices = new Int32Array(ids.length * k).fill(-1), logprobs = new Float32Array(ids.length * k).fill(-Infinity);
  ids.forEach((row, r) => row?.forEach((id, j) => {
    indices[r * k + j] = id;
    if (id !== -1) logprobs[r * k + j] = lps[r]![j] ?? -Infinity;
  }));
  return { indices, logprobs };
}

function expectTeacher(t: TopKTeacher, ids: Lists, lps: ((number | null)[] | null)[]): void {
  const want = dense(ids, lps, EXP.k);
  expect(t.rows).toBe(ids.length);
  expect(t.k).toBe(EXP.k);
  expect(t.cols).toBe(EXP.vocab_size);
  expect(Array.from(t.indices)).toEqual(Array.from(want.indices));
  expect(Array.from(t.logprobs)).toEqual(Array.from(want.logprobs)); // exact: float32 and float16 values are exact in float32
}

const META = { teacher: 'tiny-teacher-v1', vocab_size: 40, k: 5, temperature: 1 };

describe('loadTopKTeacher on pyarrow-written files', () => {
  it.each([
    ['rows-f32.parquet', 'logprobs_f32'],
    ['rows-f16.parquet', 'logprobs_f16'],
    ['rows-f32.arrow', 'logprobs_f32'],
    ['rows-f16.feather', 'logprobs_f16'],
    ['rows-i64-f64-zstd.parquet', 'logprobs_f32'], // float64 values, stored as float32 on loading
    ['rows-fixed-size.arrow', 'logprobs_f32'], // fixed_size_list columns
  ] as const)('one row per student row: %s', async (file, lps) => {
    const t = await loadTopKTeacher(join(FIX, file));
    expectTeacher(t, EXP.rows.ids, EXP.rows[lps]);
    expect(t.meta).toEqual(META);
    expect(t.indices[3 * 5 + 2]).toBe(-1); // row 3 was padded in the file
    expect(t.indices[10 * 5]).toBe(-1); // row 10 was a null list
  });

  it.each([
    ['sequences-f16.parquet', 'logprobs_f16'],
    ['sequences-f32.stream.arrow', 'logprobs_f32'],
  ] as const)('one row per sequence, other column names: %s is flattened in order', async (file, lps) => {
    const t = await loadTopKTeacher(join(FIX, file), { idsColumn: 'target_token_ids', logprobsColumn: 'target_logprobs' });
    expectTeacher(t, EXP.sequences.ids.flat(), EXP.sequences[lps].flat());
    expect(t.rows).toBe(4 + 1 + 6);
    expect(t.meta?.teacher).toBe('tiny-teacher-v1');
  });

  it('takes the vocabulary size from cols when the file has no metadata, and k from the longest row', async () => {
    const file = join(FIX, 'no-meta.parquet');
    await expect(loadTopKTeacher(file)).rejects.toThrow(/no 'vocab_size' in its metadata: pass the vocabulary size as the cols option/);
    const t = await loadTopKTeacher(file, { cols: 40 });
    expectTeacher(t, EXP.rows.ids, EXP.rows.logprobs_f32);
    expect(t.meta).toEqual({});
    await expect(loadTopKTeacher(join(FIX, 'rows-f32.parquet'), { cols: 41 })).rejects.toThrow(/vocab_size = 40, the cols option says 41/);
  });

  it('reports progress once per Parquet row group, ending at the total', async () => {
    const calls: [number, number][] = [];
    await loadTopKTeacher(join(FIX, 'rows-f32.parquet'), { onProgress: (d, t) => calls.push([d, t]), verbose: 'quiet' });
    expect(calls.length).toBe(3); // pyarrow wrote 12 rows in groups of 5
    expect(calls[2]![0]).toBe(calls[2]![1]);
    expect(calls[0]![0]).toBeLessThan(calls[1]![0]);
  });
});

describe('loadTopKTeacher refuses files that do not match, naming the column and row', () => {
  it.each([
    ['bad-id-range.parquet', RangeError, /column 'topk_ids' row 4 \(student row 4\), entry 1: id 40 is outside \[0, vocab_size = 40\)/],
    ['bad-duplicate.parquet', RangeError, /column 'topk_ids' row 2 \(student row 2\), entry 3: id \d+ appears twice in the row/],
    ['bad-lengths.parquet', RangeError, /column 'topk_logprobs' row 1 \(student row 1\): 4 log-probabilities for 5 ids/],
    ['bad-nan.parquet', RangeError, /column 'topk_logprobs' row 6 \(student row 6\), entry 0: NaN is not a log-probability/],
    ['bad-too-long.parquet', RangeError, /column 'topk_ids' row 5 \(student row 5\): 6 entries, more than k = 5/],
    ['bad-id-type.parquet', TypeError, /column 'topk_ids' must hold integers .*got Float/],
  ] as const)('%s', async (file, type, message) => {
    const p = loadTopKTeacher(join(FIX, file));
    await expect(p).rejects.toThrow(type);
    await expect(loadTopKTeacher(join(FIX, file))).rejects.toThrow(message);
  });

  it('a missing column names the option and lists the columns there are', async () => {
    await expect(loadTopKTeacher(join(FIX, 'rows-f32.parquet'), { idsColumn: 'ids' }))
      .rejects.toThrow(/has no column 'ids' \(the idsColumn option\); its columns are 'row_id', 'topk_ids', 'topk_logprobs'/);
    await expect(loadTopKTeacher(join(FIX, 'rows-f32.arrow'), { logprobsColumn: 'lp' })).rejects.toThrow(/no column 'lp' \(the logprobsColumn option\)/);
  });

  it('a list-of-lists column beside a list column is a layout mismatch', async () => {
    await expect(loadTopKTeacher(join(FIX, 'sequences-f16.parquet'), { idsColumn: 'input_ids', logprobsColumn: 'target_logprobs' }))
      .rejects.toThrow(/must both be lists .* or both lists of lists/);
  });

  it('an LZ4-compressed Feather file gets an error that says what to do', async () => {
    await expect(loadTopKTeacher(join(FIX, 'compressed-lz4.feather'))).rejects.toThrow(/compress.*compression='uncompressed'/s);
  });

  it('a file that is not Parquet, a missing file, and bad options', async () => {
    const junk = join(tmp, 'junk.parquet');
    writeFileSync(junk, 'not a parquet file at all');
    await expect(loadTopKTeacher(junk)).rejects.toThrow(/junk.parquet is not a readable Parquet file/);
    await expect(loadTopKTeacher(join(FIX, 'rows-f32.arrow'), { format: 'parquet' })).rejects.toThrow(/not a readable Parquet file/);
    await expect(loadTopKTeacher(join(tmp, 'absent.parquet'))).rejects.toThrow(/ENOENT.*absent.parquet/);
    const empty = join(tmp, 'empty.arrow');
    writeFileSync(empty, '');
    await expect(loadTopKTeacher(empty)).rejects.toThrow(/empty.arrow is not an Arrow IPC file or stream/);
    const cut = join(tmp, 'cut.arrow'); // an IPC stream cut inside a record batch
    writeFileSync(cut, readFileSync(join(FIX, 'sequences-f32.stream.arrow')).subarray(0, 1200));
    await expect(loadTopKTeacher(cut, { idsColumn: 'target_token_ids', logprobsColumn: 'target_logprobs' })).rejects.toThrow(/cut.arrow: a record batch could not be read/);
    const cutFile = join(tmp, 'cut-file.arrow'); // an IPC file without its footer
    writeFileSync(cutFile, readFileSync(join(FIX, 'rows-f32.arrow')).subarray(0, 2500));
    await expect(loadTopKTeacher(cutFile)).rejects.toThrow(/cut-file.arrow is not an Arrow IPC file or stream/);
    await expect(loadTopKTeacher(join(FIX, 'expected.json'))).rejects.toThrow(/cannot tell the format .*pass format/);
    await expect(loadTopKTeacher(join(FIX, 'rows-f32.parquet'), { idColumn: 'x' } as never)).rejects.toThrow(/unknown option 'idColumn'; did you mean 'idsColumn'/);
    await expect(loadTopKTeacher(join(FIX, 'rows-f32.parquet'), { cols: 0 })).rejects.toThrow(RangeError);
    await expect(loadTopKTeacher(join(FIX, 'rows-f32.parquet'), { format: 'csv' as never })).rejects.toThrow(/format must be one of/);
    await expect(loadTopKTeacher(42 as never)).rejects.toThrow(TypeError);
  });
});

describe('saveTopKTeacher', () => {
  function teacher(): TopKTeacher {
    const rows = 300, k = 7, cols = 1000;
    const indices = new Int32Array(rows * k), logprobs = new Float32Array(rows * k);
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < k; j++) {
        const pad = r % 11 === 3 && j >= 4;
        indices[r * k + j] = pad ? -1 : (r * 37 + j * 101) % cols;
        logprobs[r * k + j] = pad ? -Infinity : -0.1 - j - (r % 5) * 0.013;
      }
    }
    return { indices, logprobs, rows, k, cols, meta: { teacher: 'unit', temperature: 1, source: 'test' } };
  }

  it.each(['parquet', 'arrow'] as const)('round-trips float32 exactly through %s, in several row groups', async (format) => {
    const t = teacher();
    const file = join(tmp, `t32.${format}`);
    await saveTopKTeacher(file, t, { rowGroupSize: 128 });
    const calls: [number, number][] = [];
    const back = await loadTopKTeacher(file, { onProgress: (d, total) => calls.push([d, total]) });
    expect(back.rows).toBe(t.rows);
    expect(back.k).toBe(t.k);
    expect(back.cols).toBe(t.cols);
    expect(back.indices).toEqual(t.indices);
    expect(back.logprobs).toEqual(t.logprobs);
    expect(back.meta).toEqual({ teacher: 'unit', temperature: 1, source: 'test', vocab_size: 1000, k: 7 });
    // 300 rows in row groups / record batches of 128; Arrow may add one call for bytes never read (the end marker)
    expect(calls.length).toBeGreaterThanOrEqual(3);
    expect(calls.length).toBeLessThanOrEqual(4);
    expect(calls.at(-1)![0]).toBe(calls.at(-1)![1]); // the last call reports the whole file
    expect(calls[0]![0]).toBeLessThan(calls[1]![0]);
  });

  it.each(['parquet', 'arrow'] as const)('stores float16 log-probabilities in %s within float16 rounding', async (format) => {
    const t = teacher();
    const file = join(tmp, `t16.${format}`);
    await saveTopKTeacher(file, t, { logprobsType: 'float16' });
    const back = await loadTopKTeacher(file);
    expect(back.indices).toEqual(t.indices);
    for (let i = 0; i < t.logprobs.length; i++) {
      const want = t.logprobs[i]!;
      if (want === -Infinity) expect(back.logprobs[i]).toBe(-Infinity);
      else expect(Math.abs(back.logprobs[i]! - want)).toBeLessThanOrEqual(Math.abs(want) * 2 ** -11); // half an ulp of float16
    }
  });

  it('refuses a teacher it could not load back, naming the row', async () => {
    const t = teacher();
    t.indices[5 * 7 + 2] = t.indices[5 * 7]!;
    await expect(saveTopKTeacher(join(tmp, 'dup.parquet'), t)).rejects.toThrow(/teacher.indices row 5, entry 2: id \d+ appears twice/);
    const u = teacher();
    u.indices[0] = 1000;
    await expect(saveTopKTeacher(join(tmp, 'range.arrow'), u)).rejects.toThrow(/row 0, entry 0: id 1000 is outside \[0, cols = 1000\)/);
    await expect(saveTopKTeacher(join(tmp, 'x.parquet'), { ...teacher(), logprobs: new Float32Array(3) })).rejects.toThrow(/logprobs must hold rows \* k = 2100/);
    await expect(saveTopKTeacher(join(tmp, 'x.parquet'), teacher(), { logprobType: 'float16' } as never)).rejects.toThrow(/did you mean 'logprobsType'/);
    await expect(saveTopKTeacher(join(tmp, 'x.csv'), teacher())).rejects.toThrow(/cannot tell the format/);
  });
});

describe('the optional packages', () => {
  it('a missing apache-arrow or parquet-wasm gets an error that says what to install', async () => {
    const { optionalImport } = await import('../src/train/topk-arrow.js');
    const missing = () => Promise.reject(Object.assign(new Error("Cannot find package 'parquet-wasm'"), { code: 'ERR_MODULE_NOT_FOUND' }));
    await expect(optionalImport('parquet-wasm', missing, 'loadTopKTeacher on a Parquet file'))
      .rejects.toThrow("loadTopKTeacher on a Parquet file needs the optional package 'parquet-wasm', which is not installed: run npm install parquet-wasm");
    const other = () => Promise.reject(new Error('boom'));
    await expect(optionalImport('apache-arrow', other, 'x')).rejects.toThrow('boom');
  });
});
