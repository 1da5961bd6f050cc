/**
 * Top-k teacher files: Parquet (through parquet-wasm) and Arrow IPC (through apache-arrow), the
 * layouts Python distillation pipelines write with pyarrow. Loading streams the file (Parquet one
 * row group at a time, Arrow one record batch at a time) into a TopKRowsBuilder, which checks
 * every entry. Layouts, metadata and the choice of libraries: docs/served-teacher.md.
 */
import { openAsBlob } from 'node:fs';
import { open, stat, writeFile } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import cliProgress from 'cli-progress';
import type { ParquetFile } from 'parquet-wasm';
import { checkKnownKeys, describe, optionalChoice, requireObject } from '../kernels/validate.js';
import { appendBatch, importArrow, importParquetWasm, isSequenceLayout, type ArrowModule, type ColumnNames } from './topk-arrow.js';
import { TopKRowsBuilder } from './topk-rows.js';
import { checkTopKTeacher, formatTopKMeta, parseTopKMeta, type TopKTeacher, type TopKTeacherMeta } from './topk-teacher.js';

export type TopKFileFormat = 'parquet' | 'arrow';
const FORMATS = ['parquet', 'arrow'] as const;
const EXTENSIONS: Record<string, TopKFileFormat> = { '.parquet': 'parquet', '.pq': 'parquet', '.arrow': 'arrow', '.feather': 'arrow', '.arrows': 'arrow', '.ipc': 'arrow' };

export interface LoadTopKOptions {
  /** the column of ids (default 'topk_ids') */
  idsColumn?: string;
  /** the column of log-probabilities (default 'topk_logprobs') */
  logprobsColumn?: string;
  /** 'parquet' or 'arrow' (IPC file or stream, Feather v2); default: from the file's extension */
  format?: TopKFileFormat;
  /** the vocabulary size, for files without the metadata key 'vocab_size' */
  cols?: number;
  /** 'progress' draws a progress bar on stderr; default: when stderr is a TTY and the file is >= 16 MiB */
  verbose?: 'progress' | 'quiet';
  /** called after each row group (Parquet) or record batch (Arrow) with bytes done and the total */
  onProgress?: (done: number, total: number) => void;
}

export interface SaveTopKOptions {
  /** default: from the file's extension */
  format?: TopKFileFormat;
  /** how the log-probabilities are stored (default 'float32'; 'float16' halves their size) */
  logprobsType?: 'float32' | 'float16';
  /** rows per Parquet row group / Arrow record batch (default 65536) */
  rowGroupSize?: number;
}

const LOAD_KEYS = ['idsColumn', 'logprobsColumn', 'format', 'cols', 'verbose', 'onProgress'] as const;
const SAVE_KEYS = ['format', 'logprobsType', 'rowGroupSize'] as const;
const PROGRESS_MIN_BYTES = 16 * 2 ** 20;

function formatOf(path: string, o: Record<string, unknown>, fn: string): TopKFileFormat {
  if (o.format !== undefined) return optionalChoice(o, 'format', FORMATS, 'parquet');
  const f = EXTENSIONS[extname(path).toLowerCase()];
  if (!f) throw new RangeError(`${fn}: cannot tell the format of ${path} from its extension (.parquet, .arrow, .feather); pass format: 'parquet' or 'arrow'`);
  return f;
}

function requirePath(path: unknown, fn: string): string {
  if (typeof path !== 'string' || path.length === 0) throw new TypeError(`${fn}: path must be a non-empty string, got ${describe(path)}`);
  return path;
}

function optionalString(o: Record<string, unknown>, name: string, fallback: string): string {
  const v = o[name];
  if (v === undefined) return fallback;
  if (typeof v !== 'string' || v.length === 0) throw new TypeError(`${name} must be a non-empty string, got ${describe(v)}`);
  return v;
}

function optionalCount(o: Record<string, unknown>, name: string): number | undefined {
  const v = o[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'number') throw new TypeError(`${name} must be a number, got ${describe(v)}`);
  if (!Number.isSafeInteger(v) || v < 1 || v > 0x7fffffff) throw new RangeError(`${name} must be an integer in [1, 2^31), got ${String(v)}`);
  return v;
}

/** The vocabulary size: the file's 'vocab_size', else the cols option; both must agree when both are given. */
function resolveCols(meta: TopKTeacherMeta, cols: number | undefined, file: string): number {
  const fromFile = meta.vocab_size as number | undefined;
  if (fromFile !== undefined && cols !== undefined && fromFile !== cols) {
    throw new RangeError(`${file}: its metadata says vocab_size = ${fromFile}, the cols option says ${cols}`);
  }
  const c = fromFile ?? cols;
  if (c === undefined) throw new RangeError(`${file} has no 'vocab_size' in its metadata: pass the vocabulary size as the cols option`);
  return c;
}

/** Progress reporting: the caller's callback and, when asked for, a bar on stderr. */
function progressOf(o: Record<string, unknown>, file: string, total: number): { update(done: number, rows: number): void; stop(): void } {
  const cb = o.onProgress;
  if (cb !== undefined && typeof cb !== 'function') throw new TypeError(`onProgress must be a function, got ${describe(cb)}`);
  const verbose = optionalChoice(o, 'verbose', ['progress', 'quiet'] as const, process.stderr.isTTY && total >= PROGRESS_MIN_BYTES ? 'progress' : 'quiet');
  const bar = verbose === 'progress'
    ? new cliProgress.SingleBar({ format: `loading ${basename(file)} [{bar}] {percentage}% | {rows} rows`, hideCursor: true, stream: process.stderr }, cliProgress.Presets.shades_classic)
    : undefined;
  bar?.start(total, 0, { rows: 0 });
  return {
    update(done: number, rows: number) {
      bar?.update(done, { rows });
      (cb as LoadTopKOptions['onProgress'])?.(done, total);
    },
    stop() {
      bar?.stop();
    },
  };
}

/**
 * Reads a top-k teacher file written by pyarrow (or saveTopKTeacher) into the in-memory form.
 * Layouts: one row per student row (`list<int32>` ids, `list<float>` or `list<halffloat>`
 * log-probabilities) or one row per sequence (lists of lists), flattened in order. Rows shorter
 * than k, and null rows, are padded with id -1 (log-probability -Infinity).
 */
export async function loadTopKTeacher(path: string, options: LoadTopKOptions = {}): Promise<TopKTeacher> {
  const fn = 'loadTopKTeacher';
  requirePath(path, fn);
  const o = requireObject(options, 'options');
  checkKnownKeys(o, LOAD_KEYS, fn);
  const names: ColumnNames = { ids: optionalString(o, 'idsColumn', 'topk_ids'), logprobs: optionalString(o, 'logprobsColumn', 'topk_logprobs') };
  if (names.ids === names.logprobs) throw new RangeError(`idsColumn and logprobsColumn must differ, both are '${names.ids}'`);
  const cols = optionalCount(o, 'cols');
  const format = formatOf(path, o, fn);
  const size = (await stat(path)).size; // a missing file: Node's ENOENT error names it
  return format === 'parquet' ? loadParquet(path, names, cols, o, size) : loadArrow(path, names, cols, o, size);
}

function finish(builder: TopKRowsBuilder, meta: TopKTeacherMeta): TopKTeacher {
  return { ...builder.finish(), meta };
}

async function loadParquet(path: string, names: ColumnNames, cols: number | undefined, o: Record<string, unknown>, size: number): Promise<TopKTeacher> {
  const purpose = 'loadTopKTeacher on a Parquet file';
  const [arrow, pw] = await Promise.all([importArrow(purpose), importParquetWasm(purpose)]);
  let file: ParquetFile;
  try {
    file = await pw.ParquetFile.fromFile(await openAsBlob(path));
  } catch (e) {
    throw new RangeError(`${path} is not a readable Parquet file (${errorText(e)})`);
  }
  try {
    const md = file.metadata();
    const meta = parseTopKMeta(md.fileMetadata().keyValueMetadata() as Map<string, string>, path);
    const vocab = resolveCols(meta, cols, path);
    const schema = arrow.tableFromIPC(file.schema().intoIPCStream()).schema;
    const sequences = isSequenceLayout(arrow, schema, names, path);
    const groups = md.rowGroups();
    const rowsHint = sequences ? 1024 : Math.max(1, Number(md.fileMetadata().numRows()));
    const builder = new TopKRowsBuilder(vocab, meta.k as number | undefined, rowsHint);
    const total = groups.reduce((s, g) => s + g.compressedSize(), 0);
    const progress = progressOf(o, path, total);
    try {
      let fileRow = 0, done = 0;
      for (let g = 0; g < groups.length; g++) {
        const part = await readRowGroup(file, g, names, path);
        for (const batch of arrow.tableFromIPC(part).batches) fileRow += appendBatch(arrow, batch, names, sequences, fileRow, builder, path);
        done += groups[g]!.compressedSize();
        progress.update(done, builder.rows);
      }
    } finally {
      progress.stop();
    }
    return finish(builder, meta);
  } finally {
    file.free();
  }
}

async function readRowGroup(file: ParquetFile, g: number, names: ColumnNames, path: string): Promise<Uint8Array> {
  try {
    return (await file.read({ rowGroups: [g], columns: [names.ids, names.logprobs] })).intoIPCStream();
  } catch (e) {
    throw new RangeError(`${path}: row group ${g} could not be read (${errorText(e)})`);
  }
}

async function loadArrow(path: string, names: ColumnNames, cols: number | undefined, o: Record<string, unknown>, size: number): Promise<TopKTeacher> {
  const arrow = await importArrow('loadTopKTeacher on an Arrow IPC file');
  // A file handle, not a read stream: from a stream apache-arrow reads an IPC *file* whole before
  // its first batch (the footer is at the end); from a handle it reads the footer, then each batch.
  // The wrapper counts the bytes read, for the progress report.
  const fh = await open(path, 'r');
  let bytesRead = 0;
  const handle = {
    fd: fh.fd,
    stat: () => fh.stat(),
    close: () => fh.close(),
    read: async (buffer: Uint8Array, offset: number, length: number, position: number) => {
      const r = await fh.read(buffer, offset, length, position);
      bytesRead += r.bytesRead;
      return r;
    },
  };
  try {
    let reader: Awaited<ReturnType<typeof arrow.RecordBatchReader.from>>;
    try {
      reader = await arrow.RecordBatchReader.from(handle as unknown as import('node:fs/promises').FileHandle);
      await reader.open();
    } catch (e) {
      throw new RangeError(`${path} is not an Arrow IPC file or stream (${errorText(e)})`);
    }
    const schema = reader.schema as import('apache-arrow').Schema | undefined; // undefined for an empty file
    if (!schema) throw new RangeError(`${path} is not an Arrow IPC file or stream (it has no schema; is it empty?)`);
    const meta = parseTopKMeta(schema.metadata, path);
    const vocab = resolveCols(meta, cols, path);
    const sequences = isSequenceLayout(arrow, schema, names, path);
    // the row count is not in an IPC file's header: estimate it from the size (8 bytes an entry)
    const builder = new TopKRowsBuilder(vocab, meta.k as number | undefined, Math.ceil(size / (8 * ((meta.k as number | undefined) ?? 64))));
    const progress = progressOf(o, path, size);
    try {
      let fileRow = 0;
      for await (const batch of readBatches(reader, path)) {
        fileRow += appendBatch(arrow, batch, names, sequences, fileRow, builder, path);
        progress.update(Math.min(bytesRead, size), builder.rows);
      }
      // the end-of-stream marker and padding are never read: the whole file is done all the same
      if (bytesRead < size) progress.update(size, builder.rows);
    } finally {
      progress.stop();
    }
    return finish(builder, meta);
  } finally {
    await fh.close().catch(() => undefined); // apache-arrow may have closed it already
  }
}

/** The reader's batches, with apache-arrow's errors (compressed buffers above all) made clear. */
async function* readBatches(reader: AsyncIterable<import('apache-arrow').RecordBatch>, path: string): AsyncGenerator<import('apache-arrow').RecordBatch> {
  const it = reader[Symbol.asyncIterator]();
  for (;;) {
    let next: IteratorResult<import('apache-arrow').RecordBatch>;
    try {
      next = await it.next();
    } catch (e) {
      const msg = errorText(e);
      if (/compress|codec/i.test(msg)) {
        throw new RangeError(`${path} has compressed buffers (${msg}); apache-arrow reads uncompressed IPC only unless a codec is registered: write it with compression='uncompressed' (pyarrow) or register one in apache-arrow's compressionRegistry`);
      }
      throw new RangeError(`${path}: a record batch could not be read (${msg})`);
    }
    if (next.done) return;
    yield next.value;
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Writes a top-k teacher in the one-row-per-student-row layout: `topk_ids` list<int32> and
 * `topk_logprobs` list<float32> (or list<float16>), with `meta` plus `vocab_size` and `k` in the
 * file's key-value metadata. Parquet files are Snappy-compressed; Arrow files are the IPC file
 * format (Feather v2), uncompressed. The teacher is checked completely first.
 */
export async function saveTopKTeacher(path: string, teacher: TopKTeacher, options: SaveTopKOptions = {}): Promise<void> {
  await writeTopKFile(path, teacher, options, 'saveTopKTeacher', true);
}

/**
 * saveTopKTeacher's work; `vocabKnown` false leaves 'vocab_size' out of the metadata (the vLLM
 * converter without --vocab-size knows only the largest id), so loading asks for cols.
 */
export async function writeTopKFile(path: string, teacher: TopKTeacher, options: SaveTopKOptions, fn: string, vocabKnown: boolean): Promise<void> {
  requirePath(path, fn);
  checkTopKTeacher(teacher, 'teacher');
  const o = requireObject(options, 'options');
  checkKnownKeys(o, SAVE_KEYS, fn);
  const format = formatOf(path, o, fn);
  const logprobsType = optionalChoice(o, 'logprobsType', ['float32', 'float16'] as const, 'float32');
  const rowGroupSize = optionalCount(o, 'rowGroupSize') ?? 65536;
  const arrow = await importArrow(`${fn} to ${format === 'parquet' ? 'a Parquet' : 'an Arrow'} file`);
  const table = topKTable(arrow, teacher, logprobsType, rowGroupSize, vocabKnown);
  if (format === 'arrow') {
    await writeFile(path, arrow.tableToIPC(table, 'file'));
    return;
  }
  const pw = await importParquetWasm(`${fn} to a Parquet file`);
  const wasmTable = pw.Table.fromIPCStream(arrow.tableToIPC(table, 'stream'));
  const props = new pw.WriterPropertiesBuilder()
    .setCompression(pw.Compression.SNAPPY)
    .setMaxRowGroupSize(rowGroupSize)
    .setKeyValueMetadata(table.schema.metadata)
    .setCreatedBy('kdfuse')
    .build();
  await writeFile(path, pw.writeParquet(wasmTable, props));
}

/** The teacher as an Arrow table of two list columns over the flat arrays (no per-row copies). */
function topKTable(arrow: ArrowModule, t: TopKTeacher, logprobsType: 'float32' | 'float16', batchRows: number, vocabKnown: boolean): import('apache-arrow').Table {
  const { rows, k, cols } = t;
  const idType = new arrow.Int32();
  const lpType = logprobsType === 'float16' ? new arrow.Float16() : new arrow.Float32();
  const idList = new arrow.List(new arrow.Field('element', idType, false));
  const lpList = new arrow.List(new arrow.Field('element', lpType, false));
  const meta = formatTopKMeta(t.meta, k, cols);
  if (!vocabKnown) meta.delete('vocab_size');
  const schema = new arrow.Schema([new arrow.Field('topk_ids', idList, false), new arrow.Field('topk_logprobs', lpList, false)], meta);
  const batches: import('apache-arrow').RecordBatch[] = [];
  for (let r0 = 0; r0 < rows || (rows === 0 && batches.length === 0); r0 += batchRows) {
    const n = Math.min(batchRows, rows - r0);
    const valueOffsets = new Int32Array(n + 1);
    for (let i = 0; i <= n; i++) valueOffsets[i] = i * k;
    const ids = t.indices.subarray(r0 * k, (r0 + n) * k);
    const f32 = t.logprobs.subarray(r0 * k, (r0 + n) * k);
    let lps: Float32Array | Uint16Array = f32;
    if (logprobsType === 'float16') {
      lps = new Uint16Array(f32.length);
      for (let i = 0; i < f32.length; i++) lps[i] = arrow.util.float64ToUint16(f32[i]!);
    }
    const idData = arrow.makeData({ type: idList, length: n, nullCount: 0, valueOffsets, child: arrow.makeData({ type: idType, data: ids }) });
    const lpData = arrow.makeData({ type: lpList, length: n, nullCount: 0, valueOffsets, child: arrow.makeData({ type: lpType, data: lps as never }) });
    const struct = arrow.makeData({ type: new arrow.Struct(schema.fields), length: n, nullCount: 0, children: [idData, lpData] });
    batches.push(new arrow.RecordBatch(schema, struct));
    if (rows === 0) break;
  }
  return new arrow.Table(schema, batches);
}
